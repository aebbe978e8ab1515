namespace RetrainDaemon.Core.Contracts;

/// <summary>
/// Machine-readable reasons an ingested message is dead-lettered. They label the
/// <c>retrain_ingest_messages_total</c> metric and the <c>x-retrain-reject-reason</c> header, so the
/// set is small and fixed; the human-readable detail travels next to it.
/// </summary>
public static class RejectReasons
{
    public const string TooLarge = "too_large";
    public const string ContentType = "content_type";
    public const string MalformedJson = "malformed_json";
    public const string NotCloudEvent = "not_cloudevent";
    public const string UnknownType = "unknown_type";
    public const string MissingSubject = "missing_subject";
    public const string UnknownModel = "unknown_model";
    public const string SchemaViolation = "schema_violation";
    public const string ModalityMismatch = "modality_mismatch";
    public const string BadBase64 = "bad_base64";
    public const string UndecodableImage = "undecodable_image";
    public const string ImageShape = "image_shape";
    public const string TextEmpty = "text_empty";
    public const string TextTooLong = "text_too_long";
    public const string StoreError = "store_error";

    /// <summary>Feedback cites a generation id the serving API never recorded handing out.</summary>
    public const string UnknownGeneration = "unknown_generation";

    /// <summary>Feedback cites a recorded generation but names another model or version than the one that made it.</summary>
    public const string GenerationMismatch = "generation_mismatch";
}

/// <summary>Why a message cannot be stored.</summary>
public sealed class IngestRejection(string reason, string detail) : Exception(detail)
{
    /// <summary>One of <see cref="RejectReasons"/>.</summary>
    public string Reason { get; } = reason;

    /// <summary>The configured model the message was for, when it got that far (a metric label).</summary>
    public string? Model { get; set; }
}
