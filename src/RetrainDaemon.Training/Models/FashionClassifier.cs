using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetrainDaemon.Training.Models;

/// <summary>
/// Small Fashion-MNIST CNN; its penultimate layer is the pinned feature extractor for FID, its
/// softmax the class probabilities for IS and class coverage.
/// x (B, 1, 28, 28) → conv1 (B, W, 28, 28) → pool (B, W, 14, 14) → conv2 (B, 2W, 14, 14) → pool (B, 2W, 7, 7)
/// → flatten → features (B, F) → logits (B, 10).
/// </summary>
public sealed class FashionClassifier : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly Conv2d conv2;
    private readonly Dropout dropout;
    private readonly Linear features;
    private readonly Linear logits;

    public FashionClassifier(ClassifierConfig config) : base(nameof(FashionClassifier))
    {
        Config = config;
        conv1 = Conv2d(config.Channels, config.Width, kernel_size: 3, padding: 1);
        conv2 = Conv2d(config.Width, 2 * config.Width, kernel_size: 3, padding: 1);
        dropout = Dropout(config.Dropout);
        features = Linear(2L * config.Width * (config.Side / 4) * (config.Side / 4), config.Features);
        logits = Linear(config.Features, config.Classes);
        RegisterComponents();
    }

    public ClassifierConfig Config { get; }

    /// <summary>The penultimate activations (B, F): what FID compares.</summary>
    public Tensor Features(Tensor images)
    {
        var x = functional.max_pool2d(functional.relu(conv1.forward(images)), 2);     // (B, W, 14, 14)
        x = functional.max_pool2d(functional.relu(conv2.forward(x)), 2);               // (B, 2W, 7, 7)
        return functional.relu(features.forward(dropout.forward(x.flatten(1))));       // (B, F)
    }

    public override Tensor forward(Tensor images) => logits.forward(dropout.forward(Features(images))); // (B, 10)
}
