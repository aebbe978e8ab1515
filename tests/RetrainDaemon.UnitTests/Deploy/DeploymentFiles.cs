using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using RetrainDaemon.Core.Options;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace RetrainDaemon.UnitTests.Deploy;

/// <summary>
/// Reads the deployment files (Dockerfile, compose, k8s manifests) and the daemon's configuration, for the
/// cross-checks in <see cref="DeploymentFilesTests"/>. No Docker engine or cluster is involved: this is the
/// static check CI can run.
/// </summary>
internal static partial class DeploymentFiles
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string PathOf(params string[] parts) => Path.Combine([RepoRoot, .. parts]);

    // ───────────────────────────── YAML ─────────────────────────────

    /// <summary>Every document of a (multi-document) YAML file, as dictionaries, lists and strings.</summary>
    public static List<object?> LoadYaml(string path)
    {
        var deserializer = new DeserializerBuilder().Build();
        var parser = new Parser(new StringReader(File.ReadAllText(path)));
        var documents = new List<object?>();
        parser.Consume<StreamStart>();
        while (parser.Accept<DocumentStart>(out _))
        {
            documents.Add(deserializer.Deserialize<object?>(parser));
        }

        return documents;
    }

    public static Dictionary<object, object?> Map(object? node, string what) =>
        node as Dictionary<object, object?> ?? throw new InvalidDataException($"{what}: expected a mapping, found {node?.GetType().Name ?? "nothing"}");

    public static Dictionary<object, object?>? MapOrNull(Dictionary<object, object?> map, string key) =>
        map.TryGetValue(key, out var v) ? v as Dictionary<object, object?> : null;

    public static List<object?> ListOrEmpty(Dictionary<object, object?>? map, string key) =>
        map is not null && map.TryGetValue(key, out var v) && v is List<object?> list ? list : [];

    public static string? Str(Dictionary<object, object?>? map, string key) =>
        map is not null && map.TryGetValue(key, out var v) ? v?.ToString() : null;

    // ───────────────────────────── the daemon's configuration ─────────────────────────────

    /// <summary>Every key of the embedded defaults, flattened as IConfiguration sees them (<c>Broker:Endpoints:0</c>).</summary>
    public static HashSet<string> ConfigurationKeys { get; } = Flatten(File.ReadAllText(PathOf("src", "RetrainDaemon", "appsettings.json")));

    public static HashSet<string> Flatten(string json)
    {
        var keys = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        using var document = JsonDocument.Parse(json);
        Walk(document.RootElement, "", keys);
        return keys;
    }

    private static void Walk(JsonElement element, string prefix, HashSet<string> keys)
    {
        if (prefix.Length > 0)
        {
            keys.Add(prefix);
        }

        string Child(string name) => prefix.Length == 0 ? name : prefix + ":" + name;
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    Walk(property.Value, Child(property.Name), keys);
                }

                break;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in element.EnumerateArray())
                {
                    Walk(item, Child(i++.ToString(CultureInfo.InvariantCulture)), keys);
                }

                break;
        }
    }

    /// <summary>
    /// Options classes by section, for keys the embedded defaults leave out on purpose (secrets and their files,
    /// such as <c>Broker:PasswordFile</c>): such a key is valid when its options class has that property.
    /// </summary>
    private static readonly Dictionary<string, Type> OptionsBySection = new(StringComparer.OrdinalIgnoreCase)
    {
        [BrokerOptions.Section] = typeof(BrokerOptions),
        [IngestOptions.Section] = typeof(IngestOptions),
        [StoreOptions.Section] = typeof(StoreOptions),
        [RegistryOptions.Section] = typeof(RegistryOptions),
        [ServingOptions.Section] = typeof(ServingOptions),
        [HttpOptions.Section] = typeof(HttpOptions),
        [EvaluationOptions.Section] = typeof(EvaluationOptions),
        [TrainingHostOptions.Section] = typeof(TrainingHostOptions),
    };

    /// <summary>Null when <paramref name="key"/> (<c>Section:Key[:n]</c>) is a setting the daemon reads; else why not.</summary>
    public static string? ConfigurationKeyProblem(string key)
    {
        if (ConfigurationKeys.Contains(key))
        {
            return null;
        }

        var parts = key.Split(':');
        // Another element of an array the defaults declare (Broker:Endpoints:1).
        if (parts.Length >= 2 && int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out _)
            && ConfigurationKeys.Contains(string.Join(':', parts[..^1])))
        {
            return null;
        }

        if (parts.Length == 2 && OptionsBySection.TryGetValue(parts[0], out var type)
            && type.GetProperty(parts[1], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase) is { CanWrite: true })
        {
            return null;
        }

        return $"'{key}' is neither in src/RetrainDaemon/appsettings.json nor a property of the section's options class";
    }

    /// <summary>The <c>RETRAIN__A__B</c> variable as a configuration key, or null for other variables.</summary>
    public static string? ConfigurationKeyOfEnvironment(string name) =>
        name.StartsWith("RETRAIN__", StringComparison.Ordinal) ? name["RETRAIN__".Length..].Replace("__", ":", StringComparison.Ordinal) : null;

    /// <summary>The port of the daemon's default <c>Http:Urls</c> (the one every deployment file must use).</summary>
    public static int DaemonPort { get; } = PortOfUrls(ConfigurationValue("Http:Urls")!);

    public static int PortOfUrls(string urls) =>
        new Uri(urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[0].Replace("://+", "://localhost", StringComparison.Ordinal).Replace("://*", "://localhost", StringComparison.Ordinal)).Port;

    public static string? ConfigurationValue(string key)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(PathOf("src", "RetrainDaemon", "appsettings.json")));
        var element = document.RootElement;
        foreach (var part in key.Split(':'))
        {
            if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(part, out element))
            {
                return null;
            }
        }

        return element.ValueKind == JsonValueKind.String ? element.GetString() : element.GetRawText();
    }

    // ───────────────────────────── images ─────────────────────────────

    /// <summary>Null when <paramref name="image"/> is pinned: an explicit tag, not <c>latest</c>, and for base images a
    /// version with at least major.minor.patch (a moving <c>10.0</c> tag is not a pin).</summary>
    public static string? ImagePinProblem(string image, bool requirePatch)
    {
        string name = image;
        int at = name.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            return null; // a digest pins exactly
        }

        int slash = name.LastIndexOf('/');
        int colon = name.LastIndexOf(':');
        if (colon <= slash)
        {
            return $"image '{image}' has no tag (it would mean 'latest')";
        }

        string tag = name[(colon + 1)..];
        if (tag.Equals("latest", StringComparison.OrdinalIgnoreCase) || tag.Length == 0)
        {
            return $"image '{image}' uses the moving tag '{tag}'";
        }

        if (requirePatch && !PatchVersion().IsMatch(tag))
        {
            return $"image '{image}': tag '{tag}' is not a major.minor.patch version";
        }

        return null;
    }

    public static (string Repository, string Tag) SplitImage(string image)
    {
        int slash = image.LastIndexOf('/');
        int colon = image.LastIndexOf(':');
        return colon > slash ? (image[..colon], image[(colon + 1)..]) : (image, "");
    }

    [GeneratedRegex(@"^v?\d+\.\d+\.\d+")]
    private static partial Regex PatchVersion();

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "RetrainDaemon.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("RetrainDaemon.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A Dockerfile as stages of instructions (continuations joined, comments dropped).</summary>
internal sealed partial class Dockerfile
{
    public sealed record Instruction(string Keyword, string Arguments, int Line);

