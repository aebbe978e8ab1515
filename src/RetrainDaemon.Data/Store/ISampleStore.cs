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
}

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
