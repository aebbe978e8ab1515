namespace RetrainDaemon.Data.Store;

/// <summary>
/// Everything the daemon keeps in its database: samples, feedback and generations
/// (<see cref="ISampleStore"/>), the run ledger (<see cref="IRunLedger"/>) and the loop's cheap counts
/// (<see cref="ILoopQueries"/>). Both stores implement all of it with the same semantics
/// (tests/RetrainDaemon.IntegrationTests/Store/SampleStoreContract.cs).
/// </summary>
public interface IDaemonStore : ISampleStore, IRunLedger, ILoopQueries
{
    /// <summary>Where the store is, for operators: the SQLite file, or PostgreSQL host:port/database (never a password).</summary>
    string Description { get; }
}
