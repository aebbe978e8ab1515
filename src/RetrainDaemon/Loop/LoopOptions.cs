using Microsoft.Extensions.Options;

namespace RetrainDaemon.Loop;

/// <summary>The continuous loop (section <c>Loop</c>): where runs live, how often triggers are looked at.</summary>
public sealed class LoopOptions
{
    public const string Section = "Loop";

    /// <summary>Whether <c>run</c> schedules fine-tunes and analyses at all (ingestion and serving run either way).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How often the trigger policy and the rollback policy are evaluated for every model.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Run directories (checkpoints, candidate ONNX files, samples, loss curves): <c>&lt;dir&gt;/&lt;run id&gt;</c>.</summary>
    public string RunsDirectory { get; set; } = "state/runs";

    /// <summary>Error-analysis reports: <c>&lt;dir&gt;/&lt;model&gt;/&lt;run id&gt;/report.json|html</c>.</summary>
    public string AnalysisDirectory { get; set; } = "state/analysis";

    /// <summary>
    /// Quartz's persistent job store when the store is SQLite (one node): schedules, misfires and interrupted jobs
    /// survive restarts. With <c>Store:Provider=postgres</c> Quartz keeps its tables in that database instead,
    /// clustered, and this path is not used.
    /// </summary>
    public string SchedulerStore { get; set; } = "state/scheduler.db";

    /// <summary>Clustered scheduler (PostgreSQL store): how often each node records in the database that it is alive.</summary>
    public TimeSpan ClusterCheckinInterval { get; set; } = TimeSpan.FromSeconds(7.5);

    /// <summary>
    /// Clustered scheduler: how long past a missed check-in the other nodes wait before they declare a node dead and
    /// recover its runs (a dead node's fine-tune resumes elsewhere after about interval + threshold).
    /// </summary>
    public TimeSpan ClusterCheckinMisfireThreshold { get; set; } = TimeSpan.FromSeconds(7.5);

    /// <summary>A fired trigger later than this is a misfire (handled by firing once, not once per missed slot).</summary>
    public TimeSpan MisfireThreshold { get; set; } = TimeSpan.FromSeconds(30);
}

public sealed class LoopOptionsValidator : IValidateOptions<LoopOptions>
{
    public ValidateOptionsResult Validate(string? name, LoopOptions options)
    {
        var failures = new List<string>();
        void Fail(string key, object? value, string problem) =>
            failures.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{LoopOptions.Section}:{key} = '{value}': {problem}"));

        if (options.CheckInterval < TimeSpan.FromSeconds(1))
        {
            Fail(nameof(options.CheckInterval), options.CheckInterval, "must be at least 1 second (Quartz's idle wait is 1 s)");
        }

        if (options.MisfireThreshold < TimeSpan.FromSeconds(1))
        {
            Fail(nameof(options.MisfireThreshold), options.MisfireThreshold, "must be at least 1 second");
        }

        foreach (var (key, value) in new[] { (nameof(options.ClusterCheckinInterval), options.ClusterCheckinInterval), (nameof(options.ClusterCheckinMisfireThreshold), options.ClusterCheckinMisfireThreshold) })
        {
            if (value < TimeSpan.FromSeconds(1))
            {
                Fail(key, value, "must be at least 1 second (a shorter check-in loads the database for nothing and a shorter threshold declares busy nodes dead)");
            }
        }

        foreach (var (key, value) in new[] { (nameof(options.RunsDirectory), options.RunsDirectory), (nameof(options.AnalysisDirectory), options.AnalysisDirectory), (nameof(options.SchedulerStore), options.SchedulerStore) })
        {
            if (string.IsNullOrWhiteSpace(value))
            {
                Fail(key, value, "must name a path");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
