using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Data.Store;

namespace RetrainDaemon.Training.Data;

/// <summary>One text sample of a snapshot: the text (the target of a conditional pair) and its source.</summary>
public sealed record TextPair(string Text, string? Source);

/// <summary>What a text snapshot held and what it had to skip, and why.</summary>
public sealed record TextSnapshotCounts(long Watermark, int Train, int Holdout, int SkippedEmptyText, int SkippedMissingSource, int SkippedNotText)
{
    public int Skipped => SkippedEmptyText + SkippedMissingSource + SkippedNotText;

    public override string ToString() =>
        $"watermark {Watermark}: {Train} training and {Holdout} holdout texts" + (Skipped == 0 ? "" :
            $"; skipped {SkippedEmptyText} with empty text, {SkippedMissingSource} conditional pairs with an empty or missing source, {SkippedNotText} that are not text");
}

/// <summary>
/// A training snapshot of one text model from the store, up to a watermark, split by the store's
/// train/holdout assignment: training texts after the previous run's watermark, the whole holdout. Empty texts and pairs with an empty side are skipped and counted,
/// never fatal: the ingest already validated them, but a snapshot must not crash on what it finds.
/// </summary>
public static class TextSnapshot
{
    public static Task<(IReadOnlyList<TextPair> Train, IReadOnlyList<TextPair> Holdout, TextSnapshotCounts Counts)> LoadAsync(
        ISampleStore store, string model, bool conditional, long watermark, long previousWatermark = 0, CancellationToken cancellationToken = default) =>
        LoadAsync(store, model, conditional, watermark, previousWatermark, null, 1, cancellationToken);

    /// <summary>
    /// As above; with <paramref name="sliceWeights"/> (from the model's last error analysis) the training texts are
    /// resampled (<see cref="SliceWeighting"/>, seeded by <paramref name="seed"/>) by the product of the weights of
    /// each sample's length bucket and catalog (<see cref="SliceKeys"/>): same size, weak slices more often. The
    /// holdout is never reweighted, so runs stay comparable.
    /// </summary>
    public static async Task<(IReadOnlyList<TextPair> Train, IReadOnlyList<TextPair> Holdout, TextSnapshotCounts Counts)> LoadAsync(
        ISampleStore store, string model, bool conditional, long watermark, long previousWatermark, SliceWeights? sliceWeights, long seed,
        CancellationToken cancellationToken = default)
    {
        int emptyText = 0, missingSource = 0, notText = 0;
        var train = new List<TextPair>();
        var trainWeights = new List<double>();
        var holdout = new List<TextPair>();
        // Training texts are the fresh ones (after the previous run's watermark); the holdout is always the
        // whole holdout up to the watermark, so runs are compared on the same texts (as ImageSnapshot does).
        foreach (var (after, split, into) in new[] { (previousWatermark, Splits.Train, train), (0L, Splits.Holdout, holdout) })
        {
            await foreach (var sample in store.ReadSamplesAsync(model, after, watermark, split, cancellationToken).ConfigureAwait(false))
            {
                var record = sample.Record;
                if (record.Modality != Modality.Text)
                {
                    notText++;
                    continue;
                }

                if (string.IsNullOrWhiteSpace(record.Text))
                {
                    emptyText++;
                    continue;
                }

                if (conditional && string.IsNullOrWhiteSpace(record.SourceText))
                {
                    missingSource++;
                    continue;
                }

                into.Add(new TextPair(record.Text, conditional ? record.SourceText : null));
                if (sliceWeights is not null && ReferenceEquals(into, train))
                {
                    trainWeights.Add(sliceWeights.ForText(
                        SliceKeys.TextLengthBucket(record.Text, record.SourceText, conditional), SliceKeys.Catalog(record.Label, record.Source)));
                }
            }
        }

        IReadOnlyList<TextPair> weighted = sliceWeights is null || train.Count == 0
            ? train
            : SliceWeighting.ResampleIndices(trainWeights, seed).Select(i => train[i]).ToList();
        return (weighted, holdout, new TextSnapshotCounts(watermark, train.Count, holdout.Count, emptyText, missingSource, notText));
    }

    /// <summary>Skips and counts pairs an in-memory caller passes (tests, benchmarks) by the same rules.</summary>
    public static (IReadOnlyList<TextPair> Kept, int Skipped) Clean(IEnumerable<TextPair> pairs, bool conditional)
    {
        var kept = new List<TextPair>();
        int skipped = 0;
        foreach (var pair in pairs)
        {
            if (string.IsNullOrWhiteSpace(pair.Text) || (conditional && string.IsNullOrWhiteSpace(pair.Source)))
            {
                skipped++;
                continue;
            }

            kept.Add(pair);
        }

        return (kept, skipped);
    }
}
