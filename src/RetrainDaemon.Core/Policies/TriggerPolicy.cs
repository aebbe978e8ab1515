using System.Globalization;
using Microsoft.Extensions.Options;

namespace RetrainDaemon.Core.Policies;

/// <summary>
/// When a model's fine-tune should start (section <c>Models:&lt;m&gt;:Triggers</c>). Every trigger is
/// optional (null = off); the cron schedule itself is Quartz's to parse and fire — the policy only
/// hears that it did (<see cref="TriggerSituation.ScheduleDue"/>).
/// </summary>
public sealed class TriggerOptions
{
    /// <summary>Start when at least this many samples arrived since the last run's watermark.</summary>
    public int? MinNewSamples { get; set; }

    /// <summary>Start when the drift score of fresh data against the training window exceeds this.</summary>
    public double? MaxDrift { get; set; }

    /// <summary>Start when at least this many feedback ratings arrived since the last run.</summary>
    public int? MinNewRatings { get; set; }

    /// <summary>Start when the recent mean rating fell by more than this (on the 1–5 scale) below the champion's mean at promotion.</summary>
    public double? MaxRatingDrop { get; set; }

    /// <summary>Ratings the recent mean needs before a drop counts (a single bad rating is not a trend).</summary>
    public int MinRatingsForDrop { get; set; } = 20;

    /// <summary>Start when the last successful run is older than this, whatever else holds.</summary>
    public TimeSpan? MaxStaleness { get; set; }

    /// <summary>No automatic start within this long after the previous run started (manual requests are exempt).</summary>
    public TimeSpan Cooldown { get; set; } = TimeSpan.FromMinutes(10);
}

/// <summary>What is known about one model when triggers are evaluated.</summary>
/// <param name="Now">The evaluation time.</param>
/// <param name="RunInProgress">A fine-tune of this model is running (Quartz also forbids overlap; this keeps the decision honest).</param>
/// <param name="LastRunStartedAt">When the previous run (any outcome) started, if any.</param>
/// <param name="LastSuccessAt">When the last run that produced a champion finished, if any.</param>
/// <param name="NewSamples">Samples stored after the last run's watermark (all samples when there was no run).</param>
/// <param name="Drift">The latest drift score of fresh data, if analysed.</param>
/// <param name="NewRatings">Feedback ratings since the last run.</param>
/// <param name="RecentMeanRating">Mean of the ratings since the champion's promotion, if any.</param>
/// <param name="RecentRatings">How many ratings <paramref name="RecentMeanRating"/> averages.</param>
/// <param name="ChampionMeanRating">Mean rating the champion had when promoted (its baseline), if known.</param>
/// <param name="ScheduleDue">The model's cron schedule fired.</param>
/// <param name="ManualReason">A manual request (<c>retrain --model m</c>, admin route) with who/why, if any.</param>
public sealed record TriggerSituation(
    DateTimeOffset Now,
    bool RunInProgress,
    DateTimeOffset? LastRunStartedAt,
    DateTimeOffset? LastSuccessAt,
    long NewSamples,
    double? Drift,
    long NewRatings,
    double? RecentMeanRating,
    long RecentRatings,
    double? ChampionMeanRating,
    bool ScheduleDue,
    string? ManualReason);

/// <summary>The decision: start one run for every reason that fired, or say why not.</summary>
public sealed record TriggerDecision(bool Start, IReadOnlyList<string> Reasons, string? NotStartedBecause)
{
    public override string ToString() => Start ? $"start: {string.Join("; ", Reasons)}" : $"wait: {NotStartedBecause}";
}

/// <summary>
/// The trigger decision (pure; table-tested). Several triggers firing together start ONE run that lists
/// them all; nothing starts while a run is in progress; automatic triggers respect the cooldown after the
/// previous start, a manual request does not.
/// </summary>
public static class TriggerPolicy
{
    public static TriggerDecision Decide(TriggerOptions options, TriggerSituation situation)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(situation);
        var reasons = new List<string>();
        if (situation.ManualReason is { } manual)
        {
            reasons.Add($"manual: {manual}");
        }

