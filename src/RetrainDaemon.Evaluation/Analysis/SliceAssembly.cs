using System.Globalization;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Data.Store;

namespace RetrainDaemon.Evaluation.Analysis;

/// <summary>A slice's numbers before feedback and weights are joined in.</summary>
internal sealed record SliceDraft(string Slice, string Kind, string Status, int HoldoutCount, int? GeneratedCount,
    IReadOnlyDictionary<string, double> Metrics, double? Badness, string? Note);

/// <summary>Joins feedback into slice drafts, computes the weights per slice kind and ranks the worst slices.</summary>
internal static class SliceAssembly
{
    public static (IReadOnlyList<SliceReport> Slices, IReadOnlyList<string> Worst, IReadOnlyDictionary<string, double> Weights, FeedbackSummary Feedback) Assemble(
        IReadOnlyList<SliceDraft> drafts, IReadOnlyList<SliceRating> feedback, AnalysisOptions options)
    {
        var valid = feedback.Where(f => f.Rating is >= 1 and <= 5 && !string.IsNullOrWhiteSpace(f.Slice)).ToList();
        int ignored = feedback.Count - valid.Count;
        var bySlice = valid.GroupBy(f => f.Slice, StringComparer.Ordinal).ToDictionary(g => g.Key, g => (Count: g.Count(), Mean: g.Average(f => (double)f.Rating)), StringComparer.Ordinal);

        var evidenceByKind = drafts.GroupBy(d => d.Kind, StringComparer.Ordinal);
        var weights = new Dictionary<string, SliceWeight>(StringComparer.Ordinal);
        foreach (var kind in evidenceByKind)
        {
            var evidence = kind.Select(d => bySlice.TryGetValue(d.Slice, out var f)
                ? new SliceEvidence(d.Slice, d.Badness, f.Count, f.Mean)
                : new SliceEvidence(d.Slice, d.Badness)).ToList();
            foreach (var weight in SliceWeightFunction.Compute(evidence, options.Weighting))
            {
                weights.Add(weight.Slice, weight);
            }
        }

        var slices = drafts.Select(d =>
        {
            bySlice.TryGetValue(d.Slice, out var f);
            var w = weights[d.Slice];
            return new SliceReport
            {
                Slice = d.Slice,
                Kind = d.Kind,
                Status = d.Status,
                HoldoutCount = d.HoldoutCount,
                GeneratedCount = d.GeneratedCount,
                Metrics = ReportDictionary.Ordered(d.Metrics),
                FeedbackCount = f.Count,
                MeanRating = f.Count > 0 ? f.Mean : null,
                Badness = d.Badness,
                Score = w.Score,
                Weight = w.Weight,
                Note = d.Note,
            };
        }).ToList();

        // Worst: judged slices (a badness, or enough feedback to move the score), highest score first, ties by key.
        var worst = slices.Where(s => s.Badness is not null || s.FeedbackCount >= options.Weighting.MinFeedbackRatings)
            .OrderByDescending(s => s.Score).ThenBy(s => s.Slice, StringComparer.Ordinal)
            .Take(options.WorstCount).Select(s => s.Slice).ToList();

        var ratings = Enumerable.Range(1, 5).Select(r =>
        {
            int count = valid.Count(f => f.Rating == r);
            return new RatingSlice(SliceKeys.Rating(r), r, count, valid.Count == 0 ? 0 : (double)count / valid.Count);
        }).ToList();
        var known = drafts.Select(d => d.Slice).ToHashSet(StringComparer.Ordinal);
        var unmatched = bySlice.Where(kv => !known.Contains(kv.Key)).OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => new UnmatchedFeedback(kv.Key, kv.Value.Count, kv.Value.Mean)).ToList();
        return (slices, worst, ReportDictionary.Ordered(weights.Select(w => KeyValuePair.Create(w.Key, w.Value.Weight))),
            new FeedbackSummary(valid.Count, ignored, ratings, unmatched));
    }
}

/// <summary>The last <c>capacity</c> items added, and how many were added in all.</summary>
internal sealed class RecentWindow<T>(int capacity)
{
    private readonly Queue<T> items = new();

    public int Total { get; private set; }

    public void Add(T item)
    {
        Total++;
        items.Enqueue(item);
        if (items.Count > capacity)
        {
            items.Dequeue();
        }
    }

    public List<T> ToList() => [.. items];
}

/// <summary>One pass over a model's samples up to the watermark: the recent holdout and both drift windows.</summary>
internal sealed record StoreWindows(List<SampleRecord> Holdout, int HoldoutAvailable, List<SampleRecord> Training, int TrainingAvailable, List<SampleRecord> Fresh, int FreshAvailable)
{
    /// <summary>
    /// Holdout: the last <paramref name="maxHoldout"/> holdout-split samples up to <paramref name="watermark"/>. Drift windows
    /// take every split (the split is a hash of the id, so it does not change the distribution): training = the last
    /// <paramref name="maxDrift"/> samples up to <paramref name="trainedWatermark"/>, fresh = the last <paramref name="maxDrift"/>
    /// after it. Samples <paramref name="accept"/> refuses (with a reason) are skipped and counted.
    /// </summary>
    public static async Task<(StoreWindows Windows, int Skipped)> ReadAsync(ISampleStore store, string model, long trainedWatermark, long watermark,
        int maxHoldout, int maxDrift, Func<SampleRecord, bool> accept, CancellationToken cancellationToken)
    {
        var holdout = new RecentWindow<SampleRecord>(maxHoldout);
        var training = new RecentWindow<SampleRecord>(maxDrift);
        var fresh = new RecentWindow<SampleRecord>(maxDrift);
        int skipped = 0;
        await foreach (var sample in store.ReadSamplesAsync(model, 0, watermark, null, cancellationToken).ConfigureAwait(false))
        {
            var record = sample.Record;
            if (!accept(record))
            {
                skipped++;
                continue;
            }

            if (record.Split == Splits.Holdout)
            {
                holdout.Add(record);
            }

            (sample.Sequence <= trainedWatermark ? training : fresh).Add(record);
        }

        return (new StoreWindows(holdout.ToList(), holdout.Total, training.ToList(), training.Total, fresh.ToList(), fresh.Total), skipped);
    }
}

/// <summary>Shared drift verdicts.</summary>
internal static class DriftWindows
{
    /// <summary>The status when either window is short, else null.</summary>
    public static string? Shortfall(int fresh, int training, int minimum) =>
        fresh < minimum ? DriftStatus.NotEnoughFreshData : training < minimum ? DriftStatus.NotEnoughTrainingData : null;

    public static string Describe(string status, int fresh, int training, int minimum) => string.Create(CultureInfo.InvariantCulture,
        $"{status}: {fresh} fresh and {training} training-window samples, {minimum} of each needed");
}
