using RetrainDaemon.Evaluation.Features;
using RetrainDaemon.Evaluation.LinearAlgebra;

namespace RetrainDaemon.Evaluation.Images;

/// <summary>
/// Per generated sample: the L2 distance to its nearest training sample (d1, 0-based index of the
/// first nearest on ties) and to the second nearest (d2).
/// </summary>
public sealed record NearestNeighbours(double[] Nearest, int[] NearestIndex, double[] SecondNearest)
{
    public double MeanNearest => Nearest.Average();

    public double MedianNearest
    {
        get
        {
            var sorted = Nearest.Order().ToArray();
            int n = sorted.Length;
            return n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
        }
    }

    /// <summary>
    /// The share of samples whose ratio d1/d2 is below <paramref name="ratio"/> (1/3: Yoon et al. 2023,
    /// Gu et al. 2023). An exact copy of a training sample has d1 = 0 and counts as memorized even when
    /// the training set holds duplicates (d2 = 0 too: 0/0 is defined as 0 here).
    /// </summary>
    public double MemorizedShare(double ratio = 1.0 / 3)
    {
        int memorized = 0;
        for (int i = 0; i < Nearest.Length; i++)
        {
            double r = SecondNearest[i] == 0 ? 0 : Nearest[i] / SecondNearest[i];
            if (r < ratio)
            {
                memorized++;
            }
        }

        return (double)memorized / Nearest.Length;
    }
}

/// <summary>
/// Novelty and memorization in feature space (docs/metrics.md §7): brute-force nearest neighbours
/// from generated to training samples in blocks through OpenBLAS, and the MiFID memorization term.
/// </summary>
public static class Novelty
{
    private const int QueryBlock = 256;
    private const int ReferenceBlock = 4096;

    // Candidates kept per query from the fast ‖q‖² + ‖t‖² − 2q·t distances; their exact distances are
    // then recomputed directly, so cancellation in the fast formula can neither make a copy's
    // distance non-zero nor reorder near ties.
    private const int Candidates = 4;

    /// <summary>d1, d2 and the argmin for every row of <paramref name="generated"/> against <paramref name="training"/> (at least 2 rows).</summary>
    public static unsafe NearestNeighbours Nearest(FeatureMatrix generated, FeatureMatrix training)
    {
        ArgumentNullException.ThrowIfNull(generated);
        ArgumentNullException.ThrowIfNull(training);
        FeatureMatrix.RequireSameDimensions(generated, training);
        if (training.Rows < 2)
        {
            throw new ArgumentException($"{training.Name}: nearest-neighbour ratios need at least 2 training samples, got {training.Rows}");
        }

        OpenBlas.EnsureAvailable();
        int d = generated.Dimensions;
        var trainNorms = SquaredNorms(training);
        var queryNorms = SquaredNorms(generated);
        var nearest = new double[generated.Rows];
        var nearestIndex = new int[generated.Rows];
        var second = new double[generated.Rows];
        var dots = new double[(long)QueryBlock * ReferenceBlock];
        var candidateDistance = new double[QueryBlock * Candidates];
        var candidateIndex = new int[QueryBlock * Candidates];
        var g = generated.RawValues;
        var t = training.RawValues;
        fixed (double* gp = g)
        fixed (double* tp = t)
        fixed (double* dp = dots)
        {
            for (int q0 = 0; q0 < generated.Rows; q0 += QueryBlock)
            {
                int queries = Math.Min(QueryBlock, generated.Rows - q0);
                candidateDistance.AsSpan().Fill(double.PositiveInfinity);
                candidateIndex.AsSpan().Fill(-1);
                for (int r0 = 0; r0 < training.Rows; r0 += ReferenceBlock)
                {
                    int references = Math.Min(ReferenceBlock, training.Rows - r0);
                    // dots (references × queries, column-major) = T_blockᵀ... as column-major: Tᵀ(d×refs)ᵀ · G(d×queries).
                    OpenBlas.Dgemm(OpenBlas.ColMajor, OpenBlas.Trans, OpenBlas.NoTrans, references, queries, d, 1.0,
                        tp + (long)r0 * d, d, gp + (long)q0 * d, d, 0.0, dp, references);
                    for (int q = 0; q < queries; q++)
                    {
                        var bestDistance = candidateDistance.AsSpan(q * Candidates, Candidates);
                        var bestIndex = candidateIndex.AsSpan(q * Candidates, Candidates);
                        double qn = queryNorms[q0 + q];
                        for (int r = 0; r < references; r++)
                        {
                            double distance = qn + trainNorms[r0 + r] - 2 * dots[(long)q * references + r];
                            if (distance < bestDistance[Candidates - 1])
                            {
                                Insert(bestDistance, bestIndex, distance, r0 + r);
                            }
                        }
                    }
                }

                for (int q = 0; q < queries; q++)
                {
                    var query = generated.Row(q0 + q);
                    double best = double.PositiveInfinity, next = double.PositiveInfinity;
                    int bestAt = -1;
                    var indices = candidateIndex.AsSpan(q * Candidates, Candidates).ToArray();
                    Array.Sort(indices); // ascending index, so an exact tie keeps the first index
                    foreach (int index in indices)
                    {
                        if (index < 0)
                        {
                            continue;
                        }

                        double exact = Distance(query, training.Row(index));
                        if (exact < best)
                        {
                            next = best;
                            best = exact;
                            bestAt = index;
                        }
                        else if (exact < next)
                        {
                            next = exact;
                        }
                    }

                    nearest[q0 + q] = best;
                    nearestIndex[q0 + q] = bestAt;
                    second[q0 + q] = next;
                }
            }
        }

        return new NearestNeighbours(nearest, nearestIndex, second);
    }

