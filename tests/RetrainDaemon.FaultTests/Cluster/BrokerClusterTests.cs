using System.Diagnostics;
using System.Globalization;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Publishing;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.FaultTests.Cluster;

/// <summary>How a broker node is taken down mid-stream.</summary>
public enum NodeFault
{
    /// <summary><c>rabbitmqctl stop</c>: clients get a connection.close, Raft leadership is handed over.</summary>
    CleanStop,

    /// <summary>SIGKILL to the node's Erlang VM: sockets reset, peers notice the node is gone.</summary>
    Kill,
}

/// <summary>
/// A three-node RabbitMQ cluster on loopback; two ingest daemons with every endpoint configured, sharing one
/// PostgreSQL store; a producer publishing 10,000 real Fashion-MNIST samples with confirms. After ~3,000 confirms the
/// node leading the ingest queue goes down (clean stop or SIGKILL) and publishing carries on. Jepsen's
/// total-queue checker, against the store: lost (confirmed, not stored) = 0, duplicated (one id stored
/// twice) = 0, unexpected (stored, never published) = 0, recovered (stored, never confirmed) reported.
/// </summary>
public sealed class BrokerClusterTests(ITestOutputHelper output)
{
    private const int Total = 10_000;
    private const int StopAfterConfirmed = 3_000;

    // ~20 s of publishing: the fault (a clean stop takes ~2.5 s) and the recovery land well inside it.
    private const int PublishRate = 500;

