using Prometheus;
using RetrainDaemon.Core.Observability;
using RetrainDaemon.Data.Store;

namespace RetrainDaemon.Messaging.Ingestion;

/// <summary>The ingestion stage's Prometheus series (names in <see cref="MetricNames"/>).</summary>
public sealed class IngestMetrics
{
    private static readonly Counter Messages = Metrics.CreateCounter(
        MetricNames.IngestMessages,
        "Ingested messages by model, event type, result (stored/duplicate/rejected) and reject reason.",
        new CounterConfiguration { LabelNames = ["model", "type", "result", "reason"] });

    private static readonly Histogram CommitSeconds = Metrics.CreateHistogram(
        MetricNames.IngestCommitSeconds,
        "Duration of one store commit (one transaction, one fsync) of an ingest batch.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 14) });

    private static readonly Histogram BatchMessages = Metrics.CreateHistogram(
        MetricNames.IngestBatchSize,
        "Messages per committed ingest batch.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(1, 2, 12) });

    private static readonly Counter StoreRetries = Metrics.CreateCounter(
        MetricNames.IngestStoreRetries, "Commits retried because the store was unavailable.");

    private static readonly Gauge StoredSamples = Metrics.CreateGauge(
        MetricNames.StoreSamples, "Samples in the store by model and split.",
        new GaugeConfiguration { LabelNames = ["model", "split"] });

    private static readonly Gauge StoredFeedback = Metrics.CreateGauge(
        MetricNames.StoreFeedback, "Feedback events in the store by model.",
        new GaugeConfiguration { LabelNames = ["model"] });

    /// <summary>
    /// Creates the zero series of every model's ingest counter and the batch histograms, so <c>rate()</c>
    /// (the ingestion-stalled alert) sees them before the first message (prometheus-net exports a labelled
    /// series only once it is used).
    /// </summary>
    public void Initialize(IEnumerable<string> models)
    {
        ArgumentNullException.ThrowIfNull(models);
        foreach (string model in models)
        {
            Messages.WithLabels(model, "sample", MetricNames.Results.Stored, "");
            Messages.WithLabels(model, "feedback", MetricNames.Results.Stored, "");
        }

        CommitSeconds.Publish();
        BatchMessages.Publish();
        StoreRetries.Publish();
    }

    public void Stored(string model, string type) => Messages.WithLabels(model, type, MetricNames.Results.Stored, "").Inc();

    public void Duplicate(string model, string type) => Messages.WithLabels(model, type, MetricNames.Results.Duplicate, "").Inc();

    public void Rejected(string model, string type, string reason) => Messages.WithLabels(model, type, MetricNames.Results.Rejected, reason).Inc();

    public void Commit(TimeSpan duration, int messages)
    {
        CommitSeconds.Observe(duration.TotalSeconds);
        BatchMessages.Observe(messages);
    }

    public void StoreRetry() => StoreRetries.Inc();

    public void SampleAdded(string model, string split) => StoredSamples.WithLabels(model, split).Inc();

    public void FeedbackAdded(string model) => StoredFeedback.WithLabels(model).Inc();

    /// <summary>Seeds the store gauges from the store's counts at start-up.</summary>
    public void Seed(StoreStats stats)
    {
        foreach (var group in stats.Samples.GroupBy(s => (s.Model, s.Split)))
        {
            StoredSamples.WithLabels(group.Key.Model, group.Key.Split).Set(group.Sum(s => s.Count));
        }

        foreach (var feedback in stats.Feedback)
        {
            StoredFeedback.WithLabels(feedback.Model).Set(feedback.Count);
        }
    }
}
