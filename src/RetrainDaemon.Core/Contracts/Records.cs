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
    string? SourceText)
{
    /// <summary>
    /// <see cref="SampleOrigins.Producer"/> for data a producer published, <see cref="SampleOrigins.Correction"/> for a
    /// sample the store made from a feedback correction (so training and analysis can tell them apart).
    /// </summary>
    public string Origin { get; init; } = SampleOrigins.Producer;

    /// <summary>For a correction: the generation id it corrects; otherwise null.</summary>
    public string? CorrectionOf { get; init; }
}

/// <summary>Values of <see cref="SampleRecord.Origin"/>.</summary>
public static class SampleOrigins
{
    public const string Producer = "producer";
    public const string Correction = "correction";
}

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
    string? Rater)
{
    /// <summary>
    /// The canonical shape of <see cref="CorrectionImage"/> (the model's configured width × height × channels,
    /// as the decoder made it), so the correction can become a training sample; 0 without an image.
    /// </summary>
    public (int Width, int Height, int Channels) CorrectionShape { get; init; }
}

/// <summary>One item of an ingest batch: exactly one of the two is set.</summary>
public readonly record struct IngestItem(SampleRecord? Sample, FeedbackRecord? Feedback)
{
    public static IngestItem Of(SampleRecord sample) => new(sample, null);
    public static IngestItem Of(FeedbackRecord feedback) => new(null, feedback);

    public string EventId => Sample?.EventId ?? Feedback!.EventId;
    public string Model => Sample?.Model ?? Feedback!.Model;
}

/// <summary>What committing one item did: <see cref="CommitStatus"/> and, when the store refused it, why.</summary>
public readonly record struct CommitOutcome(CommitStatus Status, string? RejectReason = null, string? RejectDetail = null)
{
    public static CommitOutcome Stored { get; } = new(CommitStatus.Stored);

    public static CommitOutcome Duplicate { get; } = new(CommitStatus.Duplicate);

    /// <summary>
    /// The item is valid on its own but contradicts what the store holds (feedback citing a generation that
    /// was never recorded, or recorded for another model or version): not stored, and dead-lettered with
    /// <paramref name="reason"/> (one of <see cref="RejectReasons"/>). The other items of the batch are unaffected.
    /// </summary>
    public static CommitOutcome Rejected(string reason, string detail) => new(CommitStatus.Rejected, reason, detail);

    public bool IsRejected => Status == CommitStatus.Rejected;

    /// <summary>A stored feedback item whose correction also became a training sample (split <c>train</c>, origin <c>correction</c>).</summary>
    public bool AddedCorrectionSample { get; init; }
}

/// <summary>The kinds of <see cref="CommitOutcome"/>.</summary>
public enum CommitStatus
{
    Stored,
    Duplicate,
    Rejected,
}
