namespace RetrainDaemon.Data.Store;

/// <summary>What a firing of a model's fine-tune job does about runs that did not finish.</summary>
public enum RecoveryAction
{
    /// <summary>A new run on a new snapshot.</summary>
    StartNew,

    /// <summary>Resume the interrupted run from its checkpoint (same run id, same snapshot).</summary>
    Resume,

    /// <summary>Close the interrupted run as failed: it was interrupted in every one of its allowed attempts.</summary>
    CloseFailed,

    /// <summary>Nothing to do: the run this firing stands for already finished.</summary>
    Skip,
}

public sealed record RecoveryPlan(RecoveryAction Action, string? RunId, string Reason);

/// <summary>
/// Decides what a fine-tune firing does (pure, table-tested). Three kinds of firing meet here: an ordinary one
/// (cron, a trigger policy, manual) starts a run; one that names a run (the single-node start-up recovery from
/// the ledger) resumes it; and a Quartz recovery firing (<c>Recovering</c>: a clustered node died, or a shutdown
/// handed the firing back) stands for an execution that may have got anywhere — before its run was recorded
/// (start a run), mid-run (resume it), or after the run finished and before Quartz heard (nothing left to do).
/// </summary>
public static class FineTuneRecovery
{
    /// <param name="resumeRunId">The run the firing names, if any.</param>
    /// <param name="recovering">Quartz's <c>IJobExecutionContext.Recovering</c>.</param>
    /// <param name="firedAt">For a recovery firing, when the interrupted execution fired (its recovery trigger's fire time).</param>
    /// <param name="runsNewestFirst">This model's fine-tune runs, newest first.</param>
    /// <param name="maxAttempts">Attempts after which an interrupted run is closed instead of resumed again.</param>
    public static RecoveryPlan Decide(string? resumeRunId, bool recovering, DateTimeOffset? firedAt, IReadOnlyList<RunRecord> runsNewestFirst, int maxAttempts)
    {
        ArgumentNullException.ThrowIfNull(runsNewestFirst);
        if (resumeRunId is not null)
        {
            var named = runsNewestFirst.FirstOrDefault(r => r.RunId == resumeRunId);
            return named switch
            {
                null => new(RecoveryAction.Resume, resumeRunId, "resume requested by run id"),
                { Status: not RunStatuses.Running } => new(RecoveryAction.Skip, named.RunId, $"run {named.RunId} already finished ({named.Status})"),
                _ => Interrupted(named, maxAttempts),
            };
        }

        if (!recovering)
        {
            return new(RecoveryAction.StartNew, null, "a new firing");
        }

        if (runsNewestFirst.FirstOrDefault(r => r.Status == RunStatuses.Running) is { } unfinished)
        {
            return Interrupted(unfinished, maxAttempts);
        }

        // No run is open. Either the interrupted execution finished its run before its node died (a run started at
        // or after it fired exists), or it died before it recorded one: then the firing's work is still to do.
        if (firedAt is DateTimeOffset fired && runsNewestFirst.FirstOrDefault(r => r.StartedAt >= fired.AddSeconds(-1)) is { } finished)
        {
            return new(RecoveryAction.Skip, finished.RunId, $"the interrupted firing's run {finished.RunId} already finished ({finished.Status})");
        }

        return new(RecoveryAction.StartNew, null, "the interrupted firing had not started its run");
    }

    private static RecoveryPlan Interrupted(RunRecord run, int maxAttempts) => run.Attempts >= maxAttempts
        ? new(RecoveryAction.CloseFailed, run.RunId, $"interrupted in each of its {run.Attempts} attempts (a crash loop?); not resumed again")
        : new(RecoveryAction.Resume, run.RunId, $"interrupted after attempt {run.Attempts}; resumed from its checkpoint");
}
