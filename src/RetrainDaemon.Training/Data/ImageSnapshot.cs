using System.Globalization;
using RetrainDaemon.Core.Contracts;
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
    public static async Task<(ImageDataset Train, ImageDataset Holdout, SnapshotCounts Counts)> LoadAsync(
        ISampleStore store, string model, int side, long watermark, long previousWatermark = 0, double replayRatio = 0, long seed = 1, CancellationToken cancellationToken = default)
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
