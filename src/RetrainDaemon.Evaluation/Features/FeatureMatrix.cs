namespace RetrainDaemon.Evaluation.Features;

/// <summary>
/// N feature vectors of dimension D, row-major doubles (one row per sample). Construction rejects
/// NaN/Inf and empty shapes with an error naming the first bad element, so no metric can silently
/// return NaN because of its input.
/// </summary>
public sealed class FeatureMatrix
{
    private readonly double[] values;

    public FeatureMatrix(int rows, int dimensions, double[] values, string name = "features")
    {
        ArgumentNullException.ThrowIfNull(values);
        if (rows < 1 || dimensions < 1)
        {
            throw new ArgumentException($"{name}: a feature matrix needs at least one row and one dimension (got {rows} x {dimensions})");
        }

        if ((long)rows * dimensions != values.LongLength)
        {
            throw new ArgumentException($"{name}: {rows} x {dimensions} features need {(long)rows * dimensions} values, got {values.LongLength}");
        }

        for (long i = 0; i < values.LongLength; i++)
        {
            if (!double.IsFinite(values[i]))
            {
                throw new ArgumentException($"{name}: value {values[i]} at row {i / dimensions}, dimension {i % dimensions} is not finite");
            }
        }

        Rows = rows;
        Dimensions = dimensions;
        Name = name;
        this.values = values;
    }

    public int Rows { get; }

    public int Dimensions { get; }

    /// <summary>What the matrix holds, used in error messages ("generated", "reference", ...).</summary>
    public string Name { get; }

    /// <summary>The row-major values (not copied: do not mutate).</summary>
    public ReadOnlySpan<double> Values => values;

    internal double[] RawValues => values;

    public ReadOnlySpan<double> Row(int row) => values.AsSpan(row * Dimensions, Dimensions);

    /// <summary>Widens float features (what ONNX Runtime returns) to doubles; every metric then computes in double.</summary>
    public static FeatureMatrix FromFloats(int rows, int dimensions, ReadOnlySpan<float> values, string name = "features")
    {
        var wide = new double[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            wide[i] = values[i];
        }

        return new FeatureMatrix(rows, dimensions, wide, name);
    }

    public static FeatureMatrix FromRows(IReadOnlyList<double[]> rows, string name = "features")
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0)
        {
            throw new ArgumentException($"{name}: no feature rows");
        }

        int d = rows[0].Length;
        var flat = new double[(long)rows.Count * d];
        for (int i = 0; i < rows.Count; i++)
        {
            if (rows[i].Length != d)
            {
                throw new ArgumentException($"{name}: row {i} has {rows[i].Length} dimensions, row 0 has {d}");
            }

            rows[i].CopyTo(flat, (long)i * d);
        }

        return new FeatureMatrix(rows.Count, d, flat, name);
    }

    /// <summary>The rows <paramref name="start"/> .. <paramref name="start"/> + <paramref name="count"/> as a new matrix.</summary>
    public FeatureMatrix Slice(int start, int count, string? name = null)
    {
        if (start < 0 || count < 1 || start + count > Rows)
        {
            throw new ArgumentOutOfRangeException(nameof(count), $"{Name}: rows {start}..{start + count} are outside 0..{Rows}");
        }

        return new FeatureMatrix(count, Dimensions, values.AsSpan(start * Dimensions, count * Dimensions).ToArray(), name ?? Name);
    }

    internal static void RequireSameDimensions(FeatureMatrix a, FeatureMatrix b)
    {
        if (a.Dimensions != b.Dimensions)
        {
            throw new ArgumentException($"feature dimensions differ: {a.Name} has {a.Dimensions}, {b.Name} has {b.Dimensions}");
        }
    }
}
