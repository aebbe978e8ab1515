using Quartz;

namespace RetrainDaemon.Loop;

/// <summary>
/// The Quartz job of one model's fine-tunes (one durable job per model, key <c>finetune.&lt;model&gt;</c>).
/// Quartz never runs two firings of one job at once: a firing while a run is in progress waits for it
/// (and the trigger policy does not fire while a run is in progress, so nothing piles up). Shutdown
/// reaches the run through the host's stopping token as well as Quartz's, so training checkpoints and
/// returns inside the host's shutdown budget.
/// </summary>
[DisallowConcurrentExecution]
public sealed class FineTuneJob(FineTuneRunner runner, IHostApplicationLifetime lifetime) : IJob
{
    public const string ModelKey = "model";
    public const string TriggerKey = "trigger";
    public const string ResumeKey = "resume";

    public static JobKey KeyFor(string model) => new($"finetune.{model}", LoopScheduler.Group);

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        var data = context.MergedJobDataMap;
        string model = data.GetString(ModelKey) ?? throw new JobExecutionException($"job {context.JobDetail.Key} has no '{ModelKey}'");
        string trigger = data.GetString(TriggerKey) ?? (context.Trigger.Key.Name.StartsWith("schedule.", StringComparison.Ordinal) ? "schedule" : "manual");
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lifetime.ApplicationStopping);
        var outcome = await runner.RunAsync(model, trigger, data.GetString(ResumeKey), stopping.Token).ConfigureAwait(false);
        context.Result = outcome;
    }
}
