namespace RetrainDaemon.Data.Store;

/// <summary>
/// The run ledger: every fine-tune and error-analysis run, its trigger, its stages with timings and
/// its outcome. A run that is still <see cref="RunStatuses.Running"/> when the daemon starts was
/// interrupted (crash, SIGTERM) and is resumed or marked failed — never left dangling.
/// </summary>
public interface IRunLedger
{
    /// <summary>Records a new run as running (attempt 1).</summary>
    Task StartRunAsync(RunStart run, CancellationToken cancellationToken);

    /// <summary>Counts one more attempt of an interrupted run that is being resumed; returns the attempt number.</summary>
    Task<int> ResumeRunAsync(string runId, CancellationToken cancellationToken);

    /// <summary>Fixes the snapshot a run trains on (so a resumed attempt reads the same data).</summary>
    Task SetSnapshotAsync(string runId, long watermark, long previousWatermark, int? parentVersion, CancellationToken cancellationToken);

    Task BeginStageAsync(string runId, int attempt, string stage, CancellationToken cancellationToken);

    Task EndStageAsync(string runId, int attempt, string stage, string outcome, string? detail, CancellationToken cancellationToken);

    /// <summary>Closes a run with its final status (never <see cref="RunStatuses.Running"/>).</summary>
    Task FinishRunAsync(string runId, string status, int? version, string? detail, CancellationToken cancellationToken);

    Task<RunRecord?> GetRunAsync(string runId, CancellationToken cancellationToken);

    /// <summary>Newest first, optionally of one model and/or kind.</summary>
    Task<IReadOnlyList<RunRecord>> ListRunsAsync(string? model, string? kind, int limit, CancellationToken cancellationToken);

    /// <summary>Runs still marked running (after a crash: the interrupted ones).</summary>
    Task<IReadOnlyList<RunRecord>> ListUnfinishedRunsAsync(CancellationToken cancellationToken);
}

/// <summary>What starts a run.</summary>
/// <param name="Trigger">Why it started: the trigger policy's reasons, "manual", "schedule".</param>
public sealed record RunStart(string RunId, string Model, string Kind, string Trigger, DateTimeOffset StartedAt, string? Directory);

/// <summary>A run as recorded. Stages are in the order they started, across attempts.</summary>
public sealed record RunRecord(
    string RunId,
    string Model,
    string Kind,
    string Status,
    string Trigger,
    DateTimeOffset StartedAt,
    DateTimeOffset? FinishedAt,
    long? Watermark,
    long? PreviousWatermark,
    int? ParentVersion,
    int? Version,
    string? Directory,
    string? Detail,
    int Attempts,
    IReadOnlyList<RunStageRecord> Stages)
{
    public TimeSpan? Duration => FinishedAt - StartedAt;
}

public sealed record RunStageRecord(int Attempt, string Stage, DateTimeOffset StartedAt, DateTimeOffset? FinishedAt, string? Outcome, string? Detail)
{
    public TimeSpan? Duration => FinishedAt - StartedAt;
}

public static class RunKinds
{
    public const string FineTune = "finetune";
    public const string Analysis = "analysis";
}

public static class RunStatuses
{
    public const string Running = "running";

    /// <summary>A fine-tune whose candidate passed the gate and became champion.</summary>
    public const string Promoted = "promoted";

    /// <summary>A fine-tune whose candidate failed the gate (recorded in the registry as rejected).</summary>
    public const string Rejected = "rejected";

    /// <summary>An error, an interruption that could not be resumed, a non-finite loss: nothing promoted.</summary>
    public const string Failed = "failed";

    /// <summary>Not worth running (too little data): a reason, not a failure.</summary>
    public const string Skipped = "skipped";

    /// <summary>An analysis that wrote its report.</summary>
    public const string Completed = "completed";

    public static bool IsFinal(string status) => status != Running;
}

public static class StageOutcomes
{
    public const string Ok = "ok";
    public const string Failed = "failed";
    public const string Skipped = "skipped";
    public const string Interrupted = "interrupted";
}

/// <summary>Cheap counts the loop's trigger policy asks for every few seconds.</summary>
public interface ILoopQueries
{
    /// <summary>Samples of <paramref name="model"/> with sequence &gt; <paramref name="afterSequence"/>.</summary>
    Task<long> CountSamplesAfterAsync(string model, long afterSequence, CancellationToken cancellationToken);
}

/// <summary>Facts derived from a model's run history (pure).</summary>
public static class RunHistory
{
    /// <summary>
    /// Gate rejections since the newest promotion, runs given newest first: skipped and failed runs neither
    /// count nor break the series (the gate did not judge them).
    /// </summary>
    public static int ConsecutiveRejections(IEnumerable<RunRecord> newestFirst) =>
        newestFirst.Where(r => r.Status is RunStatuses.Promoted or RunStatuses.Rejected).TakeWhile(r => r.Status == RunStatuses.Rejected).Count();
}
