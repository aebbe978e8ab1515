using RetrainDaemon.Core.Policies;

namespace RetrainDaemon.UnitTests;

/// <summary>The fine-tune trigger decision as a table: each trigger alone, several at once, and what holds a run back.</summary>
public sealed class TriggerPolicyTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);

    private static TriggerOptions All() => new()
    {
        MinNewSamples = 1000,
        MaxDrift = 5.0,
        MinNewRatings = 50,
        MaxRatingDrop = 0.5,
        MinRatingsForDrop = 20,
        MaxStaleness = TimeSpan.FromDays(7),
        Cooldown = TimeSpan.FromMinutes(10),
    };

    /// <summary>A quiet model: recent success, nothing new.</summary>
    private static TriggerSituation Quiet() => new(Now, RunInProgress: false, LastRunStartedAt: Now.AddHours(-2), LastSuccessAt: Now.AddHours(-1),
        NewSamples: 10, Drift: 1.0, NewRatings: 3, RecentMeanRating: 4.0, RecentRatings: 30, ChampionMeanRating: 4.2, ScheduleDue: false, ManualReason: null);

    public static TheoryData<string, TriggerSituation, bool, string[]> Cases => new()
    {
        { "nothing fired", Quiet(), false, [] },
        { "samples below the bound", Quiet() with { NewSamples = 999 }, false, [] },
        { "samples at the bound", Quiet() with { NewSamples = 1000 }, true, ["1000 new samples ≥ 1000"] },
        { "drift at the bound does not fire", Quiet() with { Drift = 5.0 }, false, [] },
        { "drift above", Quiet() with { Drift = 5.5 }, true, ["drift 5.5 > 5"] },
        { "drift unknown", Quiet() with { Drift = null }, false, [] },
        { "ratings", Quiet() with { NewRatings = 50 }, true, ["50 new ratings ≥ 50"] },
        { "rating drop", Quiet() with { RecentMeanRating = 3.6 }, true, ["mean rating fell 0.6 (from 4.2 to 3.6 over 30 ratings) > 0.5"] },
        { "rating drop on too few ratings", Quiet() with { RecentMeanRating = 2.0, RecentRatings = 19 }, false, [] },
        { "rating drop without a baseline", Quiet() with { RecentMeanRating = 1.0, ChampionMeanRating = null }, false, [] },
        { "stale", Quiet() with { LastSuccessAt = Now.AddDays(-8), LastRunStartedAt = Now.AddDays(-8) }, true, ["last success 192 h ago > 168 h"] },
        { "never succeeded", Quiet() with { LastSuccessAt = null }, true, ["no successful run yet (staleness bound)"] },
        { "schedule", Quiet() with { ScheduleDue = true }, true, ["schedule"] },
        { "manual", Quiet() with { ManualReason = "retrain --model m" }, true, ["manual: retrain --model m"] },
        {
            "several at once start one run listing all", Quiet() with { NewSamples = 5000, Drift = 9, ScheduleDue = true },
            true, ["schedule", "5000 new samples ≥ 1000", "drift 9 > 5"]
        },
        { "in progress holds everything", Quiet() with { NewSamples = 5000, RunInProgress = true }, false, ["5000 new samples ≥ 1000"] },
        { "in progress holds a manual request too", Quiet() with { ManualReason = "admin", RunInProgress = true }, false, ["manual: admin"] },
        { "cooldown holds automatic triggers", Quiet() with { NewSamples = 5000, LastRunStartedAt = Now.AddMinutes(-5) }, false, ["5000 new samples ≥ 1000"] },
        { "cooldown does not hold a manual request", Quiet() with { ManualReason = "admin", LastRunStartedAt = Now.AddMinutes(-5) }, true, ["manual: admin"] },
        { "first run ever (no previous start)", Quiet() with { NewSamples = 1000, LastRunStartedAt = null, LastSuccessAt = null }, true, ["1000 new samples ≥ 1000", "no successful run yet (staleness bound)"] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decide(string because, TriggerSituation situation, bool start, string[] reasons)
    {
        var decision = TriggerPolicy.Decide(All(), situation);
        Assert.True(start == decision.Start, $"{because}: {decision}");
        Assert.Equal(reasons, decision.Reasons);
        Assert.Equal(start, decision.NotStartedBecause is null);
    }

    [Fact]
    public void Disabled_triggers_never_fire()
    {
        var loud = Quiet() with { NewSamples = long.MaxValue, Drift = 1e9, NewRatings = long.MaxValue, RecentMeanRating = 1, LastSuccessAt = null };
        var decision = TriggerPolicy.Decide(new TriggerOptions(), loud);
        Assert.False(decision.Start);
        Assert.Equal("no trigger fired", decision.NotStartedBecause);
    }

    [Fact]
    public void The_reason_for_waiting_is_readable()
    {
        Assert.Contains("cooldown: the previous run started 5 min ago (< 10 min)",
            TriggerPolicy.Decide(All(), Quiet() with { NewSamples = 5000, LastRunStartedAt = Now.AddMinutes(-5) }).NotStartedBecause, StringComparison.Ordinal);
        Assert.Contains("in progress", TriggerPolicy.Decide(All(), Quiet() with { ScheduleDue = true, RunInProgress = true }).NotStartedBecause, StringComparison.Ordinal);
    }

    [Fact]
    public void Validator_lists_every_bad_key()
    {
        var bad = new TriggerOptions
        {
            MinNewSamples = 0, MaxDrift = double.NaN, MinNewRatings = -1, MaxRatingDrop = 4, MinRatingsForDrop = 0,
            MaxStaleness = TimeSpan.Zero, Cooldown = TimeSpan.FromSeconds(-1),
        };
        var result = new TriggerOptionsValidator("Models:m:Triggers").Validate(null, bad);
        Assert.True(result.Failed);
        var failures = result.Failures!.ToList();
        Assert.Equal(7, failures.Count);
        foreach (string key in new[] { "MinNewSamples = '0'", "MaxDrift = 'NaN'", "MinNewRatings = '-1'", "MaxRatingDrop = '4'", "MinRatingsForDrop = '0'", "MaxStaleness = '00:00:00'", "Cooldown = '-00:00:01'" })
        {
            Assert.Contains(failures, f => f.StartsWith("Models:m:Triggers:" + key, StringComparison.Ordinal));
        }

        Assert.True(new TriggerOptionsValidator("x").Validate(null, All()).Succeeded);
        Assert.True(new TriggerOptionsValidator("x").Validate(null, new TriggerOptions()).Succeeded);
    }
}
