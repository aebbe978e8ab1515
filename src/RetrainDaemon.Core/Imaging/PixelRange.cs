namespace RetrainDaemon.Core.Imaging;

/// <summary>The value range a generator's <c>image</c> output is in.</summary>
public enum GeneratorRange
{
    /// <summary>[−1, 1] (tanh: DCGAN).</summary>
    Tanh,

    /// <summary>[0, 1] (sigmoid: VAE decoder).</summary>
    Unit,
}

/// <summary>
/// Generator output → 8-bit pixels. One function shared by the evaluator and the server, so the
/// images that were gated are byte for byte the images that are served.
/// </summary>
public static class PixelQuantizer
{
    public static GeneratorRange RangeOf(string? family) =>
        string.Equals(family, "vae", StringComparison.OrdinalIgnoreCase) ? GeneratorRange.Unit : GeneratorRange.Tanh;

    /// <summary>Round-half-away-from-zero of the value mapped to [0, 255], clamped; the caller rejects non-finite values first.</summary>
    public static byte Quantize(float value, GeneratorRange range)
    {
        double unit = range == GeneratorRange.Tanh ? (value + 1.0) / 2.0 : value;
        return (byte)Math.Round(Math.Clamp(unit, 0, 1) * 255, MidpointRounding.AwayFromZero);
    }

    /// <summary>
    /// Channel-first generator output (C, H, W) of one sample → channel-last 8-bit pixels (H, W, C),
    /// the store's canonical layout. Returns false (and the index) on a non-finite value.
    /// </summary>
    public static bool TryToPixels(ReadOnlySpan<float> chw, int channels, int height, int width, GeneratorRange range, Span<byte> hwc, out int badIndex)
    {
        int plane = height * width;
        for (int c = 0; c < channels; c++)
        {
            for (int p = 0; p < plane; p++)
            {
                float v = chw[c * plane + p];
                if (!float.IsFinite(v))
                {
                    badIndex = c * plane + p;
                    return false;
                }

                hwc[p * channels + c] = Quantize(v, range);
            }
        }

        badIndex = -1;
        return true;
    }
}
