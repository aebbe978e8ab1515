using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Observability;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Ingestion;
using RetrainDaemon.Messaging.Publishing;
using RetrainDaemon.Tests.Shared;

// Scale-out benchmark (docs/scaling.md, "Sizing"). In one run, on one private PostgreSQL 15 cluster (fsync on)
// and one private broker, alternating rounds:
//   part 1, store insert rate (in process, the store API directly): the same K real Fashion-MNIST samples,
//           decoded by the daemon's own MessageDecoder into IngestItems, committed with CommitAsync in batches of
//           the daemon's default batch size into
//             (a) a fresh SqliteSampleStore (synchronous=FULL, the default) in a temp directory,
//             (b) a fresh PostgreSQL database, one writer (what one ingest node does: one commit at a time),
//             (c) a fresh PostgreSQL database, two writers (two store instances, two pools, disjoint ids): what the
//                 commit-order advisory lock lets two nodes do at once;
//   part 2, ingestion throughput: N messages queued while nothing consumes, then drained by 1, and (after a fresh
//           database and a refill) by 2, `retrain-daemon run` processes with Node:Roles=ingest on the same
//           PostgreSQL database; timed from the moment every node has stored its first row to N rows stored.
// These figures are reported, not gated: the exit code is 0 unless something failed — a sample lost or stored
// twice, a queue not drained, a process that would not start. On a small machine the two daemons share its cores
// with the broker and PostgreSQL, so the 2-node factor says as much about the machine as about the daemon.
// Usage: dotnet run -c Release --project bench/ScaleBench [-- --messages 60000 --rounds 3 --samples 60000 --batch 256]
var arguments = ParseArguments(args);
// Defaults: the whole Fashion-MNIST training set. With 20,000 each timed window was 0.2-1 s and the same figure moved
// by 25-40% between rounds; with 60,000 the rounds agree within ~10%, and a run still takes about a minute on 2 cores.
int messages = arguments.GetValueOrDefault("messages", 60_000);
int rounds = arguments.GetValueOrDefault("rounds", 3);
int samples = arguments.GetValueOrDefault("samples", 60_000);
int batch = arguments.GetValueOrDefault("batch", new IngestOptions().BatchSize);
if (messages < 1 || samples < 2 || rounds < 1 || batch < 1 || Math.Max(messages, samples) > 60_000)
{
    Console.Error.WriteLine("need 1 <= --messages <= 60000, 2 <= --samples <= 60000 (the Fashion-MNIST training set), --rounds >= 1, --batch >= 1");
    return 2;
}

var inv = CultureInfo.InvariantCulture;
var wall = Stopwatch.StartNew();
Console.WriteLine($"scale benchmark: {Environment.ProcessorCount} cores, {rounds} rounds; store inserts: {samples} samples in batches of {batch}; ingestion: {messages} messages, 1 vs 2 ingest nodes");
if (Environment.ProcessorCount <= 2)
{
    Console.WriteLine($"note: {Environment.ProcessorCount} cores are shared by the broker, PostgreSQL and every daemon; the 2-node factor is not what two machines would give");
}

var images = FashionMnist.Read("train", take: Math.Max(messages, samples));
var encoded = images.Take(messages).Select(i => CloudEventEncoder.FashionMnist(i, "train", "fashion-mnist", "png", null)).ToList();
var expectedIds = encoded.Select(m => m.EventId).ToHashSet(StringComparer.Ordinal);
// Part 1's items are what the consumer hands the store: the same PNG CloudEvents through the same decoder
// (validation, PNG decode, split assignment), with the shipped fashion-mnist data contract.
var decoder = new MessageDecoder(FashionMnistCatalog(), new IngestOptions());
var items = images.Take(samples)
    .Select(i => decoder.Decode(CloudEventEncoder.FashionMnist(i, "train", "fashion-mnist", "png", null).Body, EventTypes.StructuredJsonContentType))
    .ToList();
Console.WriteLine($"mean message size {encoded.Average(m => m.Body.Length):0} bytes; stored pixels {items[0].Sample!.Pixels!.Length} bytes per sample");

