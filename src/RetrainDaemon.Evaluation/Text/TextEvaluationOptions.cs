using System.Globalization;
using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Evaluation.Text.Generation;

namespace RetrainDaemon.Evaluation.Text;

/// <summary>
/// The text evaluation protocol (section <c>Evaluation:Text</c>). Every value that changes a score is
/// written into the signature of the metrics it affects, so a candidate and a champion scored under
/// different settings are never compared.
/// </summary>
public sealed class TextEvaluationOptions
{
    public const string Section = "Evaluation:Text";

    /// <summary>Conditional models: <c>greedy</c> or <c>beam:k</c> (see <see cref="DecodingStrategy"/>).</summary>
    public string Decoding { get; set; } = "greedy";

    /// <summary>At most this many new tokens per output (also bounded by the model's context).</summary>
    public int MaxNewTokens { get; set; } = 128;

    /// <summary>Language models: texts sampled from [BOS] for Test-BLEU, Self-BLEU, distinct-n and copy share.</summary>
    public int SampleCount { get; set; } = 500;

    /// <summary>Base seed of the samples (sample i uses seed + i).</summary>
    public ulong Seed { get; set; } = 20261127;

    /// <summary>Sampling temperature; 1 with no top-k / top-p is the model's own distribution, which diversity and novelty should measure.</summary>
    public double Temperature { get; set; } = 1.0;

    /// <summary>Top-k filter of sampling (0 = off).</summary>
    public int TopK { get; set; }

    /// <summary>Top-p filter of sampling (1 = off).</summary>
    public double TopP { get; set; } = 1.0;

    /// <summary>At most this many holdout records: pairs decoded (conditional) or texts scored for perplexity (language models).</summary>
    public int MaxHoldout { get; set; } = 2000;

    /// <summary>At most this many training records searched by the copy check.</summary>
    public int MaxTraining { get; set; } = 200_000;

    /// <summary>Test-BLEU's reference pool: the first this many holdout texts (Texygen's fast mode uses 500).</summary>
    public int TestBleuReferences { get; set; } = 500;

    /// <summary>n of Test-BLEU-n and Self-BLEU-n (Texygen's default gram is 3).</summary>
    public int BleuNgramOrder { get; set; } = 3;

    /// <summary>Self-BLEU's cap on sentences (Texygen's fast mode uses 500).</summary>
    public int SelfBleuMaxSentences { get; set; } = 500;

    /// <summary>The copy check's word n-gram length (see <see cref="CopyDetector"/>).</summary>
    public int CopyNgram { get; set; } = 8;

    /// <summary>The share of a text's word n-grams that must occur in one training record for it to count as a copy.</summary>
    public double CopyMinShare { get; set; } = 0.9;

    /// <summary>Rows per ONNX Runtime run (beams count as rows).</summary>
    public int BatchSize { get; set; } = 16;

    /// <summary>The conditional decoding strategy; throws when <see cref="Decoding"/> does not parse (the validator reports it first).</summary>
    public DecodingStrategy ConditionalDecoding() =>
        DecodingStrategy.TryParse(Decoding, out var strategy, out var problem) ? strategy : throw new InvalidOperationException($"{Section}:{nameof(Decoding)} = '{Decoding}': {problem}");

    /// <summary>The sampling strategy of language-model samples.</summary>
    public DecodingStrategy SampleDecoding() => DecodingStrategy.Sample(new SamplingOptions(Temperature, TopK, TopP), Seed);
}

/// <summary>Start-up validation of <see cref="TextEvaluationOptions"/>: every problem at once, naming the key and the value.</summary>
public sealed class TextEvaluationOptionsValidator : IValidateOptions<TextEvaluationOptions>
{
    public ValidateOptionsResult Validate(string? name, TextEvaluationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        void Add(string key, object value, string problem) =>
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{TextEvaluationOptions.Section}:{key} = '{value}': {problem}"));
        void Range(string key, long value, long min, long max)
        {
            if (value < min || value > max)
            {
                Add(key, value, $"must be between {min} and {max}");
            }
        }

        if (!DecodingStrategy.TryParse(options.Decoding, out _, out var decodingProblem))
        {
            Add(nameof(options.Decoding), options.Decoding, decodingProblem!);
        }

        Range(nameof(options.MaxNewTokens), options.MaxNewTokens, 1, 4096);
        Range(nameof(options.SampleCount), options.SampleCount, 2, 1_000_000);
        foreach (string problem in SamplingOptions.Validate(new SamplingOptions(options.Temperature, options.TopK, options.TopP), int.MaxValue))
        {
            failures.Add($"{TextEvaluationOptions.Section}: {problem}");
        }

        if (options.Temperature == 0)
        {
            Add(nameof(options.Temperature), options.Temperature, "must be > 0: greedy samples from [BOS] would all be the same text");
        }

        Range(nameof(options.MaxHoldout), options.MaxHoldout, 1, 10_000_000);
        Range(nameof(options.MaxTraining), options.MaxTraining, 1, 100_000_000);
        Range(nameof(options.TestBleuReferences), options.TestBleuReferences, 1, 1_000_000);
        Range(nameof(options.BleuNgramOrder), options.BleuNgramOrder, 1, 10);
        Range(nameof(options.SelfBleuMaxSentences), options.SelfBleuMaxSentences, 2, 1_000_000);
        Range(nameof(options.CopyNgram), options.CopyNgram, 1, 64);
        if (!(options.CopyMinShare > 0 && options.CopyMinShare <= 1))
        {
            Add(nameof(options.CopyMinShare), options.CopyMinShare, "must be a share in (0, 1]");
        }

        Range(nameof(options.BatchSize), options.BatchSize, 1, 4096);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
