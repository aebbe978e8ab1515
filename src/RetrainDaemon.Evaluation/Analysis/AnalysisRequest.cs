using System.Globalization;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Evaluation.Extractors;
using RetrainDaemon.Evaluation.Text;

namespace RetrainDaemon.Evaluation.Analysis;

/// <summary>One feedback rating (1–5) of a generation, attributed to the slice it belongs to (e.g. <c>class=3</c>, <c>len=16-31</c>, <c>catalog=git</c>).</summary>
public readonly record struct SliceRating(string Slice, int Rating);

/// <summary>The knobs of an error analysis (beyond the evaluation protocol, which comes from <see cref="EvaluationOptions"/> / <see cref="TextEvaluationOptions"/>).</summary>
public sealed record AnalysisOptions
{
    /// <summary>The recent holdout: at most the last this many holdout samples up to the watermark.</summary>
    public int MaxHoldout { get; init; } = 2000;

    /// <summary>A slice with fewer samples (holdout, or generated for image classes) is reported as too small, not as a number.</summary>
    public int MinSliceSamples { get; init; } = 20;

    /// <summary>Drift needs at least this many fresh and this many training-window samples; otherwise "not enough … data".</summary>
    public int MinDriftSamples { get; init; } = 50;

    /// <summary>Drift compares at most the last this many samples of each window.</summary>
    public int MaxDriftSamples { get; init; } = 2000;

    /// <summary>How many slices the report names as the worst.</summary>
    public int WorstCount { get; init; } = 3;

    /// <summary>Generated images shown per class in the HTML page; sample texts shown for text models.</summary>
    public int ExamplesPerSlice { get; init; } = 8;

    /// <summary>The weights function's parameters.</summary>
    public SliceWeightOptions Weighting { get; init; } = new();

    /// <summary>Every problem at once, naming the option and its value.</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        void Range(string name, int value, int min, int max)
        {
            if (value < min || value > max)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"{name} = {value}: must be between {min} and {max}"));
            }
        }

        Range(nameof(MaxHoldout), MaxHoldout, 2, 10_000_000);
        Range(nameof(MinSliceSamples), MinSliceSamples, 2, 1_000_000);
        Range(nameof(MinDriftSamples), MinDriftSamples, 2, 1_000_000);
        Range(nameof(MaxDriftSamples), MaxDriftSamples, 2, 10_000_000);
        if (MaxDriftSamples < MinDriftSamples)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"{nameof(MaxDriftSamples)} = {MaxDriftSamples}: must not be below {nameof(MinDriftSamples)} ({MinDriftSamples})"));
        }

        Range(nameof(WorstCount), WorstCount, 1, 1000);
        Range(nameof(ExamplesPerSlice), ExamplesPerSlice, 0, 64);
        problems.AddRange(Weighting.Validate().Select(p => $"{nameof(Weighting)}.{p}"));
        return problems;
    }
}

/// <summary>
/// What <see cref="ErrorAnalysis.RunAsync"/> analyses: the model's champion (its ONNX file and family) on the
/// model's recent holdout and feedback, and drift of the data that arrived since the champion was trained.
/// </summary>
/// <param name="Model">The model name (CloudEvent <c>subject</c>, store key).</param>
/// <param name="ModelOptions">Its configuration: modality, image shape, whether text is conditional.</param>
/// <param name="Family"><c>dcgan</c> (tanh output), <c>vae</c> (sigmoid output) or <c>gpt</c>.</param>
/// <param name="ChampionOnnx">The champion's verified ONNX file (the registry's bytes: what is analysed is what is served).</param>
/// <param name="Store">The sample store.</param>
/// <param name="TrainedWatermark">The champion's data watermark: samples up to it are the training window.</param>
/// <param name="Watermark">Now: fresh samples are those after <paramref name="TrainedWatermark"/> up to this; the recent holdout ends here.</param>
/// <param name="OutputDirectory">Where <c>report.json</c> and <c>report.html</c> are written (created if missing).</param>
/// <param name="Seed">Latents, samples and anything else random in the analysis.</param>
public sealed record AnalysisRequest(
    string Model,
    ModelOptions ModelOptions,
    string Family,
    string ChampionOnnx,
    ISampleStore Store,
    long TrainedWatermark,
    long Watermark,
    string OutputDirectory,
    int Seed)
{
    /// <summary>The image protocol (sample count, threads); the extractor itself is <see cref="Extractor"/>.</summary>
    public EvaluationOptions Evaluation { get; init; } = new();

    /// <summary>The feature extractor for image models (required for <c>dcgan</c> / <c>vae</c>; the caller owns and disposes it).</summary>
    public OnnxFeatureExtractor? Extractor { get; init; }

    /// <summary>The text protocol (decoding, token limit, batch rows) for <c>gpt</c> models.</summary>
    public TextEvaluationOptions TextEvaluation { get; init; } = new();

    /// <summary>Feedback ratings attributed to slices (the feedback join provides them); empty = no feedback.</summary>
    public IReadOnlyList<SliceRating> Feedback { get; init; } = [];

    /// <summary>
    /// The store key of the samples the model learns from (<c>Models:&lt;m&gt;:Dataset</c>, e.g. a VAE reading the
    /// fashion-mnist DCGAN's samples); null = <see cref="Model"/>.
    /// </summary>
    public string? Dataset { get; init; }

    /// <summary>The store key the analysis reads: <see cref="Dataset"/> or the model's own name.</summary>
    public string StoreKey => Dataset ?? Model;

    /// <summary>The champion's registry version, recorded in the report when known.</summary>
    public int? ChampionVersion { get; init; }

    public AnalysisOptions Options { get; init; } = new();
}
