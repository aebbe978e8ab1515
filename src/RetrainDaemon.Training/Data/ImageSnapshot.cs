using System.Globalization;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Data.Store;

namespace RetrainDaemon.Training.Data;

/// <summary>Counts of a snapshot, for logs, refusals and the run record.</summary>
public sealed record SnapshotCounts(long Watermark, int Fresh, int Replayed, int Holdout);

/// <summary>
/// A training snapshot of one image model from the store: samples up to a watermark, train and
/// holdout by the store's split. For a fine-tune, the fresh samples (after the previous run's
/// watermark) are mixed with a deterministic replay of older training samples, <c>replayRatio</c>
/// old per fresh one, so the model does not forget what it knew.
/// </summary>
public static class ImageSnapshot
{
    public static Task<(ImageDataset Train, ImageDataset Holdout, SnapshotCounts Counts)> LoadAsync(
        ISampleStore store, string model, int side, long watermark, long previousWatermark = 0, double replayRatio = 0, long seed = 1, CancellationToken cancellationToken = default) =>
        LoadAsync(store, model, side, watermark, previousWatermark, replayRatio, seed, null, cancellationToken);

    /// <summary>
    /// As above; with <paramref name="sliceWeights"/> (from the model's last error analysis) the training set —
    /// fresh and replayed samples alike — is resampled by the weight of each sample's <c>class=k</c> slice
    /// (<see cref="SliceWeighting"/>, seeded by <paramref name="seed"/>): same size, weak classes more often.
    /// The holdout is never reweighted, so runs stay comparable.
    /// </summary>
    public static async Task<(ImageDataset Train, ImageDataset Holdout, SnapshotCounts Counts)> LoadAsync(
        ISampleStore store, string model, int side, long watermark, long previousWatermark, double replayRatio, long seed, SliceWeights? sliceWeights,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(replayRatio);
        var fresh = await ReadAsync(store, model, previousWatermark, watermark, Splits.Train, side, cancellationToken).ConfigureAwait(false);
        var old = previousWatermark > 0 && replayRatio > 0
            ? await ReadAsync(store, model, 0, previousWatermark, Splits.Train, side, cancellationToken).ConfigureAwait(false)
            : [];
        var holdout = await ReadAsync(store, model, 0, watermark, Splits.Holdout, side, cancellationToken).ConfigureAwait(false);

        int replayCount = Math.Min(old.Count, (int)Math.Round(fresh.Count * replayRatio));
        var random = new Random(unchecked((int)seed));
        var replayed = old.OrderBy(_ => random.Next()).Take(replayCount).ToList();
        var train = fresh.Concat(replayed).ToList();
        if (sliceWeights is not null && train.Count > 0)
        {
            train = SliceWeighting.Resample(train, s => sliceWeights.ForClass(s.Label), seed);
        }

        return (
            new ImageDataset(train.Select(s => s.Pixels).ToList(), train.Select(s => s.Label).ToList(), side),
            new ImageDataset(holdout.Select(s => s.Pixels).ToList(), holdout.Select(s => s.Label).ToList(), side),
            new SnapshotCounts(watermark, fresh.Count, replayed.Count, holdout.Count));
    }

    private static async Task<List<(byte[] Pixels, int Label)>> ReadAsync(ISampleStore store, string model, long after, long watermark, string split, int side, CancellationToken cancellationToken)
    {
        var list = new List<(byte[], int)>();
        await foreach (var sample in store.ReadSamplesAsync(model, after, watermark, split, cancellationToken).ConfigureAwait(false))
        {
            var record = sample.Record;
            if (record.Pixels is null || record.Width != side || record.Height != side || record.Channels != 1)
            {
                throw new InvalidDataException($"sample {record.EventId} of model '{model}' is not a {side}x{side} grayscale image");
            }

            // Labels travel as text; a non-numeric label cannot index a class embedding and counts as class 0.
            int label = int.TryParse(record.Label, NumberStyles.Integer, CultureInfo.InvariantCulture, out int parsed) ? parsed : 0;
            list.Add((record.Pixels, label));
        }

        return list;
    }
}
