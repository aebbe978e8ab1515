using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using RetrainDaemon.Core.Evaluation;

namespace RetrainDaemon.Evaluation.Analysis;

/// <summary>
/// Dictionaries of the report are written in ordinal key order (a <see cref="Dictionary{TKey, TValue}"/> filled in
/// that order enumerates in it, and reading keeps the document order), so a report's JSON is stable.
/// </summary>
public static class ReportDictionary
{
    public static IReadOnlyDictionary<string, double> Ordered(IEnumerable<KeyValuePair<string, double>> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var ordered = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (key, value) in entries.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            if (!double.IsFinite(value))
            {
                // JSON has no NaN/Infinity; a non-finite number here is a bug upstream, not something to write.
                throw new ArgumentException($"report value '{key}' is {value}: only finite numbers are reported");
            }

            ordered.Add(key, value);
        }

        return ordered;
    }
}

/// <summary>The status strings of a slice (field <c>status</c>).</summary>
public static class SliceStatus
{
    /// <summary>Enough samples: the slice has numbers and a badness.</summary>
    public const string Ok = "ok";

    /// <summary>Fewer holdout samples than <see cref="AnalysisOptions.MinSliceSamples"/>: not judged (neutral weight).</summary>
    public const string TooFewHoldout = "too_few_holdout";

    /// <summary>
    /// An image class the champion generates fewer than <see cref="AnalysisOptions.MinSliceSamples"/> times: no Fréchet
    /// distance can be computed, and that is itself the worst outcome for the class (its Fréchet component counts 1).
    /// </summary>
    public const string TooFewGenerated = "too_few_generated";

    /// <summary>Unconditional images with an extractor that has no class output: generated samples cannot be assigned to classes.</summary>
    public const string NoClassAssignment = "no_class_assignment";
}

/// <summary>The kinds of slice (field <c>kind</c>).</summary>
public static class SliceKind
{
    public const string Class = "class";
    public const string Length = "length";
    public const string Catalog = "catalog";
}

/// <summary>The status strings of the drift block.</summary>
public static class DriftStatus
{
    public const string Ok = "ok";
    public const string NotEnoughFreshData = "not_enough_fresh_data";
    public const string NotEnoughTrainingData = "not_enough_training_data";
}

/// <summary>A whole-set metric with its signature.</summary>
public sealed record AnalysisMetric(
    [property: JsonPropertyName("metric")] string Metric,
    [property: JsonPropertyName("value")] double Value,
    [property: JsonPropertyName("signature")] string Signature);

/// <summary>The champion analysed.</summary>
public sealed record ChampionInfo(
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("sha256")] string Sha256,
    [property: JsonPropertyName("version")] int? Version);

/// <summary>The data windows of the analysis.</summary>
public sealed record AnalysisWatermarks(
    [property: JsonPropertyName("trained")] long Trained,
    [property: JsonPropertyName("current")] long Current);

/// <summary>The recent holdout the slices are computed on.</summary>
public sealed record HoldoutInfo(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("count")] int Count,
    [property: JsonPropertyName("skipped")] int Skipped);

/// <summary>One slice of the analysis.</summary>
public sealed record SliceReport
{
    /// <summary>The slice key (<see cref="SliceKeys"/>).</summary>
    [JsonPropertyName("slice")]
    public required string Slice { get; init; }

    /// <summary><see cref="SliceKind"/>.</summary>
    [JsonPropertyName("kind")]
    public required string Kind { get; init; }

    /// <summary><see cref="SliceStatus"/>.</summary>
    [JsonPropertyName("status")]
    public required string Status { get; init; }

    [JsonPropertyName("holdout_count")]
    public int HoldoutCount { get; init; }

    /// <summary>Generated samples in the slice (images); null for text.</summary>
    [JsonPropertyName("generated_count")]
    public int? GeneratedCount { get; init; }

    /// <summary>The slice's numbers by name (only those that could be computed), ordinal key order.</summary>
    [JsonPropertyName("metrics")]
    public IReadOnlyDictionary<string, double> Metrics { get; init; } = new Dictionary<string, double>();

    [JsonPropertyName("feedback_count")]
    public int FeedbackCount { get; init; }

    [JsonPropertyName("mean_rating")]
    public double? MeanRating { get; init; }