    public sealed class Stage(string from, string? name, int line)
    {
        public string From { get; } = from;

        public string? Name { get; } = name;

        public int Line { get; } = line;

        public List<Instruction> Instructions { get; } = [];
    }

    public Dictionary<string, string> GlobalArgs { get; } = new(StringComparer.Ordinal);

    public List<Stage> Stages { get; } = [];

    public static Dockerfile Parse(string text)
    {
        var file = new Dockerfile();
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].Trim();
            int start = i + 1;
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            while (line.EndsWith('\\') && i + 1 < lines.Length)
            {
                line = line[..^1].TrimEnd() + " ";
                string next = lines[++i].Trim();
                if (!next.StartsWith('#'))
                {
                    line += next;
                }
            }

            int space = line.IndexOf(' ', StringComparison.Ordinal);
            string keyword = (space < 0 ? line : line[..space]).ToUpperInvariant();
            string arguments = space < 0 ? "" : line[(space + 1)..].Trim();
            if (keyword == "FROM")
            {
                var m = FromLine().Match(arguments);
                if (!m.Success)
                {
                    throw new InvalidDataException($"Dockerfile:{start}: cannot read FROM {arguments}");
                }

                file.Stages.Add(new Stage(m.Groups["image"].Value, m.Groups["name"].Success ? m.Groups["name"].Value : null, start));
            }
            else if (file.Stages.Count == 0)
            {
                if (keyword != "ARG")
                {
                    throw new InvalidDataException($"Dockerfile:{start}: only ARG may precede the first FROM, found {keyword}");
                }

                var (name, value) = SplitAssignment(arguments);
                file.GlobalArgs[name] = value ?? "";
            }
            else
            {
                file.Stages[^1].Instructions.Add(new Instruction(keyword, arguments, start));
            }
        }

        return file;
    }

    public Stage? StageNamed(string name) => Stages.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>The stage and the stages it is built FROM, nearest first (a stage named by a build argument resolves
    /// with the argument's default).</summary>
    public List<Stage> Chain(Stage stage)
    {
        var chain = new List<Stage>();
        for (var s = stage; s is not null && !chain.Contains(s); s = StageNamed(Expand(s.From)))
        {
            chain.Add(s);
        }

        return chain;
    }

    /// <summary>Every image or stage name a FROM may resolve to, over all values a build argument is given in the
    /// file's comments and by default (<c>runtime-${VARIANT}</c> → runtime-cpu, runtime-gpu).</summary>
    public IEnumerable<string> Alternatives(string from, IReadOnlyDictionary<string, string[]> values)
    {
        var m = ArgReference().Match(from);
        if (!m.Success)
        {
            yield return from;
            yield break;
        }

        string arg = m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value;
        foreach (var value in values.TryGetValue(arg, out var v) ? v : [GlobalArgs.GetValueOrDefault(arg, "")])
        {
            foreach (var rest in Alternatives(from[..m.Index] + value + from[(m.Index + m.Length)..], values))
            {
                yield return rest;
            }
        }
    }

    public string Expand(string text) => ArgReference().Replace(text, m => GlobalArgs.GetValueOrDefault(m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value, ""));

    /// <summary>The last value of each instruction kind along the chain (USER, HEALTHCHECK, ENTRYPOINT, CMD).</summary>
    public Instruction? Effective(Stage stage, string keyword) =>
        Chain(stage).Select(s => s.Instructions.LastOrDefault(i => i.Keyword == keyword)).FirstOrDefault(i => i is not null);

    /// <summary>ENV along the chain, later stages winning.</summary>
    public Dictionary<string, string> Environment(Stage stage)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var s in Enumerable.Reverse(Chain(stage)))
        {
            foreach (var instruction in s.Instructions.Where(i => i.Keyword == "ENV"))
            {
                foreach (Match m in EnvPair().Matches(instruction.Arguments))
                {
                    env[m.Groups["key"].Value] = m.Groups["value"].Value.Trim('"');
                }
            }
        }

        return env;
    }

    public IEnumerable<Instruction> All(Stage stage, string keyword) => Chain(stage).SelectMany(s => s.Instructions.Where(i => i.Keyword == keyword));

    private static (string Name, string? Value) SplitAssignment(string text)
    {
        int eq = text.IndexOf('=', StringComparison.Ordinal);
        return eq < 0 ? (text.Trim(), null) : (text[..eq].Trim(), text[(eq + 1)..].Trim());
    }

    [GeneratedRegex(@"^(?:--platform=\S+\s+)?(?<image>\S+)(?:\s+AS\s+(?<name>\S+))?$", RegexOptions.IgnoreCase)]
    private static partial Regex FromLine();

    [GeneratedRegex(@"\$\{(\w+)\}|\$(\w+)")]
    private static partial Regex ArgReference();

    [GeneratedRegex(@"(?<key>[A-Za-z_][A-Za-z0-9_]*)=(?<value>""[^""]*""|\S+)")]
    private static partial Regex EnvPair();
}
