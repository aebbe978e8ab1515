using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using RetrainDaemon.Core.IO;
using RetrainDaemon.Evaluation.LinearAlgebra;

namespace RetrainDaemon.Evaluation.Features;

/// <summary>
/// The Gaussian statistics FID compares: the mean μ and the unbiased covariance Σ (ddof = 1, as
/// <c>np.cov(X, rowvar=False)</c>) of N feature rows, with the signature of the protocol that
/// produced them. Reference statistics are computed once per reference set and saved as a
/// pytorch-fid compatible <c>.npz</c> (<c>mu</c>, <c>sigma</c> as float64), plus <c>meta.json</c>
/// with N and the signature, which numpy ignores.
/// </summary>
public sealed class FeatureStatistics
{
    // Rows per dsyrk call: the centered copy stays ~16 MB at 2,048 dims however many rows there are.
    private const int BlockRows = 1024;

    public FeatureStatistics(double[] mean, double[] covariance, long count, string signature = "")
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(covariance);
        if (mean.Length == 0 || (long)mean.Length * mean.Length != covariance.LongLength)
        {
            throw new ArgumentException($"statistics: a mean of {mean.Length} dimensions needs a {mean.Length} x {mean.Length} covariance, got {covariance.LongLength} values");
        }

        for (int i = 0; i < mean.Length; i++)
        {
            if (!double.IsFinite(mean[i]))
            {
                throw new ArgumentException($"statistics: mean[{i}] = {mean[i]} is not finite");
            }
        }

        for (long i = 0; i < covariance.LongLength; i++)
        {
            if (!double.IsFinite(covariance[i]))
            {
                throw new ArgumentException($"statistics: sigma[{i / mean.Length}, {i % mean.Length}] = {covariance[i]} is not finite");
            }
        }

