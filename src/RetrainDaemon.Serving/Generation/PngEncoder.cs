using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;

namespace RetrainDaemon.Serving.Generation;

/// <summary>
/// A minimal PNG writer for generated images: 8 bits per channel, gray (1 channel), gray + alpha
/// (2), RGB (3) or RGBA (4), not interlaced, one IDAT chunk. Rows are filtered with the
/// minimum-sum-of-absolute-differences heuristic PNG's own specification recommends, the image data is
/// compressed with zlib (<see cref="ZLibStream"/>) and every chunk carries its CRC-32.
/// Pure and thread-safe.
/// </summary>
internal static class PngEncoder
{
    private static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Encodes channel-last 8-bit pixels (row-major, <c>height × width × channels</c>).</summary>
    /// <exception cref="ArgumentException">Unsupported channel count, empty size, or a pixel buffer of the wrong length.</exception>
    public static byte[] Encode(ReadOnlySpan<byte> pixels, int width, int height, int channels) => Encode(pixels, width, height, channels, null);

    /// <summary>As <see cref="Encode(ReadOnlySpan{byte}, int, int, int)"/>, with every row filtered by <paramref name="filter"/> (0-4) when given (tests).</summary>
    internal static byte[] Encode(ReadOnlySpan<byte> pixels, int width, int height, int channels, byte? filter)
    {
        byte colorType = channels switch
        {
            1 => 0, // grayscale
            2 => 4, // grayscale + alpha
            3 => 2, // truecolour
            4 => 6, // truecolour + alpha
            _ => throw new ArgumentException($"PNG images here have 1 to 4 channels, not {channels}", nameof(channels)),
        };
        if (width <= 0 || height <= 0)
        {
            throw new ArgumentException($"a PNG needs a positive size, not {width}x{height}");
        }

        int stride = checked(width * channels);
        if (pixels.Length != checked(stride * height))
        {
            throw new ArgumentException($"{width}x{height}x{channels} pixels need {stride * height} bytes, got {pixels.Length}", nameof(pixels));
        }

        using var output = new MemoryStream(64 + (stride + 1) * height / 2);
        output.Write(Signature);

        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], height);
        header[8] = 8;          // bit depth
        header[9] = colorType;
        header[10] = 0;         // compression: deflate
        header[11] = 0;         // filter method 0 (the five adaptive filters)
        header[12] = 0;         // no interlace
        WriteChunk(output, "IHDR"u8, header);
        WriteChunk(output, "IDAT"u8, Compress(pixels, stride, height, channels, filter));
        WriteChunk(output, "IEND"u8, []);
        return output.ToArray();
    }

    private static byte[] Compress(ReadOnlySpan<byte> pixels, int stride, int height, int bytesPerPixel, byte? forced)
    {
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
        {
            var candidates = new byte[5][];
            for (int f = 0; f < candidates.Length; f++)
            {
                candidates[f] = new byte[stride + 1];
                candidates[f][0] = (byte)f;
            }

            ReadOnlySpan<byte> previous = default;
            for (int y = 0; y < height; y++)
            {
                var row = pixels.Slice(y * stride, stride);
                byte[] best = candidates[0];
                long bestScore = long.MaxValue;
                for (int f = forced ?? 0; f <= (forced ?? candidates.Length - 1); f++)
                {
                    long score = Filter((byte)f, row, previous, bytesPerPixel, candidates[f].AsSpan(1));
                    if (score < bestScore)
                    {
                        bestScore = score;
                        best = candidates[f];
                    }
                }

                zlib.Write(best);
                previous = row;
            }
        }

        return compressed.ToArray();
    }

    /// <summary>Applies one filter type to a row; returns the sum of the filtered bytes read as signed values (the selection heuristic).</summary>
    internal static long Filter(byte type, ReadOnlySpan<byte> row, ReadOnlySpan<byte> previous, int bpp, Span<byte> output)
    {
        long score = 0;
        for (int i = 0; i < row.Length; i++)
        {
            int left = i >= bpp ? row[i - bpp] : 0;
            int up = previous.IsEmpty ? 0 : previous[i];
            int upLeft = i >= bpp && !previous.IsEmpty ? previous[i - bpp] : 0;
            int predictor = type switch
            {
                0 => 0,
                1 => left,
                2 => up,
                3 => (left + up) >> 1,
                _ => Paeth(left, up, upLeft),
            };
            byte value = unchecked((byte)(row[i] - predictor));
            output[i] = value;
            score += Math.Abs((int)(sbyte)value);
        }

        return score;
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a);
        int pb = Math.Abs(p - b);
        int pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static void WriteChunk(Stream output, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        output.Write(word);
        output.Write(type);
        output.Write(data);
        // The CRC covers the chunk type and data, not the length.
        var crc = new Crc32();
        crc.Append(type);
        crc.Append(data);
        BinaryPrimitives.WriteUInt32BigEndian(word, crc.GetCurrentHashAsUInt32());
        output.Write(word);
    }
}
