using Microsoft.Extensions.Options;

namespace RetrainDaemon.Core.Options;

/// <summary>How generated samples are scored (section <c>Evaluation</c>): the feature extractor and the image protocol.</summary>
public sealed class EvaluationOptions
{
    public const string Section = "Evaluation";

    public FeatureExtractorOptions Extractor { get; set; } = new();

    /// <summary>Generated samples per evaluation (the N every image score is reported with).</summary>
    public int SampleCount { get; set; } = 2000;

    /// <summary>Seed of the latent vectors: candidate and champion see the same latents.</summary>
    public int Seed { get; set; } = 20261127;

    /// <summary>Inception Score splits.</summary>
    public int Splits { get; set; } = 10;

    /// <summary>At most this many reference (holdout) samples.</summary>
    public int MaxReferenceSamples { get; set; } = 10000;

    /// <summary>At most this many training samples for the nearest-neighbour novelty checks.</summary>
    public int MaxTrainingSamples { get; set; } = 10000;

    /// <summary>KID subsets (0 disables KID); subset size is min(1000, N).</summary>
    public int KidSubsets { get; set; } = 10;

    /// <summary>Where reference statistics (.npz) are cached, keyed by reference set and extractor hash.</summary>
    public string StatisticsCache { get; set; } = "state/reference-stats";

    /// <summary>ONNX Runtime intra-op threads for the extractor and the generator under test.</summary>
    public int Threads { get; set; } = 2;
}

/// <summary>
/// The ONNX feature extractor for FID/IS. Empty <see cref="Path"/> = the pinned Fashion-MNIST
/// classifier shipped with the daemon (its sha256 is checked). Any other ONNX extractor, e.g.
/// Inception-v3 pool3, is configured by path, output names, input size and normalization.
/// </summary>
public sealed class FeatureExtractorOptions
{
    /// <summary>An ONNX file; empty = the pinned extractor.</summary>
    public string Path { get; set; } = "";

    /// <summary>Expected sha256 (hex) of the file; empty = not checked for a configured path (always checked for the pinned one).</summary>
    public string Sha256 { get; set; } = "";

    /// <summary>A short name reported in every signature.</summary>
    public string Name { get; set; } = "";

    public string InputName { get; set; } = "image";

    /// <summary>The output FID compares (the "layer" of the signature).</summary>
    public string FeatureOutput { get; set; } = "features";

    /// <summary>Class probabilities (softmax) for IS and class coverage; empty when the extractor has none.</summary>
    public string ProbabilityOutput { get; set; } = "probabilities";

    /// <summary>Class logits instead of probabilities (softmax applied in double); empty when absent.</summary>
    public string LogitOutput { get; set; } = "";

    public int Width { get; set; } = 28;

    public int Height { get; set; } = 28;

    /// <summary>1 or 3; grayscale images are replicated to 3 channels when the extractor wants RGB.</summary>
    public int Channels { get; set; } = 1;

    /// <summary>Input = (pixel / 255 − Mean) / Std: 0 / 1 gives [0, 1] (the pinned classifier); 0.5 / 0.5 gives [−1, 1] (Inception wrappers).</summary>
    public double Mean { get; set; }

    public double Std { get; set; } = 1;

    public int BatchSize { get; set; } = 256;
}

public sealed class EvaluationOptionsValidator : IValidateOptions<EvaluationOptions>
{
    public ValidateOptionsResult Validate(string? name, EvaluationOptions options)
    {
        var f = new Failures(EvaluationOptions.Section);
        f.Range(nameof(options.SampleCount), options.SampleCount, 2, 1_000_000);
        f.Range(nameof(options.Splits), options.Splits, 1, 100);
        if (options.Splits > options.SampleCount)
        {
            f.Add(nameof(options.Splits), options.Splits, $"must not exceed SampleCount ({options.SampleCount})");
        }

        f.Range(nameof(options.MaxReferenceSamples), options.MaxReferenceSamples, 2, 10_000_000);
        f.Range(nameof(options.MaxTrainingSamples), options.MaxTrainingSamples, 2, 10_000_000);
        f.Range(nameof(options.KidSubsets), options.KidSubsets, 0, 1000);
        f.Range(nameof(options.Threads), options.Threads, 1, 256);
        if (string.IsNullOrWhiteSpace(options.StatisticsCache))
        {
            f.Add(nameof(options.StatisticsCache), options.StatisticsCache, "must name a directory");
        }

        var e = options.Extractor;
        string x = nameof(options.Extractor) + ":";
        if (e.Path.Length > 0 && !File.Exists(e.Path))
        {
            f.Add(x + nameof(e.Path), e.Path, "no such ONNX file");
        }

        if (e.Sha256.Length > 0 && (e.Sha256.Length != 64 || !e.Sha256.All(Uri.IsHexDigit)))
        {
            f.Add(x + nameof(e.Sha256), e.Sha256, "must be 64 hex digits");
        }

        foreach (var (key, value) in new[] { (nameof(e.InputName), e.InputName), (nameof(e.FeatureOutput), e.FeatureOutput) })
        {
            if (string.IsNullOrWhiteSpace(value))
            {
                f.Add(x + key, value, "must name a graph input/output");
            }
        }

        if (e.ProbabilityOutput.Length > 0 && e.LogitOutput.Length > 0)
        {
            f.Add(x + nameof(e.LogitOutput), e.LogitOutput, $"set either ProbabilityOutput or LogitOutput, not both (ProbabilityOutput = '{e.ProbabilityOutput}')");
        }

        f.Range(x + nameof(e.Width), e.Width, 1, 4096);
        f.Range(x + nameof(e.Height), e.Height, 1, 4096);
        if (e.Channels is not (1 or 3))
        {
            f.Add(x + nameof(e.Channels), e.Channels, "must be 1 or 3");
        }

        if (!double.IsFinite(e.Mean))
        {
            f.Add(x + nameof(e.Mean), e.Mean, "must be finite");
        }

        if (!double.IsFinite(e.Std) || e.Std <= 0)
        {
            f.Add(x + nameof(e.Std), e.Std, "must be a positive number");
        }

        f.Range(x + nameof(e.BatchSize), e.BatchSize, 1, 65536);
        return f.Result();
    }
}
