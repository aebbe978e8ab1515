using System.Security.Cryptography;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using RetrainDaemon.Core.Evaluation;

namespace RetrainDaemon.Core.Registry;

/// <summary>Failure of a registry operation (promote a rejected version, roll back without a previous, a lock not obtained, ...), with a reason an operator can read.</summary>
public class RegistryException : Exception
{
    public RegistryException()
    {
    }

    public RegistryException(string message)
        : base(message)
    {
    }

    public RegistryException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>A version that does not verify; <see cref="Reason"/> names the problem (file, hash, path, ...).</summary>
public sealed class RegistryVerificationException : RegistryException
{
    public RegistryVerificationException()
    {
        Model = "";
        Reason = "";
    }

    public RegistryVerificationException(string message)
        : base(message)
    {
        Model = "";
        Reason = message;
    }

    public RegistryVerificationException(string message, Exception innerException)
        : base(message, innerException)
    {
        Model = "";
        Reason = message;
    }

    public RegistryVerificationException(string model, int version, string reason)
        : base($"{model} v{version} does not verify: {reason}")
    {
        Model = model;
        Version = version;
        Reason = reason;
    }

    public string Model { get; }

    public int Version { get; }

    /// <summary>The problem alone, without the model and version.</summary>
    public string Reason { get; }
}

/// <summary>
/// A servable version whose folder verified at the moment it was checked: manifest intact, every
/// file present with its recorded size and SHA-256, nothing else in the folder, every ONNX external
/// data reference inside the folder. A later change on disk is only caught by verifying again, so
/// load through <see cref="ReadVerifiedBytes"/> (which re-checks the hash of exactly the bytes it
/// returns) where the file fits in memory. Immutable; safe to share between threads.
/// </summary>
public sealed class VerifiedVersion
{
    internal VerifiedVersion(string model, int version, string directory, VersionManifest manifest, string manifestSha256)
    {
        Model = model;
        Version = version;
        Directory = directory;
        Manifest = manifest;
        ManifestSha256 = manifestSha256;
        Files = manifest.Files.ToDictionary(f => f.Name, f => Path.Combine(directory, f.Name), StringComparer.Ordinal);
    }

    public string Model { get; }

    public int Version { get; }

    /// <summary>The version folder (absolute).</summary>
    public string Directory { get; }

    public VersionManifest Manifest { get; }

    /// <summary>SHA-256 of the manifest's bytes: identifies this exact version (a reused number would show a different value).</summary>
    public string ManifestSha256 { get; }

    /// <summary>File name → absolute path, for every file the manifest lists.</summary>
    public IReadOnlyDictionary<string, string> Files { get; }

    /// <summary>Absolute path of <c>model.onnx</c>.</summary>
    public string ModelPath => Path.Combine(Directory, RegistryLayout.ModelFileName);

    /// <summary>Reads a listed file and checks that the bytes returned are the ones the manifest hashed.</summary>
    /// <exception cref="RegistryVerificationException">The file changed since it was published.</exception>
    public byte[] ReadVerifiedBytes(string name)
    {
        var entry = Manifest.Files.FirstOrDefault(f => f.Name == name)
            ?? throw new RegistryVerificationException(Model, Version, $"'{name}' is not listed in the manifest");
        byte[] bytes = File.ReadAllBytes(Path.Combine(Directory, name));
        string hash = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (bytes.LongLength != entry.Bytes || hash != entry.Sha256)
        {
            throw new RegistryVerificationException(Model, Version, $"{name} changed after verification (sha256 {hash}, manifest {entry.Sha256})");
        }

        return bytes;
    }

    public override string ToString() => $"{Model} v{Version}";
}

/// <summary>Where a version folder is: servable (<c>&lt;model&gt;/&lt;v&gt;</c>) or a rejected candidate (<c>&lt;model&gt;/rejected/&lt;v&gt;</c>).</summary>
public enum VersionLocation
{
    [JsonStringEnumMemberName("servable")]
    Servable,

