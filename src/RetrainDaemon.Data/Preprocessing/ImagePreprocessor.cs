using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using SkiaSharp;

namespace RetrainDaemon.Data.Preprocessing;

/// <summary>
/// Turns an image from a message (PNG or raw <c>u8</c>) into the model's canonical form: row-major
/// <c>u8</c>, exactly the configured width × height × channels. A mismatch is rejected unless the
/// model allows resizing. Throws <see cref="IngestRejection"/> with a reason an operator can read.
/// </summary>
public static class ImagePreprocessor
{
    public static byte[] ToCanonical(string encoding, ReadOnlySpan<byte> data, int declaredWidth, int declaredHeight, int declaredChannels, ImageShapeOptions shape)
    {
        return encoding switch
        {
            "raw-u8" => FromRaw(data, declaredWidth, declaredHeight, declaredChannels, shape),
            "png" => FromPng(data, declaredWidth, declaredHeight, declaredChannels, shape),
            _ => throw new IngestRejection(RejectReasons.SchemaViolation, $"unknown image encoding '{encoding}'"),
        };
    }

    private static byte[] FromRaw(ReadOnlySpan<byte> data, int width, int height, int channels, ImageShapeOptions shape)
    {
        long expected = (long)width * height * channels;
        if (data.Length != expected)
        {
            throw new IngestRejection(RejectReasons.ImageShape, $"raw-u8 image has {data.Length} bytes, but {width}x{height}x{channels} needs {expected}");
        }

        if (width == shape.Width && height == shape.Height && channels == shape.Channels)
        {
            return data.ToArray();
        }

        RejectUnlessResizeAllowed(width, height, channels, shape);
        var info = new SKImageInfo(width, height, channels == 1 ? SKColorType.Gray8 : SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        var pixels = bitmap.GetPixelSpan();
        if (channels == 1)
        {
            data.CopyTo(pixels);
        }
        else if (channels == 3)
        {
            for (int i = 0, j = 0; i < data.Length; i += 3, j += 4)
            {
                pixels[j] = data[i];
                pixels[j + 1] = data[i + 1];
                pixels[j + 2] = data[i + 2];
                pixels[j + 3] = 255;
            }
        }
        else
        {
            throw new IngestRejection(RejectReasons.ImageShape, $"raw-u8 images must have 1 or 3 channels, not {channels}");
        }

        return Convert(bitmap, shape);
    }

    private static byte[] FromPng(ReadOnlySpan<byte> data, int width, int height, int channels, ImageShapeOptions shape)
    {
        using var encoded = SKData.CreateCopy(data);
        using var codec = SKCodec.Create(encoded);
        if (codec is null || codec.EncodedFormat != SKEncodedImageFormat.Png)
        {
            throw new IngestRejection(RejectReasons.UndecodableImage, $"the {data.Length}-byte payload is not a PNG");
        }

        var source = codec.Info;
        if (source.Width != width || source.Height != height)
        {
            throw new IngestRejection(RejectReasons.ImageShape, $"the PNG is {source.Width}x{source.Height} but the message declares {width}x{height}");
        }

        int actualChannels = source.ColorType is SKColorType.Gray8 or SKColorType.Alpha8 ? 1 : 3;
        if (actualChannels != channels)
        {
            throw new IngestRejection(RejectReasons.ImageShape, $"the PNG has {actualChannels} channel(s) but the message declares {channels}");
        }

        // Decode through the codec so a truncated or corrupt PNG is an error, not a half-grey image.
        if (source.ColorType == SKColorType.Gray8 && shape.Channels == 1 && width == shape.Width && height == shape.Height)
        {
            // The common case (Fashion-MNIST): decode straight into the canonical array.
            var gray = new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque);
            var pixels = new byte[width * height];
            var handle = System.Runtime.InteropServices.GCHandle.Alloc(pixels, System.Runtime.InteropServices.GCHandleType.Pinned);
            try
            {
                var decodedGray = codec.GetPixels(gray, handle.AddrOfPinnedObject());
                if (decodedGray != SKCodecResult.Success)
                {
                    throw new IngestRejection(RejectReasons.UndecodableImage, $"the {data.Length}-byte PNG could not be decoded: {decodedGray}");
                }
            }
            finally
            {
                handle.Free();
            }

            return pixels;
        }

        var info = new SKImageInfo(source.Width, source.Height,
            source.ColorType == SKColorType.Gray8 ? SKColorType.Gray8 : SKColorType.Rgba8888,
            source.AlphaType == SKAlphaType.Opaque ? SKAlphaType.Opaque : SKAlphaType.Unpremul);
        using var decoded = new SKBitmap(info);
        var result = codec.GetPixels(info, decoded.GetPixels());
        if (result != SKCodecResult.Success)
        {
            throw new IngestRejection(RejectReasons.UndecodableImage, $"the {data.Length}-byte PNG could not be decoded: {result}");
        }

        if (width == shape.Width && height == shape.Height && channels == shape.Channels)
        {
            if (channels == 1 && decoded.ColorType == SKColorType.Gray8)
            {
                return decoded.GetPixelSpan().ToArray();
            }

            return Convert(decoded, shape);
        }

        RejectUnlessResizeAllowed(width, height, channels, shape);
        return Convert(decoded, shape);
    }

    private static void RejectUnlessResizeAllowed(int width, int height, int channels, ImageShapeOptions shape)
    {
        if (!shape.ResizeAllowed)
        {
            throw new IngestRejection(
                RejectReasons.ImageShape,
                $"image is {width}x{height}x{channels}, the model takes {shape.Width}x{shape.Height}x{shape.Channels} and its policy is reject");
        }
    }

    /// <summary>Resamples and converts color with Skia, then packs the pixels without padding or alpha.</summary>
    private static byte[] Convert(SKBitmap source, ImageShapeOptions shape)
    {
        var targetType = shape.Channels == 1 ? SKColorType.Gray8 : SKColorType.Rgba8888;
        using var target = new SKBitmap(new SKImageInfo(shape.Width, shape.Height, targetType, SKAlphaType.Opaque));
        using (var canvas = new SKCanvas(target))
        {
            canvas.Clear(SKColors.Black);
            using var image = SKImage.FromBitmap(source);
            canvas.DrawImage(image, new SKRect(0, 0, shape.Width, shape.Height), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.None));
        }

        var pixels = target.GetPixelSpan();
        if (shape.Channels == 1)
        {
            return pixels.ToArray();
        }

        var rgb = new byte[shape.Width * shape.Height * 3];
        for (int i = 0, j = 0; j < rgb.Length; i += 4, j += 3)
        {
            rgb[j] = pixels[i];
            rgb[j + 1] = pixels[i + 1];
            rgb[j + 2] = pixels[i + 2];
        }

        return rgb;
    }

    /// <summary>Encodes canonical pixels as PNG (the publisher and the tests use it).</summary>
    public static byte[] EncodePng(ReadOnlySpan<byte> pixels, int width, int height, int channels)
    {
        var info = new SKImageInfo(width, height, channels == 1 ? SKColorType.Gray8 : SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        var span = bitmap.GetPixelSpan();
        if (channels == 1)
        {
            pixels.CopyTo(span);
        }
        else
        {
            for (int i = 0, j = 0; i < pixels.Length; i += 3, j += 4)
            {
                span[j] = pixels[i];
                span[j + 1] = pixels[i + 1];
                span[j + 2] = pixels[i + 2];
                span[j + 3] = 255;
            }
        }

        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }
}
