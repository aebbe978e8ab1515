using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Trainers;
using RetrainDaemon.Training.Runtime;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetrainDaemon.ModelTests;

/// <summary>
/// Each model can fit a tiny batch of real Fashion-MNIST images: the loss falls by a stated factor
/// within a small step budget (CPU, fixed seed). One dispose scope per step keeps native memory flat.
/// </summary>
public sealed class OverfitTests(ITestOutputHelper output)
{
    private static readonly IReadOnlyList<FashionMnistImage> Tiny = FashionMnist.Read("t10k", take: 64);

    static OverfitTests() => TorchRuntime.SetThreads(2);

    [Fact]
    public void Classifier_CrossEntropyFallsTenfold()
    {
        manual_seed(1);
        using var model = new FashionClassifier(new ClassifierConfig());
        Initialization.Apply(model, InitScheme.He);
        var (x, y) = ImageTensors.FashionMnistBatch(Tiny, symmetric: false);
        using var optimizer = optim.Adam(model.parameters(), lr: 2e-3);
        model.train();

        var losses = Train(150, () => functional.cross_entropy(model.forward(x), y), optimizer);

        output.WriteLine($"cross-entropy {losses[0]:0.000} -> {losses[^1]:0.0000}");
        Assert.True(losses[^1] < losses[0] / 10, $"{losses[0]} -> {losses[^1]}");
        model.eval();
        using var noGrad = no_grad();
        using var features = model.Features(x);
        Assert.Equal([64L, 128L], features.shape);
    }

    [Fact]
    public void Vae_ReconstructionPlusKlHalves()
    {
        manual_seed(2);
        var config = new VaeConfig();
        using var encoder = new VaeEncoder(config);
        using var decoder = new VaeDecoder(config);
        Initialization.Apply(encoder, InitScheme.Xavier);
        Initialization.Apply(decoder, InitScheme.Xavier);
        var (x, _) = ImageTensors.FashionMnistBatch(Tiny, symmetric: false);
        using var optimizer = optim.Adam(encoder.parameters().Concat(decoder.parameters()), lr: 2e-3);

        var losses = Train(200, () =>
        {
            var (mean, logVariance) = encoder.forward(x, null);
            var z = mean + exp(0.5 * logVariance) * randn_like(mean);        // reparameterization
            var logits = decoder.forward(z, null);
            var reconstruction = functional.binary_cross_entropy_with_logits(logits, x, reduction: Reduction.Sum) / x.shape[0];
            var kl = -0.5 * sum(1 + logVariance - mean.pow(2) - logVariance.exp()) / x.shape[0];
            return reconstruction + kl;
        }, optimizer);

        output.WriteLine($"negative ELBO per image {losses[0]:0.0} -> {losses[^1]:0.0}");
        Assert.True(losses[^1] < losses[0] / 2, $"{losses[0]} -> {losses[^1]}");
    }

    [Fact]
    public void Dcgan_DiscriminatorSeparatesRealFromFake_AndGeneratorFoolsAFrozenDiscriminator()
    {
        manual_seed(3);
        var config = new DcganConfig(Classes: 10);
        using var generator = new DcganGenerator(config);
        using var discriminator = new DcganDiscriminator(config);
        Initialization.Apply(generator, InitScheme.Normal002);
        Initialization.Apply(discriminator, InitScheme.Normal002);
        var (real, labels) = ImageTensors.FashionMnistBatch(Tiny, symmetric: true);
        var z = randn(Tiny.Count, config.Latent);
        var ones = torch.ones(Tiny.Count, 1);
        var zeros = torch.zeros(Tiny.Count, 1);

        // D step budget with G fixed: BCE-with-logits on real = 1, fake = 0.
        using var dOptimizer = optim.Adam(discriminator.parameters(), lr: 2e-4, beta1: 0.5, beta2: 0.999);
        Tensor fake;
        using (no_grad())
        {
            fake = generator.forward(z, labels).detach();
        }

        Assert.Equal([64L, 1L, 28L, 28L], fake.shape);
        Assert.True(fake.abs().max().item<float>() <= 1f);
        var dLosses = Train(100, () =>
            functional.binary_cross_entropy_with_logits(discriminator.forward(real, labels), ones)
            + functional.binary_cross_entropy_with_logits(discriminator.forward(fake, labels), zeros), dOptimizer);

        // G step budget against the now-frozen D: make D call the fakes real.
        foreach (var p in discriminator.parameters())
        {
            p.requires_grad = false;
        }

        using var gOptimizer = optim.Adam(generator.parameters(), lr: 2e-4, beta1: 0.5, beta2: 0.999);
        var gLosses = Train(100, () => functional.binary_cross_entropy_with_logits(discriminator.forward(generator.forward(z, labels), labels), ones), gOptimizer);

        output.WriteLine($"D loss {dLosses[0]:0.000} -> {dLosses[^1]:0.000}; G loss vs frozen D {gLosses[0]:0.000} -> {gLosses[^1]:0.000}");
        Assert.True(dLosses[^1] < dLosses[0] / 5, $"D {dLosses[0]} -> {dLosses[^1]}");
        Assert.True(gLosses[^1] < gLosses[0] / 3, $"G {gLosses[0]} -> {gLosses[^1]}");
    }

    /// <summary>Runs <paramref name="steps"/> optimizer steps, each in its own dispose scope; returns the loss per step.</summary>
    private static List<double> Train(int steps, Func<Tensor> loss, optim.Optimizer optimizer)
    {
        var losses = new List<double>(steps);
        for (int step = 0; step < steps; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var value = loss();
            value.backward();
            OptimizerStep.Run(optimizer);
            losses.Add(value.item<float>());
        }

        return losses;
    }
}
