using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using RabbitMQ.Client;

namespace RetrainDaemon.Tests.Shared;

/// <summary>
/// A RabbitMQ cluster of private nodes on loopback, each started with <c>deploy/rabbitmq/local-broker.sh</c>
/// in a temp directory of its own. The nodes share one Erlang cookie and one epmd (same
/// <c>RETRAIN_BROKER_EPMD_PORT</c>): that is how they find each other by name. Node 1 (the seed) starts
/// alone, the others start in parallel and then join it one by one (<c>stop_app</c>, <c>join_cluster</c>,
/// <c>start_app</c>), so queues declared afterwards see every node. Dispose stops every node, the shared epmd, and deletes the dirs.
/// </summary>
public sealed class PrivateBrokerCluster : IAsyncDisposable
{
    private readonly List<BrokerClusterNode> nodes;

    private PrivateBrokerCluster(List<BrokerClusterNode> nodes, int epmdPort)
    {
        this.nodes = nodes;
        EpmdPort = epmdPort;
    }

    public IReadOnlyList<BrokerClusterNode> Nodes => nodes;

    /// <summary>Every node's <c>localhost:port</c>, in node order (what <c>Broker:Endpoints:i</c> takes).</summary>
    public IReadOnlyList<string> Endpoints => nodes.Select(n => n.Endpoint).ToList();

    public int EpmdPort { get; }

    /// <summary>From the first script call to the cluster status listing every node as running.</summary>
    public TimeSpan StartDuration { get; private set; }

    /// <summary>The part of <see cref="StartDuration"/> spent booting the nodes standalone (the rest is joining).</summary>
    public TimeSpan BootDuration { get; private set; }

