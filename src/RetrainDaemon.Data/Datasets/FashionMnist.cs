using System.Buffers.Binary;
using System.IO.Compression;

namespace RetrainDaemon.Data.Datasets;

/// <summary>One Fashion-MNIST image: 28×28 <c>u8</c> pixels, row-major, and its class.</summary>
public sealed record FashionMnistImage(int Index, byte[] Pixels, int Label)
{
    public string ClassName => FashionMnist.ClassNames[Label];
}

/// <summary>
/// Reads Debian's <c>dataset-fashion-mnist</c>: gzipped big-endian IDX files (magic 0x803 for
/// images with a 16-byte header, 0x801 for labels with an 8-byte header).
/// </summary>
public static class FashionMnist
{
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";
    public const int Side = 28;

    public static readonly IReadOnlyList<string> ClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>Images of <paramref name="subset"/> (<c>train</c> or <c>t10k</c>) from <paramref name="skip"/>, at most <paramref name="take"/>.</summary>
    public static IReadOnlyList<FashionMnistImage> Read(string subset, int skip = 0, int take = int.MaxValue, string directory = DefaultDirectory)
    {
        if (subset is not ("train" or "t10k"))
        {
            throw new ArgumentException($"subset must be train or t10k, not '{subset}'", nameof(subset));
        }

        var imagesPath = Path.Combine(directory, $"{subset}-images-idx3-ubyte.gz");
        var labelsPath = Path.Combine(directory, $"{subset}-labels-idx1-ubyte.gz");
        foreach (var file in new[] { imagesPath, labelsPath })
        {
            if (!File.Exists(file))
            {
                throw new FileNotFoundException($"Fashion-MNIST file '{file}' not found; install it with: apt-get install dataset-fashion-mnist", file);
            }
        }

        byte[] images = ReadGzip(imagesPath);
        byte[] labels = ReadGzip(labelsPath);
        int count = CheckHeader(images, 0x803, imagesPath, 16);
        if (BinaryPrimitives.ReadInt32BigEndian(images.AsSpan(8)) != Side || BinaryPrimitives.ReadInt32BigEndian(images.AsSpan(12)) != Side)
        {
            throw new InvalidDataException($"'{imagesPath}' does not hold 28x28 images");
        }

        int labelCount = CheckHeader(labels, 0x801, labelsPath, 8);
        if (labelCount != count || images.Length != 16 + count * Side * Side || labels.Length != 8 + count)
        {
            throw new InvalidDataException($"'{imagesPath}' and '{labelsPath}' disagree or are truncated ({count} images, {labelCount} labels)");
        }

        int end = (int)Math.Min(count, (long)skip + take);
        var result = new List<FashionMnistImage>(Math.Max(0, end - skip));
        for (int i = skip; i < end; i++)
        {
            int label = labels[8 + i];
            if (label > 9)
            {
                throw new InvalidDataException($"'{labelsPath}' has label {label} at index {i}");
            }

            result.Add(new FashionMnistImage(i, images.AsSpan(16 + i * Side * Side, Side * Side).ToArray(), label));
        }

        return result;
    }

    private static int CheckHeader(byte[] data, int magic, string path, int headerBytes)
    {
        if (data.Length < headerBytes || BinaryPrimitives.ReadInt32BigEndian(data) != magic)
        {
            throw new InvalidDataException($"'{path}' is not an IDX file with magic 0x{magic:x}");
        }

        return BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(4));
    }

    private static byte[] ReadGzip(string path)
    {
        using var file = File.OpenRead(path);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var memory = new MemoryStream();
        gzip.CopyTo(memory);
        return memory.ToArray();
    }
}
