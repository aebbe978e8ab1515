using RetrainDaemon.Core.Contracts;

namespace RetrainDaemon.Data.Store;

/// <summary>
/// Durable store of samples and feedback, idempotent by CloudEvent id. Implementations are safe
/// to call from several threads; <see cref="CommitAsync"/> is one transaction.
/// </summary>
public interface ISampleStore : IAsyncDisposable
{
    /// <summary>Opens the store and applies pending schema migrations.</summary>
    Task InitializeAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Stores every item whose event id is new, in one durable transaction, and says per item
    /// whether it was stored or already there. Nothing is visible unless the whole batch commits.
    /// Throws <see cref="StoreUnavailableException"/> when the failure is worth retrying.
    /// </summary>
    Task<IReadOnlyList<CommitOutcome>> CommitAsync(IReadOnlyList<IngestItem> items, CancellationToken cancellationToken);

    /// <summary>Counts per model, modality, split and label, plus feedback per model.</summary>
    Task<StoreStats> GetStatsAsync(CancellationToken cancellationToken);

    /// <summary>The highest sample sequence number committed so far (0 when empty).</summary>
    Task<long> GetWatermarkAsync(CancellationToken cancellationToken);

    /// <summary>
    /// The samples of <paramref name="model"/> with <paramref name="afterSequence"/> &lt; sequence ≤
    /// <paramref name="watermark"/>, in sequence order, optionally of one split: a training snapshot.
    /// </summary>
    IAsyncEnumerable<StoredSample> ReadSamplesAsync(string model, long afterSequence, long watermark, string? split, CancellationToken cancellationToken);

    /// <summary>One stored sample by event id, or null.</summary>
    Task<StoredSample?> GetSampleAsync(string eventId, CancellationToken cancellationToken);

    /// <summary>Cheap liveness probe used by readiness.</summary>
    Task<bool> PingAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Records generations the serving API handed out, in one transaction; an id already recorded is
    /// left as it is (idempotent). Feedback is only accepted for generations recorded here.
    /// Throws <see cref="StoreUnavailableException"/> when the failure is worth retrying.
    /// </summary>
    Task RecordGenerationsAsync(IReadOnlyList<GenerationRecord> generations, CancellationToken cancellationToken);

    /// <summary>One recorded generation by id, or null.</summary>
    Task<GenerationRecord?> GetGenerationAsync(string generationId, CancellationToken cancellationToken);

    /// <summary>
    /// Feedback of <paramref name="model"/> (of one <paramref name="version"/> when given; received at or
    /// after <paramref name="since"/> when given): counts and the mean rating — what the feedback trigger
    /// and the rollback policy read.
    /// </summary>
    Task<FeedbackSummary> GetFeedbackSummaryAsync(string model, int? version, DateTimeOffset? since, CancellationToken cancellationToken);

    /// <summary>
    /// The feedback rows of <paramref name="model"/> with sequence &gt; <paramref name="afterFeedbackSequence"/>, in
    /// sequence order, with the slice of the generation each cites: the input of per-slice rating analysis.
    /// </summary>
    IAsyncEnumerable<StoredFeedback> ReadFeedbackAsync(string model, long afterFeedbackSequence, CancellationToken cancellationToken);

    /// <summary>The highest feedback sequence number committed so far, over all models (0 when none).</summary>
    Task<long> GetFeedbackWatermarkAsync(CancellationToken cancellationToken);
}

/// <summary>
/// Feedback counts of one model (optionally one version, optionally since a time). <see cref="MeanRating"/> is
/// null when no feedback carried a rating; <see cref="Accepted"/> / <see cref="Rejected"/> count the
/// feedback whose <c>accepted</c> flag was true / false.
/// </summary>
public sealed record FeedbackSummary(long Count, long Ratings, double? MeanRating, long Accepted, long Rejected, long Corrections);

/// <summary>
/// One stored feedback row. <see cref="Version"/> is null only for rows stored before feedback was joined to
/// generations whose version was not a number; <see cref="Slice"/> is the cited generation's slice (the image
/// class it was generated for), null for text and for unconditional generators.
/// </summary>
public sealed record StoredFeedback(
    long Sequence,
    string EventId,
    string Model,
    string GenerationId,
    int? Version,
    string? Slice,
    int? Rating,
    bool? Accepted,
    bool HasCorrection,
    DateTimeOffset ReceivedAt);

/// <summary>A sample as stored, with its sequence number (the watermark snapshots use).</summary>
public sealed record StoredSample(long Sequence, SampleRecord Record, DateTimeOffset ReceivedAt);

/// <summary>Counts from the store.</summary>
public sealed record StoreStats(
    IReadOnlyList<SampleCount> Samples,
    IReadOnlyList<FeedbackCount> Feedback,
    long Watermark,
    int SchemaVersion);

public sealed record SampleCount(string Model, string Modality, string Split, string? Label, long Count);

public sealed record FeedbackCount(string Model, long Count, double? MeanRating);

/// <summary>A store failure that may pass (I/O error, disk full, database locked): retry later, do not reject.</summary>
public sealed class StoreUnavailableException(string message, Exception inner) : Exception(message, inner);
