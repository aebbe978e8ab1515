using RetrainDaemon.Training.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetrainDaemon.Training.Trainers;

/// <summary>Cross-entropy for the classifier (the FID/IS feature extractor).</summary>
public sealed class ClassifierStep(FashionClassifier model, TrainingOptions options) : ITrainingStep
{
    private readonly OptimizerHelper optimizer = Trainers.Optimizers.Create(model.parameters(), options);

    public bool SymmetricPixels => false;

    public IReadOnlyDictionary<string, nn.Module> Modules => new Dictionary<string, nn.Module> { ["classifier"] = model };

    public IReadOnlyDictionary<string, OptimizerHelper> Optimizers => new Dictionary<string, OptimizerHelper> { ["classifier"] = optimizer };

    public OptimizerHelper Optimizer => optimizer;

    public void SetTraining(bool training) => model.train(training);

    public IReadOnlyDictionary<string, double> Step(Tensor images, Tensor labels)
    {
        optimizer.zero_grad();
        var loss = functional.cross_entropy(model.forward(images), labels);
        loss.backward();
        Clip.Apply(model.parameters(), options);
        OptimizerStep.Run(optimizer);
        return new Dictionary<string, double> { ["loss"] = loss.item<float>() };
    }

    public double HoldoutLoss(Tensor images, Tensor labels)
    {
        using var noGrad = no_grad();
        return functional.cross_entropy(model.forward(images), labels).item<float>();
    }
}

/// <summary>Reconstruction (BCE on pixel logits, summed per image) + β·KL, averaged over the batch.</summary>
public sealed class VaeStep(VaeEncoder encoder, VaeDecoder decoder, TrainingOptions options, bool conditional) : ITrainingStep
{
    private const ulong HoldoutSeed = 20_261_127;

    private readonly OptimizerHelper optimizer = Trainers.Optimizers.Create(encoder.parameters().Concat(decoder.parameters()), options);

    public bool SymmetricPixels => false;

    public IReadOnlyDictionary<string, nn.Module> Modules => new Dictionary<string, nn.Module> { ["encoder"] = encoder, ["decoder"] = decoder };

    public IReadOnlyDictionary<string, OptimizerHelper> Optimizers => new Dictionary<string, OptimizerHelper> { ["vae"] = optimizer };

    public void SetTraining(bool training)
    {
        encoder.train(training);
        decoder.train(training);
    }

    private (Tensor Loss, Tensor Reconstruction, Tensor Kl) Loss(Tensor images, Tensor labels, Generator? noise = null)
    {
        var y = conditional ? labels : null;
        var (mean, logVariance) = encoder.forward(images, y);                      // (B, L) each
        var epsilon = noise is null ? randn_like(mean) : randn(mean.shape, generator: noise);
        var z = mean + exp(0.5 * logVariance) * epsilon;                           // reparameterization
        var logits = decoder.forward(z, y);                                        // (B, 1, 28, 28)
        long batch = images.shape[0];
        var reconstruction = functional.binary_cross_entropy_with_logits(logits, images, reduction: Reduction.Sum) / batch;
        var kl = -0.5 * sum(1 + logVariance - mean.pow(2) - logVariance.exp()) / batch;
        return (reconstruction + options.Beta * kl, reconstruction, kl);
    }

    public IReadOnlyDictionary<string, double> Step(Tensor images, Tensor labels)
    {
        optimizer.zero_grad();
        var (loss, reconstruction, kl) = Loss(images, labels);
        loss.backward();
        Clip.Apply(encoder.parameters().Concat(decoder.parameters()), options);
        OptimizerStep.Run(optimizer);
        return new Dictionary<string, double> { ["loss"] = loss.item<float>(), ["reconstruction"] = reconstruction.item<float>(), ["kl"] = kl.item<float>() };
    }

