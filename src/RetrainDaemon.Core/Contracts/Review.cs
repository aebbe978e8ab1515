namespace RetrainDaemon.Core.Contracts;

/// <summary>
/// One rating a person gave a generation on the review page, to be published as the data of a
/// <c>retrain.feedback.v1</c> CloudEvent (<c>subject</c> = <see cref="Model"/>).
/// </summary>
/// <param name="EventId">The CloudEvent id, the store's dedupe key: the same click sent twice is stored once.</param>
/// <param name="GenerationId">The id the serving API handed out with the generation (<c>&lt;model&gt;/&lt;version&gt;/&lt;uuid&gt;</c>).</param>
/// <param name="Model">The model the generation came from; also the event's subject.</param>
/// <param name="Version">The version that generated it.</param>
/// <param name="Rating">1 (bad) to 5 (good).</param>
/// <param name="Rater">Who rated, as the feedback schema's <c>rater</c> (e.g. <c>review-page</c>).</param>
public sealed record FeedbackRating(string EventId, string GenerationId, string Model, int Version, int Rating, string Rater);

/// <summary>
/// Publishes feedback through the broker, exactly as an outside producer would, so that it goes the
/// way every rating goes: validated and joined to its generation by ingestion, stored, dead-lettered
/// with a reason when it cites a generation that was never handed out.
/// </summary>
public interface IFeedbackPublisher
{
    /// <summary>Publishes <paramref name="rating"/> and returns once the broker has confirmed it into a queue.</summary>
    /// <exception cref="FeedbackPublishException">Not confirmed: the broker is unreachable, refused the message, or did not confirm in time; the message says which.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    Task PublishAsync(FeedbackRating rating, CancellationToken cancellationToken);
}

/// <summary>A feedback message the broker did not confirm; <see cref="Exception.Message"/> says why (never a password).</summary>
public sealed class FeedbackPublishException : Exception
{
    public FeedbackPublishException()
    {
    }

    public FeedbackPublishException(string message)
        : base(message)
    {
    }

    public FeedbackPublishException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// An error-analysis report on disk: the run folder holding <c>report.json</c> and, normally,
/// <c>report.html</c> (the analysis writes the page before the JSON, so a JSON always has its page).
/// </summary>
/// <param name="Model">The analysed model.</param>
/// <param name="RunId">The analysis run's id (its folder name).</param>
/// <param name="Directory">The run folder (absolute).</param>
/// <param name="WrittenAt">When <c>report.json</c> was last written.</param>
public sealed record AnalysisReportLocation(string Model, string RunId, string Directory, DateTimeOffset WrittenAt)
{
    public const string JsonFileName = "report.json";
    public const string HtmlFileName = "report.html";

    public string JsonPath => Path.Combine(Directory, JsonFileName);

    public string HtmlPath => Path.Combine(Directory, HtmlFileName);
}

/// <summary>Finds the error-analysis reports the loop wrote, for readers that must not know where the loop keeps them (the review page).</summary>
public interface IAnalysisReports
{
    /// <summary>The newest report of <paramref name="model"/>, or null when it has none.</summary>
    AnalysisReportLocation? Latest(string model);
}
