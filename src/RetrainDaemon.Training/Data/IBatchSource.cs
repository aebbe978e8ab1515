using static TorchSharp.torch;

namespace RetrainDaemon.Training.Data;

/// <summary>
/// What the <see cref="Trainers.TrainingLoop"/> draws from: batches that are a pure function of
/// (seed, step), so a resumed run draws the same batches, and a fixed head for holdout evaluation.
/// Images give (pixels, labels); text gives (tokens, targets).
/// </summary>
public interface IBatchSource
{
    int Count { get; }

    (Tensor Inputs, Tensor Targets) Batch(long seed, long step, int size);

    /// <summary>The first <paramref name="size"/> items (holdout evaluation uses a fixed slice).</summary>
    (Tensor Inputs, Tensor Targets) Head(int size);
}

/// <summary>An <see cref="ImageDataset"/> seen by a family that wants [-1, 1] or [0, 1] pixels, optionally label-weighted.</summary>
public sealed class ImageBatches(ImageDataset images, bool symmetric, IReadOnlyDictionary<int, double>? labelWeights = null) : IBatchSource
{
    public int Count => images.Count;

    public (Tensor Inputs, Tensor Targets) Batch(long seed, long step, int size) => images.Batch(seed, step, size, symmetric, labelWeights);

    public (Tensor Inputs, Tensor Targets) Head(int size) => images.Head(size, symmetric);
}