var work = TestPaths.NewTempDirectory("rd-scalebench");
int failures = 0;
try
{
    await using var postgres = await PrivatePostgres.StartAsync();
    Console.WriteLine($"PostgreSQL: {await ServerVersionAsync()} (fsync {await SettingAsync("fsync")}, synchronous_commit {await SettingAsync("synchronous_commit")}), data in {postgres.DataDirectory}");
    int databases = 0;

    // ---- part 1: store insert rate ----
    Console.WriteLine();
    Console.WriteLine("part 1: store insert rate (CommitAsync, in process)");
    // One whole round that is not counted. Measured: without it the first round's PostgreSQL figure was ~35% below the
    // others (most likely a fresh cluster creating and fsyncing each 16 MB WAL segment as it first fills it, where a
    // server that has been running recycles old ones), and the first SQLite round paid for JIT and a cold page cache.
    await InsertSqliteAsync(items);
    await InsertPostgresAsync(items, writers: 1);
    await InsertPostgresAsync(items, writers: 2);
    var sqliteRates = new List<double>();
    var postgresRates = new List<double>();
    var postgres2Rates = new List<double>();
    for (int round = 1; round <= rounds; round++)
    {
        // Alternate the order so that a slow drift (page cache, WAL recycling, a neighbour) does not favour one store.
        double sqlite = 0, pg = 0, pg2 = 0;
        if (round % 2 == 1)
        {
            sqlite = await InsertSqliteAsync(items);
            pg = await InsertPostgresAsync(items, writers: 1);
            pg2 = await InsertPostgresAsync(items, writers: 2);
        }
        else
        {
            pg2 = await InsertPostgresAsync(items, writers: 2);
            pg = await InsertPostgresAsync(items, writers: 1);
            sqlite = await InsertSqliteAsync(items);
        }

        sqliteRates.Add(sqlite);
        postgresRates.Add(pg);
        postgres2Rates.Add(pg2);
        Console.WriteLine(string.Format(inv, "round {0}: SQLite {1,7:0} samples/s   PostgreSQL {2,7:0} samples/s (ratio {3:0.00})   PostgreSQL, 2 writers {4,7:0} samples/s (x{5:0.00} of 1 writer)",
            round, sqlite, pg, pg / sqlite, pg2, pg2 / pg));
    }

    // ---- part 2: ingestion, 1 vs 2 ingest nodes ----
    Console.WriteLine();
    Console.WriteLine("part 2: ingestion into one PostgreSQL database, retrain-daemon run with Node:Roles=ingest (stored and acked)");
    await using var broker = await PrivateBroker.StartAsync();
    var brokerOptions = new BrokerOptions { Endpoints = [broker.Endpoint], ConnectAttempts = 5 };
    var oneNode = new List<double>();
    var twoNodes = new List<double>();
    for (int round = 1; round <= rounds; round++)
    {
        IngestResult one, two;
        if (round % 2 == 1)
        {
            one = await IngestAsync(1);
            two = await IngestAsync(2);
        }
        else
        {
            two = await IngestAsync(2);
            one = await IngestAsync(1);
        }

        oneNode.Add(one.Rate);
        twoNodes.Add(two.Rate);
        Console.WriteLine(string.Format(inv, "round {0}: 1 node {1,7:0} msg/s   2 nodes {2,7:0} msg/s (stored {3})   factor {4:0.00}   [from the first row: 1 node {5:0}, 2 nodes {6:0} msg/s]",
            round, one.Rate, two.Rate, string.Join(" + ", two.PerNode), two.Rate / one.Rate, one.RateFromFirstRow, two.RateFromFirstRow));
    }

    Console.WriteLine();
    Console.WriteLine($"medians over {rounds} rounds ({Environment.ProcessorCount} cores; reported, not gated):");
    Console.WriteLine(string.Format(inv, "  store insert, SQLite (synchronous=FULL):      {0,7:0} samples/s", Median(sqliteRates)));
    Console.WriteLine(string.Format(inv, "  store insert, PostgreSQL (fsync on):          {0,7:0} samples/s   PostgreSQL / SQLite {1:0.00}", Median(postgresRates), Median(postgresRates) / Median(sqliteRates)));
    Console.WriteLine(string.Format(inv, "  store insert, PostgreSQL, 2 writers:          {0,7:0} samples/s   2 writers / 1 writer {1:0.00}", Median(postgres2Rates), Median(postgres2Rates) / Median(postgresRates)));
    Console.WriteLine(string.Format(inv, "  ingestion, 1 ingest node -> PostgreSQL:       {0,7:0} msg/s", Median(oneNode)));
    Console.WriteLine(string.Format(inv, "  ingestion, 2 ingest nodes -> PostgreSQL:      {0,7:0} msg/s   scaling factor {1:0.00} (median of the per-round factors {2:0.00})",
        Median(twoNodes), Median(twoNodes) / Median(oneNode), Median(oneNode.Zip(twoNodes, (a, b) => b / a).ToList())));
    if (Environment.ProcessorCount <= 2)
    {
        Console.WriteLine($"  (on {Environment.ProcessorCount} cores the second node competes with the first, the broker and PostgreSQL for the same CPU)");
    }

    async Task<double> InsertSqliteAsync(IReadOnlyList<IngestItem> load)
    {
        string path = Path.Combine(work, $"insert-{Guid.NewGuid():N}.db");
        var store = SampleStores.Open(new StoreOptions { Path = path });
        double rate;
        try
        {
            rate = await TimeCommitsAsync([store], load);
        }
        finally
        {
            await store.DisposeAsync();
        }

        Check(StoreProbe.Samples(path), load.Count, "SQLite insert");
        CheckIds(StoreProbe.SampleIds(path), load.Select(i => i.EventId), "SQLite insert");
        foreach (var file in Directory.GetFiles(work, Path.GetFileName(path) + "*"))
        {
            File.Delete(file); // the store and its -wal/-shm: rounds must not fill the disk
        }

        return rate;
    }

    async Task<double> InsertPostgresAsync(IReadOnlyList<IngestItem> load, int writers)
    {
        string database = $"insert_{++databases}";
        string cs = await postgres.CreateDatabaseAsync(database);
        var stores = Enumerable.Range(0, writers).Select(_ => SampleStores.Open(new StoreOptions { Provider = StoreProviders.Postgres, ConnectionString = cs })).ToArray();
        double rate;
        try
        {
            rate = await TimeCommitsAsync(stores, load);
        }
        finally
        {
            foreach (var store in stores)
            {
                await store.DisposeAsync();
            }
        }

        Check(PostgresProbe.Samples(cs), load.Count, $"PostgreSQL insert, {writers} writer(s)");
        CheckIds(PostgresProbe.SampleIds(cs), load.Select(i => i.EventId), $"PostgreSQL insert, {writers} writer(s)");
        await DropDatabaseAsync(database);
        return rate;
    }

    async Task<IngestResult> IngestAsync(int nodes)
    {
        string database = $"ingest_{++databases}";
        string cs = await postgres.CreateDatabaseAsync(database);
        await FillAsync(broker, brokerOptions);
        var settings = new Dictionary<string, string>
        {
            ["Store:Provider"] = StoreProviders.Postgres,
            ["Store:ConnectionString"] = cs,
            ["Node:Roles"] = NodeRoles.Ingest,
        };
        // Store:Path is ignored by the postgres provider; the harness wants one, and nothing is written there.
        var daemons = Enumerable.Range(0, nodes).Select(_ => DaemonProcess.Start(broker, Path.Combine(work, "unused.db"), settings)).ToList();
        try
        {
            // Generous: a stalled node shows up as a failure with its log, not as a slow figure.
            var deadline = DateTime.UtcNow.AddSeconds(Math.Max(180, messages / 200.0));
            long firstRow = 0, storedAtFirstRow = 0;
            var started = new bool[nodes];
            // A node only counts once it has committed: the window then holds no process start-up, no JIT of the
            // first batch and no connection set-up — for the 2-node figure, not the first node's solo head start.
            while (started.Contains(false) && DateTime.UtcNow < deadline)
            {
                for (int i = 0; i < nodes; i++)
                {
                    started[i] = started[i] || await StoredByAsync(daemons[i]) > 0;
                    if (daemons[i].HasExited)
                    {
                        throw new InvalidOperationException($"daemon {i + 1} of {nodes} exited with {daemons[i].ExitCode}:\n{daemons[i].Output}");
                    }
                }

                if (firstRow == 0 && started.Contains(true))
                {
                    firstRow = Stopwatch.GetTimestamp();
                    storedAtFirstRow = PostgresProbe.Watermark(cs);
                }

                await Task.Delay(20);
            }

            if (started.Contains(false))
            {
                throw new TimeoutException($"not every node stored a sample in time:\n{string.Join("\n---\n", daemons.Select(d => d.Output))}");
            }

            long allStarted = Stopwatch.GetTimestamp();
            long storedAtStart = PostgresProbe.Samples(cs);
            if (storedAtStart * 2 > messages)
            {
                // The first node's prefetch and head start already hold most of the queue: the window would measure noise.
                throw new InvalidOperationException($"{storedAtStart} of {messages} were stored before all {nodes} nodes had started; use more --messages");
            }

            // MAX(seq) is an index lookup, so polling it every 50 ms does not load PostgreSQL the way COUNT(*) would;
            // the count decides the end (the identity column may skip numbers), and closes the window exactly.
            while (PostgresProbe.Watermark(cs) < messages && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }

            while (PostgresProbe.Samples(cs) < messages && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }

            long end = Stopwatch.GetTimestamp();
            Check(PostgresProbe.Samples(cs), messages, $"ingestion, {nodes} node(s)");
            CheckIds(PostgresProbe.SampleIds(cs), expectedIds, $"ingestion, {nodes} node(s)");
            // Stored and acked: the queue empties once every node has acked its last batch.
            await BrokerProbe.WaitForDepthAsync(broker, Topology.SamplesQueue, 0, TimeSpan.FromSeconds(30));
            var perNode = new long[nodes];
            for (int i = 0; i < nodes; i++)
            {
                perNode[i] = (long)await StoredByAsync(daemons[i]);
            }

            // Each node counts what it inserted; a redelivery the store recognised would be counted as a duplicate instead.
            Check(perNode.Sum(), messages, $"ingestion, {nodes} node(s), the nodes' own stored counters");
            double window = Stopwatch.GetElapsedTime(allStarted, end).TotalSeconds;
            double fromFirstRow = Stopwatch.GetElapsedTime(firstRow, end).TotalSeconds;
            return new IngestResult((messages - storedAtStart) / window, (messages - storedAtFirstRow) / fromFirstRow, perNode);
        }
        finally
        {
            foreach (var daemon in daemons)
            {
                try
                {
                    await daemon.TerminateAsync(TimeSpan.FromSeconds(30));
                }
                catch (OperationCanceledException)
                {
                    // DisposeAsync kills it.
                }

                await daemon.DisposeAsync();
            }

            await DropDatabaseAsync(database);
        }
    }

    async Task DropDatabaseAsync(string database)
    {
        // Every round would otherwise leave copies of the data set in the cluster until the end; FORCE because pooled
        // sessions of a store that was just disposed may still be closing.
        await using var connection = new NpgsqlConnection(postgres.ConnectionStringFor("postgres") + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP DATABASE \"{database}\" WITH (FORCE);", connection);
        await command.ExecuteNonQueryAsync();
    }

    async Task<string> SettingAsync(string name) =>
        await ScalarTextAsync($"SELECT setting FROM pg_settings WHERE name = '{name}';");

    async Task<string> ServerVersionAsync() => await ScalarTextAsync("SELECT version();");

    async Task<string> ScalarTextAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(postgres.ConnectionString + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        string text = Convert.ToString(await command.ExecuteScalarAsync(), inv) ?? "";
        int comma = text.IndexOf(',', StringComparison.Ordinal);
        return comma < 0 ? text : text[..comma];
    }
}
catch (Exception ex)
{
    Console.Error.WriteLine($"FAILED: {ex}");
    failures++;
}
finally
{
    Directory.Delete(work, recursive: true);
}