    /// <summary>Metric badness in [0, 1]; null when the slice was not judged.</summary>
    [JsonPropertyName("badness")]
    public double? Badness { get; init; }

    /// <summary>Badness plus the feedback term (<see cref="SliceWeightFunction"/>): what the worst slices are ranked by.</summary>
    [JsonPropertyName("score")]
    public double Score { get; init; }

    /// <summary>The sampling weight for the next fine-tune.</summary>
    [JsonPropertyName("weight")]
    public double Weight { get; init; }

    /// <summary>Why the slice has no numbers, in words; null when it has them.</summary>
    [JsonPropertyName("note")]
    public string? Note { get; init; }
}

/// <summary>How many feedback ratings of each value (1–5) there were (the per-rating slices).</summary>
public sealed record RatingSlice(
    [property: JsonPropertyName("slice")] string Slice,
    [property: JsonPropertyName("rating")] int Rating,
    [property: JsonPropertyName("count")] int Count,
    [property: JsonPropertyName("share")] double Share);

/// <summary>Feedback citing a slice the analysis does not have.</summary>
public sealed record UnmatchedFeedback(
    [property: JsonPropertyName("slice")] string Slice,
    [property: JsonPropertyName("count")] int Count,
    [property: JsonPropertyName("mean_rating")] double MeanRating);

/// <summary>The feedback block.</summary>
public sealed record FeedbackSummary(
    [property: JsonPropertyName("total")] int Total,
    [property: JsonPropertyName("ignored_out_of_range")] int IgnoredOutOfRange,
    [property: JsonPropertyName("ratings")] IReadOnlyList<RatingSlice> Ratings,
    [property: JsonPropertyName("unmatched")] IReadOnlyList<UnmatchedFeedback> Unmatched);

/// <summary>Drift of the fresh data against the training window.</summary>
public sealed record DriftReport
{
    /// <summary><c>frechet_distance</c> (images, extractor features) or <c>token_jsd</c> (text, base-2 Jensen–Shannon divergence of unigram distributions).</summary>
    [JsonPropertyName("metric")]
    public required string Metric { get; init; }

    /// <summary><see cref="DriftStatus"/>.</summary>
    [JsonPropertyName("status")]
    public required string Status { get; init; }

    /// <summary>The drift; null unless <see cref="Status"/> is <c>ok</c>.</summary>
    [JsonPropertyName("value")]
    public double? Value { get; init; }

    /// <summary>Fresh samples compared (the most recent, at most <see cref="AnalysisOptions.MaxDriftSamples"/>).</summary>
    [JsonPropertyName("fresh_count")]
    public int FreshCount { get; init; }

    /// <summary>All fresh samples in the store window (before the cap).</summary>
    [JsonPropertyName("fresh_available")]
    public int FreshAvailable { get; init; }

    /// <summary>Training-window samples compared (the most recent up to the trained watermark, capped).</summary>
    [JsonPropertyName("training_count")]
    public int TrainingCount { get; init; }

    [JsonPropertyName("min_samples")]
    public int MinSamples { get; init; }

    [JsonPropertyName("signature")]
    public required string Signature { get; init; }

    /// <summary>Supporting numbers (e.g. the Fréchet mean term, token counts, byte-fallback shares).</summary>
    [JsonPropertyName("details")]
    public IReadOnlyDictionary<string, double> Details { get; init; } = new Dictionary<string, double>();
}

/// <summary>A text example shown for a slice: the source (conditional), the reference and the champion's output.</summary>
public sealed record TextExampleReport(
    [property: JsonPropertyName("slice")] string Slice,
    [property: JsonPropertyName("source")] string? Source,
    [property: JsonPropertyName("reference")] string? Reference,
    [property: JsonPropertyName("output")] string Output);

/// <summary>The weights function's parameters as recorded in the report.</summary>
public sealed record WeightingReport(
    [property: JsonPropertyName("function")] string Function,
    [property: JsonPropertyName("sharpness")] double Sharpness,
    [property: JsonPropertyName("feedback_influence")] double FeedbackInfluence,
    [property: JsonPropertyName("min_feedback_ratings")] int MinFeedbackRatings,
    [property: JsonPropertyName("min_weight")] double MinWeight,
    [property: JsonPropertyName("max_weight")] double MaxWeight)
{
    public static WeightingReport From(SliceWeightOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new WeightingReport("w=clamp(c*(1+sharpness*(badness+feedback_influence*(5-mean_rating)/4)),min,max),mean(w)=1 per slice kind",
            options.Sharpness, options.FeedbackInfluence, options.MinFeedbackRatings, options.MinWeight, options.MaxWeight);
    }
}

