using System.Diagnostics;
using RetrainDaemon.Training.Data;
using static TorchSharp.torch;

namespace RetrainDaemon.Training.Trainers;

public enum TrainingOutcome
{
    Completed,
    EarlyStopped,
    NonFiniteLoss,
    Cancelled,
}

/// <summary>Progress of a run, reported about once a second.</summary>
public readonly record struct TrainingProgress(long Step, long Steps, IReadOnlyDictionary<string, double> Losses, double StepsPerSecond, TimeSpan Remaining);

/// <summary>How a run ended; <see cref="Reason"/> says why when it did not complete.</summary>
public sealed record TrainingResult(TrainingOutcome Outcome, long Steps, double? BestHoldoutLoss, IReadOnlyList<double> HoldoutLosses, IReadOnlyList<IReadOnlyDictionary<string, double>> Losses, string? Reason);

/// <summary>
/// The loop every family shares: deterministic batches, the learning-rate schedule, one dispose
/// scope per step (without it TorchSharp's RSS grows 5–14 MB per step — PLATFORM.md), a guard that
/// stops on a non-finite loss, holdout evaluation with early stopping, checkpoints and cancellation.
/// </summary>
public static class TrainingLoop
{
    public const int HoldoutEvalSize = 512;

    public static TrainingResult Run(
        ITrainingStep trainer,
        ImageDataset train,
        ImageDataset? holdout,
        TrainingOptions options,
        long startStep = 0,
        IReadOnlyDictionary<int, double>? labelWeights = null,
        Action<long>? checkpoint = null,
        IProgress<TrainingProgress>? progress = null,
        CancellationToken cancellationToken = default) =>
        Run(trainer, new ImageBatches(train, trainer.SymmetricPixels, labelWeights), holdout is null ? null : new ImageBatches(holdout, trainer.SymmetricPixels),
            options, startStep, checkpoint, progress, cancellationToken);

    public static TrainingResult Run(
        ITrainingStep trainer,
        IBatchSource train,
        IBatchSource? holdout,
        TrainingOptions options,
        long startStep = 0,
        Action<long>? checkpoint = null,
        IProgress<TrainingProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        if (train.Count < options.BatchSize)
        {
            throw new InvalidOperationException($"the snapshot has {train.Count} training samples, fewer than one batch of {options.BatchSize}; refusing to train");
        }

        var losses = new List<IReadOnlyDictionary<string, double>>();
        var holdoutLosses = new List<double>();
        double? best = null;
        int sinceBest = 0;
        var (holdoutImages, holdoutLabels) = holdout is { Count: > 0 } ? holdout.Head(HoldoutEvalSize) : (null, null);
        var watch = Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;
        long step = startStep;
        try
        {
            for (; step < options.Steps; step++)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    if (step > startStep)
                    {
                        checkpoint?.Invoke(step);
                    }

                    return new TrainingResult(TrainingOutcome.Cancelled, step, best, holdoutLosses, losses, "cancelled; checkpoint written");
                }

                IReadOnlyDictionary<string, double> stepLosses;
                using (var scope = NewDisposeScope())
                {
                    foreach (var optimizer in trainer.Optimizers.Values)
                    {
                        Optimizers.SetLearningRate(optimizer, LearningRateSchedule.At(options, step));
                    }

                    trainer.SetTraining(true);
                    var (images, labels) = train.Batch(options.Seed, step, options.BatchSize);
                    stepLosses = trainer.Step(images, labels);
                }

                losses.Add(stepLosses);
                if (stepLosses.FirstOrDefault(l => !double.IsFinite(l.Value)) is { Key: not null } bad)
                {
                    return new TrainingResult(TrainingOutcome.NonFiniteLoss, step + 1, best, holdoutLosses, losses,
                        $"step {step + 1}: {(bad.Key == "loss" ? "the" : "the " + bad.Key)} loss is {bad.Value}; stopping, nothing from this run may be promoted");
                }

                if (holdoutImages is not null && options.EvalEvery > 0 && (step + 1) % options.EvalEvery == 0)
                {
                    trainer.SetTraining(false);
                    double loss;
                    using (NewDisposeScope())
                    {
                        loss = trainer.HoldoutLoss(holdoutImages, holdoutLabels!);
                    }

                    holdoutLosses.Add(loss);
                    if (best is null || loss < best)
                    {
                        best = loss;
                        sinceBest = 0;
                    }
                    else if (options.Patience > 0 && ++sinceBest >= options.Patience)
                    {
                        checkpoint?.Invoke(step + 1);
                        return new TrainingResult(TrainingOutcome.EarlyStopped, step + 1, best, holdoutLosses, losses,
                            $"holdout loss has not improved on {best:0.0000} for {options.Patience} evaluations");
                    }
                }

                if (checkpoint is not null && options.CheckpointEvery > 0 && (step + 1) % options.CheckpointEvery == 0 && step + 1 < options.Steps)
                {
                    checkpoint(step + 1);
                }

                if (progress is not null && watch.Elapsed - lastReport >= TimeSpan.FromSeconds(1))
                {
                    lastReport = watch.Elapsed;
                    double rate = (step + 1 - startStep) / watch.Elapsed.TotalSeconds;
                    progress.Report(new TrainingProgress(step + 1, options.Steps, stepLosses, rate, TimeSpan.FromSeconds((options.Steps - step - 1) / Math.Max(rate, 1e-9))));
                }
            }

            if (step > startStep)
            {
                checkpoint?.Invoke(step);
            }

            return new TrainingResult(TrainingOutcome.Completed, step, best, holdoutLosses, losses, null);
        }
        finally
        {
            holdoutImages?.Dispose();
            holdoutLabels?.Dispose();
        }
    }
}