Console.WriteLine(string.Format(inv, "{0} after {1:0} s", failures == 0 ? "done" : "FAILED", wall.Elapsed.TotalSeconds));
return failures == 0 ? 0 : 1;

// Commits the load in batches of `batch`, the writers on disjoint parts at once; samples/s over the whole load.
async Task<double> TimeCommitsAsync(IDaemonStore[] stores, IReadOnlyList<IngestItem> load)
{
    foreach (var store in stores)
    {
        await store.InitializeAsync(CancellationToken.None); // migrations are not part of the insert rate
    }

    int share = (load.Count + stores.Length - 1) / stores.Length;
    long start = Stopwatch.GetTimestamp();
    await Task.WhenAll(stores.Select((store, w) => Task.Run(async () =>
    {
        var part = load.Skip(w * share).Take(share).ToList();
        for (int offset = 0; offset < part.Count; offset += batch)
        {
            var slice = part.GetRange(offset, Math.Min(batch, part.Count - offset));
            var outcomes = await store.CommitAsync(slice, CancellationToken.None);
            if (outcomes.Count != slice.Count || outcomes.Any(o => o.Status != CommitStatus.Stored))
            {
                throw new InvalidOperationException($"a fresh store did not store every item of a batch: {string.Join(", ", outcomes.GroupBy(o => o.Status).Select(g => $"{g.Count()} {g.Key}"))}");
            }
        }
    })));
    return load.Count / Stopwatch.GetElapsedTime(start).TotalSeconds;
}

