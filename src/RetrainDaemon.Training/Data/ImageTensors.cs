using RetrainDaemon.Data.Datasets;
using static TorchSharp.torch;

namespace RetrainDaemon.Training.Data;

/// <summary>Canonical u8 pixels → float tensors in the range a model family expects.</summary>
public static class ImageTensors
{
    /// <summary>(B, 1, side, side) floats: [0, 1] when <paramref name="symmetric"/> is false (VAE, classifier), [-1, 1] otherwise (GAN, tanh output).</summary>
    public static Tensor Pixels(IReadOnlyList<byte[]> images, int side, bool symmetric, Device? device = null)
    {
        var data = new float[images.Count * side * side];
        for (int i = 0; i < images.Count; i++)
        {
            var pixels = images[i];
            if (pixels.Length != side * side)
            {
                throw new ArgumentException($"image {i} has {pixels.Length} pixels, expected {side}x{side}");
            }

            for (int p = 0; p < pixels.Length; p++)
            {
                float unit = pixels[p] / 255f;
                data[i * side * side + p] = symmetric ? unit * 2f - 1f : unit;
            }
        }

        return tensor(data, [images.Count, 1, side, side], device: device);
    }

    /// <summary>(B) int64 class labels.</summary>
    public static Tensor Labels(IReadOnlyList<int> labels, Device? device = null) =>
        tensor(labels.Select(l => (long)l).ToArray(), [labels.Count], device: device);

    public static (Tensor Images, Tensor Labels) FashionMnistBatch(IReadOnlyList<FashionMnistImage> images, bool symmetric, Device? device = null) =>
        (Pixels(images.Select(i => i.Pixels).ToList(), FashionMnist.Side, symmetric, device), Labels(images.Select(i => i.Label).ToList(), device));
}
