using System.Collections.Concurrent;
using System.Globalization;
using Npgsql;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Tests.Shared;

namespace RetrainDaemon.IntegrationTests.Store;

/// <summary>One private PostgreSQL server for the class; each test gets an empty database of its own.</summary>
public sealed class PostgresServerFixture : IAsyncLifetime
{
    public PrivatePostgres Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await PrivatePostgres.StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>
/// The store contract against PostgreSQL, plus what only a shared database faces: several nodes migrating and
/// committing at once, and the server going away and coming back.
/// </summary>
public sealed class PostgresSampleStoreContractTests(PostgresServerFixture fixture) : SampleStoreContract, IClassFixture<PostgresServerFixture>
{
    /// <summary>Trust authentication ignores it; the tests check that no message ever shows it.</summary>
    private const string Password = "pw-never-shown-4711";

    private string connectionString = "";

    private PrivatePostgres Server => fixture.Server;

    protected override IDaemonStore OpenStore(TimeProvider clock) =>
        SampleStores.Open(new StoreOptions { Provider = "postgres", ConnectionString = connectionString }, clock);

    protected override async Task CreateDatabaseAsync() =>
        connectionString = await Server.CreateDatabaseAsync("contract_" + Guid.NewGuid().ToString("N")) + ";Password=" + Password;

    protected override Task DeleteDatabaseAsync() => Task.CompletedTask; // the whole cluster goes with the fixture

    protected override long Scalar(string sql) => PostgresProbe.Scalar(connectionString, sql);

    protected override async Task<List<string?[]>> QueryAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string?[]>();
        while (await reader.ReadAsync())
        {
            rows.Add([.. Enumerable.Range(0, reader.FieldCount).Select(i => reader.IsDBNull(i) ? null : Convert.ToString(reader.GetValue(i), CultureInfo.InvariantCulture))]);
        }

        return rows;
    }

    protected override async Task ExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task Nodes_starting_together_migrate_once()
    {
        connectionString = await Server.CreateDatabaseAsync("together_" + Guid.NewGuid().ToString("N"));
        var nodes = Enumerable.Range(0, 4).Select(_ => OpenStore(Clock)).ToArray();
        try
        {
            await Task.WhenAll(nodes.Select(n => Task.Run(() => n.InitializeAsync(None))));

            Assert.Equal(3, Scalar("SELECT COUNT(*) FROM schema_migrations;"));
            Assert.All(await Task.WhenAll(nodes.Select(n => n.GetStatsAsync(None))), s => Assert.Equal(3, s.SchemaVersion));
        }
        finally
        {
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Two nodes, two writers each, 2 × 2,000 ids of their own plus 500 ids all four writers send, while a reader
    /// takes watermarks. Every id is stored exactly once; sequence order is commit order; and the samples at or
    /// below any watermark a reader saw never change afterwards — a snapshot never misses a row that commits late.
    /// </summary>
    [Fact]
    public async Task Two_nodes_committing_at_once_store_every_id_once_in_commit_order_and_never_fill_a_gap_below_a_watermark()
    {
        const int Writers = 4, Batches = 20, OwnPerBatch = 50, SharedPerBatch = 25;
        await using var other = OpenStore(Clock);
        var nodes = new[] { Store, other };
        var stored = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var duplicates = new ConcurrentBag<string>();
        var observations = new ConcurrentQueue<(long Watermark, long AtOrBelow)>();
        using var writersDone = new CancellationTokenSource();

        // The watermark and what lies at or below it, read in one snapshot as fast as a pooled connection allows: the
        // window in which a late commit could fill a gap is one commit long.
        await using var readerSource = NpgsqlDataSource.Create(connectionString);
        var reader = Task.Run(async () =>
        {
            await using var connection = await readerSource.OpenConnectionAsync();
            await using var command = new NpgsqlCommand("SELECT COALESCE(MAX(seq), 0), COUNT(*) FROM samples;", connection);
            while (!writersDone.IsCancellationRequested)
            {
                await using var r = await command.ExecuteReaderAsync();
                await r.ReadAsync();
                observations.Enqueue((r.GetInt64(0), r.GetInt64(1)));
            }
        });

        var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            var node = nodes[w % 2];
            var random = new Random(w);
            for (int b = 0; b < Batches; b++)
            {
                var batch = Enumerable.Range(b * OwnPerBatch, OwnPerBatch).Select(i => Text($"node{w % 2}-writer{w}-{i}"))
                    .Concat(Enumerable.Range(b * SharedPerBatch, SharedPerBatch).Select(i => Text($"shared-{i}")))
                    .OrderBy(_ => random.Next())
                    .ToList();
                var outcomes = await node.CommitAsync(batch, None);
                for (int i = 0; i < batch.Count; i++)
                {
                    if (outcomes[i] == CommitOutcome.Stored)
                    {
                        stored.AddOrUpdate(batch[i].EventId, 1, (_, n) => n + 1);
                    }
                    else
                    {
                        Assert.Equal(CommitOutcome.Duplicate, outcomes[i]);
                        duplicates.Add(batch[i].EventId);
                    }
                }
            }
        })).ToArray();
        await Task.WhenAll(writers);
        await writersDone.CancelAsync();
        await reader;

