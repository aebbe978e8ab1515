namespace RetrainDaemon.Training.Data;

/// <summary>
/// Deterministic weighted resampling of a training set (error analysis → next fine-tune): the result
/// has as many items as the input, and item i appears ⌊N·wᵢ/W⌋ or ⌈N·wᵢ/W⌉ times (W = Σw), so a slice
/// weighted 3× against the mean is about three times as common as before and a slice weighted 0.5× half as
/// common. Systematic resampling: one seeded offset u₀ ∈ [0, W/N), then the items under the points
/// u₀ + j·W/N, j = 0 … N−1; the same items, weights and seed always give the same set, in input order.
/// <para>Why resample the snapshot rather than only tilt batch draws (<see cref="ImageDataset"/> can do that too):
/// the snapshot is what a run records and what every consumer of it (trainer, tuner, text batches) sees, so a
/// weighted fine-tune is reproducible from the snapshot alone.</para>
/// </summary>
public static class SliceWeighting
{
    /// <summary>Indices into the input (ascending, with repeats), <paramref name="weights"/>.Count of them.</summary>
    /// <exception cref="ArgumentException">A weight is negative or not finite, or every weight is 0.</exception>
    public static int[] ResampleIndices(IReadOnlyList<double> weights, long seed)
    {
        ArgumentNullException.ThrowIfNull(weights);
        int n = weights.Count;
        if (n == 0)
        {
            return [];
        }

        double total = 0;
        for (int i = 0; i < n; i++)
        {
            double w = weights[i];
            if (!double.IsFinite(w) || w < 0)
            {
                throw new ArgumentException($"weight {i} is {w}; sampling weights must be finite and ≥ 0", nameof(weights));
            }

            total += w;
        }

        if (total <= 0)
        {
            throw new ArgumentException($"all {n} sampling weights are 0: nothing could be drawn", nameof(weights));
        }

        double step = total / n;
        double offset = new Random(unchecked((int)(seed ^ (seed >> 32)))).NextDouble() * step;
        var indices = new int[n];
        double cumulative = weights[0];
        int item = 0;
        for (int j = 0; j < n; j++)
        {
            double point = offset + j * step;
            // Advance to the item whose cumulative weight covers the point; the bound guards against the
            // last point landing a round-off beyond the total.
            while (point >= cumulative && item < n - 1)
            {
                item++;
                cumulative += weights[item];
            }

            int chosen = item;
            while (weights[chosen] == 0 && chosen > 0)
            {
                chosen--; // round-off pushed the point past the last positive weight: never draw a zero-weight item
            }

            indices[j] = chosen;
        }

        return indices;
    }

    /// <summary>The items resampled by <paramref name="weightOf"/> (see the class summary).</summary>
    public static List<T> Resample<T>(IReadOnlyList<T> items, Func<T, double> weightOf, long seed)
    {
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(weightOf);
        var weights = new double[items.Count];
        for (int i = 0; i < items.Count; i++)
        {
            weights[i] = weightOf(items[i]);
        }

        return ResampleIndices(weights, seed).Select(i => items[i]).ToList();
    }
}
