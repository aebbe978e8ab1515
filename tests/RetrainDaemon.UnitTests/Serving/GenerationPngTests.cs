using System.Runtime.InteropServices;
using RetrainDaemon.Serving.Generation;
using SkiaSharp;

namespace RetrainDaemon.UnitTests.Serving;

/// <summary>The PNG writer, checked by an independent decoder (SkiaSharp / libpng-compatible Skia codec).</summary>
public sealed class GenerationPngTests
{
    private static byte[] Noise(int length, int seed)
    {
        var random = new Random(seed);
        var bytes = new byte[length];
        for (int i = 0; i < length; i++)
        {
            // Noise plus a gradient, so every filter type finds something to predict.
            bytes[i] = (byte)((i * 7 + random.Next(0, 24)) & 0xFF);
        }

        return bytes;
    }

    /// <summary>Decodes with Skia into channel-last bytes of <paramref name="channels"/> channels.</summary>
    private static byte[] Decode(byte[] png, int channels, out int width, out int height)
    {
        using var data = SKData.CreateCopy(png);
        using var codec = SKCodec.Create(data) ?? throw new InvalidOperationException("Skia does not recognise the PNG");
        Assert.Equal(SKEncodedImageFormat.Png, codec.EncodedFormat);
        width = codec.Info.Width;
        height = codec.Info.Height;
        bool gray = channels == 1;
        var info = new SKImageInfo(width, height, gray ? SKColorType.Gray8 : SKColorType.Rgba8888, gray || channels == 3 ? SKAlphaType.Opaque : SKAlphaType.Unpremul);
        var rgba = new byte[info.BytesSize];
        var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        try
        {
            Assert.Equal(SKCodecResult.Success, codec.GetPixels(info, handle.AddrOfPinnedObject()));
        }
        finally
        {
            handle.Free();
        }

        if (gray)
        {
            return rgba;
        }

        var pixels = new byte[width * height * channels];
        for (int p = 0; p < width * height; p++)
        {
            var (r, g, b, a) = (rgba[p * 4], rgba[p * 4 + 1], rgba[p * 4 + 2], rgba[p * 4 + 3]);
            switch (channels)
            {
                case 2:
                    Assert.True(r == g && g == b);
                    pixels[p * 2] = r;
                    pixels[p * 2 + 1] = a;
                    break;
                case 3:
                    Assert.Equal(255, a);
                    (pixels[p * 3], pixels[p * 3 + 1], pixels[p * 3 + 2]) = (r, g, b);
                    break;
                default:
                    (pixels[p * 4], pixels[p * 4 + 1], pixels[p * 4 + 2], pixels[p * 4 + 3]) = (r, g, b, a);
                    break;
            }
        }

        return pixels;
    }

    [Theory]
    [InlineData(28, 28, 1)]
    [InlineData(1, 1, 1)]
    [InlineData(33, 7, 1)]
    [InlineData(28, 28, 3)]
    [InlineData(5, 9, 3)]
    [InlineData(16, 16, 2)]
    [InlineData(17, 3, 4)]
    public void Skia_decodes_exactly_the_pixels_that_were_encoded(int width, int height, int channels)
    {
        var pixels = Noise(width * height * channels, width * 31 + channels);

        var png = PngEncoder.Encode(pixels, width, height, channels);
        var decoded = Decode(png, channels, out int w, out int h);

        Assert.Equal((width, height), (w, h));
        Assert.Equal(pixels, decoded);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Every_filter_type_round_trips(byte filter)
    {
        var pixels = Noise(19 * 11 * 3, filter);

        var png = PngEncoder.Encode(pixels, 19, 11, 3, filter);

        Assert.Equal(pixels, Decode(png, 3, out _, out _));
    }

    [Fact]
    public void The_file_has_the_signature_and_ends_with_the_well_known_IEND_chunk()
    {
        var png = PngEncoder.Encode(new byte[4], 2, 2, 1);

        Assert.Equal([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], png[..8]);
        // IEND has no data, so its CRC-32 is a constant every PNG ends with: AE 42 60 82.
        Assert.Equal([0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82], png[^12..]);
        // IHDR: 13 bytes, 2×2, depth 8, colour type 0 (gray).
        Assert.Equal([0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 2, 0, 0, 0, 2, 8, 0, 0, 0, 0], png[8..29]);
    }

    [Theory]
    [InlineData(0, 2, 1)]
    [InlineData(2, 0, 1)]
    [InlineData(2, 2, 5)]
    public void Impossible_images_are_refused(int width, int height, int channels)
    {
        Assert.Throws<ArgumentException>(() => PngEncoder.Encode(new byte[Math.Max(0, width * height * channels)], width, height, channels));
    }

    [Fact]
    public void A_buffer_of_the_wrong_length_is_refused()
    {
        Assert.Throws<ArgumentException>(() => PngEncoder.Encode(new byte[10], 3, 3, 1));
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(2, 2, 1)]
    [InlineData(4, 2, 2)]
    [InlineData(5, 3, 2)]
    [InlineData(10, 4, 3)]
    [InlineData(64, 8, 8)]
    public void The_grid_is_as_square_as_the_count_allows(int count, int columns, int rows)
    {
        Assert.Equal((columns, rows), ImageGrid.Layout(count));
    }

    [Fact]
    public void The_grid_places_tiles_in_row_major_order_with_a_black_border()
    {
        // Five 3×2 RGB tiles, tile t filled with value t+1: a 3×2 grid with one empty cell.
        var tiles = Enumerable.Range(0, 5).Select(t => Enumerable.Repeat((byte)(t + 1), 3 * 2 * 3).ToArray()).ToList();

        var (grid, width, height) = ImageGrid.Tile(tiles, 3, 2, 3);
        var decoded = Decode(PngEncoder.Encode(grid, width, height, 3), 3, out int w, out int h);

        int pad = ImageGrid.Padding;
        Assert.Equal((3 * (3 + pad) + pad, 2 * (2 + pad) + pad), (w, h));
        byte At(int x, int y) => decoded[(y * w + x) * 3];
        Assert.Equal(0, At(0, 0));
        Assert.Equal(1, At(pad, pad));
        Assert.Equal(2, At(pad + 3 + pad, pad));
        Assert.Equal(3, At(pad + 2 * (3 + pad), pad + 1));
        Assert.Equal(4, At(pad, pad + 2 + pad));
        Assert.Equal(5, At(pad + 3 + pad + 2, pad + 2 + pad + 1));
        Assert.Equal(0, At(pad + 2 * (3 + pad), pad + 2 + pad)); // the sixth cell stays empty
    }
}