    [Theory]
    [InlineData(NodeFault.CleanStop)]
    [InlineData(NodeFault.Kill)]
    public async Task NodeDownWhilePublishing_EveryConfirmedSampleStoredExactlyOnce(NodeFault fault)
    {
        var total = Stopwatch.StartNew();
        var messages = FashionMnist.Read("train", take: Total)
            .Select(i => CloudEventEncoder.FashionMnist(i, "train", "fashion-mnist", "png", null)).ToList();
        var published = messages.Select(m => m.EventId).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(Total, published.Count);

        // PostgreSQL initializes while the brokers boot.
        var storeStarting = Task.Run(SharedStore.CreateAsync);
        PrivateBrokerCluster startedCluster;
        try
        {
            startedCluster = await PrivateBrokerCluster.StartAsync(3);
        }
        catch
        {
            await (await storeStarting).DisposeAsync();
            throw;
        }

        await using var cluster = startedCluster;
        await using var store = await storeStarting;
        Log($"cluster of 3 formed in {cluster.StartDuration.TotalSeconds:0.0} s (boot {cluster.BootDuration.TotalSeconds:0.0} s, joins {(cluster.StartDuration - cluster.BootDuration).TotalSeconds:0.0} s): {string.Join(", ", cluster.Nodes.Select(n => $"{n.NodeName} on {n.Endpoint}"))}");

        var daemons = new List<(string Name, DaemonProcess Process)>();
        try
        {
            foreach (string name in store.IngestNodeNames)
            {
                daemons.Add((name, StartIngestNode(cluster, store, name)));
            }

            // Ready = connected and subscribed to both ingest queues.
            foreach (var (_, daemon) in daemons)
            {
                await daemon.WaitReadyAsync(TimeSpan.FromSeconds(90));
            }

            // Declared by the first daemon after the cluster formed: a member on every node (3.10's
            // quorum_cluster_size default is 3), its leader where that daemon is connected.
            var samplesQueue = await cluster.QueueInfoAsync(Topology.SamplesQueue);
            var deadQueue = await cluster.QueueInfoAsync(Topology.DeadLetterQueue);
            Log($"{samplesQueue.Name}: {samplesQueue.Type}, leader {samplesQueue.Leader}, members [{string.Join(", ", samplesQueue.Members)}], online [{string.Join(", ", samplesQueue.Online)}]");
            Log($"{deadQueue.Name}: {deadQueue.Type}, leader {deadQueue.Leader}, members [{string.Join(", ", deadQueue.Members)}]");
            Assert.Equal("quorum", samplesQueue.Type);
            Assert.Equal(cluster.Nodes.Select(n => n.NodeName).Order(), samplesQueue.Members.Order());
            Assert.Equal(cluster.Nodes.Select(n => n.NodeName).Order(), deadQueue.Members.Order());

            // The node to take down: the ingest queue's leader. The leader is placed where the declaring client
            // is connected (client-local), so a daemon is connected there; the publisher is sent there too.
            // The fault then costs a leader election, a daemon's connection and the publisher's connection.
            var victim = cluster.Nodes.Single(n => n.NodeName == samplesQueue.Leader);
            var publisherEndpoints = cluster.Endpoints.OrderBy(e => e == victim.Endpoint ? 0 : 1).ToList();
            await using var publisher = await TrackingPublisher.ConnectAsync(publisherEndpoints, "cluster-test-publisher", TimeSpan.FromSeconds(30));
            var publishing = Task.Run(() => publisher.PublishAsync(messages, maxInFlight: 200, attemptTimeout: TimeSpan.FromSeconds(10), giveUpAfter: TimeSpan.FromMinutes(4), messagesPerSecond: PublishRate));

            var waited = Stopwatch.StartNew();
            while (publisher.ConfirmedCount < StopAfterConfirmed && !publishing.IsCompleted)
            {
                Assert.True(waited.Elapsed < TimeSpan.FromSeconds(120), $"only {publisher.ConfirmedCount} confirmed after 120 s");
                await Task.Delay(20);
            }

            Assert.False(publishing.IsCompleted, "publishing finished before the node went down");

            samplesQueue = await cluster.QueueInfoAsync(Topology.SamplesQueue); // leadership could have moved since; logged below
            var connections = await cluster.ConnectionsAsync();
            Log($"before the fault: leader of {Topology.SamplesQueue} {samplesQueue.Leader}; connections " +
                string.Join(", ", connections.Select(c => $"{c.ClientName}→{c.Node.NodeName}")));

            int confirmedAtFault = publisher.ConfirmedCount;
            var faultAt = publisher.Elapsed;
            var faultTimer = Stopwatch.StartNew();
            if (fault == NodeFault.CleanStop)
            {
                await victim.StopAsync();
            }
            else
            {
                await victim.KillAsync();
            }

            int confirmedAfterFault = publisher.ConfirmedCount;
            Log($"{fault} of {victim.NodeName} with {confirmedAtFault} confirmed; it took {faultTimer.Elapsed.TotalSeconds:0.0} s ({confirmedAfterFault} confirmed when it returned)");
            Assert.True(confirmedAfterFault < Total - 1_000, $"{confirmedAfterFault} of {Total} were confirmed by the time the node was down: the fault did not land mid-stream");

            var report = await publishing.WaitAsync(TimeSpan.FromMinutes(5));
            var newLeader = await cluster.QueueInfoAsync(Topology.SamplesQueue);
            Log($"after the fault: leader of {Topology.SamplesQueue} {newLeader.Leader}, online [{string.Join(", ", newLeader.Online)}]; connections " +
                string.Join(", ", (await cluster.ConnectionsAsync()).Select(c => $"{c.ClientName}→{c.Node.NodeName}")));
            foreach (var (at, what) in publisher.ConnectionEvents)
            {
                Log($"publisher at {at.TotalSeconds:0.00} s: {what}");
            }

            Log($"publisher: confirmed {report.Confirmed.Count}, unconfirmed {report.Unconfirmed.Count}, attempts of unknown outcome on {report.Uncertain.Count} ids, " +
                $"retries {report.Retries} (nacks {report.Nacks}, returns {report.Returns}, closed channel {report.ClosedChannel}, interrupted {report.Interrupted}, " +
                $"timeouts {report.Timeouts}, other {report.OtherErrors}), {report.Elapsed.TotalSeconds:0.0} s, {report.ConfirmedPerSecond:0} confirmed/s");
            // The publisher's outage: from its connection loss (it is on the node that went down) to the first
            // confirm after it, which needs the recovered connection and a quorum with a leader.
            TimeSpan? connectionLostAt = publisher.ConnectionEvents
                .Where(e => e.At >= faultAt && e.What.StartsWith("connection lost", StringComparison.Ordinal))
                .Select(e => (TimeSpan?)e.At).FirstOrDefault();
            var firstAfterLoss = connectionLostAt is { } lostAt ? report.FirstConfirmAtOrAfter(lostAt) : null;
            TimeSpan? publisherOutage = firstAfterLoss is { } first ? first - faultAt : null;
            Log($"confirms: longest pause from the fault to the end of publishing {report.LongestConfirmGap(faultAt, report.ConfirmTimes.Count > 0 ? report.ConfirmTimes[^1] : faultAt).TotalSeconds:0.00} s; " +
                $"fault issued → publisher connection lost {(connectionLostAt is { } l ? $"{(l - faultAt).TotalSeconds:0.00} s" : "never")} → first confirm after that " +
                $"{(publisherOutage is { } o ? $"{o.TotalSeconds:0.00} s after the fault was issued" : "none")}");
            Assert.True(connectionLostAt is not null, "the publisher never lost its connection: it was not on the node that went down");
            Assert.True(report.Unconfirmed.Count == 0, $"{report.Unconfirmed.Count} publishes never confirmed within 4 minutes, e.g. {string.Join(", ", report.Unconfirmed.Take(3))}");

            // Everything confirmed must reach the store through the surviving nodes.
            var drain = Stopwatch.StartNew();
            var stored = await store.WaitForIdsAsync(report.Confirmed, TimeSpan.FromMinutes(3));
            Log($"store holds every confirmed id {drain.Elapsed.TotalSeconds:0.0} s after publishing ended ({stored.Count} ids)");

            uint samplesDepth = await cluster.WaitForDepthAsync(Topology.SamplesQueue, 0, TimeSpan.FromSeconds(60));
            uint deadDepth = await cluster.DepthAsync(Topology.DeadLetterQueue);
            // Nothing held unacked either (a passive declare counts only ready messages); list_queues lags, so poll.
            var counts = await cluster.MessageCountsAsync(Topology.SamplesQueue);
            for (var settle = Stopwatch.StartNew(); counts != (0, 0) && settle.Elapsed < TimeSpan.FromSeconds(30); counts = await cluster.MessageCountsAsync(Topology.SamplesQueue))
            {
                await Task.Delay(500);
            }

            stored = store.SampleIds();
            long rows = store.SampleRows();
            long lost = report.Confirmed.Count(id => !stored.Contains(id));
            long unexpected = stored.Count(id => !published.Contains(id));
            long recovered = stored.Count(id => !report.Confirmed.Contains(id));
            long duplicates = store.DuplicateRows();
            Assert.Equal(rows, stored.Count + duplicates);

            var perNode = new List<string>();
            double storedByNodes = 0, deduplicated = 0;
            foreach (var (name, daemon) in daemons)
            {
                double nodeStored = await daemon.MetricAsync("retrain_ingest_messages_total", "result=\"stored\"");
                double nodeDuplicates = await daemon.MetricAsync("retrain_ingest_messages_total", "result=\"duplicate\"");
                double recoveries = await daemon.MetricAsync("retrain_broker_recoveries_total");
                storedByNodes += nodeStored;
                deduplicated += nodeDuplicates;
                perNode.Add($"{name}: stored {nodeStored}, redeliveries deduplicated {nodeDuplicates}, connection recoveries {recoveries}");
            }

            Log($"RESULT {fault}: confirmed {report.Confirmed.Count}, lost {lost}, duplicates {duplicates}, unexpected {unexpected}, recovered {recovered}, " +
                $"publish retries {report.Retries}; queue depth {samplesDepth} (list_queues: ready {counts.Ready}, unacked {counts.Unacknowledged}), dead-letter depth {deadDepth}; " +
                $"publisher outage {(publisherOutage is { } po ? $"{po.TotalSeconds:0.00} s" : "n/a")}; leader before {samplesQueue.Leader}, after {newLeader.Leader}; " +
                $"total {total.Elapsed.TotalSeconds:0.0} s, {report.ConfirmedPerSecond:0} msgs/s published");
            Log(string.Join("; ", perNode));
            foreach (var (name, daemon) in daemons)
            {
                foreach (var line in daemon.Output.Split('\n').Where(IsBrokerEvent))
                {
                    Log($"{name} log: {line.TrimEnd()}");
                }
            }

            Assert.Equal(0, lost);
            Assert.Equal(0, duplicates);
            Assert.Equal(0, unexpected);
            Assert.Equal(0u, samplesDepth);
            Assert.Equal((0L, 0L), counts);
            Assert.Equal(0u, deadDepth);
            // Each id was stored once by exactly one node: the stored counters add up to the rows.
            Assert.Equal(rows, (long)storedByNodes);
            foreach (var (name, daemon) in daemons)
            {
                Assert.False(daemon.HasExited, $"{name} exited with {(daemon.HasExited ? daemon.ExitCode : 0)}:\n{daemon.Output}");
                await daemon.WaitReadyAsync(TimeSpan.FromSeconds(30));
            }

            Log($"redeliveries deduplicated by the store across nodes: {deduplicated}");
        }
        catch (Exception)
        {
            foreach (var (name, daemon) in daemons)
            {
                Log($"----- {name} output -----\n{Tail(daemon.Output, 80)}");
            }

            throw;
        }
        finally
        {
            foreach (var (_, daemon) in daemons)
            {
                await daemon.DisposeAsync();
            }
        }
    }