async Task FillAsync(PrivateBroker broker, BrokerOptions brokerOptions)
{
    var connector = new BrokerConnector(brokerOptions, NullLogger<BrokerConnector>.Instance);
    await using var publisher = await ConfirmedPublisher.ConnectAsync(connector, new IngestOptions(), NullLogger.Instance, window: 2000);
    var summary = await publisher.PublishAsync(encoded, encoded.Count, null, CancellationToken.None);
    if (summary.Confirmed != messages)
    {
        throw new InvalidOperationException($"only {summary.Confirmed} of {messages} confirmed");
    }

    await BrokerProbe.WaitForDepthAsync(broker, Topology.SamplesQueue, (uint)messages, TimeSpan.FromSeconds(60));
}

// The node's own count of samples it stored (0 until its HTTP endpoint answers).
static async Task<double> StoredByAsync(DaemonProcess daemon)
{
    try
    {
        return await daemon.MetricAsync(MetricNames.IngestMessages, "type=\"sample\"", $"result=\"{MetricNames.Results.Stored}\"");
    }
    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
    {
        return 0;
    }
}

static void Check(long actual, long expected, string what)
{
    if (actual != expected)
    {
        throw new InvalidOperationException($"{what}: {actual} samples stored, expected exactly {expected}");
    }
}

