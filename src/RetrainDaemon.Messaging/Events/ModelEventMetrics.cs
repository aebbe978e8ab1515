using Prometheus;

namespace RetrainDaemon.Messaging.Events;

/// <summary>
/// <c>retrain_model_events_total{type,result}</c>: registry events this process consumed. <c>type</c>
/// is the event's routing key (<c>model.promoted</c>, <c>model.rejected</c>) or <c>unknown</c>;
/// <c>result</c> is one of <see cref="ModelEventResults"/>. Thread-safe.
/// </summary>
public sealed class ModelEventMetrics
{
    /// <summary>The Prometheus series name.</summary>
    public const string EventsTotal = "retrain_model_events_total";

    private static readonly Counter Events = Metrics.CreateCounter(
        EventsTotal,
        "Registry events consumed from retrain.events, by type and result (notified, malformed, failed).",
        new CounterConfiguration { LabelNames = ["type", "result"] });

    /// <summary>Counts one event.</summary>
    public void Count(string type, string result) => Events.WithLabels(type, result).Inc();

    /// <summary>The current count of one series (tests and diagnostics read it without scraping).</summary>
    public double Value(string type, string result) => Events.WithLabels(type, result).Value;
}

/// <summary>Values of the <c>result</c> label of <see cref="ModelEventMetrics.EventsTotal"/>.</summary>
public static class ModelEventResults
{
    /// <summary>Decoded and handed to the model-change notifier.</summary>
    public const string Notified = "notified";

    /// <summary>Not a valid event of the expected type; acked and dropped.</summary>
    public const string Malformed = "malformed";

    /// <summary>Valid, but the notifier threw; acked (the registry file watch still catches the change).</summary>
    public const string Failed = "failed";
}
