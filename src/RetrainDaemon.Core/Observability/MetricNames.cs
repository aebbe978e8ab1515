namespace RetrainDaemon.Core.Observability;

/// <summary>Names of the daemon's Prometheus series: <c>retrain_*</c>, units in the name.</summary>
public static class MetricNames
{
    public const string IngestMessages = "retrain_ingest_messages_total";
    public const string IngestCommitSeconds = "retrain_ingest_commit_seconds";
    public const string IngestBatchSize = "retrain_ingest_batch_messages";
    public const string IngestStoreRetries = "retrain_ingest_store_retries_total";
    public const string StoreSamples = "retrain_store_samples";
    public const string StoreFeedback = "retrain_store_feedback";
    public const string BrokerConnected = "retrain_broker_connected";
    public const string BrokerRecoveries = "retrain_broker_recoveries_total";
    public const string GenerationJournalDropped = "retrain_generation_journal_dropped_total";

    /// <summary>Values of the <c>result</c> label of <see cref="IngestMessages"/>.</summary>
    public static class Results
    {
        public const string Stored = "stored";
        public const string Duplicate = "duplicate";
        public const string Rejected = "rejected";
    }
}
