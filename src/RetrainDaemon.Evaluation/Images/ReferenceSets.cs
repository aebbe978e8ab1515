using System.Globalization;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Store;

namespace RetrainDaemon.Evaluation.Images;

/// <summary>Where the real images a generator is compared with come from.</summary>
public static class ReferenceSets
{
    /// <summary>Debian's Fashion-MNIST: t10k as the holdout (FID reference), train for novelty.</summary>
    public static ImageReferenceSet FashionMnist(int maxHoldout, int maxTraining, string directory = Data.Datasets.FashionMnist.DefaultDirectory)
    {
        var holdout = Data.Datasets.FashionMnist.Read("t10k", take: maxHoldout, directory: directory);
        var training = Data.Datasets.FashionMnist.Read("train", take: maxTraining, directory: directory);
        return new ImageReferenceSet("fashion-mnist-t10k", holdout.Select(i => i.Pixels).ToList(), holdout.Select(i => i.Label).ToList(),
            training.Select(i => i.Pixels).ToList(), Data.Datasets.FashionMnist.Side, Data.Datasets.FashionMnist.Side, 1);
    }

    /// <summary>The model's holdout and training samples in the store up to <paramref name="watermark"/>.</summary>
    public static async Task<ImageReferenceSet> FromStoreAsync(ISampleStore store, string model, long watermark, int maxHoldout, int maxTraining, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        var holdout = new List<byte[]>();
        var labels = new List<int>();
        var training = new List<byte[]>();
        int width = 0, height = 0, channels = 0;
        await foreach (var sample in store.ReadSamplesAsync(model, 0, watermark, null, cancellationToken).ConfigureAwait(false))
        {
            var record = sample.Record;
            if (record.Pixels is null)
            {
                throw new InvalidDataException($"sample {record.EventId} of model '{model}' is not an image");
            }

            if (width == 0)
            {
                (width, height, channels) = (record.Width, record.Height, record.Channels);
            }
            else if ((record.Width, record.Height, record.Channels) != (width, height, channels))
            {
                throw new InvalidDataException($"sample {record.EventId} of model '{model}' is {record.Width}x{record.Height}x{record.Channels}, earlier samples {width}x{height}x{channels}");
            }

            if (record.Split == Splits.Holdout && holdout.Count < maxHoldout)
            {
                holdout.Add(record.Pixels);
                labels.Add(int.TryParse(record.Label, NumberStyles.Integer, CultureInfo.InvariantCulture, out int label) ? label : -1);
            }
            else if (record.Split != Splits.Holdout && training.Count < maxTraining)
            {
                training.Add(record.Pixels);
            }
        }

        return new ImageReferenceSet($"store-{model}@{watermark}", holdout, labels, training, width, height, channels);
    }
}
