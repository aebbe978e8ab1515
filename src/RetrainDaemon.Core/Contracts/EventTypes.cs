namespace RetrainDaemon.Core.Contracts;

/// <summary>CloudEvent <c>type</c> values the daemon accepts (DESIGN.md §3).</summary>
public static class EventTypes
{
    public const string Sample = "retrain.sample.v1";
    public const string Feedback = "retrain.feedback.v1";

    /// <summary>Content type of a structured-mode CloudEvent in JSON.</summary>
    public const string StructuredJsonContentType = "application/cloudevents+json";

    /// <summary>Routing key under <c>retrain.ingest</c> for an event of <paramref name="type"/> about <paramref name="model"/>.</summary>
    public static string RoutingKey(string type, string model) => type switch
    {
        Sample => "sample." + model,
        Feedback => "feedback." + model,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown event type"),
    };
}

/// <summary>What a sample carries.</summary>
public enum Modality
{
    Image,
    Text,
}

/// <summary>Which part of the data a sample belongs to.</summary>
public static class Splits
{
    public const string Train = "train";
    public const string Holdout = "holdout";

    public static bool IsValid(string? split) => split is Train or Holdout;
}
