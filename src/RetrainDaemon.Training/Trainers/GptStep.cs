using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetrainDaemon.Training.Trainers;

/// <summary>
/// Next-token cross-entropy for the <c>gpt</c> family, averaged over the tokens that carry loss
/// (targets ≠ <see cref="TextBatches.IgnoreIndex"/>: padding and, for conditional models, the source
/// are excluded). With AdamW, weight decay applies to matrices and embeddings only — decaying
/// biases and LayerNorm gains toward zero only fights the normalization (the GPT-2/nanoGPT recipe).
/// </summary>
public sealed class GptStep : ITrainingStep
{
    /// <summary>Holdout rows per forward pass: (32, T, V) logits stay a few tens of MB at T = 128, V = 8k.</summary>
    private const int HoldoutChunk = 32;

    private readonly Gpt model;
    private readonly TrainingOptions options;
    private readonly OptimizerHelper optimizer;

    public GptStep(Gpt model, TrainingOptions options)
    {
        this.model = model;
        this.options = options;
        optimizer = CreateOptimizer(model, options);
    }

    public Gpt Model => model;

    public bool SymmetricPixels => false;

    public IReadOnlyDictionary<string, nn.Module> Modules => new Dictionary<string, nn.Module> { ["gpt"] = model };

    public IReadOnlyDictionary<string, OptimizerHelper> Optimizers => new Dictionary<string, OptimizerHelper> { ["gpt"] = optimizer };

    public void SetTraining(bool training) => model.train(training);

    public IReadOnlyDictionary<string, double> Step(Tensor tokens, Tensor targets)
    {
        optimizer.zero_grad();
        var logits = model.forward(tokens);                                            // (B, T, V)
        var loss = functional.cross_entropy(logits.view(-1, logits.shape[2]), targets.view(-1), ignore_index: TextBatches.IgnoreIndex);
        loss.backward();
        Clip.Apply(model.parameters(), options);
        OptimizerStep.Run(optimizer);
        return new Dictionary<string, double> { ["loss"] = loss.item<float>() };
    }

    /// <summary>Mean cross-entropy per predicted token over the whole holdout head (token-weighted, so it is log-perplexity).</summary>
    public double HoldoutLoss(Tensor tokens, Tensor targets)
    {
        using var noGrad = no_grad();
        double sum = 0;
        long count = 0;
        for (long start = 0; start < tokens.shape[0]; start += HoldoutChunk)
        {
            using var scope = NewDisposeScope();
            long rows = Math.Min(HoldoutChunk, tokens.shape[0] - start);
            var logits = model.forward(tokens.narrow(0, start, rows));
            var chunkTargets = targets.narrow(0, start, rows).reshape(-1);
            sum += functional.cross_entropy(logits.view(-1, logits.shape[2]), chunkTargets, ignore_index: TextBatches.IgnoreIndex, reduction: Reduction.Sum).item<float>();
            count += chunkTargets.ne(TextBatches.IgnoreIndex).sum().item<long>();
        }

        return count == 0 ? double.NaN : sum / count;
    }

    private static OptimizerHelper CreateOptimizer(Gpt model, TrainingOptions options)
    {
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        if (trainable.Count == 0)
        {
            throw new InvalidOperationException("every parameter is frozen; there is nothing to train");
        }

        if (options.Optimizer != OptimizerKind.AdamW || options.WeightDecay == 0)
        {
            return Trainers.Optimizers.Create(trainable.Select(p => p.parameter), options);
        }

        var decayed = trainable.Where(p => p.parameter.dim() >= 2).Select(p => p.parameter).ToList();
        var plain = trainable.Where(p => p.parameter.dim() < 2).Select(p => p.parameter).ToList();
        var groups = new List<AdamW.ParamGroup>
        {
            new(decayed, new AdamW.Options { LearningRate = options.LearningRate, beta1 = options.Beta1, beta2 = options.Beta2, weight_decay = options.WeightDecay }),
            new(plain, new AdamW.Options { LearningRate = options.LearningRate, beta1 = options.Beta1, beta2 = options.Beta2, weight_decay = 0 }),
        };
        return optim.AdamW(groups, options.LearningRate, options.Beta1, options.Beta2, weight_decay: options.WeightDecay);
    }
}