    [JsonStringEnumMemberName("rejected")]
    Rejected,
}

/// <summary>
/// One version as <see cref="ModelRegistry.List"/> and <see cref="ModelRegistry.Inspect"/> report it.
/// <see cref="Verified"/> false means never loadable, whatever the folder holds; <see cref="Problem"/> says why.
/// </summary>
public sealed record VersionInfo(
    string Model,
    int Version,
    VersionLocation Location,
    string Directory,
    bool Verified,
    string? Problem,
    VersionManifest? Manifest,
    IReadOnlyList<string> Aliases)
{
    /// <summary>True only for a verified, gate-passed version in the servable location.</summary>
    public bool Servable => Verified && Location == VersionLocation.Servable && Manifest?.Status == VersionStatus.Passed;
}

/// <summary>A model's aliases and versions (servable and rejected), newest first.</summary>
public sealed record ModelListing(string Model, ModelAliases? Aliases, string? AliasesProblem, IReadOnlyList<VersionInfo> Versions);

/// <summary>
/// The answer to "what should be served?": a verified version, or a reason why there is none.
/// A broken champion is refused, never replaced silently by another version: the caller keeps
/// serving what it already has and reports <see cref="Problem"/> (an operator decides on a rollback).
/// </summary>
public sealed record ServableResolution(string Model, string Alias, int? Version, VerifiedVersion? Verified, string? Problem, bool Absent = false)
{
    public bool IsServable => Verified is not null;
}

/// <summary>
/// A candidate to record: its files (name in the version folder → source path, copied), where it
/// came from, its scores and gate report. A <see cref="VersionStatus.Passed"/> candidate must include
/// <c>model.onnx</c>; its inputs, outputs and opset are read from that file, not taken on trust.
/// </summary>
public sealed record PublishRequest
{
    public required string Model { get; init; }

    public required VersionStatus Status { get; init; }

    /// <summary>Plain file name in the version folder → path of the file to copy.</summary>
    public required IReadOnlyDictionary<string, string> Files { get; init; }

    public string? RunId { get; init; }

    public int? ParentVersion { get; init; }

    public long? DataWatermark { get; init; }

    public IReadOnlyDictionary<string, string> Hyperparameters { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    public IReadOnlyList<MetricValue> Metrics { get; init; } = [];

    public JsonNode? GateReport { get; init; }

    public ExportParity? Parity { get; init; }

    /// <summary>Triton <c>max_batch_size</c> when the first dimension of every input and output is dynamic; 0 = no batching dimension.</summary>
    public int MaxBatchSize { get; init; }

    /// <summary>For a passed candidate: make it the champion (the old champion becomes previous) or the challenger in the same call.</summary>
    public PublishAlias Alias { get; init; } = PublishAlias.None;

    /// <summary>Recorded in the alias history when <see cref="Alias"/> moves an alias.</summary>
    public string? Reason { get; init; }
}

/// <summary>Which alias a passed publish moves.</summary>
public enum PublishAlias
{
    None,
    Champion,
    Challenger,
}

/// <summary>What <see cref="ModelRegistry.Publish"/> did: the number the version got, where it is, the aliases after it, what retention deleted.</summary>
public sealed record PublishResult(
    string Model,
    int Version,
    VersionStatus Status,
    string Directory,
    VersionManifest Manifest,
    VerifiedVersion? Verified,
    ModelAliases Aliases,
    RetentionReport Retention);

/// <summary>What retention kept and deleted, by version number.</summary>
public sealed record RetentionReport(IReadOnlyList<int> Kept, IReadOnlyList<int> DeletedServable, IReadOnlyList<int> DeletedRejected);

/// <summary>What recovery found and did for one model.</summary>
public sealed record RecoveryReport(
    string Model,
    IReadOnlyList<string> RemovedLeftovers,
    IReadOnlyList<VersionInfo> Unverified,
    bool ConfigRewritten);
