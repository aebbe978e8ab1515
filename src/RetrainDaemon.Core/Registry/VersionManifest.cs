using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using RetrainDaemon.Core.Evaluation;

namespace RetrainDaemon.Core.Registry;

/// <summary>Whether the gate let a candidate through. Only <see cref="Passed"/> versions are ever servable.</summary>
public enum VersionStatus
{
    [JsonStringEnumMemberName("passed")]
    Passed,

    [JsonStringEnumMemberName("rejected")]
    Rejected,
}

/// <summary>One file of a version folder as its manifest records it: a plain name, its size and SHA-256 (lower-case hex).</summary>
public sealed record ManifestFile(string Name, long Bytes, string Sha256);

/// <summary>
/// An input or output of the served ONNX graph: name, element type (<c>float32</c>, <c>int64</c>,
/// … — see <see cref="OnnxElementTypes"/>) and shape, with -1 for a dynamic (symbolic or unknown) dimension.
/// </summary>
public sealed record TensorSpec(string Name, string ElementType, IReadOnlyList<long> Shape);

/// <summary>The export's parity check: the largest |TorchSharp − ONNX Runtime| difference, the tolerance it had to meet, how many inputs were compared.</summary>
public sealed record ExportParity(double MaxAbsDiff, double Tolerance, int InputsChecked, double? MeanAbsDiff = null);

/// <summary>A tensor whose data lives in another file of the version folder (ONNX external data).</summary>
public sealed record ExternalDataReference(string File, string Tensor, string Location);

/// <summary>
/// What a version folder holds and where it came from. Written into the folder before the folder
/// appears under its number, and stored inside an envelope that carries the SHA-256 of its exact
/// bytes (see <see cref="ManifestCodec"/>), so a hand-edited manifest is refused like a tampered file.
/// Immutable once written.
/// </summary>
public sealed record VersionManifest
{
    /// <summary>Model name; must equal the model folder's name.</summary>
    public required string Model { get; init; }

    /// <summary>Version number; must equal the version folder's name.</summary>
    public required int Version { get; init; }

    public required VersionStatus Status { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>The training run that produced the candidate.</summary>
    public string? RunId { get; init; }

    /// <summary>The version the run warm-started from (transfer learning), if any.</summary>
    public int? ParentVersion { get; init; }

    /// <summary>The sample-store watermark of the data snapshot the run trained on.</summary>
    public long? DataWatermark { get; init; }

    /// <summary>The default-domain opset of <c>model.onnx</c>, read from the file at publish time.</summary>
    public long? Opset { get; init; }

    /// <summary>Graph inputs of <c>model.onnx</c> (initializers excluded), read from the file at publish time.</summary>
    public IReadOnlyList<TensorSpec> Inputs { get; init; } = [];

    /// <summary>Graph outputs of <c>model.onnx</c>, read from the file at publish time.</summary>
    public IReadOnlyList<TensorSpec> Outputs { get; init; } = [];

    /// <summary>Triton <c>max_batch_size</c> for <c>config.pbtxt</c>; 0 = the shapes are given in full (no batching dimension).</summary>
    public int MaxBatchSize { get; init; }

    public IReadOnlyDictionary<string, string> Hyperparameters { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Every score with its signature; only scores with equal signatures are comparable.</summary>
    public IReadOnlyList<MetricValue> Metrics { get; init; } = [];

    /// <summary>The gate's report as JSON, so that the registry does not depend on the gate's types.</summary>
    public JsonNode? GateReport { get; init; }

    public ExportParity? Parity { get; init; }

    /// <summary>Every file of the folder except <c>manifest.json</c>, sorted by name. Nothing else may be in the folder.</summary>
    public IReadOnlyList<ManifestFile> Files { get; init; } = [];

    /// <summary>Tensors stored as ONNX external data, and in which listed file (informational; verification re-reads the ONNX files).</summary>
    public IReadOnlyList<ExternalDataReference> ExternalData { get; init; } = [];
}
