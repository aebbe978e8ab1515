using static TorchSharp.torch;

namespace RetrainDaemon.Training.Data;

/// <summary>
/// A training or holdout snapshot of canonical images with labels, held in memory (Fashion-MNIST
/// sized). Batches are a pure function of (seed, step): a resumed run draws the same batches
/// without carrying sampler state, and per-label weights (from error analysis) tilt the draw.
/// </summary>
public sealed class ImageDataset(IReadOnlyList<byte[]> pixels, IReadOnlyList<int> labels, int side)
{
    public int Count => pixels.Count;

    public int Side => side;

    public (Tensor Images, Tensor Labels) Batch(long seed, long step, int size, bool symmetric, IReadOnlyDictionary<int, double>? labelWeights = null)
    {
        var random = new Random(unchecked((int)(seed * 1_000_003 + step * 7_919)));
        var indices = new int[size];
        if (labelWeights is null)
        {
            for (int i = 0; i < size; i++)
            {
                indices[i] = random.Next(Count);
            }
        }
        else
        {
            var cumulative = new double[Count];
            double total = 0;
            for (int i = 0; i < Count; i++)
            {
                total += labelWeights.GetValueOrDefault(labels[i], 1.0);
                cumulative[i] = total;
            }

            for (int i = 0; i < size; i++)
            {
                int at = Array.BinarySearch(cumulative, random.NextDouble() * total);
                indices[i] = Math.Min(Count - 1, at < 0 ? ~at : at);
            }
        }

        return Select(indices, symmetric);
    }

    /// <summary>The first <paramref name="size"/> items (holdout evaluation uses a fixed slice).</summary>
    public (Tensor Images, Tensor Labels) Head(int size, bool symmetric) => Select(Enumerable.Range(0, Math.Min(size, Count)).ToArray(), symmetric);

    private (Tensor Images, Tensor Labels) Select(int[] indices, bool symmetric) =>
        (ImageTensors.Pixels(indices.Select(i => pixels[i]).ToList(), side, symmetric), ImageTensors.Labels(indices.Select(i => labels[i]).ToList()));
}
