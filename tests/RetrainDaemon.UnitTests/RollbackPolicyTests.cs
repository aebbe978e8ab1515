using RetrainDaemon.Core.Policies;

namespace RetrainDaemon.UnitTests;

/// <summary>The automatic-rollback decision as a table.</summary>
public sealed class RollbackPolicyTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);

    private static readonly RollbackOptions Options = new()
    {
        Window = TimeSpan.FromHours(1),
        MaxErrorRate = 0.05,
        MinRequests = 100,
        MinMeanRating = 2.5,
        MinRatings = 20,
    };

    /// <summary>v7 promoted 10 minutes ago over v6, healthy.</summary>
    private static RollbackSituation Healthy() => new(Now, Champion: 7, Previous: 6, PromotedAt: Now.AddMinutes(-10), Requests: 1000, FailedRequests: 10, Ratings: 40, MeanRating: 3.8);

    public static TheoryData<string, RollbackSituation, bool, string> Cases => new()
    {
        { "healthy", Healthy(), false, "v7 is within its bounds" },
        { "errors at the bound", Healthy() with { FailedRequests = 50 }, false, "v7 is within its bounds" },
        { "errors above", Healthy() with { FailedRequests = 51 }, true, "v7: error rate 0.051 (51 of 1000 requests) > 0.05; rolling back to v6" },
        { "errors on too few requests", Healthy() with { Requests = 99, FailedRequests = 99 }, false, "v7 is within its bounds" },
        { "low ratings", Healthy() with { MeanRating = 2.2 }, true, "v7: mean rating 2.2 over 40 ratings < 2.5; rolling back to v6" },
        { "low ratings from too few raters", Healthy() with { Ratings = 19, MeanRating = 1.0 }, false, "v7 is within its bounds" },
        {
            "both", Healthy() with { FailedRequests = 500, MeanRating = 1.5 }, true,
            "v7: error rate 0.5 (500 of 1000 requests) > 0.05; mean rating 1.5 over 40 ratings < 2.5; rolling back to v6"
        },
        { "past the window", Healthy() with { PromotedAt = Now.AddHours(-2), MeanRating = 1.0 }, false, "v7 is past its watch window of 60 min" },
        { "unknown promotion time", Healthy() with { PromotedAt = null, MeanRating = 1.0 }, false, "v7 is past its watch window of 60 min" },
        { "nowhere to go", Healthy() with { Previous = null, MeanRating = 1.0 }, false, "v7: mean rating 1 over 40 ratings < 2.5; but there is no previous version to roll back to" },
        { "no champion", Healthy() with { Champion = null }, false, "no champion" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decide(string because, RollbackSituation situation, bool rollBack, string reason)
    {
        var decision = RollbackPolicy.Decide(Options, situation);
        Assert.True(rollBack == decision.RollBack, $"{because}: {decision}");
        Assert.Equal(reason, decision.Reason);
        Assert.Equal(rollBack ? situation.Previous : null, decision.To);
    }

    [Fact]
    public void Disabled_bounds_never_roll_back()
    {
        var decision = RollbackPolicy.Decide(new RollbackOptions(), Healthy() with { FailedRequests = 1000, MeanRating = 1.0 });
        Assert.False(decision.RollBack);
    }

    [Fact]
    public void Validator_lists_every_bad_key()
    {
        var bad = new RollbackOptions { Window = TimeSpan.Zero, MaxErrorRate = 1.0, MinRequests = 0, MinMeanRating = 6, MinRatings = 0 };
        var failures = new RollbackOptionsValidator("Models:m:Rollback").Validate(null, bad).Failures!.ToList();
        Assert.Equal(5, failures.Count);
        Assert.All(failures, f => Assert.StartsWith("Models:m:Rollback:", f, StringComparison.Ordinal));
        Assert.True(new RollbackOptionsValidator("x").Validate(null, Options).Succeeded);
    }
}