        Mean = mean;
        Covariance = covariance;
        Count = count;
        Signature = signature;
    }

    public int Dimensions => Mean.Length;

    /// <summary>μ, length D.</summary>
    public double[] Mean { get; }

    /// <summary>Σ, D × D (symmetric, so row- and column-major are the same array).</summary>
    public double[] Covariance { get; }

    /// <summary>N, the number of rows the statistics were computed from (FID is biased in N: always report it).</summary>
    public long Count { get; }

    public string Signature { get; }

    /// <summary>μ and the ddof = 1 covariance of the rows, in double, through OpenBLAS dsyrk.</summary>
    public static unsafe FeatureStatistics Compute(FeatureMatrix features, string signature = "")
    {
        ArgumentNullException.ThrowIfNull(features);
        if (features.Rows < 2)
        {
            throw new ArgumentException($"{features.Name}: a covariance needs at least 2 samples, got {features.Rows}");
        }

        OpenBlas.EnsureAvailable();
        int n = features.Rows;
        int d = features.Dimensions;
        var x = features.RawValues;
        var mean = new double[d];
        for (int i = 0; i < n; i++)
        {
            int offset = i * d;
            for (int j = 0; j < d; j++)
            {
                mean[j] += x[offset + j];
            }
        }

        for (int j = 0; j < d; j++)
        {
            mean[j] /= n;
        }

        var covariance = new double[(long)d * d];
        var centered = new double[(long)Math.Min(BlockRows, n) * d];
        double alpha = 1.0 / (n - 1);
        fixed (double* c = covariance)
        fixed (double* block = centered)
        {
            for (int start = 0; start < n; start += BlockRows)
            {
                int rows = Math.Min(BlockRows, n - start);
                for (int i = 0; i < rows; i++)
                {
                    int source = (start + i) * d;
                    int target = i * d;
                    for (int j = 0; j < d; j++)
                    {
                        block[target + j] = x[source + j] - mean[j];
                    }
                }

                // Row-major (rows × d) is column-major (d × rows): Σ += A Aᵀ / (n − 1), lower triangle.
                OpenBlas.Dsyrk(OpenBlas.ColMajor, OpenBlas.Lower, OpenBlas.NoTrans, d, rows, alpha, block, d, start == 0 ? 0.0 : 1.0, c, d);
            }
        }

        SymmetricFromLower(covariance, d);
        return new FeatureStatistics(mean, covariance, n, signature);
    }

    /// <summary>Writes <c>mu</c>, <c>sigma</c> (float64 .npy, loadable by numpy and pytorch-fid) and <c>meta.json</c>; atomically (temp + fsync + rename).</summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        DurableFiles.ReplaceFile(path, file =>
        {
            using var zip = new ZipArchive(file, ZipArchiveMode.Create, leaveOpen: true);
            WriteNpy(zip, "mu.npy", Mean, [Dimensions]);
            WriteNpy(zip, "sigma.npy", Covariance, [Dimensions, Dimensions]);
            var meta = zip.CreateEntry("meta.json", CompressionLevel.Fastest);
            using var metaStream = meta.Open();
            JsonSerializer.Serialize(metaStream, new StatisticsMeta(Count, Dimensions, Signature));
        });
    }

    /// <summary>Reads statistics written by <see cref="Save"/> or by pytorch-fid's <c>--save-stats</c> (N and signature are then unknown: 0 and "").</summary>
    public static FeatureStatistics Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"statistics file '{path}' does not exist", path);
        }

        ZipArchive zip;
        try
        {
            zip = ZipFile.OpenRead(path);
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"'{path}' is not a statistics .npz file: {ex.Message}", ex);
        }

        using (zip)
        {
            try
            {
                return Read(zip, path);
            }
            catch (Exception ex) when (ex is EndOfStreamException or FormatException or OverflowException or JsonException or ArgumentException or IndexOutOfRangeException)
            {
                // Every way a damaged file can fail is reported as one exception type, naming the file.
                throw new InvalidDataException($"'{path}' is not a valid statistics file: {ex.Message}", ex);
            }
        }
    }

    private static FeatureStatistics Read(ZipArchive zip, string path)
    {
        {
            var (mu, muShape) = ReadNpy(zip, "mu.npy", path);
            var (sigma, sigmaShape) = ReadNpy(zip, "sigma.npy", path);
            if (muShape.Length != 1 || sigmaShape.Length != 2 || sigmaShape[0] != muShape[0] || sigmaShape[1] != muShape[0])
            {
                throw new InvalidDataException($"'{path}': mu has shape ({string.Join(", ", muShape)}) and sigma ({string.Join(", ", sigmaShape)}); expected (d) and (d, d)");
            }

            StatisticsMeta? meta = null;
            if (zip.GetEntry("meta.json") is { } entry)
            {
                using var metaStream = entry.Open();
                meta = JsonSerializer.Deserialize<StatisticsMeta>(metaStream);
            }

            return new FeatureStatistics(mu, sigma, meta?.Count ?? 0, meta?.Signature ?? "");
        }
    }

    internal static void SymmetricFromLower(double[] matrix, int d)
    {
        // Column-major lower triangle: element (row i, column j), i ≥ j, is at j·d + i.
        for (int j = 0; j < d; j++)
        {
            for (int i = j + 1; i < d; i++)
            {
                matrix[(long)i * d + j] = matrix[(long)j * d + i];
            }
        }
    }

    private static void WriteNpy(ZipArchive zip, string name, double[] values, int[] shape)
    {
        var entry = zip.CreateEntry(name, CompressionLevel.NoCompression);
        using var stream = entry.Open();
        string shapeText = shape.Length == 1
            ? $"({shape[0]},)"
            : "(" + string.Join(", ", shape.Select(s => s.ToString(CultureInfo.InvariantCulture))) + ")";
        string header = $"{{'descr': '<f8', 'fortran_order': False, 'shape': {shapeText}, }}";
        // Format 1.0: magic, version, uint16 header length; the header is space-padded and ends in
        // '\n' so that the data starts on a 64-byte boundary (what numpy writes).
        int total = 10 + header.Length + 1;
        int padded = (total + 63) / 64 * 64;
        header = header.PadRight(header.Length + padded - total) + "\n";
        using var writer = new BinaryWriter(stream, Encoding.ASCII, leaveOpen: true);
        writer.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        writer.Write((ushort)header.Length);
        writer.Write(Encoding.ASCII.GetBytes(header));
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan());
        writer.Write(bytes);
    }

    private static (double[] Values, int[] Shape) ReadNpy(ZipArchive zip, string name, string path)
    {
        var entry = zip.GetEntry(name) ?? throw new InvalidDataException($"'{path}' has no '{name}' array");
        using var stream = entry.Open();
        using var reader = new BinaryReader(stream, Encoding.ASCII);
        var magic = reader.ReadBytes(8);
        if (magic.Length < 8 || magic[0] != 0x93 || Encoding.ASCII.GetString(magic, 1, 5) != "NUMPY")
        {
            throw new InvalidDataException($"'{path}': '{name}' is not a .npy array");
        }

        int headerLength = magic[6] == 1 ? reader.ReadUInt16() : (int)reader.ReadUInt32();
        string header = Encoding.ASCII.GetString(reader.ReadBytes(headerLength));
        string descr = HeaderValue(header, "descr").Trim('\'', '"');
        bool fortran = HeaderValue(header, "fortran_order").StartsWith("True", StringComparison.Ordinal);
        int[] shape = HeaderValue(header, "shape").Trim('(', ')').Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        long count = shape.Aggregate(1L, (a, b) => a * b);
        var values = new double[count];
        for (long i = 0; i < count; i++)
        {
            values[i] = descr switch
            {
                "<f8" => reader.ReadDouble(),
                "<f4" => reader.ReadSingle(),
                _ => throw new InvalidDataException($"'{path}': '{name}' has dtype {descr}; expected <f8 or <f4"),
            };
        }

        if (fortran && shape.Length == 2)
        {
            var transposed = new double[count];
            for (int i = 0; i < shape[0]; i++)
            {
                for (int j = 0; j < shape[1]; j++)
                {
                    transposed[(long)i * shape[1] + j] = values[(long)j * shape[0] + i];
                }
            }

            values = transposed;
        }

        return (values, shape);
    }

    private static string HeaderValue(string header, string key)
    {
        int at = header.IndexOf($"'{key}':", StringComparison.Ordinal);
        if (at < 0)
        {
            throw new InvalidDataException($"npy header has no '{key}': {header}");
        }

        int start = at + key.Length + 3;
        int end = key == "shape" ? header.IndexOf(')', start) + 1 : header.IndexOf(',', start);
        return header[start..end].Trim();
    }

    private sealed record StatisticsMeta(long Count, int Dimensions, string Signature);
}
