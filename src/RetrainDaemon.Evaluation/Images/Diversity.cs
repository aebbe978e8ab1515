using RetrainDaemon.Evaluation.Features;

namespace RetrainDaemon.Evaluation.Images;

/// <summary>How the classifier spreads generated samples over its classes.</summary>
public sealed record ClassCoverage(int[] Counts, double Coverage, double Entropy)
{
    /// <summary>The entropy divided by ln C: 1 for a uniform spread, 0 for a collapse onto one class.</summary>
    public double NormalizedEntropy => Counts.Length > 1 ? Entropy / Math.Log(Counts.Length) : 0;
}

/// <summary>Diversity of generated samples: class coverage and entropy, mean pairwise feature distance, conditional accuracy.</summary>
public static class Diversity
{
    /// <summary>
    /// Predicted class = argmax of each probability row (the first on ties). Coverage = share of the C
    /// classes predicted at least once; entropy = −Σ p ln p of the predicted-class histogram, in nats.
    /// </summary>
    public static ClassCoverage Coverage(FeatureMatrix probabilities)
    {
        ArgumentNullException.ThrowIfNull(probabilities);
        var counts = new int[probabilities.Dimensions];
        foreach (int label in PredictedClasses(probabilities))
        {
            counts[label]++;
        }

        double entropy = 0;
        foreach (int count in counts)
        {
            if (count > 0)
            {
                double p = (double)count / probabilities.Rows;
                entropy -= p * Math.Log(p);
            }
        }

        return new ClassCoverage(counts, (double)counts.Count(c => c > 0) / counts.Length, entropy);
    }

    public static int[] PredictedClasses(FeatureMatrix probabilities)
    {
        ArgumentNullException.ThrowIfNull(probabilities);
        var labels = new int[probabilities.Rows];
        for (int i = 0; i < probabilities.Rows; i++)
        {
            var row = probabilities.Row(i);
            int best = 0;
            for (int j = 1; j < row.Length; j++)
            {
                if (row[j] > row[best])
                {
                    best = j;
                }
            }

            labels[i] = best;
        }

        return labels;
    }

    /// <summary>The share of samples the classifier assigns to the class they were generated for.</summary>
    public static double ConditionalAccuracy(FeatureMatrix probabilities, IReadOnlyList<int> requested)
    {
        ArgumentNullException.ThrowIfNull(requested);
        var predicted = PredictedClasses(probabilities);
        if (predicted.Length != requested.Count)
        {
            throw new ArgumentException($"{probabilities.Rows} probability rows but {requested.Count} requested classes");
        }

        int hits = 0;
        for (int i = 0; i < predicted.Length; i++)
        {
            hits += predicted[i] == requested[i] ? 1 : 0;
        }

        return (double)hits / predicted.Length;
    }

    /// <summary>Mean L2 distance over all unordered pairs i &lt; j (at least 2 rows), computed exactly pair by pair.</summary>
    public static double MeanPairwiseDistance(FeatureMatrix features)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (features.Rows < 2)
        {
            throw new ArgumentException($"{features.Name}: a pairwise distance needs at least 2 samples, got {features.Rows}");
        }

        int n = features.Rows;
        var partial = new double[n];
        Parallel.For(0, n, i =>
        {
            var a = features.Row(i);
            double sum = 0;
            for (int j = i + 1; j < n; j++)
            {
                sum += Novelty.Distance(a, features.Row(j));
            }

            partial[i] = sum;
        });
        return partial.Sum() / (n * (n - 1.0) / 2.0);
    }
}
