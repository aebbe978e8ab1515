namespace RetrainDaemon.Core.Options;

/// <summary>Where samples and feedback are kept (section <c>Store</c>).</summary>
public sealed class StoreOptions
{
    public const string Section = "Store";

    /// <summary><c>sqlite</c> (embedded default). A PostgreSQL store arrives with the scale-out work.</summary>
    public string Provider { get; set; } = "sqlite";

    /// <summary>SQLite database file. Relative paths are under the current directory.</summary>
    public string Path { get; set; } = "state/retrain.db";

    /// <summary>
    /// SQLite <c>synchronous</c> mode. <c>full</c> fsyncs the WAL at every commit, which is what
    /// "ack only after a durable commit" needs; <c>normal</c> survives process crashes but not power loss.
    /// </summary>
    public string Synchronous { get; set; } = "full";
}
