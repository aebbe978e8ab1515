using Microsoft.Extensions.Options;
using Quartz;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Store;

namespace RetrainDaemon.Loop;

/// <summary>
/// At start: makes Quartz's persistent store match the configuration (one fine-tune job per model, its
/// cron trigger, the watch), without disturbing triggers that did not change — a cron trigger that is
/// kept keeps its missed firings, so Quartz's misfire policy (fire once, then proceed) gives exactly one
/// catch-up run after downtime. Then, on one node, it resumes the runs the ledger says were interrupted.
/// Clustered, every node runs this against the shared store (idempotently: same jobs, same triggers), the jobs
/// request recovery, and interrupted runs are Quartz's to recover — a node that starts must not resume a run
/// another node is training.
/// </summary>
public sealed partial class LoopScheduler(
    ISchedulerFactory factory,
    IOptions<ModelCatalogOptions> catalog,
    IOptions<LoopOptions> loop,
    IRunLedger ledger,
    Core.Registry.ModelRegistry registry,
    LoopMetrics metrics,
    LoopTopology topology,
    ILogger<LoopScheduler> logger) : IHostedService
{
    public const string Group = "retrain";

    /// <summary>A run interrupted this many times is closed as failed instead of resumed again: whatever kills it would kill it again.</summary>
    public const int MaxAttempts = 3;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        metrics.Initialize(catalog.Value.Models.Where(m => m.Value.Retrain).Select(m => m.Key));
        var scheduler = await factory.GetScheduler(cancellationToken).ConfigureAwait(false);
        var expectedJobs = new HashSet<JobKey>();
        var expectedTriggers = new HashSet<TriggerKey>();

        var watch = JobBuilder.Create<LoopWatchJob>().WithIdentity(LoopWatchJob.Key).StoreDurably().Build();
        await StoreJobAsync(scheduler, watch, cancellationToken).ConfigureAwait(false);
        expectedJobs.Add(watch.Key);
        var watchTrigger = TriggerBuilder.Create().WithIdentity("watch", Group).ForJob(watch.Key)
            .StartNow()
            .WithSimpleSchedule(s => s.WithInterval(loop.Value.CheckInterval).RepeatForever().WithMisfireInstruction(SimpleTriggerMisfireInstruction.NextWithRemainingCount))
            .Build();
        await EnsureTriggerAsync(scheduler, watchTrigger, existing => existing is ISimpleTrigger simple && simple.RepeatInterval == loop.Value.CheckInterval, cancellationToken).ConfigureAwait(false);
        expectedTriggers.Add(watchTrigger.Key);

        foreach (var (model, options) in catalog.Value.Models)
        {
            if (!options.Retrain)
            {
                continue;
            }

            metrics.ShowChampion(registry, model, options);
            if (options.Triggers.MaxStaleness is TimeSpan staleness)
            {
                metrics.StalenessBound.WithLabels(model).Set(staleness.TotalSeconds);
            }

            // The staleness and rejections-in-a-row alerts read state that must survive restarts: from the ledger.
            var history = await ledger.ListRunsAsync(model, RunKinds.FineTune, 200, cancellationToken).ConfigureAwait(false);
            var promoted = history.FirstOrDefault(r => r.Status == RunStatuses.Promoted && r.FinishedAt is not null);
            if (promoted?.FinishedAt is DateTimeOffset at)
            {
                metrics.LastPromotion.WithLabels(model).Set(at.ToUnixTimeMilliseconds() / 1000.0);
            }

            metrics.ConsecutiveRejections.WithLabels(model).Set(RunHistory.ConsecutiveRejections(history));

            var job = JobBuilder.Create<FineTuneJob>().WithIdentity(FineTuneJob.KeyFor(model)).StoreDurably()
                .RequestRecovery(topology.Clustered)
                .UsingJobData(FineTuneJob.ModelKey, model)
                .WithDescription($"fine-tune of {model}")
                .Build();
            await StoreJobAsync(scheduler, job, cancellationToken).ConfigureAwait(false);
            expectedJobs.Add(job.Key);
            if (options.Schedule.Length > 0)
            {
                var cron = TriggerBuilder.Create().WithIdentity($"schedule.{model}", Group).ForJob(job.Key)
                    .UsingJobData(FineTuneJob.TriggerKey, "schedule")
                    .WithCronSchedule(options.Schedule, c => c.InTimeZone(TimeZoneInfo.Utc).WithMisfireInstruction(CronTriggerMisfireInstruction.FireAndProceed))
                    .Build();
                await EnsureTriggerAsync(scheduler, cron, existing => existing is ICronTrigger c && c.CronExpressionString == options.Schedule, cancellationToken).ConfigureAwait(false);
                expectedTriggers.Add(cron.Key);
            }

            var analysis = JobBuilder.Create<ErrorAnalysisJob>().WithIdentity(ErrorAnalysisJob.KeyFor(model)).StoreDurably()
                .RequestRecovery(topology.Clustered)
                .UsingJobData(FineTuneJob.ModelKey, model)
                .WithDescription($"error analysis of {model}")
                .Build();
            await StoreJobAsync(scheduler, analysis, cancellationToken).ConfigureAwait(false);
            expectedJobs.Add(analysis.Key);
            if (options.AnalysisSchedule.Length > 0)
            {
                var cron = TriggerBuilder.Create().WithIdentity($"analysis.{model}", Group).ForJob(analysis.Key)
                    .UsingJobData(FineTuneJob.TriggerKey, "schedule")
                    .WithCronSchedule(options.AnalysisSchedule, c => c.InTimeZone(TimeZoneInfo.Utc).WithMisfireInstruction(CronTriggerMisfireInstruction.FireAndProceed))
                    .Build();
                await EnsureTriggerAsync(scheduler, cron, existing => existing is ICronTrigger c && c.CronExpressionString == options.AnalysisSchedule, cancellationToken).ConfigureAwait(false);
                expectedTriggers.Add(cron.Key);
            }
        }

        // Jobs and triggers of models no longer configured (or no longer scheduled) go.
        foreach (var key in await scheduler.GetTriggerKeys(GroupMatcher<TriggerKey>.GroupEquals(Group), cancellationToken).ConfigureAwait(false))
        {
            if (!expectedTriggers.Contains(key))
            {
                await scheduler.UnscheduleJob(key, cancellationToken).ConfigureAwait(false);
            }
        }

        foreach (var key in await scheduler.GetJobKeys(GroupMatcher<JobKey>.GroupEquals(Group), cancellationToken).ConfigureAwait(false))
        {
            if (!expectedJobs.Contains(key))
            {
                await scheduler.DeleteJob(key, cancellationToken).ConfigureAwait(false);
            }
        }

        if (!topology.Clustered)
        {
            await RecoverAsync(scheduler, cancellationToken).ConfigureAwait(false);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Interrupted fine-tunes are resumed (from their checkpoints); anything else interrupted is closed as failed.</summary>
    private async Task RecoverAsync(IScheduler scheduler, CancellationToken cancellationToken)
    {
        foreach (var run in await ledger.ListUnfinishedRunsAsync(cancellationToken).ConfigureAwait(false))
        {
            bool resumable = run.Kind == RunKinds.FineTune && catalog.Value.TryGet(run.Model, out var options) && options.Retrain
                && run.Attempts < MaxAttempts;
            if (resumable)
            {
                LogResuming(logger, run.Model, run.RunId);
                await scheduler.TriggerJob(FineTuneJob.KeyFor(run.Model),
                    new JobDataMap { [FineTuneJob.ResumeKey] = run.RunId, [FineTuneJob.TriggerKey] = run.Trigger }, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                string detail = run.Kind != RunKinds.FineTune
                    ? "interrupted by a stop of the daemon; the next analysis starts afresh"
                    : run.Attempts >= MaxAttempts
                        ? $"interrupted in each of its {run.Attempts} attempts (a crash loop?); not resumed again"
                        : "interrupted, and the model is no longer configured for retraining";
                await ledger.FinishRunAsync(run.RunId, RunStatuses.Failed, null, detail, cancellationToken).ConfigureAwait(false);
                LogClosed(logger, run.Model, run.RunId, detail);
            }
        }
    }

    /// <summary>Stores (or replaces) a durable job; clustered nodes starting together may race to insert it first.</summary>
    private static async Task StoreJobAsync(IScheduler scheduler, IJobDetail job, CancellationToken cancellationToken)
    {
        try
        {
            await scheduler.AddJob(job, new AddJobOptions { Replace = true }, cancellationToken).ConfigureAwait(false);
        }
        catch (ObjectAlreadyExistsException)
        {
            // The other node's insert won between our existence check and ours: replace what it stored.
            await scheduler.AddJob(job, new AddJobOptions { Replace = true }, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task EnsureTriggerAsync(IScheduler scheduler, ITrigger trigger, Func<ITrigger, bool> unchanged, CancellationToken cancellationToken)
    {
        var existing = await scheduler.GetTrigger(trigger.Key, cancellationToken).ConfigureAwait(false);
        if (existing is null)
        {
            try
            {
                await scheduler.ScheduleJob(trigger, default, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (ObjectAlreadyExistsException)
            {
                // Clustered: another node starting at the same moment stored it between our read and our write.
                existing = await scheduler.GetTrigger(trigger.Key, cancellationToken).ConfigureAwait(false);
            }
        }

        if (existing is not null && !unchanged(existing))
        {
            await scheduler.RescheduleJob(trigger.Key, trigger, cancellationToken).ConfigureAwait(false);
        }
    }

    [LoggerMessage(EventId = 840, Level = LogLevel.Warning, Message = "Resuming the interrupted fine-tune {RunId} of {Model}")]
    private static partial void LogResuming(ILogger logger, string model, string runId);

    [LoggerMessage(EventId = 841, Level = LogLevel.Warning, Message = "Run {RunId} of {Model} was interrupted and is closed as failed: {Detail}")]
    private static partial void LogClosed(ILogger logger, string model, string runId, string detail);
}
