using RetrainDaemon.Data.Store;

namespace RetrainDaemon.Loop;

/// <summary>Rating summaries from the store's feedback (joined to the generations it cites).</summary>
public sealed class StoreFeedbackSummaries(ISampleStore store) : IFeedbackSummaries
{
    public async Task<RatingSummary> SummaryAsync(string model, int version, DateTimeOffset since, CancellationToken cancellationToken)
    {
        var summary = await store.GetFeedbackSummaryAsync(model, version, since, cancellationToken).ConfigureAwait(false);
        return new RatingSummary(summary.Ratings, summary.MeanRating);
    }
}
