namespace RetrainDaemon.Core.Options;

/// <summary>How the ingestion consumer reads, batches and commits (section <c>Ingest</c>).</summary>
public sealed class IngestOptions
{
    public const string Section = "Ingest";

    /// <summary>
    /// Whether this node consumes <c>retrain.samples</c> / <c>retrain.feedback</c>. Serving-only replicas turn it
    /// off: each would otherwise take a share of the queues into a store of its own.
    /// </summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Unacknowledged deliveries the broker may push to us (RabbitMQ advises 100–300; quorum queues cap at 2,000).</summary>
    public int Prefetch { get; set; } = 600;

    /// <summary>Deliveries of one message before the quorum queue dead-letters it (3.10 has no default).</summary>
    public int DeliveryLimit { get; set; } = 5;

    /// <summary>Queue length at which the broker refuses new publishes (<c>x-overflow: reject-publish</c>).</summary>
    public long QueueMaxLength { get; set; } = 2_000_000;

    /// <summary>Bodies larger than this are dead-lettered before parsing. The broker's own limit is 16 MiB.</summary>
    public int MaxMessageBytes { get; set; } = 1 << 20;

    /// <summary>Most messages committed in one store transaction (one fsync).</summary>
    public int BatchSize { get; set; } = 256;

    /// <summary>How long a batch waits for more messages after its first one.</summary>
    public TimeSpan BatchDelay { get; set; } = TimeSpan.FromMilliseconds(2);

    /// <summary>Decoding runs on this many threads (JSON, base64, PNG).</summary>
    public int DecodeParallelism { get; set; } = 2;

    /// <summary>First pause after a failed commit; doubles up to <see cref="StoreRetryMax"/>.</summary>
    public TimeSpan StoreRetryInitial { get; set; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan StoreRetryMax { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>On shutdown, how long buffered deliveries may take to commit before they are returned to the queue.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(10);
}
