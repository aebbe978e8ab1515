using RetrainDaemon.Evaluation.Features;
using RetrainDaemon.Evaluation.LinearAlgebra;

namespace RetrainDaemon.Evaluation.Images;

/// <summary>Kernel Inception Distance: mean and population std of the per-subset unbiased MMD².</summary>
public sealed record KidResult(double Mean, double StandardDeviation, int Subsets, int SubsetSize);

/// <summary>
/// KID as torch-fidelity defines it: the unbiased MMD² with the polynomial kernel
/// k(x, y) = (γ·xᵀy + c)^degree (γ = 1/D, c = 1, degree 3) on random equal-size subsets of both
/// sets. The per-subset estimator is exactly torch-fidelity's; the subsets are drawn with .NET's
/// seeded <see cref="Random"/> (not numpy's RandomState), so with sampling the value matches
/// torch-fidelity's only in distribution. With one subset covering both whole sets of equal size it
/// is the exact statistic.
/// </summary>
public static class Kid
{
    public static KidResult Compute(FeatureMatrix a, FeatureMatrix b, int subsets = 100, int subsetSize = 1000, int degree = 3, double? gamma = null, double coefficient = 1, int seed = 2020)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        FeatureMatrix.RequireSameDimensions(a, b);
        if (subsetSize < 2 || subsetSize > Math.Min(a.Rows, b.Rows))
        {
            throw new ArgumentOutOfRangeException(nameof(subsetSize), $"the KID subset size must be between 2 and the smaller set size {Math.Min(a.Rows, b.Rows)}, got {subsetSize}");
        }

        if (subsets < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(subsets), $"at least one KID subset is needed, got {subsets}");
        }

        OpenBlas.EnsureAvailable();
        double g = gamma ?? 1.0 / a.Dimensions;
        var random = new Random(seed);
        var values = new double[subsets];
        for (int s = 0; s < subsets; s++)
        {
            var x = Subset(a, subsetSize, random);
            var y = Subset(b, subsetSize, random);
            values[s] = UnbiasedMmd2(x, y, subsetSize, a.Dimensions, degree, g, coefficient);
        }

        double mean = values.Average();
        return new KidResult(mean, Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / subsets), subsets, subsetSize);
    }

    private static double[] Subset(FeatureMatrix m, int size, Random random)
    {
        if (size == m.Rows)
        {
            return m.RawValues;
        }

        // Partial Fisher–Yates: `size` distinct rows.
        var indices = Enumerable.Range(0, m.Rows).ToArray();
        for (int i = 0; i < size; i++)
        {
            int j = random.Next(i, m.Rows);
            (indices[i], indices[j]) = (indices[j], indices[i]);
        }

        var rows = new double[(long)size * m.Dimensions];
        for (int i = 0; i < size; i++)
        {
            m.Row(indices[i]).CopyTo(rows.AsSpan(i * m.Dimensions, m.Dimensions));
        }

        return rows;
    }

    internal static unsafe double UnbiasedMmd2(double[] x, double[] y, int m, int d, int degree, double gamma, double coefficient)
    {
        var kxx = new double[(long)m * m];
        var kyy = new double[(long)m * m];
        var kxy = new double[(long)m * m];
        fixed (double* xp = x)
        fixed (double* yp = y)
        fixed (double* a = kxx)
        fixed (double* b = kyy)
        fixed (double* c = kxy)
        {
            // Row-major m×d is column-major d×m: Xᵀ·X over columns gives the m×m Gram matrix.
            OpenBlas.Dgemm(OpenBlas.ColMajor, OpenBlas.Trans, OpenBlas.NoTrans, m, m, d, 1.0, xp, d, xp, d, 0.0, a, m);
            OpenBlas.Dgemm(OpenBlas.ColMajor, OpenBlas.Trans, OpenBlas.NoTrans, m, m, d, 1.0, yp, d, yp, d, 0.0, b, m);
            OpenBlas.Dgemm(OpenBlas.ColMajor, OpenBlas.Trans, OpenBlas.NoTrans, m, m, d, 1.0, xp, d, yp, d, 0.0, c, m);
        }

        double Kernel(double dot) => Math.Pow(dot * gamma + coefficient, degree);
        double sumXX = 0, sumYY = 0, sumXY = 0;
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < m; j++)
            {
                long at = (long)i * m + j;
                if (i != j)
                {
                    sumXX += Kernel(kxx[at]);
                    sumYY += Kernel(kyy[at]);
                }

                sumXY += Kernel(kxy[at]);
            }
        }

        return (sumXX + sumYY) / (m * (m - 1.0)) - 2 * sumXY / ((double)m * m);
    }
}
