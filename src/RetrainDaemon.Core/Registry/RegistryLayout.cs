using System.Globalization;
using System.Text.RegularExpressions;

namespace RetrainDaemon.Core.Registry;

/// <summary>
/// Where things live in the registry, a Triton-compatible model repository:
/// <code>
/// &lt;root&gt;/&lt;model&gt;/config.pbtxt            Triton configuration; version_policy names only the champion
/// &lt;root&gt;/&lt;model&gt;/aliases.json            champion, previous, challenger + history of changes with reasons
/// &lt;root&gt;/&lt;model&gt;/versions.json           the last version number handed out (numbers are never reused)
/// &lt;root&gt;/&lt;model&gt;/.lock                   per-model writer lock (never deleted)
/// &lt;root&gt;/&lt;model&gt;/&lt;version&gt;/model.onnx     a servable (gate-passed) version: its files and
/// &lt;root&gt;/&lt;model&gt;/&lt;version&gt;/manifest.json  its manifest, written before the folder appears
/// &lt;root&gt;/&lt;model&gt;/rejected/&lt;version&gt;/     gate-rejected candidates, kept with their reports
/// &lt;root&gt;/&lt;model&gt;/.tmp-*, .trash-*         in-flight writes and deletes; removed by recovery
/// </code>
/// Only folders named by a plain positive integer without leading zeros directly under the model
/// folder are servable; Triton ignores every other name ("Subdirectories with non-numeric names, or
/// with names that start with zero (0) will be ignored"), and so does <see cref="ModelRegistry"/>.
/// Rejected candidates therefore live one level down, where neither ever looks for a version.
/// </summary>
public static partial class RegistryLayout
{
    public const string ConfigName = "config.pbtxt";
    public const string AliasesName = "aliases.json";
    public const string VersionsName = "versions.json";
    public const string LockName = ".lock";
    public const string ManifestName = "manifest.json";
    public const string ModelFileName = "model.onnx";
    public const string RejectedFolder = "rejected";
    public const string TempPrefix = IO.DurableFiles.TempPrefix;
    public const string TrashPrefix = ".trash-";

    /// <summary>Model names become folder names, Triton model names and routing-key words: the catalog's rule.</summary>
    [GeneratedRegex("^[a-z0-9][a-z0-9_-]{0,62}$")]
    private static partial Regex ModelNamePattern();

    /// <summary>True when <paramref name="model"/> is a valid model name (1–63 chars of a-z, 0-9, '_', '-').</summary>
    public static bool IsValidModelName(string? model) => model is not null && ModelNamePattern().IsMatch(model);

    /// <summary>
    /// A plain file name inside a version folder: no directory part, no '..', not hidden, not the
    /// manifest. Anything else could make a reader open a file outside the folder.
    /// </summary>
    public static bool IsPlainFileName(string? name) =>
        !string.IsNullOrEmpty(name)
        && name.Length <= 255
        && name != "." && name != ".."
        && !name.StartsWith('.')
        && name.IndexOfAny(['/', '\\', '\0']) < 0
        && !name.Any(char.IsControl)
        && name != ManifestName;

    /// <summary>Parses a version folder name the way Triton does: a positive integer without leading zeros.</summary>
    public static bool TryParseVersion(string? name, out int version)
    {
        version = 0;
        return !string.IsNullOrEmpty(name)
            && name[0] is >= '1' and <= '9'
            && name.All(char.IsAsciiDigit)
            && int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out version);
    }

    public static string VersionName(int version) => version.ToString(CultureInfo.InvariantCulture);

    internal static void RequireModelName(string model)
    {
        if (!IsValidModelName(model))
        {
            throw new ArgumentException($"'{model}' is not a model name (1-63 chars of a-z, 0-9, '_' and '-', starting with a letter or digit)", nameof(model));
        }
    }
}
