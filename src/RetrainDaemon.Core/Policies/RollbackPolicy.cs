using System.Globalization;
using Microsoft.Extensions.Options;

namespace RetrainDaemon.Core.Policies;

/// <summary>
/// Automatic rollback after a promotion (section <c>Models:&lt;m&gt;:Rollback</c>): within
/// <see cref="Window"/> of the promotion, a serving error rate or a mean feedback rating past its bound
/// moves <c>champion</c> back to <c>previous</c>. Each bound is optional (null = off) and needs a minimum
/// of evidence, so three unlucky requests or one angry rater do not undo a good model.
/// </summary>
public sealed class RollbackOptions
{
    /// <summary>How long after a promotion the new champion is watched.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Roll back when failed / all requests to the new champion exceeds this (0–1).</summary>
    public double? MaxErrorRate { get; set; }

    /// <summary>Requests the error rate needs before it counts.</summary>
    public int MinRequests { get; set; } = 100;

    /// <summary>Roll back when the mean rating of the new champion's generations falls below this (1–5).</summary>
    public double? MinMeanRating { get; set; }

    /// <summary>Ratings the mean needs before it counts.</summary>
    public int MinRatings { get; set; } = 20;
}

/// <summary>What is known about a model's champion when rollback is considered.</summary>
/// <param name="Now">The evaluation time.</param>
/// <param name="Champion">The champion version, if any.</param>
/// <param name="Previous">The <c>previous</c> alias (where a rollback goes), if any.</param>
/// <param name="PromotedAt">When the champion was promoted, if known.</param>
/// <param name="Requests">Requests answered by the champion since its promotion.</param>
/// <param name="FailedRequests">Of those, answered with a server error (5xx; client errors are the client's).</param>
/// <param name="Ratings">Feedback ratings of the champion's generations.</param>
/// <param name="MeanRating">Their mean, if any.</param>
public sealed record RollbackSituation(DateTimeOffset Now, int? Champion, int? Previous, DateTimeOffset? PromotedAt, long Requests, long FailedRequests, long Ratings, double? MeanRating);

/// <summary>The decision: roll back to <see cref="To"/> for <see cref="Reason"/>, or keep (with why).</summary>
public sealed record RollbackDecision(bool RollBack, int? To, string Reason);

/// <summary>The automatic-rollback decision (pure; table-tested).</summary>
public static class RollbackPolicy
{
    public static RollbackDecision Decide(RollbackOptions options, RollbackSituation situation)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(situation);
        if (situation.Champion is not int champion)
        {
            return new RollbackDecision(false, null, "no champion");
        }

        if (situation.PromotedAt is not DateTimeOffset promoted || situation.Now - promoted > options.Window)
        {
            return new RollbackDecision(false, null, Format($"v{champion} is past its watch window of {options.Window.TotalMinutes:0.#} min"));
        }

        var breaches = new List<string>();
        if (options.MaxErrorRate is double maxRate && situation.Requests >= options.MinRequests && situation.Requests > 0)
        {
            double rate = (double)situation.FailedRequests / situation.Requests;
            if (rate > maxRate)
            {
                breaches.Add(Format($"error rate {rate:0.###} ({situation.FailedRequests} of {situation.Requests} requests) > {maxRate:0.###}"));
            }
        }

        if (options.MinMeanRating is double minRating && situation.MeanRating is double mean && situation.Ratings >= options.MinRatings && mean < minRating)
        {
            breaches.Add(Format($"mean rating {mean:0.##} over {situation.Ratings} ratings < {minRating:0.##}"));
        }

        if (breaches.Count == 0)
        {
            return new RollbackDecision(false, null, Format($"v{champion} is within its bounds"));
        }

        string why = string.Join("; ", breaches);
        return situation.Previous is int previous
            ? new RollbackDecision(true, previous, Format($"v{champion}: {why}; rolling back to v{previous}"))
            : new RollbackDecision(false, null, Format($"v{champion}: {why}; but there is no previous version to roll back to"));
    }

    private static string Format(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Start-up validation of <see cref="RollbackOptions"/>: every problem at once, naming the key and value.</summary>
public sealed class RollbackOptionsValidator(string section) : IValidateOptions<RollbackOptions>
{
    public ValidateOptionsResult Validate(string? name, RollbackOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        void Fail(string key, object? value, string problem) =>
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{section}:{key} = '{value}': {problem}"));

        if (options.Window <= TimeSpan.Zero)
        {
            Fail(nameof(options.Window), options.Window, "must be positive");
        }

        if (options.MaxErrorRate is double rate && !(rate >= 0 && rate < 1))
        {
            Fail(nameof(options.MaxErrorRate), rate, "must be in [0, 1)");
        }

        if (options.MinRequests < 1)
        {
            Fail(nameof(options.MinRequests), options.MinRequests, "must be at least 1");
        }

        if (options.MinMeanRating is double rating && !(rating > 1 && rating <= 5))
        {
            Fail(nameof(options.MinMeanRating), rating, "must be in (1, 5] on the 1–5 rating scale");
        }

        if (options.MinRatings < 1)
        {
            Fail(nameof(options.MinRatings), options.MinRatings, "must be at least 1");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
