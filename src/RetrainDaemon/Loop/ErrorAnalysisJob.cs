using Quartz;

namespace RetrainDaemon.Loop;

/// <summary>
/// The Quartz job of one model's error analyses (key <c>analysis.&lt;model&gt;</c>, cron <c>AnalysisSchedule</c>).
/// An analysis interrupted by shutdown is closed as failed and simply runs again at its next firing.
/// </summary>
[DisallowConcurrentExecution]
public sealed class ErrorAnalysisJob(AnalysisRunner runner, IHostApplicationLifetime lifetime) : IJob
{
    public static JobKey KeyFor(string model) => new($"analysis.{model}", LoopScheduler.Group);

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        string model = context.MergedJobDataMap.GetString(FineTuneJob.ModelKey) ?? throw new JobExecutionException($"job {context.JobDetail.Key} has no '{FineTuneJob.ModelKey}'");
        string trigger = context.MergedJobDataMap.GetString(FineTuneJob.TriggerKey) ?? "schedule";
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lifetime.ApplicationStopping);
        try
        {
            context.Result = await runner.RunAsync(model, trigger, stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Recorded as failed by the runner; nothing to resume.
        }
    }
}
