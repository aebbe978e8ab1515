namespace RetrainDaemon.Training.Trainers;

public enum OptimizerKind
{
    Sgd,
    Adam,
    AdamW,
}

public enum ScheduleKind
{
    Constant,

    /// <summary>Linear warm-up, then cosine decay to 10% of the peak.</summary>
    Cosine,
}

/// <summary>How one training run goes. Defaults suit a tiny CPU fine-tune.</summary>
public sealed record TrainingOptions
{
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;
    public double LearningRate { get; init; } = 2e-4;
    public double WeightDecay { get; init; }
    public double Momentum { get; init; } = 0.9;
    public double Beta1 { get; init; } = 0.5;
    public double Beta2 { get; init; } = 0.999;
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Constant;
    public int WarmupSteps { get; init; }
    public int Steps { get; init; } = 1000;
    public int BatchSize { get; init; } = 64;

    /// <summary>Global gradient-norm clip; 0 disables.</summary>
    public double GradientClip { get; init; }

    /// <summary>Holdout evaluation interval in steps; 0 disables evaluation and early stopping.</summary>
    public int EvalEvery { get; init; } = 100;

    /// <summary>Evaluations without a new best holdout loss before stopping; 0 disables early stopping.</summary>
    public int Patience { get; init; }

    /// <summary>Checkpoint interval in steps; 0 saves only at the end.</summary>
    public int CheckpointEvery { get; init; }

    public long Seed { get; init; } = 1;

    /// <summary>Module names (prefixes of parameter names) whose weights stay fixed: transfer learning.</summary>
    public IReadOnlyList<string> Freeze { get; init; } = [];

    /// <summary>Discriminator steps per generator step (GANs).</summary>
    public int DiscriminatorSteps { get; init; } = 1;

    /// <summary>KL weight β (VAEs).</summary>
    public double Beta { get; init; } = 1.0;
}
