using System.Globalization;
using Microsoft.Extensions.Options;
using Quartz;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Policies;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Data.Store;

namespace RetrainDaemon.Loop;

/// <summary>
/// Every <see cref="LoopOptions.CheckInterval"/>: for each model, the trigger policy (data volume, drift,
/// feedback, staleness) decides whether a fine-tune starts, and the rollback policy whether a freshly
/// promoted champion goes back to <c>previous</c>. The decisions are pure functions (Core/Policies);
/// this job only gathers their inputs and carries out what they say.
/// </summary>
[DisallowConcurrentExecution]
public sealed partial class LoopWatchJob(
    IOptions<ModelCatalogOptions> catalog,
    IRunLedger ledger,
    ILoopQueries queries,
    ISampleStore store,
    ModelRegistry registry,
    LoopState state,
    RollbackWatch rollback,
    LoopMetrics metrics,
    ILogger<LoopWatchJob> logger,
    TimeProvider? clock = null) : IJob
{
    private readonly TimeProvider time = clock ?? TimeProvider.System;

    public static readonly JobKey Key = new("watch", LoopScheduler.Group);

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        foreach (var (model, options) in catalog.Value.Models)
        {
            if (!options.Retrain)
            {
                continue;
            }

            try
            {
                await rollback.CheckAsync(model, options, cancellationToken).ConfigureAwait(false);
                var situation = await SituationAsync(model, options, cancellationToken).ConfigureAwait(false);
                var decision = TriggerPolicy.Decide(options.Triggers, situation);
                // A run with less fresh data than the model trains on would only be skipped: the watch holds
                // its triggers until there is enough (schedules and manual requests still run, and say why they skip).
                if (decision.Start && situation.NewSamples < options.Training.MinTrainingSamples)
                {
                    continue;
                }

                if (decision.Start)
                {
                    string reasons = string.Join("; ", decision.Reasons);
                    state.Requested(model, situation.Now);
                    foreach (var reason in decision.Reasons)
                    {
                        metrics.Triggered.WithLabels(model, ReasonKind(reason)).Inc();
                    }

                    LogTriggered(logger, model, reasons);
                    await context.Scheduler.TriggerJob(FineTuneJob.KeyFor(model), new JobDataMap { [FineTuneJob.TriggerKey] = reasons }, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // One model's broken state (an unreadable registry folder) must not stop the others' triggers.
                LogWatchFailed(logger, model, ex);
            }
        }
    }

    /// <summary>The trigger policy's inputs for one model, from the ledger, the store and the registry.</summary>
    public async Task<TriggerSituation> SituationAsync(string model, ModelOptions options, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var runs = await ledger.ListRunsAsync(model, RunKinds.FineTune, 50, cancellationToken).ConfigureAwait(false);
        bool inProgress = runs.Any(r => r.Status == RunStatuses.Running);
        DateTimeOffset? lastStarted = runs.Count > 0 ? runs[0].StartedAt : null;
        if (state.LastRequested(model) is { } requested && (lastStarted is null || requested > lastStarted))
        {
            lastStarted = requested;
        }

        DateTimeOffset? lastSuccess = runs.FirstOrDefault(r => r.Status == RunStatuses.Promoted)?.FinishedAt;
        // Fresh data is counted after the newest snapshot a run judged (promoted or rejected, or a training
        // that diverged: the same data would give the same result) or the champion's, whichever is newer. A
        // run that failed for another reason (disk, a missing directory, an exception) leaves its data unseen,
        // so the volume trigger tries again after the cooldown.
        long seen = runs.FirstOrDefault(r => r.Watermark is not null && (r.Status is RunStatuses.Promoted or RunStatuses.Rejected
            || (r.Status == RunStatuses.Failed && r.Detail?.StartsWith(nameof(Training.Trainers.TrainingOutcome.NonFiniteLoss), StringComparison.Ordinal) == true)))?.Watermark ?? 0;
        if (registry.ResolveServable(model).Verified?.Manifest.DataWatermark is long championWatermark)
        {
            seen = Math.Max(seen, championWatermark);
        }

        long fresh = await queries.CountSamplesAfterAsync(options.ResolvedDataset(model), seen, cancellationToken).ConfigureAwait(false);

        // Feedback: ratings since the last run started; the champion's ratings since its promotion against
        // the ratings its predecessors got (the baseline a drop is measured from).
        var newFeedback = await store.GetFeedbackSummaryAsync(model, null, runs.Count > 0 ? runs[0].StartedAt : null, cancellationToken).ConfigureAwait(false);
        double? recentMean = null, baseline = null;
        long recentRatings = 0;
        var aliases = registry.ReadAliases(model);
        if (aliases?.Champion is int champion)
        {
            var promotedAt = aliases.History.LastOrDefault(h => h.Alias == AliasNames.Champion && h.To == champion)?.At;
            var recent = await store.GetFeedbackSummaryAsync(model, champion, promotedAt, cancellationToken).ConfigureAwait(false);
            (recentMean, recentRatings) = (recent.MeanRating, recent.Ratings);
            var all = await store.GetFeedbackSummaryAsync(model, null, null, cancellationToken).ConfigureAwait(false);
            var championAll = await store.GetFeedbackSummaryAsync(model, champion, null, cancellationToken).ConfigureAwait(false);
            long before = all.Ratings - championAll.Ratings;
            if (before > 0 && all.MeanRating is double m && championAll.MeanRating is var cm)
            {
                baseline = (m * all.Ratings - (cm ?? 0) * championAll.Ratings) / before;
            }
        }

        return new TriggerSituation(now, inProgress, lastStarted, lastSuccess, fresh,
            Drift: await LatestDriftAsync(model, aliases?.Champion, cancellationToken).ConfigureAwait(false), NewRatings: newFeedback.Ratings,
            RecentMeanRating: recentMean, RecentRatings: recentRatings, ChampionMeanRating: baseline, ScheduleDue: false, ManualReason: null);
    }

    /// <summary>
    /// The drift score of the newest completed analysis of the current champion, if any: drift is measured
    /// against the champion's training window, so an analysis of an older champion says nothing about this one.
    /// </summary>
    private async Task<double?> LatestDriftAsync(string model, int? champion, CancellationToken cancellationToken)
    {
        if (champion is null)
        {
            return null;
        }

        var analyses = await ledger.ListRunsAsync(model, RunKinds.Analysis, 5, cancellationToken).ConfigureAwait(false);
        var latest = analyses.FirstOrDefault(r => r.Status == RunStatuses.Completed && r.Version == champion);
        return latest?.Directory is { } directory && AnalysisReports.ReadDrift(directory) is double drift ? drift : null;
    }

    /// <summary>A bounded label for a trigger reason (the reason text itself carries numbers).</summary>
    internal static string ReasonKind(string reason) => reason switch
    {
        _ when reason.StartsWith("manual", StringComparison.Ordinal) => "manual",
        _ when reason.StartsWith("schedule", StringComparison.Ordinal) => "schedule",
        _ when reason.Contains("new samples", StringComparison.Ordinal) => "data",
        _ when reason.StartsWith("drift", StringComparison.Ordinal) => "drift",
        _ when reason.Contains("rating", StringComparison.Ordinal) => "feedback",
        _ when reason.Contains("success", StringComparison.Ordinal) => "staleness",
        _ => "other",
    };

    [LoggerMessage(EventId = 820, Level = LogLevel.Information, Message = "Triggers fired for {Model}: {Reasons}")]
    private static partial void LogTriggered(ILogger logger, string model, string reasons);

    [LoggerMessage(EventId = 821, Level = LogLevel.Error, Message = "The loop watch could not evaluate {Model}")]
    private static partial void LogWatchFailed(ILogger logger, string model, Exception exception);
}