    /// <summary>
    /// The MiFID memorization distance (Bai et al. 2021; torchmetrics' <c>_compute_cosine_distance</c>):
    /// rows whose feature sum is 0 are dropped, rows are L2-normalized, d = 1 − |cos|, and the result
    /// is the mean over the rows of <paramref name="rowsOf"/> of the minimum over the rows of
    /// <paramref name="minimumOver"/>. torchmetrics passes (real, generated): per training row, the
    /// closest generated row. The thresholded value is that mean if it is below <paramref name="epsilon"/>, else 1.
    /// </summary>
    public static unsafe (double MeanMinimum, double Thresholded) MemorizationDistance(FeatureMatrix rowsOf, FeatureMatrix minimumOver, double epsilon = 0.1)
    {
        ArgumentNullException.ThrowIfNull(rowsOf);
        ArgumentNullException.ThrowIfNull(minimumOver);
        FeatureMatrix.RequireSameDimensions(rowsOf, minimumOver);
        OpenBlas.EnsureAvailable();
        var (a, na) = NormalizedNonZeroRows(rowsOf);
        var (b, nb) = NormalizedNonZeroRows(minimumOver);
        int d = rowsOf.Dimensions;
        var minimum = new double[na];
        minimum.AsSpan().Fill(double.PositiveInfinity);
        var dots = new double[(long)QueryBlock * ReferenceBlock];
        fixed (double* ap = a)
        fixed (double* bp = b)
        fixed (double* dp = dots)
        {
            // Cosines of unit rows through dgemm, a block of rowsOf against a block of minimumOver at a time.
            for (int q0 = 0; q0 < na; q0 += QueryBlock)
            {
                int queries = Math.Min(QueryBlock, na - q0);
                for (int r0 = 0; r0 < nb; r0 += ReferenceBlock)
                {
                    int references = Math.Min(ReferenceBlock, nb - r0);
                    OpenBlas.Dgemm(OpenBlas.ColMajor, OpenBlas.Trans, OpenBlas.NoTrans, references, queries, d, 1.0,
                        bp + (long)r0 * d, d, ap + (long)q0 * d, d, 0.0, dp, references);
                    for (int q = 0; q < queries; q++)
                    {
                        double min = minimum[q0 + q];
                        for (int r = 0; r < references; r++)
                        {
                            min = Math.Min(min, 1 - Math.Abs(dots[(long)q * references + r]));
                        }

                        minimum[q0 + q] = min;
                    }
                }
            }
        }

        double mean = minimum.Average();
        return (mean, mean < epsilon ? mean : 1.0);
    }

    /// <summary>MiFID = FID / (thresholded memorization distance + 1e-14), or 0 when FID ≤ 1e-8 (torchmetrics' rule).</summary>
    public static double MiFid(double fid, double thresholdedDistance) => fid > 1e-8 ? fid / (thresholdedDistance + 1e-14) : 0;

    private static (double[] Rows, int Count) NormalizedNonZeroRows(FeatureMatrix m)
    {
        int d = m.Dimensions;
        var rows = new double[(long)m.Rows * d];
        int count = 0;
        for (int i = 0; i < m.Rows; i++)
        {
            var row = m.Row(i);
            double sum = 0, squares = 0;
            foreach (double v in row)
            {
                sum += v;
                squares += v * v;
            }

            if (sum == 0)
            {
                continue;
            }

            double norm = Math.Sqrt(squares);
            for (int k = 0; k < d; k++)
            {
                rows[(long)count * d + k] = row[k] / norm;
            }

            count++;
        }

        if (count == 0)
        {
            throw new ArgumentException($"{m.Name}: every row sums to 0; the MiFID distance is undefined");
        }

        return (rows, count);
    }

    private static void Insert(Span<double> distances, Span<int> indices, double distance, int index)
    {
        int at = distances.Length - 1;
        while (at > 0 && distances[at - 1] > distance)
        {
            distances[at] = distances[at - 1];
            indices[at] = indices[at - 1];
            at--;
        }

        distances[at] = distance;
        indices[at] = index;
    }

    internal static double Distance(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        double sum = 0;
        for (int k = 0; k < a.Length; k++)
        {
            double diff = a[k] - b[k];
            sum += diff * diff;
        }

        return Math.Sqrt(sum);
    }

    private static double[] SquaredNorms(FeatureMatrix m)
    {
        var norms = new double[m.Rows];
        for (int i = 0; i < m.Rows; i++)
        {
            double sum = 0;
            foreach (double v in m.Row(i))
            {
                sum += v * v;
            }

            norms[i] = sum;
        }

        return norms;
    }
}
