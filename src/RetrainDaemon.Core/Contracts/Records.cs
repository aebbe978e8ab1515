namespace RetrainDaemon.Core.Contracts;

/// <summary>
/// A validated, preprocessed sample ready to be stored. Images are in canonical form: row-major
/// <c>u8</c> pixels of exactly <see cref="Width"/> × <see cref="Height"/> × <see cref="Channels"/>.
/// </summary>
public sealed record SampleRecord(
    string EventId,
    string Model,
    string Source,
    DateTimeOffset? EventTime,
    Modality Modality,
    string Split,
    string? Label,
    int Width,
    int Height,
    int Channels,
    byte[]? Pixels,
    string? Text,
    string? SourceText);

/// <summary>A validated feedback event about one generation of a served model version.</summary>
public sealed record FeedbackRecord(
    string EventId,
    string Model,
    string Source,
    DateTimeOffset? EventTime,
    string GenerationId,
    string Version,
    int? Rating,
    bool? Accepted,
    string? CorrectionText,
    byte[]? CorrectionImage,
    string? Rater);

/// <summary>One item of an ingest batch: exactly one of the two is set.</summary>
public readonly record struct IngestItem(SampleRecord? Sample, FeedbackRecord? Feedback)
{
    public static IngestItem Of(SampleRecord sample) => new(sample, null);
    public static IngestItem Of(FeedbackRecord feedback) => new(null, feedback);

    public string EventId => Sample?.EventId ?? Feedback!.EventId;
    public string Model => Sample?.Model ?? Feedback!.Model;
}

/// <summary>What committing one item did.</summary>
public enum CommitOutcome
{
    Stored,
    Duplicate,
}
