using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using RetrainDaemon.Core.IO;

namespace RetrainDaemon.Evaluation.Extractors;

/// <summary>What <c>retrain-daemon extractor build</c> records next to the pinned extractor.</summary>
public sealed record PinnedExtractorRecord(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("sha256")] string Sha256,
    [property: JsonPropertyName("t10k_accuracy")] double T10kAccuracy,
    [property: JsonPropertyName("seed")] int Seed,
    [property: JsonPropertyName("steps")] int Steps,
    [property: JsonPropertyName("batch_size")] int BatchSize,
    [property: JsonPropertyName("architecture")] string Architecture,
    [property: JsonPropertyName("feature_output")] string FeatureOutput,
    [property: JsonPropertyName("probability_output")] string ProbabilityOutput,
    [property: JsonPropertyName("export_max_abs_diff")] double ExportMaxAbsDiff,
    [property: JsonPropertyName("built_utc")] DateTime BuiltUtc,
    [property: JsonPropertyName("command")] string Command);

/// <summary>
/// The pinned feature extractor for FID/IS (Inception-v3 weights cannot be downloaded here):
/// a Fashion-MNIST classifier trained with a fixed seed, exported to ONNX and committed under
/// <c>src/RetrainDaemon.Evaluation/Extractors/pinned/</c> with its sha256 and t10k accuracy; the
/// build copies it next to the binary (<c>extractor/</c>).
/// </summary>
public static class PinnedExtractor
{
    public const string Name = "fashion-classifier";

    public const double MinimumAccuracy = 0.90;

    public static string Directory => Path.Combine(AppContext.BaseDirectory, "extractor");

    public static string OnnxPath => Path.Combine(Directory, Name + ".onnx");

    public static string RecordPath => Path.Combine(Directory, Name + ".json");

    public static PinnedExtractorRecord Load(string? recordPath = null)
    {
        string path = recordPath ?? RecordPath;
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"the pinned extractor record '{path}' is missing (build it with `retrain-daemon extractor build`)", path);
        }

        return JsonSerializer.Deserialize<PinnedExtractorRecord>(File.ReadAllText(path))
            ?? throw new InvalidDataException($"'{path}' is empty");
    }

    /// <summary>Checks the shipped ONNX file against its recorded sha256; returns the record.</summary>
    public static PinnedExtractorRecord Verify(string? directory = null)
    {
        string dir = directory ?? Directory;
        var record = Load(Path.Combine(dir, Name + ".json"));
        string onnx = Path.Combine(dir, Name + ".onnx");
        string actual = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(onnx)));
        if (!string.Equals(actual, record.Sha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidDataException($"the pinned extractor '{onnx}' has sha256 {actual}, its record says {record.Sha256}");
        }

        return record;
    }

    public static void Write(string directory, byte[] onnx, PinnedExtractorRecord record)
    {
        ArgumentNullException.ThrowIfNull(onnx);
        System.IO.Directory.CreateDirectory(directory);
        DurableFiles.ReplaceFile(Path.Combine(directory, Name + ".onnx"), s => s.Write(onnx));
        DurableFiles.ReplaceFile(Path.Combine(directory, Name + ".json"), s => JsonSerializer.Serialize(s, record, JsonOptions));
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };
}