    private static DaemonProcess StartIngestNode(PrivateBrokerCluster cluster, SharedStore store, string name)
    {
        int httpPort = TestPaths.FreeTcpPort();
        var settings = new Dictionary<string, string>
        {
            ["Broker:NetworkRecoveryInterval"] = "00:00:01",
            ["Broker:Heartbeat"] = "00:00:10",
            // Tells the connections apart in list_connections.
            ["Broker:ClientName"] = name,
            ["Http:Urls"] = $"http://127.0.0.1:{httpPort}",
            ["Ingest:Enabled"] = "true",
            ["Serving:Enabled"] = "false",
            ["Loop:Enabled"] = "false",
        };
        for (int i = 0; i < cluster.Endpoints.Count; i++)
        {
            settings[$"Broker:Endpoints:{i}"] = cluster.Endpoints[i];
        }

        foreach (var (key, value) in store.Settings)
        {
            settings[key] = value;
        }

        return DaemonProcess.StartRaw("run", settings, httpPort);
    }

    private static bool IsBrokerEvent(string line) =>
        line.Contains("Broker connection", StringComparison.Ordinal) ||
        line.Contains("Connected to the broker", StringComparison.Ordinal) ||
        line.Contains("Ingestion failed", StringComparison.Ordinal) ||
        line.Contains("Shutdown drain", StringComparison.Ordinal) ||
        line.Contains("fail", StringComparison.OrdinalIgnoreCase) ||
        line.Contains("exception", StringComparison.OrdinalIgnoreCase);

