using Quartz;
using RetrainDaemon.Data.Store;

namespace RetrainDaemon.Loop;

/// <summary>
/// The Quartz job of one model's error analyses (key <c>analysis.&lt;model&gt;</c>, cron <c>AnalysisSchedule</c>).
/// An analysis interrupted by shutdown is closed as failed and simply runs again at its next firing. In a cluster
/// a node that dies mid-analysis leaves its run open; the recovery firing (another node) closes it as failed and
/// analyses afresh — an analysis has no checkpoint worth resuming.
/// </summary>
[DisallowConcurrentExecution]
public sealed class ErrorAnalysisJob(AnalysisRunner runner, IRunLedger ledger, IHostApplicationLifetime lifetime) : IJob
{
    public static JobKey KeyFor(string model) => new($"analysis.{model}", LoopScheduler.Group);

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        string model = context.MergedJobDataMap.GetString(FineTuneJob.ModelKey) ?? throw new JobExecutionException($"job {context.JobDetail.Key} has no '{FineTuneJob.ModelKey}'");
        string trigger = context.MergedJobDataMap.GetString(FineTuneJob.TriggerKey) ?? "schedule";
        if (context.Recovering)
        {
            foreach (var open in (await ledger.ListRunsAsync(model, RunKinds.Analysis, 20, cancellationToken).ConfigureAwait(false)).Where(r => r.Status == RunStatuses.Running))
            {
                await ledger.FinishRunAsync(open.RunId, RunStatuses.Failed, null, "its node stopped mid-analysis; the recovery firing analyses afresh", cancellationToken).ConfigureAwait(false);
            }
        }

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
