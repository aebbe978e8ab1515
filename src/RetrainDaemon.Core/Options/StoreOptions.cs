namespace RetrainDaemon.Core.Options;

/// <summary>Where samples, feedback, generations and the run ledger are kept (section <c>Store</c>).</summary>
public sealed class StoreOptions
{
    public const string Section = "Store";

    /// <summary>
    /// <c>sqlite</c> (embedded default: one file, one node) or <c>postgres</c> (one database that several
    /// daemon nodes share; needs <see cref="ConnectionString"/> or <see cref="ConnectionStringFile"/>).
    /// </summary>
    public string Provider { get; set; } = StoreProviders.Sqlite;

    /// <summary>SQLite database file. Relative paths are under the current directory. Ignored by <c>postgres</c>.</summary>
    public string Path { get; set; } = "state/retrain.db";

    /// <summary>
    /// SQLite <c>synchronous</c> mode. <c>full</c> fsyncs the WAL at every commit, which is what
    /// "ack only after a durable commit" needs; <c>normal</c> survives process crashes but not power loss.
    /// Ignored by <c>postgres</c>, whose durability is the server's (<c>fsync</c>, <c>synchronous_commit</c>).
    /// </summary>
    public string Synchronous { get; set; } = "full";

    /// <summary>
    /// <c>postgres</c>: an Npgsql connection string (<c>Host=db;Port=5432;Database=retrain;Username=retrain;Password=…</c>).
    /// Secret when it holds a password: prefer <see cref="ConnectionStringFile"/> or the environment
    /// (<c>RETRAIN__Store__ConnectionString</c>).
    /// </summary>
    public string? ConnectionString { get; set; }

    /// <summary>
    /// <c>postgres</c>: a file whose first line is the connection string (systemd <c>LoadCredential=</c>);
    /// wins over <see cref="ConnectionString"/>.
    /// </summary>
    public string? ConnectionStringFile { get; set; }

    /// <summary>The provider in its canonical spelling (<see cref="StoreProviders"/>), or as given when unknown.</summary>
    public string NormalizedProvider => Provider.Trim().ToLowerInvariant();

    /// <summary>
    /// The connection string: the first line of <see cref="ConnectionStringFile"/> when set, else
    /// <see cref="ConnectionString"/>; null when neither gives one.
    /// </summary>
    public string? ResolveConnectionString()
    {
        if (!string.IsNullOrEmpty(ConnectionStringFile))
        {
            var text = File.ReadAllText(ConnectionStringFile);
            int end = text.IndexOfAny(['\r', '\n']);
            var line = (end < 0 ? text : text[..end]).Trim();
            return line.Length == 0 ? null : line;
        }

        return string.IsNullOrWhiteSpace(ConnectionString) ? null : ConnectionString.Trim();
    }
}

/// <summary>The values <see cref="StoreOptions.Provider"/> accepts.</summary>
public static class StoreProviders
{
    public const string Sqlite = "sqlite";
    public const string Postgres = "postgres";

    public static IReadOnlyList<string> All { get; } = [Sqlite, Postgres];
}
