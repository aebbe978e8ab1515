namespace RetrainDaemon.Messaging.Ingestion;

/// <summary>What readiness needs to know about ingestion; written by the consumer, read by the health route.</summary>
public sealed class IngestionHealth
{
    private volatile bool consuming;
    private volatile bool storeUp = true;
    private volatile string? storeError;

    /// <summary>True once the consumer is subscribed, until it stops.</summary>
    public bool Consuming { get => consuming; set => consuming = value; }

    /// <summary>False while commits fail; set back by the next successful commit.</summary>
    public bool StoreUp => storeUp;

    public string? StoreError => storeError;

    public void StoreFailed(string error)
    {
        storeError = error;
        storeUp = false;
    }

    public void StoreRecovered()
    {
        storeUp = true;
        storeError = null;
    }
}
