using System.Globalization;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Evaluation.Text;
using RetrainDaemon.Evaluation.Text.Generation;

namespace RetrainDaemon.Evaluation.Analysis;

/// <summary>
/// One recent holdout record as the text analysis saw it: its slices, and the champion's greedy output (conditional)
/// or teacher-forced log-likelihood (lm). Not written to the JSON (it can be thousands of rows); returned so callers
/// and tests can recompute any slice's numbers.
/// </summary>
public sealed record TextAnalysisRecord(string? Source, string Reference, string LengthBucket, string Catalog, string? Output, double? LogProbability, int Tokens);

/// <summary>
/// Error analysis of a <c>gpt</c> model on its recent holdout through ONNX Runtime: per source-length bucket and per
/// catalog, BLEU and chrF (sacreBLEU defaults, the project's <see cref="Bleu"/> and <see cref="Chrf"/>) of the champion's
/// greedy outputs for conditional models, perplexity for language models; drift of fresh texts against the training
/// window as the Jensen–Shannon divergence of unigram token distributions (<see cref="TokenDrift"/>).
/// </summary>
internal static class TextErrorAnalysis
{
    public static async Task<(AnalysisReport Report, IReadOnlyList<TextAnalysisRecord> Records)> RunAsync(AnalysisRequest request, CancellationToken cancellationToken)
    {
        var options = request.Options;
        bool conditional = request.ModelOptions.Text.Conditional;
        bool Accept(SampleRecord r) => r.Modality == Modality.Text && !string.IsNullOrWhiteSpace(r.Text) && (!conditional || !string.IsNullOrWhiteSpace(r.SourceText));
        var (windows, skipped) = await StoreWindows.ReadAsync(request.Store, request.StoreKey, request.TrainedWatermark, request.Watermark,
            options.MaxHoldout, options.MaxDriftSamples, Accept, cancellationToken).ConfigureAwait(false);
        if (windows.Holdout.Count == 0)
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"model '{request.Model}' has no usable holdout text up to watermark {request.Watermark} ({skipped} samples skipped: not text, empty, or a conditional pair without a source)"));
        }

        using var model = GptOnnxModel.Load(request.ChampionOnnx, request.Evaluation.Threads, request.TextEvaluation.BatchSize);
        if (model.IsConditional != conditional)
        {
            throw new InvalidDataException($"the champion '{request.ChampionOnnx}' is a '{model.Task}' model, but model '{request.Model}' is configured as "
                + (conditional ? "conditional (Text:Conditional = true)" : "a language model (Text:Conditional = false)"));
        }

        var holdout = windows.Holdout;
        var references = holdout.Select(r => new ReferenceText(conditional ? r.SourceText : null, r.Text!)).ToList();
        string holdoutId = TextReferenceSet.Describe(string.Create(CultureInfo.InvariantCulture, $"store-{request.StoreKey}@{request.Watermark}-recent"), references);
        var buckets = holdout.Select(r => SliceKeys.TextLengthBucket(r.Text!, r.SourceText, conditional)).ToList();
        var catalogs = holdout.Select(r => SliceKeys.Catalog(r.Label, r.Source)).ToList();
        string modelBasis = $"gpt:{model.Task}|vocab:{model.VocabularySha256[..12]}";

        List<TextAnalysisRecord> records;
        List<AnalysisMetric> overall;
        List<SliceDraft> drafts;
        List<TextExampleReport> samples = [];
        string protocol;
        if (conditional)
        {
            int maxPrompt = Math.Min(model.Shape.Context, Math.Max(3, model.Shape.Context / 2));
            // The evaluator's prompt: [BOS] source [SEP], the source cut so the prompt is at most half the context.
            var prompts = references.Select(r =>
            {
                var tokens = model.Vocabulary.Encode(r.Source!);
                return (int[])[TextVocabulary.Bos, .. tokens.AsSpan(0, Math.Min(tokens.Length, maxPrompt - 2)), TextVocabulary.Sep];
            }).ToList();
            var outputs = model.Generate(prompts, DecodingStrategy.Greedy, request.TextEvaluation.MaxNewTokens, cancellationToken)
                .Select(g => model.Vocabulary.Decode(g.Tokens)).ToList();
            records = [.. references.Select((r, i) => new TextAnalysisRecord(r.Source, r.Text, buckets[i], catalogs[i], outputs[i], null, 0))];
            protocol = string.Create(CultureInfo.InvariantCulture,
                $"{modelBasis}|holdout:{holdoutId}|decode:{DecodingStrategy.Greedy.Signature}|max_new:{request.TextEvaluation.MaxNewTokens}|prompt:bos+src[<={maxPrompt - 2}]+sep|min_slice:{options.MinSliceSamples}");
            var all = Translation(records);
            overall = [new("bleu", all.Bleu.Score, $"{protocol}|{all.Bleu.Signature}"), new("chrf", all.Chrf.Score, $"{protocol}|{all.Chrf.Name}:{all.Chrf.Signature}")];
            drafts = TranslationDrafts(records, options.MinSliceSamples);
        }
        else
        {
            var sequences = references.Select(r => (int[])[TextVocabulary.Bos, .. model.Vocabulary.Encode(r.Text), TextVocabulary.Eos]).ToList();
            var likelihoods = model.LogLikelihood(sequences, null, cancellationToken);
            records = [.. references.Select((r, i) => new TextAnalysisRecord(null, r.Text, buckets[i], catalogs[i], null, likelihoods[i].LogProbability, likelihoods[i].Tokens))];
            protocol = string.Create(CultureInfo.InvariantCulture,
                $"{modelBasis}|holdout:{holdoutId}|ppl:exp-mean-nll,eos:in,bos:out|window:{model.Shape.Context},stride:{model.Shape.Context}|min_slice:{options.MinSliceSamples}");
            overall = [new("perplexity", Perplexity(records), protocol)];
            drafts = PerplexityDrafts(records, options.MinSliceSamples);
            if (options.ExamplesPerSlice > 0)
            {
                var decoding = DecodingStrategy.Sample(new SamplingOptions(request.TextEvaluation.Temperature, request.TextEvaluation.TopK, request.TextEvaluation.TopP), (ulong)(uint)request.Seed);
                var prompts = Enumerable.Range(0, options.ExamplesPerSlice).Select(_ => new[] { TextVocabulary.Bos }).ToList();
                samples = [.. model.Generate(prompts, decoding, request.TextEvaluation.MaxNewTokens, cancellationToken)
                    .Select(g => new TextExampleReport("sample", null, null, model.Vocabulary.Decode(g.Tokens)))];
            }
        }

        var drift = Drift(model, windows, conditional, options, cancellationToken);
        var (slices, worst, weights, feedback) = SliceAssembly.Assemble(drafts, request.Feedback, options);
        var examples = conditional
            ? worst.SelectMany(slice => records.Where(r => r.LengthBucket == slice || r.Catalog == slice).Take(options.ExamplesPerSlice)
                .Select(r => new TextExampleReport(slice, r.Source, r.Reference, r.Output!))).ToList()
            : samples;

        var report = new AnalysisReport
        {
            Model = request.Model,
            Family = request.Family,
            Modality = "text",
            Task = model.Task,
            CreatedUtc = DateTimeOffset.UtcNow,
            Seed = request.Seed,
            Champion = new ChampionInfo(Path.GetFullPath(request.ChampionOnnx), model.Sha256, request.ChampionVersion),
            Watermarks = new AnalysisWatermarks(request.TrainedWatermark, request.Watermark),
            Protocol = protocol,
            Holdout = new HoldoutInfo(holdoutId, holdout.Count, skipped),
            Overall = overall,
            Slices = slices,
            Feedback = feedback,
            Worst = worst,
            Weights = weights,
            Weighting = WeightingReport.From(options.Weighting),
            Drift = drift,
            Examples = examples,
        };
        return (report, records);
    }

    /// <summary>Corpus BLEU and chrF of records (one reference each), exactly as the evaluator scores a whole holdout.</summary>
    internal static (BleuResult Bleu, ChrfResult Chrf) Translation(IReadOnlyList<TextAnalysisRecord> records)
    {
        var hypotheses = records.Select(r => r.Output!).ToList();
        var referenceLists = records.Select(r => (IReadOnlyList<string?>)[r.Reference]).ToList();
        return (Bleu.Corpus(hypotheses, referenceLists), Chrf.Corpus(hypotheses, referenceLists));
    }

    /// <summary>exp(−Σ ln p / Σ tokens).</summary>
    internal static double Perplexity(IReadOnlyList<TextAnalysisRecord> records)
    {
        double logProbability = records.Sum(r => r.LogProbability!.Value);
        long tokens = records.Sum(r => (long)r.Tokens);
        return Math.Exp(-logProbability / tokens);
    }

    /// <summary>Every length bucket (fixed, reported even when empty) and every catalog present, in that order.</summary>
    private static IEnumerable<(string Slice, string Kind, List<TextAnalysisRecord> Members)> Slices(IReadOnlyList<TextAnalysisRecord> records)
    {
        foreach (string bucket in SliceKeys.LengthBuckets)
        {
            yield return (bucket, SliceKind.Length, records.Where(r => r.LengthBucket == bucket).ToList());
        }

        foreach (var catalog in records.Select(r => r.Catalog).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            yield return (catalog, SliceKind.Catalog, records.Where(r => r.Catalog == catalog).ToList());
        }
    }

    private static string TooFew(int count, int minimum) => string.Create(CultureInfo.InvariantCulture, $"{count} holdout texts, {minimum} needed: not judged");

    private static List<SliceDraft> TranslationDrafts(IReadOnlyList<TextAnalysisRecord> records, int minSamples)
    {
        var scored = new List<(string Slice, string Kind, int Count, double? Bleu, double? Chrf)>();
        foreach (var (slice, kind, members) in Slices(records))
        {
            if (members.Count < minSamples)
            {
                scored.Add((slice, kind, members.Count, null, null));
                continue;
            }

            var (bleu, chrf) = Translation(members);
            scored.Add((slice, kind, members.Count, bleu.Score, chrf.Score));
        }

        var drafts = new List<SliceDraft>();
        foreach (var (slice, kind, count, bleu, chrf) in scored)
        {
            if (bleu is null)
            {
                drafts.Add(new SliceDraft(slice, kind, SliceStatus.TooFewHoldout, count, null, new Dictionary<string, double>(), null, TooFew(count, minSamples)));
                continue;
            }

            // Relative to the best judged slice of the same kind (length buckets with length buckets, catalogs with catalogs).
            var peers = scored.Where(s => s.Kind == kind && s.Bleu is not null).ToList();
            double? badness = SliceBadness.Combine(
                SliceBadness.HigherIsBetter(bleu.Value, peers.Max(p => p.Bleu!.Value)),
                SliceBadness.HigherIsBetter(chrf!.Value, peers.Max(p => p.Chrf!.Value)));
            drafts.Add(new SliceDraft(slice, kind, SliceStatus.Ok, count, null,
                new Dictionary<string, double> { ["bleu"] = bleu.Value, ["chrf"] = chrf.Value }, badness, badness is null ? "BLEU and chrF are 0 on every slice of this kind: nothing tells them apart" : null));
        }

        return drafts;
    }

    private static List<SliceDraft> PerplexityDrafts(IReadOnlyList<TextAnalysisRecord> records, int minSamples)
    {
        var scored = Slices(records).Select(s => (s.Slice, s.Kind, s.Members.Count, Perplexity: s.Members.Count < minSamples ? (double?)null : Perplexity(s.Members),
            Tokens: s.Members.Sum(m => (long)m.Tokens))).ToList();
        var drafts = new List<SliceDraft>();
        foreach (var (slice, kind, count, perplexity, tokens) in scored)
        {
            if (perplexity is null)
            {
                drafts.Add(new SliceDraft(slice, kind, SliceStatus.TooFewHoldout, count, null, new Dictionary<string, double>(), null, TooFew(count, minSamples)));
                continue;
            }

            double best = scored.Where(s => s.Kind == kind && s.Perplexity is not null).Min(s => s.Perplexity!.Value);
            drafts.Add(new SliceDraft(slice, kind, SliceStatus.Ok, count, null,
                new Dictionary<string, double> { ["perplexity"] = perplexity.Value, ["tokens"] = tokens }, SliceBadness.LowerIsBetter(perplexity.Value, best), null));
        }

        return drafts;
    }

    private static DriftReport Drift(GptOnnxModel model, StoreWindows windows, bool conditional, AnalysisOptions options, CancellationToken cancellationToken)
    {
        int fresh = windows.Fresh.Count, training = windows.Training.Count;
        string signature = string.Create(CultureInfo.InvariantCulture,
            $"gpt:{model.Task}|vocab:{model.VocabularySha256[..12]}|jsd:log2,unigram,{(conditional ? "source+text" : "text")}|windows:all-splits,last-{options.MaxDriftSamples}|fresh:{fresh}|train:{training}");
        if (DriftWindows.Shortfall(fresh, training, options.MinDriftSamples) is { } status)
        {
            return new DriftReport
            {
                Metric = "token_jsd", Status = status, FreshCount = fresh, FreshAvailable = windows.FreshAvailable, TrainingCount = training,
                MinSamples = options.MinDriftSamples, Signature = signature,
            };
        }

        cancellationToken.ThrowIfCancellationRequested();
        var freshCounts = TokenDrift.Counts(model.Vocabulary, windows.Fresh.Select(r => (conditional ? r.SourceText : null, r.Text!)));
        var trainingCounts = TokenDrift.Counts(model.Vocabulary, windows.Training.Select(r => (conditional ? r.SourceText : null, r.Text!)));
        return new DriftReport
        {
            Metric = "token_jsd", Status = DriftStatus.Ok, Value = TokenDrift.JensenShannon(freshCounts, trainingCounts), FreshCount = fresh,
            FreshAvailable = windows.FreshAvailable, TrainingCount = training, MinSamples = options.MinDriftSamples, Signature = signature,
            Details = ReportDictionary.Ordered([
                KeyValuePair.Create("fresh_tokens", (double)freshCounts.Sum()),
                KeyValuePair.Create("training_tokens", (double)trainingCounts.Sum()),
                KeyValuePair.Create("fresh_byte_fallback_share", TokenDrift.ByteFallbackShare(freshCounts)),
                KeyValuePair.Create("training_byte_fallback_share", TokenDrift.ByteFallbackShare(trainingCounts)),
            ]),
        };
    }
}