        const int Own = Writers * Batches * OwnPerBatch, Shared = Batches * SharedPerBatch;
        Assert.Equal(Own + Shared, stored.Count);
        Assert.All(stored, kv => Assert.Equal(1, kv.Value));
        Assert.Equal((Writers - 1) * Shared, duplicates.Count);
        Assert.All(duplicates, id => Assert.StartsWith("shared-", id, StringComparison.Ordinal));
        Assert.Equal(Own + Shared, Scalar("SELECT COUNT(DISTINCT event_id) FROM samples;"));
        Assert.Equal(Own + Shared, Scalar("SELECT COUNT(DISTINCT seq) FROM samples;"));
        Assert.Equal(stored.Keys.Order(StringComparer.Ordinal), PostgresProbe.SampleIds(connectionString).Order(StringComparer.Ordinal));

        // Sequence order is commit order: no row commits after a row with a higher sequence number.
        Assert.Equal(0, Scalar("""
            SELECT COUNT(*) FROM (
                SELECT pg_xact_commit_timestamp(xmin) AS committed,
                       MAX(pg_xact_commit_timestamp(xmin)) OVER (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS latest_before
                FROM samples) rows
            WHERE committed < latest_before;
            """));

        // What a snapshot up to a watermark read during the run would have seen is what is there now.
        var seen = observations.ToArray();
        Assert.True(seen.Length >= 50, $"the reader took only {seen.Length} watermarks while the writers ran");
        Assert.True(seen.Select(o => o.Watermark).Distinct().Count() >= 10, "the reader saw too few distinct watermarks to test anything");
        var finalSeqs = (await QueryAsync("SELECT seq FROM samples ORDER BY seq;")).Select(r => long.Parse(r[0]!, CultureInfo.InvariantCulture)).ToArray();
        foreach (var (watermark, atOrBelow) in seen)
        {
            long now = finalSeqs.Count(seq => seq <= watermark);
            Assert.True(now == atOrBelow, $"{atOrBelow} samples had seq <= {watermark} when that was the watermark, {now} have now: a commit filled a gap below a watermark already read");
        }
    }

    [Fact]
    public async Task With_the_server_down_commits_fail_as_unavailable_and_ping_is_false_and_after_it_returns_nothing_is_lost()
    {
        var before = Enumerable.Range(0, 10).Select(i => Text($"before-{i}")).ToList();
        Assert.All(await Store.CommitAsync(before, None), o => Assert.Equal(CommitOutcome.Stored, o));

        await Server.StopAsync();
        try
        {
            var down = await Assert.ThrowsAsync<StoreUnavailableException>(() => Store.CommitAsync([Text("while-down")], None));
            Assert.Contains($"the store 'postgres 127.0.0.1:{Server.Port}/contract_", down.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(Password, down.Message, StringComparison.Ordinal);
            // Every later attempt too (no stale pooled connection that "works" once), reads included.
            await Assert.ThrowsAsync<StoreUnavailableException>(() => Store.CommitAsync([Text("while-down")], None));
            await Assert.ThrowsAsync<StoreUnavailableException>(() => Store.GetWatermarkAsync(None));
            Assert.False(await Store.PingAsync(None));
        }
        finally
        {
            await Server.StartAgainAsync();
        }

        Assert.True(await Store.PingAsync(None));
        var after = Enumerable.Range(0, 10).Select(i => Text($"after-{i}")).ToList();
        Assert.All(await Store.CommitAsync(after, None), o => Assert.Equal(CommitOutcome.Stored, o));
        Assert.Equal([CommitOutcome.Stored], await Store.CommitAsync([Text("while-down")], None));

        var all = await Store.ReadSamplesAsync("fortunes", 0, await Store.GetWatermarkAsync(None), null, None).ToListAsync();
        Assert.Equal([.. before.Select(i => i.EventId), .. after.Select(i => i.EventId), "while-down"], all.Select(s => s.Record.EventId).ToArray());
    }
}
