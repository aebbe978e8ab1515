using RetrainDaemon.Evaluation.Features;

namespace RetrainDaemon.Evaluation.Images;

/// <summary>Inception Score over splits: mean and population standard deviation (ddof = 0) of the per-split scores.</summary>
public sealed record InceptionScoreResult(double Mean, double StandardDeviation, IReadOnlyList<double> SplitScores);

/// <summary>
/// The Inception Score as OpenAI's improved-gan code computes it (docs/metrics.md §4): contiguous
/// splits in input order with boundaries ⌊k·N/splits⌋, per split exp(mean_i KL(p_i ‖ p̄)), natural
/// logarithms, no shuffling. Exact zeros in the probabilities are taken as 0·ln 0 = 0 (the limit,
/// as <c>scipy.stats.entropy</c> does) instead of the reference's NaN; softmax outputs of finite
/// logits never contain zeros, so scores of real models are unaffected.
/// </summary>
public static class InceptionScore
{
    /// <summary>Rows must be probability vectors: non-negative, summing to 1 within 1e-4 (float softmax outputs).</summary>
    public static InceptionScoreResult FromProbabilities(FeatureMatrix probabilities, int splits = 10)
    {
        ArgumentNullException.ThrowIfNull(probabilities);
        int n = probabilities.Rows;
        int c = probabilities.Dimensions;
        if (splits < 1 || splits > n)
        {
            throw new ArgumentOutOfRangeException(nameof(splits), $"splits must be between 1 and the sample count {n}, got {splits}");
        }

        for (int i = 0; i < n; i++)
        {
            var row = probabilities.Row(i);
            double sum = 0;
            foreach (double p in row)
            {
                if (p < 0)
                {
                    throw new ArgumentException($"{probabilities.Name}: row {i} has a negative probability {p}");
                }

                sum += p;
            }

            if (Math.Abs(sum - 1) > 1e-4)
            {
                throw new ArgumentException($"{probabilities.Name}: row {i} sums to {sum}, not 1 (pass logits to FromLogits)");
            }
        }

        var scores = new double[splits];
        var mean = new double[c];
        for (int k = 0; k < splits; k++)
        {
            int start = (int)((long)k * n / splits);
            int end = (int)((long)(k + 1) * n / splits);
            Array.Clear(mean);
            for (int i = start; i < end; i++)
            {
                var row = probabilities.Row(i);
                for (int j = 0; j < c; j++)
                {
                    mean[j] += row[j];
                }
            }

            for (int j = 0; j < c; j++)
            {
                mean[j] /= end - start;
            }

            double klSum = 0;
            for (int i = start; i < end; i++)
            {
                var row = probabilities.Row(i);
                double kl = 0;
                for (int j = 0; j < c; j++)
                {
                    if (row[j] > 0)
                    {
                        kl += row[j] * (Math.Log(row[j]) - Math.Log(mean[j]));
                    }
                }

                klSum += kl;
            }

            scores[k] = Math.Exp(klSum / (end - start));
        }

        double average = scores.Average();
        double variance = scores.Sum(s => (s - average) * (s - average)) / splits;
        return new InceptionScoreResult(average, Math.Sqrt(variance), scores);
    }

    /// <summary>Softmax of logits in double (max-subtracted), then <see cref="FromProbabilities"/>.</summary>
    public static InceptionScoreResult FromLogits(FeatureMatrix logits, int splits = 10)
    {
        ArgumentNullException.ThrowIfNull(logits);
        int c = logits.Dimensions;
        var probabilities = new double[(long)logits.Rows * c];
        for (int i = 0; i < logits.Rows; i++)
        {
            var row = logits.Row(i);
            double max = double.NegativeInfinity;
            foreach (double v in row)
            {
                max = Math.Max(max, v);
            }

            double sum = 0;
            for (int j = 0; j < c; j++)
            {
                sum += Math.Exp(row[j] - max);
            }

            for (int j = 0; j < c; j++)
            {
                probabilities[(long)i * c + j] = Math.Exp(row[j] - max) / sum;
            }
        }

        return FromProbabilities(new FeatureMatrix(logits.Rows, c, probabilities, logits.Name), splits);
    }
}
