using Quartz;
using RetrainDaemon.Data.Store;

namespace RetrainDaemon.Loop;

/// <summary>
/// The Quartz job of one model's fine-tunes (one durable job per model, key <c>finetune.&lt;model&gt;</c>).
/// Quartz never runs two firings of one job at once — across the whole cluster when the store is clustered —
/// so a firing while a run is in progress waits for it (and the trigger policy does not fire while a run is in
/// progress, so nothing piles up). What a firing does about unfinished runs is <see cref="FineTuneRecovery"/>'s
/// decision.
/// <para>
/// Shutdown. One node (SQLite): the host's stopping token reaches the run at once, training checkpoints and the
/// job returns; the ledger still says "running" and the next start resumes it. Clustered: the job listens to
/// Quartz's token only; the scheduler's shutdown cancels it and the job ends by throwing, so Quartz hands the
/// firing back as a recovery trigger in the shared store and whichever node acquires it first resumes the run
/// from its checkpoint — no node has to come back for the run to finish.
/// </para>
/// </summary>
[DisallowConcurrentExecution]
public sealed partial class FineTuneJob(FineTuneRunner runner, IRunLedger ledger, LoopTopology topology, IHostApplicationLifetime lifetime, ILogger<FineTuneJob> logger) : IJob
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

        var runs = await ledger.ListRunsAsync(model, RunKinds.FineTune, 20, cancellationToken).ConfigureAwait(false);
        var plan = FineTuneRecovery.Decide(data.GetString(ResumeKey), context.Recovering, context.Recovering ? context.ScheduledFireTimeUtc : null, runs, LoopScheduler.MaxAttempts);
        if (context.Recovering)
        {
            LogRecovering(logger, model, plan.Action, plan.RunId, plan.Reason);
        }

        switch (plan.Action)
        {
            case RecoveryAction.Skip:
                context.Result = plan.Reason;
                return;
            case RecoveryAction.CloseFailed:
                await ledger.FinishRunAsync(plan.RunId!, RunStatuses.Failed, null, plan.Reason, cancellationToken).ConfigureAwait(false);
                context.Result = plan.Reason;
                return;
        }

        using var stopping = topology.Clustered
            ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken)
            : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lifetime.ApplicationStopping);
        var outcome = await runner.RunAsync(model, trigger, plan.Action == RecoveryAction.Resume ? plan.RunId : null, stopping.Token).ConfigureAwait(false);
        context.Result = outcome;
        if (topology.Clustered && outcome.Status == RunStatuses.Running && cancellationToken.IsCancellationRequested)
        {
            // Interrupted by the scheduler's shutdown with a checkpoint on the shared runs directory: throwing (rather
            // than returning) is what makes Quartz hand this firing back for another node to recover.
            LogHandedBack(logger, model, outcome.RunId);
            throw new OperationCanceledException($"fine-tune {outcome.RunId} of {model} interrupted by shutdown; handed back for recovery", cancellationToken);
        }
    }

    [LoggerMessage(EventId = 845, Level = LogLevel.Warning, Message = "Recovering an interrupted fine-tune firing of {Model}: {Action} {RunId} ({Reason})")]
    private static partial void LogRecovering(ILogger logger, string model, RecoveryAction action, string? runId, string reason);

    [LoggerMessage(EventId = 846, Level = LogLevel.Information, Message = "Fine-tune {RunId} of {Model} interrupted by shutdown: handed back to the cluster, another node resumes it from its checkpoint")]
    private static partial void LogHandedBack(ILogger logger, string model, string runId);
}

/// <summary>Whether the loop's scheduler is clustered (its store is the shared PostgreSQL database).</summary>
public sealed record LoopTopology(bool Clustered);
