using System.Globalization;

namespace RetrainDaemon.Core.Options;

/// <summary>
/// What this node does (section <c>Node</c>). One binary, roles by configuration: <c>ingest</c> consumes the
/// broker's queues into the store, <c>train</c> runs the loop (Quartz, fine-tunes, analyses), <c>serve</c>
/// answers generate requests from the shared registry and follows <c>model.promoted</c>. A single box runs all
/// three (the default); a cluster splits them over nodes that share the store (PostgreSQL), the registry
/// (a shared filesystem path) and the broker.
/// </summary>
public sealed class NodeOptions
{
    public const string Section = "Node";

    /// <summary>Comma-separated roles, any non-empty combination of <see cref="NodeRoles.All"/>.</summary>
    public string Roles { get; set; } = "ingest,train,serve";
}

/// <summary>The roles and what each one switches on (pure, table-tested).</summary>
public static class NodeRoles
{
    public const string Ingest = "ingest";
    public const string Train = "train";
    public const string Serve = "serve";

    public static readonly IReadOnlyList<string> All = [Ingest, Train, Serve];

    /// <summary>
    /// The stage switch each role owns. A role that is absent turns its stage off; a role that is present
    /// leaves the stage's own switch as configured (so <c>Loop:Enabled=false</c> still pauses training on a
    /// node with the train role).
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> StageSwitches = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [Ingest] = "Ingest:Enabled",
        [Train] = "Loop:Enabled",
        [Serve] = "Serving:Enabled",
    };

    /// <summary>Parses <c>Node:Roles</c>; every problem is listed (unknown names, nothing at all).</summary>
    public static (IReadOnlySet<string> Roles, IReadOnlyList<string> Failures) Parse(string? text)
    {
        var roles = new HashSet<string>(StringComparer.Ordinal);
        var failures = new List<string>();
        foreach (var part in (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string role = part.ToLowerInvariant();
            if (All.Contains(role))
            {
                roles.Add(role);
            }
            else
            {
                failures.Add(string.Create(CultureInfo.InvariantCulture,
                    $"{NodeOptions.Section}:{nameof(NodeOptions.Roles)} = '{text}': unknown role '{part}' (roles: {string.Join(", ", All)})"));
            }
        }

        if (roles.Count == 0 && failures.Count == 0)
        {
            failures.Add($"{NodeOptions.Section}:{nameof(NodeOptions.Roles)} = '{text}': names no role; a node needs at least one of {string.Join(", ", All)}");
        }

        return (roles, failures);
    }

    /// <summary>The settings that switch off the stages of the roles this node does not have.</summary>
    public static IReadOnlyDictionary<string, string?> Overrides(IReadOnlySet<string> roles) =>
        StageSwitches.Where(s => !roles.Contains(s.Key)).ToDictionary(s => s.Value, _ => (string?)"false", StringComparer.Ordinal);
}