    private static string Tail(string text, int lines)
    {
        var all = text.Split('\n');
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }

    private void Log(string line) => output.WriteLine($"[{DateTime.UtcNow.ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture)}] {line}");

    /// <summary>
    /// The store both ingest nodes share: a database on a private PostgreSQL server (SQLite is one file for
    /// one process). Read directly, the way an auditor would.
    /// </summary>
    private sealed class SharedStore : IAsyncDisposable
    {
        private readonly PrivatePostgres server;

        private SharedStore(PrivatePostgres server, string connectionString)
        {
            this.server = server;
            ConnectionString = connectionString;
        }

        public string ConnectionString { get; }

        public IReadOnlyList<string> IngestNodeNames => ["ingest-a", "ingest-b"];

        public IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
        {
            ["Store:Provider"] = "postgres",
            ["Store:ConnectionString"] = ConnectionString,
        };

        public static async Task<SharedStore> CreateAsync()
        {
            var server = await PrivatePostgres.StartAsync();
            try
            {
                return new SharedStore(server, await server.CreateDatabaseAsync("cluster_ingest"));
            }
            catch
            {
                await server.DisposeAsync();
                throw;
            }
        }

        public HashSet<string> SampleIds() => PostgresProbe.SampleIds(ConnectionString);

        public long SampleRows() => PostgresProbe.Samples(ConnectionString);

        /// <summary>Rows beyond one per event id (the unique key makes this 0 unless the schema lost it).</summary>
        public long DuplicateRows() => PostgresProbe.Scalar(ConnectionString, "SELECT COUNT(*) - COUNT(DISTINCT event_id) FROM samples;");

        public async Task<HashSet<string>> WaitForIdsAsync(IReadOnlySet<string> ids, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (true)
            {
                // Count first (cheap); read the ids only once the count says they may all be there.
                if (SampleRows() >= ids.Count)
                {
                    var stored = SampleIds();
                    if (ids.All(stored.Contains))
                    {
                        return stored;
                    }
                }

                if (DateTime.UtcNow > deadline)
                {
                    var stored = SampleIds();
                    throw new TimeoutException($"{ids.Count(id => !stored.Contains(id))} confirmed ids still not stored after {timeout.TotalSeconds:0} s");
                }

                await Task.Delay(250);
            }
        }

        public ValueTask DisposeAsync() => server.DisposeAsync();
    }
}
