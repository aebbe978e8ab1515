using System.Globalization;
using System.Text;
using RetrainDaemon.Data.Preprocessing;
using SkiaSharp;

namespace RetrainDaemon.Training.Trainers;

/// <summary>What people look at before numbers: a grid of samples and the loss curves, as PNG (+ CSV).</summary>
public static class TrainingArtifacts
{
    /// <summary>Tiles square grayscale images (row-major u8) into one PNG, <paramref name="columns"/> per row.</summary>
    public static byte[] SampleGrid(IReadOnlyList<byte[]> images, int side, int columns = 8)
    {
        int rows = (images.Count + columns - 1) / columns;
        int width = columns * (side + 2) + 2, height = rows * (side + 2) + 2;
        var canvas = new byte[width * height];
        Array.Fill(canvas, (byte)64);
        for (int i = 0; i < images.Count; i++)
        {
            int x0 = 2 + i % columns * (side + 2), y0 = 2 + i / columns * (side + 2);
            for (int y = 0; y < side; y++)
            {
                Buffer.BlockCopy(images[i], y * side, canvas, (y0 + y) * width + x0, side);
            }
        }

        return ImagePreprocessor.EncodePng(canvas, width, height, 1);
    }

    /// <summary>Losses per step as CSV (one column per named loss).</summary>
    public static string LossCsv(IReadOnlyList<IReadOnlyDictionary<string, double>> losses)
    {
        var names = losses.SelectMany(l => l.Keys).Distinct().ToList();
        var csv = new StringBuilder("step," + string.Join(',', names) + "\n");
        for (int i = 0; i < losses.Count; i++)
        {
            csv.Append(i + 1).Append(',').AppendJoin(',', names.Select(n => losses[i].TryGetValue(n, out var v) ? v.ToString("G6", CultureInfo.InvariantCulture) : "")).Append('\n');
        }

        return csv.ToString();
    }

    /// <summary>One line per named loss (smoothed over a window), on a shared axis.</summary>
    public static byte[] LossCurve(IReadOnlyList<IReadOnlyDictionary<string, double>> losses, int width = 720, int height = 360)
    {
        using var bitmap = new SKBitmap(width, height);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        var names = losses.SelectMany(l => l.Keys).Distinct().ToList();
        var finite = losses.SelectMany(l => l.Values).Where(double.IsFinite).ToList();
        if (losses.Count > 1 && finite.Count > 0)
        {
            double max = finite.Max(), min = Math.Min(0, finite.Min());
            SKColor[] colors = [SKColors.SteelBlue, SKColors.OrangeRed, SKColors.SeaGreen, SKColors.Purple];
            int window = Math.Max(1, losses.Count / 100);
            for (int n = 0; n < names.Count; n++)
            {
                using var paint = new SKPaint { Color = colors[n % colors.Length], StrokeWidth = 2, IsStroke = true, IsAntialias = true };
                SKPoint? previous = null;
                for (int i = 0; i < losses.Count; i += window)
                {
                    var slice = losses.Skip(i).Take(window).Select(l => l.GetValueOrDefault(names[n], double.NaN)).Where(double.IsFinite).ToList();
                    if (slice.Count == 0)
                    {
                        continue;
                    }

                    float x = 40 + (float)i / (losses.Count - 1) * (width - 60);
                    float y = height - 30 - (float)((slice.Average() - min) / Math.Max(max - min, 1e-9)) * (height - 60);
                    if (previous is { } p)
                    {
                        canvas.DrawLine(p.X, p.Y, x, y, paint);
                    }

                    previous = new SKPoint(x, y);
                }

                using var label = new SKPaint { Color = paint.Color, IsAntialias = true };
                using var font = new SKFont(SKTypeface.Default, 14);
                canvas.DrawText(names[n], 50, 20 + 16 * n, SKTextAlign.Left, font, label);
            }
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }
}
