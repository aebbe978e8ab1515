using RetrainDaemon.Evaluation.Features;
using RetrainDaemon.Evaluation.LinearAlgebra;

namespace RetrainDaemon.Evaluation.Images;

/// <summary>How the trace term tr √(Σ₁Σ₂) was computed (reported for transparency).</summary>
public enum FidTraceMethod
{
    /// <summary>Σ₁ = LLᵀ (or Σ₂, whichever is positive definite); eigenvalues of the symmetric LᵀΣ₂L.</summary>
    Cholesky,

    /// <summary>Both covariances singular: eigenvalues of Σ₁^½ Σ₂ Σ₁^½ with Σ₁^½ from a symmetric eigendecomposition (docs/metrics.md §3.3).</summary>
    Eigen,
}

/// <summary>A Fréchet distance with its parts (all in double).</summary>
public sealed record FidResult(double Value, double MeanTerm, double TraceA, double TraceB, double TraceSqrtProduct, FidTraceMethod Method);

/// <summary>
/// Fréchet distance between two Gaussians fitted to feature sets, as pytorch-fid defines it
/// (docs/metrics.md §3): ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂), in float64 with ddof = 1.
/// <para>
/// The trace of the matrix square root is the sum of the square roots of the eigenvalues of Σ₁Σ₂,
/// which is similar to the symmetric PSD matrix LᵀΣ₂L when Σ₁ = LLᵀ; a Cholesky factor plus a
/// symmetric eigenvalue solve (no vectors) is about 3× cheaper than scipy's Schur-based sqrtm and
/// needs no complex arithmetic. When neither covariance is positive definite (N ≤ D, collinear
/// features), the symmetric formulation Σ₁^½Σ₂Σ₁^½ of §3.3 is used. Negative round-off eigenvalues
/// are clipped at 0. Unlike pytorch-fid, singular inputs get the exact value rather than the value
/// for Σ + 1e-6·I (its fallback; §3.4): e.g. 10 where pytorch-fid prints 9.99998899….
/// The result is not clamped: identical inputs give 0 up to round-off of either sign.
/// </para>
/// </summary>
public static class Fid
{
    public static FidResult FromFeatures(FeatureMatrix a, FeatureMatrix b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        FeatureMatrix.RequireSameDimensions(a, b);
        return FromStatistics(FeatureStatistics.Compute(a), FeatureStatistics.Compute(b));
    }

    public static unsafe FidResult FromStatistics(FeatureStatistics a, FeatureStatistics b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Dimensions != b.Dimensions)
        {
            throw new ArgumentException($"statistics dimensions differ: {a.Dimensions} and {b.Dimensions}");
        }

        OpenBlas.EnsureAvailable();
        int d = a.Dimensions;
        double meanTerm = 0;
        for (int i = 0; i < d; i++)
        {
            double diff = a.Mean[i] - b.Mean[i];
            meanTerm += diff * diff;
        }

        double traceA = Trace(a.Covariance, d);
        double traceB = Trace(b.Covariance, d);
        var (traceSqrt, method) = TraceSqrtProduct(a.Covariance, b.Covariance, d);
        double value = meanTerm + traceA + traceB - 2 * traceSqrt;
        return new FidResult(value, meanTerm, traceA, traceB, traceSqrt, method);
    }

    /// <summary>tr √(AB) for symmetric PSD A, B (D × D).</summary>
    internal static unsafe (double Value, FidTraceMethod Method) TraceSqrtProduct(double[] a, double[] b, int d)
    {
        var factor = (double[])a.Clone();
        var other = b;
        bool positiveDefinite;
        fixed (double* f = factor)
        {
            positiveDefinite = OpenBlas.Dpotrf(f, d) == 0;
        }

        if (!positiveDefinite)
        {
            // tr √(AB) = tr √(BA): try factoring the other one.
            factor = (double[])b.Clone();
            other = a;
            fixed (double* f = factor)
            {
                positiveDefinite = OpenBlas.Dpotrf(f, d) == 0;
            }
        }

        var eigenvalues = new double[d];
        if (positiveDefinite)
        {
            var m = (double[])other.Clone();
            fixed (double* l = factor)
            fixed (double* mp = m)
            fixed (double* w = eigenvalues)
            {
                // M = Lᵀ · other · L, similar to A·B (L⁻¹(LLᵀ·other)L), symmetric PSD.
                OpenBlas.Dtrmm(OpenBlas.ColMajor, OpenBlas.Right, OpenBlas.Lower, OpenBlas.NoTrans, OpenBlas.NonUnit, d, d, 1.0, l, d, mp, d);
                OpenBlas.Dtrmm(OpenBlas.ColMajor, OpenBlas.Left, OpenBlas.Lower, OpenBlas.Trans, OpenBlas.NonUnit, d, d, 1.0, l, d, mp, d);
                Symmetrize(m, d);
                OpenBlas.Dsyevd(mp, d, w, vectors: false);
            }

            return (SumSqrt(eigenvalues), FidTraceMethod.Cholesky);
        }

        // Both singular: Σ₁^½ = V diag(√max(w, 0)) Vᵀ, then the eigenvalues of Σ₁^½ Σ₂ Σ₁^½.
        var vectors = (double[])a.Clone();
        var scaled = new double[(long)d * d];
        var root = new double[(long)d * d];
        var product = new double[(long)d * d];
        fixed (double* v = vectors)
        fixed (double* w = eigenvalues)
        fixed (double* s = scaled)
        fixed (double* r = root)
        fixed (double* bp = b)
        fixed (double* p = product)
        {
            OpenBlas.Dsyevd(v, d, w, vectors: true);
            for (int j = 0; j < d; j++)
            {
                double sqrt = Math.Sqrt(Math.Max(w[j], 0));
                for (int i = 0; i < d; i++)
                {
                    s[(long)j * d + i] = v[(long)j * d + i] * sqrt;
                }
            }

            OpenBlas.Dgemm(OpenBlas.ColMajor, OpenBlas.NoTrans, OpenBlas.Trans, d, d, d, 1.0, s, d, v, d, 0.0, r, d);   // Σ₁^½
            OpenBlas.Dgemm(OpenBlas.ColMajor, OpenBlas.NoTrans, OpenBlas.NoTrans, d, d, d, 1.0, r, d, bp, d, 0.0, p, d); // Σ₁^½ Σ₂
            OpenBlas.Dgemm(OpenBlas.ColMajor, OpenBlas.NoTrans, OpenBlas.NoTrans, d, d, d, 1.0, p, d, r, d, 0.0, s, d); // · Σ₁^½
            Symmetrize(scaled, d);
            OpenBlas.Dsyevd(s, d, w, vectors: false);
        }

        return (SumSqrt(eigenvalues), FidTraceMethod.Eigen);
    }

    private static double SumSqrt(double[] eigenvalues)
    {
        double sum = 0;
        foreach (double lambda in eigenvalues)
        {
            sum += Math.Sqrt(Math.Max(lambda, 0));
        }

        return sum;
    }

    private static double Trace(double[] matrix, int d)
    {
        double trace = 0;
        for (int i = 0; i < d; i++)
        {
            trace += matrix[(long)i * d + i];
        }

        return trace;
    }

    private static void Symmetrize(double[] matrix, int d)
    {
        for (int j = 0; j < d; j++)
        {
            for (int i = j + 1; i < d; i++)
            {
                double mean = 0.5 * (matrix[(long)j * d + i] + matrix[(long)i * d + j]);
                matrix[(long)j * d + i] = mean;
                matrix[(long)i * d + j] = mean;
            }
        }
    }
}