    /// <summary>
    /// The negative ELBO (β = 1) on held-out images: comparable across runs and across β. Its noise
    /// comes from a fixed private generator, so evaluating never moves the training RNG (exact resume).
    /// </summary>
    public double HoldoutLoss(Tensor images, Tensor labels)
    {
        using var noGrad = no_grad();
        var (_, reconstruction, kl) = Loss(images, labels, new Generator(HoldoutSeed));
        return (reconstruction + kl).item<float>();
    }
}

/// <summary>
/// Adversarial training with BCE-with-logits: <see cref="TrainingOptions.DiscriminatorSteps"/>
/// discriminator updates (real → 1, fake → 0) per generator update (fake → 1, non-saturating).
/// </summary>
public sealed class DcganStep(DcganGenerator generator, DcganDiscriminator discriminator, TrainingOptions options, bool conditional) : ITrainingStep
{
    private readonly OptimizerHelper generatorOptimizer = Trainers.Optimizers.Create(generator.parameters(), options);
    private readonly OptimizerHelper discriminatorOptimizer = Trainers.Optimizers.Create(discriminator.parameters(), options);

    public bool SymmetricPixels => true;

    public IReadOnlyDictionary<string, nn.Module> Modules => new Dictionary<string, nn.Module> { ["generator"] = generator, ["discriminator"] = discriminator };

    public IReadOnlyDictionary<string, OptimizerHelper> Optimizers => new Dictionary<string, OptimizerHelper> { ["generator"] = generatorOptimizer, ["discriminator"] = discriminatorOptimizer };

    public void SetTraining(bool training)
    {
        generator.train(training);
        discriminator.train(training);
    }

    private Tensor DiscriminatorLoss(Tensor real, Tensor? labels, Generator? noise = null)
    {
        long batch = real.shape[0];
        Tensor fake;
        using (no_grad())
        {
            var z = noise is null ? randn(batch, generator.Config.Latent) : randn([batch, generator.Config.Latent], generator: noise);
            fake = generator.forward(z, labels);
        }

        return functional.binary_cross_entropy_with_logits(discriminator.forward(real, labels), ones(batch, 1))
            + functional.binary_cross_entropy_with_logits(discriminator.forward(fake, labels), zeros(batch, 1));
    }

    public IReadOnlyDictionary<string, double> Step(Tensor images, Tensor labels)
    {
        var y = conditional ? labels : null;
        long batch = images.shape[0];
        Tensor dLoss = zeros(1);
        for (int i = 0; i < options.DiscriminatorSteps; i++)
        {
            discriminatorOptimizer.zero_grad();
            dLoss = DiscriminatorLoss(images, y);
            dLoss.backward();
            Clip.Apply(discriminator.parameters(), options);
            OptimizerStep.Run(discriminatorOptimizer);
        }

        generatorOptimizer.zero_grad();
        var gLoss = functional.binary_cross_entropy_with_logits(discriminator.forward(generator.forward(randn(batch, generator.Config.Latent), y), y), ones(batch, 1));
        gLoss.backward();
        Clip.Apply(generator.parameters(), options);
        OptimizerStep.Run(generatorOptimizer);
        return new Dictionary<string, double> { ["discriminator"] = dLoss.item<float>(), ["generator"] = gLoss.item<float>() };
    }

    /// <summary>
    /// The discriminator's loss on held-out real images against fakes from a fixed private noise
    /// generator: evaluations are comparable and never move the training RNG (exact resume).
    /// </summary>
    public double HoldoutLoss(Tensor images, Tensor labels)
    {
        using var noGrad = no_grad();
        return DiscriminatorLoss(images, conditional ? labels : null, new Generator(20_261_127)).item<float>();
    }
}

internal static class Clip
{
    public static void Apply(IEnumerable<Parameter> parameters, TrainingOptions options)
    {
        if (options.GradientClip > 0)
        {
            nn.utils.clip_grad_norm_(parameters.Where(p => p.requires_grad), options.GradientClip, 2.0);
        }
    }
}
