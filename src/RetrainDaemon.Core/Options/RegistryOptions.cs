using Microsoft.Extensions.Options;

namespace RetrainDaemon.Core.Options;

/// <summary>The model registry (section <c>Registry</c>): a Triton-compatible model repository, see <c>Registry.RegistryLayout</c>.</summary>
public sealed class RegistryOptions
{
    public const string Section = "Registry";

    /// <summary>The repository folder. Relative paths are under the current directory (the service's state directory under systemd).</summary>
    public string Root { get; set; } = "state/registry";

    /// <summary>
    /// Retention keeps this many newest versions of a model besides champion, previous and challenger
    /// (rejected candidates are counted apart and also keep this many).
    /// </summary>
    public int KeepLast { get; set; } = 5;

    /// <summary>How long a writer waits for another writer of the same model (publish, promote, rollback) before giving up.</summary>
    public TimeSpan LockTimeout { get; set; } = TimeSpan.FromMinutes(1);
}

public sealed class RegistryOptionsValidator : IValidateOptions<RegistryOptions>
{
    public ValidateOptionsResult Validate(string? name, RegistryOptions options)
    {
        var f = new Failures(RegistryOptions.Section);
        if (string.IsNullOrWhiteSpace(options.Root))
        {
            f.Add(nameof(options.Root), options.Root, "must name the registry folder");
        }
        else if (options.Root.IndexOf('\0', StringComparison.Ordinal) >= 0)
        {
            f.Add(nameof(options.Root), options.Root.Replace("\0", "\\0", StringComparison.Ordinal), "must not contain NUL characters");
        }

        f.Range(nameof(options.KeepLast), options.KeepLast, 1, 10_000);
        f.Positive(nameof(options.LockTimeout), options.LockTimeout);
        return f.Result();
    }
}