        if (situation.ScheduleDue)
        {
            reasons.Add("schedule");
        }

        if (options.MinNewSamples is int minSamples && situation.NewSamples >= minSamples)
        {
            reasons.Add(Format($"{situation.NewSamples} new samples ≥ {minSamples}"));
        }

        if (options.MaxDrift is double maxDrift && situation.Drift is double drift && drift > maxDrift)
        {
            reasons.Add(Format($"drift {drift:0.###} > {maxDrift:0.###}"));
        }

        if (options.MinNewRatings is int minRatings && situation.NewRatings >= minRatings)
        {
            reasons.Add(Format($"{situation.NewRatings} new ratings ≥ {minRatings}"));
        }

        if (options.MaxRatingDrop is double maxDrop && situation.RecentMeanRating is double recent && situation.ChampionMeanRating is double baseline
            && situation.RecentRatings >= options.MinRatingsForDrop && baseline - recent > maxDrop)
        {
            reasons.Add(Format($"mean rating fell {baseline - recent:0.##} (from {baseline:0.##} to {recent:0.##} over {situation.RecentRatings} ratings) > {maxDrop:0.##}"));
        }

        if (options.MaxStaleness is TimeSpan staleness)
        {
            if (situation.LastSuccessAt is not DateTimeOffset success)
            {
                reasons.Add("no successful run yet (staleness bound)");
            }
            else if (situation.Now - success > staleness)
            {
                reasons.Add(Format($"last success {(situation.Now - success).TotalHours:0.#} h ago > {staleness.TotalHours:0.#} h"));
            }
        }

        if (reasons.Count == 0)
        {
            return new TriggerDecision(false, [], "no trigger fired");
        }

        if (situation.RunInProgress)
        {
            return new TriggerDecision(false, reasons, "a run of this model is in progress; its triggers are evaluated again after it");
        }

        if (situation.ManualReason is null && situation.LastRunStartedAt is DateTimeOffset last && situation.Now - last < options.Cooldown)
        {
            return new TriggerDecision(false, reasons, Format($"cooldown: the previous run started {(situation.Now - last).TotalMinutes:0.#} min ago (< {options.Cooldown.TotalMinutes:0.#} min)"));
        }

        return new TriggerDecision(true, reasons, null);
    }

    private static string Format(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Start-up validation of <see cref="TriggerOptions"/>: every problem at once, naming the key and value.</summary>
public sealed class TriggerOptionsValidator(string section) : IValidateOptions<TriggerOptions>
{
    public ValidateOptionsResult Validate(string? name, TriggerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        void Fail(string key, object? value, string problem) =>
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{section}:{key} = '{value}': {problem}"));

        if (options.MinNewSamples is < 1)
        {
            Fail(nameof(options.MinNewSamples), options.MinNewSamples, "must be at least 1 (leave it out to disable)");
        }

        if (options.MaxDrift is double drift && !(drift > 0 && double.IsFinite(drift)))
        {
            Fail(nameof(options.MaxDrift), drift, "must be a positive finite number");
        }

        if (options.MinNewRatings is < 1)
        {
            Fail(nameof(options.MinNewRatings), options.MinNewRatings, "must be at least 1 (leave it out to disable)");
        }

        if (options.MaxRatingDrop is double drop && !(drop > 0 && drop < 4))
        {
            Fail(nameof(options.MaxRatingDrop), drop, "must be in (0, 4) on the 1–5 rating scale");
        }

        if (options.MinRatingsForDrop < 1)
        {
            Fail(nameof(options.MinRatingsForDrop), options.MinRatingsForDrop, "must be at least 1");
        }

        if (options.MaxStaleness is TimeSpan staleness && staleness <= TimeSpan.Zero)
        {
            Fail(nameof(options.MaxStaleness), staleness, "must be positive");
        }

        if (options.Cooldown < TimeSpan.Zero)
        {
            Fail(nameof(options.Cooldown), options.Cooldown, "must not be negative");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
