namespace RetrainDaemon.Training.Trainers;

/// <summary>The learning rate at a step: a pure function, so a resumed run continues the same curve.</summary>
public static class LearningRateSchedule
{
    public const double CosineFloor = 0.1;

    public static double At(TrainingOptions options, long step)
    {
        double peak = options.LearningRate;
        if (options.WarmupSteps > 0 && step < options.WarmupSteps)
        {
            return peak * (step + 1) / options.WarmupSteps;
        }

        if (options.Schedule == ScheduleKind.Constant)
        {
            return peak;
        }

        long decaySteps = Math.Max(1, options.Steps - options.WarmupSteps);
        double progress = Math.Clamp((double)(step - options.WarmupSteps) / decaySteps, 0, 1);
        double cosine = 0.5 * (1 + Math.Cos(Math.PI * progress));
        return peak * (CosineFloor + (1 - CosineFloor) * cosine);
    }
}
