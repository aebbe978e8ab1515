using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Messaging.Publishing;
using RetrainDaemon.Tests.Shared;
using static RetrainDaemon.Tests.Shared.LoopTestSettings;
using Xunit.Abstractions;

namespace RetrainDaemon.FaultTests.Cluster;

/// <summary>
/// Issue 9 and reliability.md Q6: daemon nodes sharing one PostgreSQL store (samples, ledger, Quartz's clustered
/// job store), one registry and one runs directory, as child processes against a real PostgreSQL 15 and the
/// private broker. Scheduled firings run once across the cluster; a node killed mid-fine-tune is recovered by
/// the other from its checkpoint with one version published; two serving-only nodes follow a promotion.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class LoopClusterTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-cluster")
{
    private const string Model = LoopTestSettings.Model;
    private const string M = LoopTestSettings.M;

    /// <summary>A fast failure detector for tests: a dead node's runs are recovered ~5 s after its last check-in.</summary>
    private static readonly Dictionary<string, string> FastCheckin = new()
    {
        ["Loop:ClusterCheckinInterval"] = "00:00:02",
        ["Loop:ClusterCheckinMisfireThreshold"] = "00:00:03",
    };

    private static Dictionary<string, string> Postgres(string connectionString) => new()
    {
        ["Store:Provider"] = "postgres",
        ["Store:ConnectionString"] = connectionString,
    };

    private static string At(DateTimeOffset t) => t.UtcDateTime.ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture);

    private static string Describe(RunRecord r) =>
        $"{r.RunId} [{r.Trigger}] {At(r.StartedAt)}–{(r.FinishedAt is { } f ? At(f) : "…")} {r.Status} attempts {r.Attempts}: {r.Detail}";

    /// <summary>Which node's log names the run (each node logs the runs it starts or resumes).</summary>
    private static string NodeOf(string runId, params (string Name, LoopDaemon Node)[] nodes) =>
        string.Join("+", nodes.Where(n => n.Node.Daemon.Output.Contains(runId, StringComparison.Ordinal)).Select(n => n.Name)) is { Length: > 0 } names ? names : "?";

    /// <summary>
    /// Issue 9: two nodes on the clustered job store, a cron trigger every 2 s, and a store too small to train on
    /// (each firing records a skipped run at once). Over 20+ firings every slot has exactly one run: consecutive
    /// runs are 2 s apart (a firing run by both nodes would show a gap near 0, a lost one a gap near 4 s).
    /// </summary>
    [Fact]
    public async Task ScheduledFirings_OnTwoClusteredNodes_EachRunsExactlyOnce()
    {
        await using var postgres = await PrivatePostgres.StartAsync();
        string database = await postgres.CreateDatabaseAsync("firings");
        var settings = With(Quiet(), Postgres(database), FastCheckin, new Dictionary<string, string>
        {
            [M + "Schedule"] = "0/2 * * * * ?",
            ["Serving:Enabled"] = "false",
        });

        await using var a = LoopDaemon.Start(Fixture.Broker, Path.Combine(Directory, "a"), With(settings, Shared(Directory)));
        await using var b = LoopDaemon.Start(Fixture.Broker, Path.Combine(Directory, "b"), With(settings, Shared(Directory)));
        const int firings = 21;
        var runs = await LoopFaultProbe.PollAsync(async () =>
        {
            ThrowIfExited(a, b);
            var all = (await a.RunsAsync(Model)).Where(r => r.Trigger == "schedule").ToList();
            return all.Count >= firings + 1 ? all : null;
        }, TimeSpan.FromSeconds(120), () => $"fewer than {firings + 1} scheduled runs\nA: {a.Tail()}\nB: {b.Tail()}");

        // The newest run may still be open; judge the 21 before it (20 gaps).
        var judged = runs.OrderBy(r => r.StartedAt).Take(firings).ToList();
        var gaps = judged.Zip(judged.Skip(1), (x, y) => (y.StartedAt - x.StartedAt).TotalSeconds).ToList();
        int onA = judged.Count(r => NodeOf(r.RunId, ("A", a), ("B", b)) == "A");
        int onB = judged.Count(r => NodeOf(r.RunId, ("A", a), ("B", b)) == "B");
        output.WriteLine($"{judged.Count} scheduled firings {At(judged[0].StartedAt)}–{At(judged[^1].StartedAt)}: ran on A {onA}, on B {onB}; "
            + $"gaps min {gaps.Min():0.000} s, max {gaps.Max():0.000} s, mean {gaps.Average():0.000} s");
        Assert.All(judged, r => Assert.Equal(RunStatuses.Skipped, r.Status));
        Assert.All(gaps, g => Assert.InRange(g, 1.0, 3.0));
        Assert.Equal(judged.Count, judged.Select(r => r.RunId).Distinct().Count());
        // Every run was started by exactly one node.
        Assert.Equal(judged.Count, onA + onB);

        // `retrain` on a clustered store queues a firing for a train node and reports that run's outcome (too little
        // data here: skipped, exit 4) instead of training in its own process.
        await using var cli = DaemonProcess.StartRaw("retrain --model fashion-mnist --reason cli-on-cluster", With(settings, Shared(Directory)), 0);
        int exit = await cli.WaitForExitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine($"$ retrain --model fashion-mnist (clustered) → {exit}\n{cli.Output}");
        Assert.Equal(4, exit);
        Assert.Contains("queued a fine-tune of fashion-mnist on the cluster", cli.Output, StringComparison.Ordinal);
        var manual = Assert.Single(await a.RunsAsync(Model), r => r.Trigger == "manual: cli-on-cluster");
        Assert.Equal(RunStatuses.Skipped, manual.Status);
        Assert.Contains($"{manual.RunId}: skipped", cli.Output, StringComparison.Ordinal);
        Assert.True(NodeOf(manual.RunId, ("A", a), ("B", b)) is "A" or "B");
    }

    /// <summary>
    /// reliability.md Q6: two nodes; the volume trigger starts a fine-tune on one of them; it is killed with
    /// SIGKILL after the checkpoint of step 300. The survivor's Quartz declares it dead after its check-in
    /// window, fires the recovery firing, and the job resumes the same run (attempt 2, same snapshot) from the
    /// newest checkpoint on the shared runs directory. Exactly one registry version carries the run id.
    /// </summary>
    [Fact]
    public async Task Q6_KillNodeRunningAFineTune_OtherNodeResumesFromTheCheckpoint_OneVersion()
    {
        const int steps = 1000;
        const int every = 50;
        await using var postgres = await PrivatePostgres.StartAsync();
        string database = await postgres.CreateDatabaseAsync("q6");
        await PrefillAsync(database, 0, 2000);
        var settings = With(Quiet(), PassableGate, Postgres(database), FastCheckin, Shared(Directory), new Dictionary<string, string>
        {
            [M + "Triggers:MinNewSamples"] = "1500",
            [M + "Training:Steps"] = steps.ToString(CultureInfo.InvariantCulture),
            [M + "Training:CheckpointEvery"] = every.ToString(CultureInfo.InvariantCulture),
        });

        await using var a = LoopDaemon.Start(Fixture.Broker, Path.Combine(Directory, "a"), settings);
        await using var b = LoopDaemon.Start(Fixture.Broker, Path.Combine(Directory, "b"), settings);
        var training = await LoopFaultProbe.PollAsync(async () =>
        {
            ThrowIfExited(a, b);
            var run = (await a.RunsAsync(Model)).FirstOrDefault();
            return run is { Directory: { } dir } && run.Stages.Any(s => s.Stage == "train" && s.FinishedAt is null)
                && LoopFaultProbe.Checkpoints(dir).Any(c => c.Step >= 6 * every) ? run : null;
        }, TimeSpan.FromSeconds(150), () => $"no run reached a checkpoint at step {6 * every}\nA: {a.Tail()}\nB: {b.Tail()}");

        string owner = NodeOf(training.RunId, ("A", a), ("B", b));
        Assert.True(owner is "A" or "B", $"run {training.RunId} is in the logs of {owner}");
        var (victim, survivor) = owner == "A" ? (a, b) : (b, a);
        await victim.Daemon.KillAsync();
        var killedAt = DateTimeOffset.UtcNow;
        // loss.csv is written when an attempt ends, so a killed attempt leaves none: the newest checkpoint at the kill
        // is what a resume may start from, and checkpoints every `every` steps bound what is recomputed.
        var lastCheckpoint = LoopFaultProbe.Checkpoints(training.Directory!)[^1];
        output.WriteLine($"run {training.RunId} trained on node {owner}; SIGKILL at {At(killedAt)}, newest checkpoint step {lastCheckpoint.Step}");

        var resumed = await LoopFaultProbe.PollAsync(async () => (await survivor.RunsAsync(Model)).FirstOrDefault(r => r.Stages.Any(s => s is { Attempt: 2, Stage: "train" })),
            TimeSpan.FromSeconds(90), () => $"the run was not resumed by the survivor\n{survivor.Tail()}", TimeSpan.FromMilliseconds(100));
        var failover = resumed.Stages.First(s => s.Attempt == 2).StartedAt - killedAt;
        var done = await survivor.WaitForFinishedRunAsync(Model, 1, TimeSpan.FromSeconds(180));
        var all = await survivor.RunsAsync(Model);
        foreach (var run in all)
        {
            output.WriteLine(Describe(run));
        }

        foreach (var stage in done.Stages)
        {
            output.WriteLine($"  attempt {stage.Attempt} {stage.Stage} {stage.Outcome} {stage.Duration?.TotalSeconds:0.0}s: {stage.Detail}");
        }

        int rowsSecond = LoopFaultProbe.LossRows(done.Directory!);
        long resumedFrom = steps - rowsSecond;
        output.WriteLine($"SIGKILL -> attempt 2 on the survivor: {failover.TotalSeconds:0.0} s (check-in 2 s + threshold 3 s); resumed from step {resumedFrom} "
            + $"(newest checkpoint at the kill: {lastCheckpoint.Step}; at most {every} steps recomputed); survivor log says: "
            + string.Join(" | ", survivor.Daemon.Output.Split('\n').Where(l => l.Contains("Recovering an interrupted", StringComparison.Ordinal)).Select(l => l.Trim())));

        Assert.Single(all);
        Assert.Equal(training.RunId, done.RunId);
        Assert.Equal(2, done.Attempts);
        Assert.Equal(training.Watermark, done.Watermark);
        Assert.Equal(RunStatuses.Promoted, done.Status);
        Assert.Contains($"Completed after {steps} steps", done.Stages.Single(s => s is { Attempt: 2, Stage: "train" }).Detail, StringComparison.Ordinal);
        Assert.Equal(lastCheckpoint.Step, resumedFrom);
        Assert.True(failover < TimeSpan.FromSeconds(30), $"failover took {failover}");
        Assert.Contains("Recovering an interrupted fine-tune firing", survivor.Daemon.Output, StringComparison.Ordinal);

        var registry = SharedRegistry(Directory);
        var versions = registry.List(Model).Versions.Where(v => v.Manifest?.RunId == done.RunId).ToList();
        Assert.Single(versions);
        Assert.Equal(done.Version, versions[0].Version);
        Assert.Single(registry.List(Model).Versions);
    }

    /// <summary>
    /// Clustered SIGTERM: the node training a fine-tune is stopped. Quartz's shutdown cancels the job, the run
    /// checkpoints and the job hands its firing back to the store as a recovery trigger (a cleanly completed firing
    /// would leave its run open for nobody to resume). The other node finds the trigger at its next poll and resumes
    /// the run from the checkpoint written at the stop — sooner than the 7.5 s a dead node's runs wait at the least,
    /// which is what shows it was handed back rather than recovered from a dead node.
    /// </summary>
    [Fact]
    public async Task SigtermOnTheTrainingNode_HandsTheRunBack_OtherNodeResumesFromTheStopCheckpoint()
    {
        const int steps = 1000;
        await using var postgres = await PrivatePostgres.StartAsync();
        string database = await postgres.CreateDatabaseAsync("handback");
        await PrefillAsync(database, 0, 2000);
        var settings = With(Quiet(), PassableGate, Postgres(database), Shared(Directory), new Dictionary<string, string>
        {
            [M + "Triggers:MinNewSamples"] = "1500",
            [M + "Training:Steps"] = steps.ToString(CultureInfo.InvariantCulture),
            [M + "Training:CheckpointEvery"] = "50",
        });

        await using var a = LoopDaemon.Start(Fixture.Broker, Path.Combine(Directory, "a"), settings);
        await using var b = LoopDaemon.Start(Fixture.Broker, Path.Combine(Directory, "b"), settings);
        var training = await LoopFaultProbe.PollAsync(async () =>
        {
            ThrowIfExited(a, b);
            var run = (await a.RunsAsync(Model)).FirstOrDefault();
            return run is { Directory: { } dir } && run.Stages.Any(s => s.Stage == "train" && s.FinishedAt is null)
                && LoopFaultProbe.Checkpoints(dir).Any(c => c.Step >= 300) ? run : null;
        }, TimeSpan.FromSeconds(150), () => $"no run reached a checkpoint at step 300\nA: {a.Tail()}\nB: {b.Tail()}");

        string owner = NodeOf(training.RunId, ("A", a), ("B", b));
        Assert.True(owner is "A" or "B", $"run {training.RunId} is in the logs of {owner}");
        var (stopped, survivor) = owner == "A" ? (a, b) : (b, a);
        var stopTime = await stopped.Daemon.TerminateAsync(TimeSpan.FromSeconds(45));
        var exitedAt = DateTimeOffset.UtcNow;
        Assert.Equal(0, stopped.Daemon.ExitCode);
        Assert.Contains("handed back to the cluster", stopped.Daemon.Output, StringComparison.Ordinal);
        var checkpoint = LoopFaultProbe.Checkpoints(training.Directory!)[^1];
        var interrupted = (await survivor.RunsAsync(Model)).Single();
        long stepAtStop = long.Parse(System.Text.RegularExpressions.Regex.Match(interrupted.Stages.Single(s => s.Stage == "train").Detail ?? "", @"Cancelled after (\d+) steps").Groups[1].Value, CultureInfo.InvariantCulture);

        var resumed = await LoopFaultProbe.PollAsync(async () => (await survivor.RunsAsync(Model)).FirstOrDefault(r => r.Stages.Any(s => s is { Attempt: 2, Stage: "train" })),
            TimeSpan.FromSeconds(60), () => $"the run was not resumed by the survivor\n{survivor.Tail()}", TimeSpan.FromMilliseconds(100));
        var handover = resumed.Stages.First(s => s.Attempt == 2).StartedAt - exitedAt;
        var done = await survivor.WaitForFinishedRunAsync(Model, 1, TimeSpan.FromSeconds(180));
        long resumedFrom = steps - LoopFaultProbe.LossRows(done.Directory!);
        output.WriteLine($"run {training.RunId} on node {owner}: SIGTERM -> exit 0 in {stopTime.TotalSeconds:0.00} s; stopped at step {stepAtStop}, newest checkpoint step {checkpoint.Step}; "
            + $"exit -> attempt 2 on the other node {handover.TotalSeconds:0.0} s (a dead node's runs wait 7.5–15 s); resumed from step {resumedFrom}; {Describe(done)}");

        Assert.True(stopTime < TimeSpan.FromSeconds(30), $"SIGTERM -> exit took {stopTime}");
        Assert.Equal(training.RunId, done.RunId);
        Assert.Equal(2, done.Attempts);
        Assert.Equal(RunStatuses.Promoted, done.Status);
        Assert.Equal(checkpoint.Step, resumedFrom);
        Assert.InRange(stepAtStop - resumedFrom, 0, 50);
        Assert.True(handover < TimeSpan.FromSeconds(7.5), $"the other node resumed {handover} after the exit: recovered as from a dead node, not handed back");
        Assert.Single(SharedRegistry(Directory).List(Model).Versions, v => v.Manifest?.RunId == done.RunId);
    }

    /// <summary>
    /// Issue 9: roles. A node with roles ingest,train learns from the broker and promotes; two serving-only nodes
    /// (no ingest, no Quartz, no TorchSharp loaded) share its registry and store, follow model.promoted and serve
    /// each new version within the reported bound. A rating of a generation one serving node handed out joins it
    /// in the shared store (the journal is shared now).
    /// </summary>
    [Fact]
    public async Task TwoServingNodes_FollowPromotions_WithinTheBound_AndLoadNoTorch()
    {
        var bound = TimeSpan.FromSeconds(10);
        await using var postgres = await PrivatePostgres.StartAsync();
        string database = await postgres.CreateDatabaseAsync("serving");
        var common = With(Postgres(database), Shared(Directory));
        var trainer = With(Quiet(), PassableGate, common, new Dictionary<string, string>
        {
            ["Node:Roles"] = "ingest,train",
            [M + "Triggers:MinNewSamples"] = "1500",
            [M + "Training:Steps"] = "300",
            [M + "Training:FineTuneSteps"] = "100",
        });
        var server = With(common, new Dictionary<string, string> { ["Node:Roles"] = "serve" });

        await using var s1 = LoopDaemon.Start(Fixture.Broker, Path.Combine(Directory, "s1"), server);
        await using var s2 = LoopDaemon.Start(Fixture.Broker, Path.Combine(Directory, "s2"), server);
        await using var t = LoopDaemon.Start(Fixture.Broker, Path.Combine(Directory, "t"), trainer);
        await t.WaitConsumingAsync();

        var bounds = new List<string>();
        for (int version = 1; version <= 2; version++)
        {
            var images = FashionMnist.Read("train", (version - 1) * 2000, 2000);
            var published = await Fixture.PublishAsync(images.Select(i => CloudEventEncoder.FashionMnist(i, "train", Model, "png", null)), images.Count);
            Assert.Equal(2000, published.Confirmed);
            var run = await t.WaitForFinishedRunAsync(Model, version, TimeSpan.FromSeconds(240));
            Assert.True(run.Status == RunStatuses.Promoted, Describe(run) + "\n" + t.Tail());
            Assert.Equal(version, run.Version);
            var promotedAt = SharedRegistry(Directory).ReadAliases(Model)!.History.Last(h => h.Alias == "champion" && h.To == version).At;
            var seen = await Task.WhenAll(ServedAtAsync(s1, version, bound), ServedAtAsync(s2, version, bound));
            string figures = string.Join(", ", seen.Select((at, i) => $"node {i + 1} +{(at - promotedAt).TotalMilliseconds:0} ms"));
            output.WriteLine($"v{version} promoted at {At(promotedAt)} by the train node: served by {figures}");
            bounds.Add(figures);
            Assert.All(seen, at => Assert.True(at - promotedAt < bound, $"served {at - promotedAt} after the promotion (bound {bound})"));
        }

        foreach (var node in new[] { s1, s2 })
        {
            string maps = await File.ReadAllTextAsync($"/proc/{node.Daemon.Pid}/maps");
            // .NET maps every assembly it loads: neither TorchSharp nor native libtorch in a serving-only node.
            Assert.Contains("RetrainDaemon.Serving.dll", maps, StringComparison.Ordinal);
            Assert.DoesNotContain("TorchSharp.dll", maps, StringComparison.Ordinal);
            Assert.DoesNotContain("libtorch", maps, StringComparison.Ordinal);
            Assert.DoesNotContain("Consuming retrain.samples", node.Daemon.Output, StringComparison.Ordinal);
        }

        // Only the train node runs a scheduler: one instance checks in to the cluster.
        Assert.Equal(1, PostgresProbe.Scalar(database, "SELECT COUNT(*) FROM qrtz_scheduler_state;"));

        // A generation handed out by serving node 2, rated through the broker, joins in the shared store.
        var (_, ids) = await s2.GenerateAsync(Model, """{"count": 2}""", 2, TimeSpan.FromSeconds(10));
        await using var store = SampleStores.Open(t.StoreOptions);
        await LoopFaultProbe.PollAsync(async () => await store.GetGenerationAsync(ids[0], CancellationToken.None), TimeSpan.FromSeconds(20), () => "the generation was not journaled");
        var feedback = CloudEventEncoder.Encode("fb-cluster-1", EventTypes.Feedback, Model, "/tests/cluster",
            new JsonObject { ["generation_id"] = ids[0], ["model"] = Model, ["version"] = 2, ["rating"] = 4 });
        Assert.Equal(1, (await Fixture.PublishAsync([feedback], 1)).Confirmed);
        var summary = await LoopFaultProbe.PollAsync(async () => await store.GetFeedbackSummaryAsync(Model, 2, null, CancellationToken.None) is { Count: 1 } s ? s : null,
            TimeSpan.FromSeconds(20), () => $"the rating did not join\n{t.Tail()}");
        Assert.Equal(4.0, summary.MeanRating);
    }

    /// <summary>When a serving node first answers with <paramref name="version"/>, polling every 20 ms.</summary>
    private static async Task<DateTimeOffset> ServedAtAsync(LoopDaemon node, int version, TimeSpan bound)
    {
        var clock = Stopwatch.StartNew();
        string last = "";
        while (clock.Elapsed < bound + TimeSpan.FromSeconds(20))
        {
            using var content = new StringContent("""{"count": 1}""", Encoding.UTF8, new MediaTypeHeaderValue("application/json"));
            using var response = await node.Http.PostAsync(new Uri($"/v1/models/{Model}/generate", UriKind.Relative), content);
            if (response.IsSuccessStatusCode && response.Headers.TryGetValues("X-Model-Version", out var values) && int.Parse(values.First(), CultureInfo.InvariantCulture) == version)
            {
                return DateTimeOffset.UtcNow;
            }

            last = $"{(int)response.StatusCode}";
            await Task.Delay(20);
        }

        throw new TimeoutException($"node never served v{version} (last {last})\n{node.Tail()}");
    }

    private static Core.Registry.ModelRegistry SharedRegistry(string directory) => new(Path.Combine(directory, "registry"), keepLast: 50);

    /// <summary>What the nodes of a cluster share besides the database: the registry and the runs directory (a shared filesystem in production).</summary>
    private static Dictionary<string, string> Shared(string directory) => new()
    {
        ["Registry:Root"] = Path.Combine(directory, "registry"),
        ["Loop:RunsDirectory"] = Path.Combine(directory, "runs"),
        ["Loop:AnalysisDirectory"] = Path.Combine(directory, "analysis"),
        ["Evaluation:StatisticsCache"] = Path.Combine(directory, "reference-stats"),
    };

    /// <summary>Publishes real training images and lets an ingest-only node store them in the PostgreSQL store.</summary>
    private async Task PrefillAsync(string connectionString, int offset, int count)
    {
        var images = FashionMnist.Read("train", offset, count);
        var published = await Fixture.PublishAsync(images.Select(i => CloudEventEncoder.FashionMnist(i, "train", Model, "png", null)), images.Count);
        Assert.Equal(count, published.Confirmed);
        await using var ingest = DaemonProcess.Start(Fixture.Broker, Path.Combine(Directory, "unused.db"), With(Postgres(connectionString), new Dictionary<string, string> { ["Node:Roles"] = "ingest" }));
        await LoopFaultProbe.PollAsync(() => Task.FromResult<object?>(PostgresProbe.Samples(connectionString) >= count ? new object() : null), TimeSpan.FromSeconds(90), () => $"ingestion stalled\n{ingest.Output}");
        await ingest.TerminateAsync(TimeSpan.FromSeconds(40));
        Assert.Equal(count, PostgresProbe.Samples(connectionString));
    }

    private static void ThrowIfExited(params LoopDaemon[] nodes)
    {
        foreach (var node in nodes)
        {
            if (node.Daemon.HasExited)
            {
                throw new InvalidOperationException($"a node exited with {node.Daemon.ExitCode}:\n{node.Daemon.Output}");
            }
        }
    }
}
