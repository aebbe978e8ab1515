using System.Globalization;
using Microsoft.Data.Sqlite;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Tests.Shared;

namespace RetrainDaemon.IntegrationTests.Store;

/// <summary>The store contract against a real SQLite file per test, plus what only the SQLite store has (files from older schemas).</summary>
public sealed class SqliteSampleStoreContractTests : SampleStoreContract
{
    private string root = "";

    private string DatabasePath => Path.Combine(root, "retrain.db");

    protected override IDaemonStore OpenStore(TimeProvider clock) => SampleStores.Open(new StoreOptions { Path = DatabasePath }, clock);

    protected override Task CreateDatabaseAsync()
    {
        // The store creates the file (and its directory) when it first opens.
        root = Path.Combine(TestPaths.NewTempDirectory("rd-store-contract"), "state");
        return Task.CompletedTask;
    }

    protected override Task DeleteDatabaseAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(Path.GetDirectoryName(root)!, recursive: true);
        return Task.CompletedTask;
    }

    private SqliteConnection Connect(bool readOnly)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = DatabasePath,
            Mode = readOnly ? SqliteOpenMode.ReadOnly : SqliteOpenMode.ReadWrite,
            Pooling = false,
        }.ToString());
        connection.Open();
        return connection;
    }

    protected override long Scalar(string sql)
    {
        using var connection = Connect(readOnly: true);
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar() ?? 0L, CultureInfo.InvariantCulture);
    }

    protected override Task<List<string?[]>> QueryAsync(string sql)
    {
        using var connection = Connect(readOnly: true);
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        using var reader = command.ExecuteReader();
        var rows = new List<string?[]>();
        while (reader.Read())
        {
            rows.Add([.. Enumerable.Range(0, reader.FieldCount).Select(i => reader.IsDBNull(i) ? null : Convert.ToString(reader.GetValue(i), CultureInfo.InvariantCulture))]);
        }

        return Task.FromResult(rows);
    }

    protected override Task ExecuteAsync(string sql)
    {
        using var connection = Connect(readOnly: false);
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task A_store_file_from_before_the_join_upgrades_keeping_its_rows()
    {
        await Store.DisposeAsync();
        SqliteConnection.ClearAllPools();
        // Take the file back to schema 2 (no generations, no slice, no origin) and put legacy rows in it.
        await ExecuteAsync("""
            DROP TABLE generations;
            ALTER TABLE feedback DROP COLUMN slice;
            ALTER TABLE samples DROP COLUMN correction_of;
            ALTER TABLE samples DROP COLUMN origin;
            DELETE FROM schema_migrations WHERE version = 3;
            INSERT INTO samples (event_id, model, source, modality, split, width, height, channels, text, received_at)
            VALUES ('old-sample', 'fortunes', '/old', 'text', 'train', 0, 0, 0, 'an old fortune', '2026-01-01T00:00:00.0000000+00:00');
            INSERT INTO feedback (event_id, model, source, generation_id, version, rating, received_at)
            VALUES ('old-feedback', 'fortunes', '/old', 'g-old', 'v-old', 3, '2026-01-01T00:00:00.0000000+00:00');
            """);

        await ReopenAsync();

        Assert.Equal(3, (await Store.GetStatsAsync(None)).SchemaVersion);
        var old = await Store.GetSampleAsync("old-sample", None);
        Assert.Equal((SampleOrigins.Producer, "an old fortune"), (old!.Record.Origin, old.Record.Text));
        var legacy = Assert.Single(await Store.ReadFeedbackAsync("fortunes", 0, None).ToListAsync());
        Assert.Equal(("g-old", (int?)null, (string?)null, (int?)3), (legacy.GenerationId, legacy.Version, legacy.Slice, legacy.Rating));
        // A redelivery of that legacy feedback is a duplicate, not a rejection for its unrecorded generation.
        Assert.Equal([CommitOutcome.Duplicate], await Store.CommitAsync([IngestItem.Of(Feedback("old-feedback", "fortunes", "g-old", "v-old", rating: 3))], None));
    }
}