    public static async Task<PrivateBrokerCluster> StartAsync(int nodeCount = 3)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nodeCount, 1);
        var watch = Stopwatch.StartNew();
        // Fresh ports, all distinct: FreeTcpPort releases its port before returning, so two calls could
        // in principle hand out the same one.
        var ports = new HashSet<int>();
        int NextPort()
        {
            int port;
            do
            {
                port = TestPaths.FreeTcpPort();
            }
            while (!ports.Add(port));
            return port;
        }

        int epmdPort = NextPort();
        // Letters and digits (the script's rule); unique per cluster so that two clusters can never join.
        string cookie = "RD" + Guid.NewGuid().ToString("N").ToUpperInvariant();
        var nodes = new List<BrokerClusterNode>(nodeCount);
        for (int i = 0; i < nodeCount; i++)
        {
            nodes.Add(new BrokerClusterNode(i, TestPaths.NewTempDirectory($"rd-cluster-{i + 1}"), NextPort(), NextPort(), epmdPort, cookie));
        }

        var cluster = new PrivateBrokerCluster(nodes, epmdPort);
        try
        {
            var seed = nodes[0];
            var phases = Stopwatch.StartNew();
            // The seed boots alone (~4.5 s): `start` first clears a leftover epmd with `epmd -kill`, which
            // epmd refuses only once a node is registered. Booting every node at once (~2 s faster) would let
            // one node's clean-up kill the epmd another node had just spawned but not yet registered with.
            await seed.StartAgainAsync();
            // The others then boot at the same time (~5–6 s for two on 2 cores)...
            await Task.WhenAll(nodes.Skip(1).Select(async node =>
            {
                await node.StartAgainAsync();
                await node.CtlAsync("stop_app");
            }));
            cluster.BootDuration = phases.Elapsed;
            // ...but the others join the seed one after the other: two concurrent joins change the Mnesia
            // schema at once, and one of them failed here with
            // {aborted, {shutdown, {gen_server, call, [_, {sync_dump_log, schema_prepare}, _]}}}.
            foreach (var node in nodes.Skip(1))
            {
                await node.CtlAsync("join_cluster", seed.NodeName);
                await node.CtlAsync("start_app");
            }

            var running = await cluster.RunningNodesAsync();
            var expected = nodes.Select(n => n.NodeName).ToHashSet(StringComparer.Ordinal);
            if (!expected.SetEquals(running))
            {
                throw new InvalidOperationException($"cluster_status lists running nodes [{string.Join(", ", running)}], expected [{string.Join(", ", expected)}]");
            }

            cluster.StartDuration = watch.Elapsed;
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>The nodes this harness believes are up (started, not stopped or killed since).</summary>
    public IReadOnlyList<BrokerClusterNode> RunningNodes => nodes.Where(n => n.IsRunning).ToList();

    /// <summary><c>running_nodes</c> of <c>cluster_status</c>, asked of the first node that is up.</summary>
    public async Task<IReadOnlyList<string>> RunningNodesAsync()
    {
        var via = RunningNodes.FirstOrDefault() ?? throw new InvalidOperationException("no node of the cluster is running");
        string json = await via.CtlAsync("cluster_status", "--formatter", "json");
        using var document = JsonDocument.Parse(JsonStart(json));
        return document.RootElement.GetProperty("running_nodes").EnumerateArray().Select(e => e.GetString()!).ToList();
    }

    /// <summary>
    /// A queue's Raft membership as the cluster reports it: its leader and members (node names). Asked of a
    /// running node; <c>list_queues</c> reports these for quorum queues without the lag its counts have.
    /// </summary>
    public async Task<QuorumQueueInfo> QueueInfoAsync(string queue)
    {
        var via = RunningNodes.FirstOrDefault() ?? throw new InvalidOperationException("no node of the cluster is running");
        string json = await via.CtlAsync("list_queues", "name", "type", "leader", "members", "online", "--formatter", "json");
        using var document = JsonDocument.Parse(JsonStart(json));
        foreach (var row in document.RootElement.EnumerateArray())
        {
            if (row.GetProperty("name").GetString() != queue)
            {
                continue;
            }

            static List<string> Names(JsonElement row, string property) =>
                row.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.Array
                    ? value.EnumerateArray().Select(e => e.GetString() ?? "").ToList()
                    : [];

            return new QuorumQueueInfo(
                queue,
                row.GetProperty("type").GetString() ?? "",
                row.TryGetProperty("leader", out var leader) ? leader.GetString() ?? "" : "",
                Names(row, "members"),
                Names(row, "online"));
        }

        throw new InvalidOperationException($"queue {queue} is not declared (list_queues: {json})");
    }

    /// <summary>
    /// Ready and unacknowledged messages of <paramref name="queue"/> as <c>list_queues</c> reports them. For
    /// quorum queues these lag ~5 s (PLATFORM.md), so poll; but unlike a passive declare they include
    /// deliveries a consumer holds without having acked.
    /// </summary>
    public async Task<(long Ready, long Unacknowledged)> MessageCountsAsync(string queue)
    {
        var via = RunningNodes.FirstOrDefault() ?? throw new InvalidOperationException("no node of the cluster is running");
        string json = await via.CtlAsync("list_queues", "name", "messages_ready", "messages_unacknowledged", "--formatter", "json");
        using var document = JsonDocument.Parse(JsonStart(json));
        foreach (var row in document.RootElement.EnumerateArray())
        {
            if (row.GetProperty("name").GetString() == queue)
            {
                return (row.GetProperty("messages_ready").GetInt64(), row.GetProperty("messages_unacknowledged").GetInt64());
            }
        }

        throw new InvalidOperationException($"queue {queue} is not declared (list_queues: {json})");
    }

    /// <summary>
    /// AMQP connections as the cluster lists them: the client's connection name and the node serving it
    /// (from the server port in the connection's name).
    /// </summary>
    public async Task<IReadOnlyList<(string ClientName, BrokerClusterNode Node)>> ConnectionsAsync()
    {
        var via = RunningNodes.FirstOrDefault() ?? throw new InvalidOperationException("no node of the cluster is running");
        string json = await via.CtlAsync("list_connections", "name", "client_properties", "--formatter", "json");
        using var document = JsonDocument.Parse(JsonStart(json));
        var result = new List<(string, BrokerClusterNode)>();
        foreach (var row in document.RootElement.EnumerateArray())
        {
            // "127.0.0.1:41234 -> 127.0.0.1:5672": the part after the arrow is the node's listener.
            string name = row.GetProperty("name").GetString() ?? "";
            int colon = name.LastIndexOf(':');
            if (colon < 0 || !int.TryParse(name[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int port))
            {
                continue;
            }

            var node = nodes.FirstOrDefault(n => n.Port == port);
            if (node is null)
            {
                continue;
            }

            result.Add((ConnectionName(row), node));
        }

        return result;
    }

    // client_properties comes as a list of [key, type, value] triples in 3.10's JSON output.
    private static string ConnectionName(JsonElement row)
    {
        if (row.TryGetProperty("client_properties", out var properties) && properties.ValueKind == JsonValueKind.Array)
        {
            foreach (var entry in properties.EnumerateArray())
            {
                if (entry.ValueKind == JsonValueKind.Array && entry.GetArrayLength() == 3 && entry[0].GetString() == "connection_name")
                {
                    return entry[2].ToString();
                }
            }
        }

        return "";
    }

    /// <summary>The CLI prints progress lines before the JSON document unless asked not to; skip them.</summary>
    private static string JsonStart(string output)
    {
        int start = output.IndexOfAny(['[', '{']);
        return start < 0 ? throw new InvalidOperationException($"no JSON in rabbitmqctl output: {output}") : output[start..];
    }

    /// <summary>A connection to whichever running node answers first (no automatic recovery: probes are short).</summary>
    public async Task<IConnection> ConnectAsync()
    {
        var endpoints = RunningNodes.Select(n => new AmqpTcpEndpoint("localhost", n.Port)).ToList();
        if (endpoints.Count == 0)
        {
            throw new InvalidOperationException("no node of the cluster is running");
        }

        var factory = new ConnectionFactory { AutomaticRecoveryEnabled = false, ClientProvidedName = "cluster-probe" };
        return await factory.CreateConnectionAsync(endpoints);
    }

    /// <summary>Ready messages in <paramref name="queue"/>, read over AMQP through a running node (the CLI's counts lag).</summary>
    public async Task<uint> DepthAsync(string queue)
    {
        await using var connection = await ConnectAsync();
        await using var channel = await connection.CreateChannelAsync();
        var ok = await channel.QueueDeclarePassiveAsync(queue);
        return ok.MessageCount;
    }

    /// <summary>Polls <see cref="DepthAsync"/> until it reads <paramref name="expected"/>; returns the last value read.</summary>
    public async Task<uint> WaitForDepthAsync(string queue, uint expected, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        uint depth;
        while (true)
        {
            depth = await DepthAsync(queue);
            if (depth == expected || DateTime.UtcNow >= deadline)
            {
                return depth;
            }

            await Task.Delay(250);
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Stop all at once (each clean stop takes 2–3 s), then delete one by one: the first delete after
        // every node is down finds no node registered with the shared epmd and takes it down.
        await Task.WhenAll(nodes.Select(async n =>
        {
            try
            {
                await n.StopAsync();
            }
            catch (InvalidOperationException)
            {
                // Best effort; reset below sweeps whatever is left of it.
            }
        }));
        foreach (var node in nodes)
        {
            await node.ResetAsync();
        }

        // Belt and braces: an epmd that survived (a node the script could not stop) would outlive the test run.
        await KillEpmdAsync(EpmdPort);
    }

    private static async Task KillEpmdAsync(int port)
    {
        var info = new ProcessStartInfo("epmd") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("-kill");
        info.Environment["ERL_EPMD_PORT"] = port.ToString(CultureInfo.InvariantCulture);
        info.Environment["ERL_EPMD_ADDRESS"] = "127.0.0.1";
        try
        {
            using var process = Process.Start(info)!;
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or OperationCanceledException)
        {
        }
    }
}

/// <summary>What <c>list_queues</c> says about a quorum queue's replicas.</summary>
public sealed record QuorumQueueInfo(string Name, string Type, string Leader, IReadOnlyList<string> Members, IReadOnlyList<string> Online);

/// <summary>One node of a <see cref="PrivateBrokerCluster"/>: like <see cref="PrivateBroker"/>, plus SIGKILL.</summary>
public sealed class BrokerClusterNode
{
    private readonly Dictionary<string, string> environment;

    internal BrokerClusterNode(int index, string directory, int port, int distPort, int epmdPort, string cookie)
    {
        Index = index;
        Directory = directory;
        Port = port;
        NodeName = $"rd-{port}@localhost";
        environment = new()
        {
            ["RETRAIN_BROKER_DIR"] = directory,
            ["RETRAIN_BROKER_PORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["RETRAIN_BROKER_DIST_PORT"] = distPort.ToString(CultureInfo.InvariantCulture),
            ["RETRAIN_BROKER_EPMD_PORT"] = epmdPort.ToString(CultureInfo.InvariantCulture),
            ["RETRAIN_BROKER_NODENAME"] = NodeName,
            ["RETRAIN_BROKER_COOKIE"] = cookie,
        };
    }

    /// <summary>0-based position in the cluster (node 0 is the seed the others joined).</summary>
    public int Index { get; }

    public string Directory { get; }

    public int Port { get; }

    public string NodeName { get; }

    public string Endpoint => $"localhost:{Port}";

    /// <summary>Started and not stopped or killed since (as far as this harness knows).</summary>
    public bool IsRunning { get; private set; }

    /// <summary>Starts the node, or restarts it with its data; it rejoins its cluster by itself.</summary>
    public async Task StartAgainAsync()
    {
        await RunScriptAsync(["start"]);
        IsRunning = true;
    }

    /// <summary>A clean stop (<c>rabbitmqctl stop</c>): connections closed, Raft leadership handed over.</summary>
    public async Task StopAsync()
    {
        IsRunning = false;
        await RunScriptAsync(["stop"]);
    }

    /// <summary>SIGKILL to the node's Erlang VM: no goodbyes to clients or peers.</summary>
    public async Task KillAsync()
    {
        string pidText = (await File.ReadAllTextAsync(Path.Combine(Directory, "rabbitmq.pid"))).Trim();
        int pid = int.Parse(pidText, CultureInfo.InvariantCulture);
        IsRunning = false;
        using (var beam = Process.GetProcessById(pid))
        {
            beam.Kill();
        }

        // Not our child, and PID 1 may reap it slowly: dead means gone or a zombie.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (IsAlive(pid))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"{NodeName} (pid {pid}) still alive 30 s after SIGKILL");
            }

            await Task.Delay(50);
        }
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            int close = stat.LastIndexOf(')');
            return close >= 0 && close + 2 < stat.Length && stat[close + 2] != 'Z';
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The beam's pid while it runs (read from the pid file RabbitMQ writes).</summary>
    public int? BeamPid()
    {
        string path = Path.Combine(Directory, "rabbitmq.pid");
        return File.Exists(path) && int.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) ? pid : null;
    }

    public Task<string> CtlAsync(params string[] args) => RunScriptAsync(["ctl", .. args]);

    internal async Task ResetAsync()
    {
        try
        {
            await RunScriptAsync(["reset"]);
        }
        catch (InvalidOperationException)
        {
            // Best effort: never hide the test's own failure behind a cleanup error.
        }

        IsRunning = false;
    }

    private async Task<string> RunScriptAsync(string[] args)
    {
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(TestPaths.BrokerScript);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"local-broker.sh {string.Join(' ', args)} ({NodeName}) did not finish within 120 s");
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"local-broker.sh {string.Join(' ', args)} ({NodeName}) exited {process.ExitCode}: {await stdout}{await stderr}");
        }

        return await stdout + await stderr;
    }
}