/// <summary>
/// The error-analysis report (<c>report.json</c>, format 1). Field names are part of the contract (docs/architecture.md,
/// "Error analysis"); <see cref="SliceWeights.Read"/> reads <c>format</c>, <c>model</c> and <c>weights</c> from it.
/// </summary>
public sealed record AnalysisReport
{
    [JsonPropertyName("format")]
    public int Format { get; init; } = SliceWeights.Format;

    [JsonPropertyName("model")]
    public required string Model { get; init; }

    [JsonPropertyName("family")]
    public required string Family { get; init; }

    /// <summary><c>image</c> or <c>text</c>.</summary>
    [JsonPropertyName("modality")]
    public required string Modality { get; init; }

    /// <summary><c>lm</c> or <c>conditional</c> for text; null for images.</summary>
    [JsonPropertyName("task")]
    public string? Task { get; init; }

    [JsonPropertyName("created_utc")]
    public DateTimeOffset CreatedUtc { get; init; }

    [JsonPropertyName("seed")]
    public int Seed { get; init; }

    [JsonPropertyName("champion")]
    public required ChampionInfo Champion { get; init; }

    [JsonPropertyName("watermarks")]
    public required AnalysisWatermarks Watermarks { get; init; }

    /// <summary>The protocol every number here was computed under (extractor hash and layer, or vocabulary and decoding; seed; sample count).</summary>
    [JsonPropertyName("protocol")]
    public required string Protocol { get; init; }

    [JsonPropertyName("holdout")]
    public required HoldoutInfo Holdout { get; init; }

    /// <summary>Generated images (images only).</summary>
    [JsonPropertyName("generated_count")]
    public int? GeneratedCount { get; init; }

    /// <summary>Whole-holdout numbers for scale (FID of the generated images; BLEU/chrF; perplexity).</summary>
    [JsonPropertyName("overall")]
    public IReadOnlyList<AnalysisMetric> Overall { get; init; } = [];

    [JsonPropertyName("slices")]
    public IReadOnlyList<SliceReport> Slices { get; init; } = [];

    [JsonPropertyName("feedback")]
    public required FeedbackSummary Feedback { get; init; }

    /// <summary>The worst judged slices, worst first (by score, then slice key).</summary>
    [JsonPropertyName("worst")]
    public IReadOnlyList<string> Worst { get; init; } = [];

    /// <summary>Slice → sampling weight for the next fine-tune (every slice of the report; ordinal key order).</summary>
    [JsonPropertyName("weights")]
    public IReadOnlyDictionary<string, double> Weights { get; init; } = new Dictionary<string, double>();

    [JsonPropertyName("weighting")]
    public required WeightingReport Weighting { get; init; }

    [JsonPropertyName("drift")]
    public required DriftReport Drift { get; init; }

    /// <summary>Text models: outputs of the worst slices (conditional) or samples (lm); empty for images.</summary>
    [JsonPropertyName("examples")]
    public IReadOnlyList<TextExampleReport> Examples { get; init; } = [];

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <exception cref="InvalidDataException">Not a format-1 report.</exception>
    public static AnalysisReport FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        AnalysisReport? report;
        try
        {
            report = JsonSerializer.Deserialize<AnalysisReport>(json, JsonOptions);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"not an error-analysis report: {ex.Message}", ex);
        }

        if (report is null)
        {
            throw new InvalidDataException("not an error-analysis report: the JSON is null");
        }

        if (report.Format != SliceWeights.Format)
        {
            throw new InvalidDataException($"error-analysis report format {report.Format}; this reader understands format {SliceWeights.Format}");
        }

        return report;
    }

    /// <summary>Indented; non-ASCII text (German outputs, catalog names) kept readable rather than \u-escaped.</summary>
    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        RespectRequiredConstructorParameters = true,
    };
}
