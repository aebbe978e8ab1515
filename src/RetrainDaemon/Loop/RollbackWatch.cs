using Quartz;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Policies;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Messaging.Events;

namespace RetrainDaemon.Loop;

/// <summary>
/// Automatic rollback: within <see cref="RollbackOptions.Window"/> of a promotion, when the new
/// champion's serving error rate or its mean feedback rating crosses its bound (with enough evidence),
/// <c>champion</c> moves back to <c>previous</c>, the reason goes into the alias history, serving is told
/// at once, and <c>model.rolled_back</c> is published.
/// </summary>
public sealed partial class RollbackWatch(
    ModelRegistry registry,
    ServingOutcomes outcomes,
    IFeedbackSummaries feedback,
    LoopMetrics metrics,
    ILogger<RollbackWatch> logger,
    IModelChangeNotifier? serving = null,
    ModelEventPublisher? events = null,
    TimeProvider? clock = null)
{
    private readonly TimeProvider time = clock ?? TimeProvider.System;

    public async Task<RollbackDecision?> CheckAsync(string model, ModelOptions options, CancellationToken cancellationToken)
    {
        var rollback = options.Rollback;
        if (rollback.MaxErrorRate is null && rollback.MinMeanRating is null)
        {
            return null;
        }

        var aliases = registry.ReadAliases(model);
        if (aliases?.Champion is not int champion)
        {
            return null;
        }

        // The promotion that made this version champion (the newest alias change that set it).
        var promotion = aliases.History.LastOrDefault(h => h.Alias == AliasNames.Champion && h.To == champion);
        if (promotion is null || promotion.Action == AliasActions.Rollback)
        {
            // A champion that came back by a rollback is the known-good one: nothing to watch.
            return null;
        }

        var served = outcomes.Count(model, champion);
        var ratings = await feedback.SummaryAsync(model, champion, promotion.At, cancellationToken).ConfigureAwait(false);
        var situation = new RollbackSituation(time.GetUtcNow(), champion, aliases.Previous, promotion.At, served.Requests, served.Failed, ratings.Ratings, ratings.MeanRating);
        var decision = RollbackPolicy.Decide(rollback, situation);
        if (!decision.RollBack)
        {
            return decision;
        }

        var after = registry.Rollback(model, $"automatic rollback: {decision.Reason}");
        metrics.Rollbacks.WithLabels(model).Inc();
        metrics.ShowChampion(registry, model, options);
        LogRolledBack(logger, model, champion, after.Champion, decision.Reason);
        serving?.Notify(model);
        if (events is not null && after.Champion is int restored)
        {
            var published = await events.PublishAsync(ModelEventCodec.EncodeRolledBack(new ModelRolledBackData(model, champion, restored, decision.Reason)), cancellationToken).ConfigureAwait(false);
            if (!published.Published)
            {
                LogEventLost(logger, model, published.Problem);
            }
        }

        return decision;
    }

    [LoggerMessage(EventId = 830, Level = LogLevel.Warning, Message = "Automatic rollback of {Model}: v{From} → v{To}: {Reason}")]
    private static partial void LogRolledBack(ILogger logger, string model, int from, int? to, string reason);

    [LoggerMessage(EventId = 831, Level = LogLevel.Warning, Message = "The model.rolled_back event of {Model} was not published: {Problem}")]
    private static partial void LogEventLost(ILogger logger, string model, string? problem);
}

/// <summary>Ratings of one model version's generations since a time (the rollback watch's evidence).</summary>
public readonly record struct RatingSummary(long Ratings, double? MeanRating);

/// <summary>Reads rating summaries from the feedback the store joined to generations.</summary>
public interface IFeedbackSummaries
{
    Task<RatingSummary> SummaryAsync(string model, int version, DateTimeOffset since, CancellationToken cancellationToken);
}