static void CheckIds(HashSet<string> actual, IEnumerable<string> expected, string what)
{
    if (!actual.SetEquals(expected))
    {
        var want = expected.ToHashSet(StringComparer.Ordinal);
        throw new InvalidOperationException($"{what}: {want.Except(actual).Count()} event ids missing, {actual.Except(want).Count()} unexpected");
    }
}

// The shipped fashion-mnist contract (src/RetrainDaemon/appsettings.json, Models:fashion-mnist): what the decoder checks.
static ModelCatalogOptions FashionMnistCatalog() => new()
{
    Models =
    {
        ["fashion-mnist"] = new ModelOptions
        {
            Modality = "image",
            HoldoutFraction = 0.1,
            Image = new ImageShapeOptions { Width = 28, Height = 28, Channels = 1, OnMismatch = "reject" },
        },
    },
};

static double Median(List<double> values)
{
    var sorted = values.Order().ToList();
    return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
}

static Dictionary<string, int> ParseArguments(string[] args)
{
    var result = new Dictionary<string, int>();
    string[] known = ["messages", "rounds", "samples", "batch"];
    for (int i = 0; i < args.Length; i += 2)
    {
        if (i + 1 >= args.Length || !args[i].StartsWith("--", StringComparison.Ordinal) || !known.Contains(args[i][2..])
            || !int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out int value))
        {
            throw new ArgumentException($"usage: [--messages N] [--rounds N] [--samples N] [--batch N]; bad '{args[i]}'");
        }

        result[args[i][2..]] = value;
    }

    return result;
}

internal sealed record IngestResult(double Rate, double RateFromFirstRow, long[] PerNode);
