using System.Diagnostics;
using System.Globalization;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Messaging.Publishing;
using RetrainDaemon.Tests.Shared;

// Data-to-served latency of the continuous loop (issue 7, "Speed"): the shipped DCGAN configuration of
// fashion-mnist (1,000 steps, width 64, batch 64; volume trigger 5,000 new samples; the shipped gate on
// 2,000 generated samples), on this machine, through a private broker.
//   1. An empty daemon receives one sample short of the volume trigger, then the sample that crosses it.
//      t0 = the moment that sample is committed (the daemon acks right after its commit).
//   2. Timed until the first generate answer served by the new version (X-Model-Version = 1), with the
//      stages the run ledger recorded (snapshot, train, export, evaluate, publish, announce), the trigger
//      wait before the run and the swap after the publish.
//   3. Baseline, same run, same store: `retrain-daemon train` with the same budget, alone — the cost of
//      training itself; the ratios say how much of the latency is training and what the loop adds.
// Usage: dotnet run -c Release --project bench/LoopBench [-- --steps 1000]  (fewer steps: a quicker look, not the shipped figure)
var inv = CultureInfo.InvariantCulture;
int steps = args.Length == 2 && args[0] == "--steps" ? int.Parse(args[1], inv) : 1000;
const string Model = "fashion-mnist";
const int Threshold = 5000;
var target = TimeSpan.FromMinutes(10);
Console.WriteLine($"loop benchmark: DCGAN '{Model}' as shipped ({steps} steps), trigger at {Threshold} new samples, {Environment.ProcessorCount} cores");

await using var broker = await PrivateBroker.StartAsync();
string work = TestPaths.NewTempDirectory("rd-loopbench");
var settings = new Dictionary<string, string>
{
    ["Models:fashion-mnist:Retrain"] = "true",
    ["Models:fashion-mnist:Training:Steps"] = steps.ToString(inv),
    // Only the volume trigger: the bench measures the data path, not the staleness bound.
    ["Models:fashion-mnist:Triggers:MaxStaleness"] = "",
    // The shipped evaluation protocol (the test harness shrinks it for speed; the bench must not).
    ["Evaluation:SampleCount"] = "2000",
};
try
{
    await using var daemon = LoopDaemon.Start(broker, work, settings);
    await daemon.WaitConsumingAsync();
    var images = FashionMnist.Read("train", take: Threshold).Select(i => CloudEventEncoder.FashionMnist(i, "train", Model, "png", null)).ToList();
    await PublishAsync(images.Take(Threshold - 1).ToList());
    if (await StoreProbe.WaitForSamplesAsync(daemon.StorePath, Threshold - 1, TimeSpan.FromMinutes(2)) < Threshold - 1)
    {
        throw new TimeoutException("the first samples were not stored");
    }

    await Task.Delay(TimeSpan.FromSeconds(3)); // the watch has looked and held: one sample short
    if ((await daemon.RunsAsync(Model)).Count != 0)
    {
        throw new InvalidOperationException("a run started before the threshold was crossed");
    }

    await PublishAsync([images[^1]]);
    var t0 = await WaitCommittedAsync(daemon.StorePath, Threshold);
    var run = await daemon.WaitForFinishedRunAsync(Model, 1, TimeSpan.FromMinutes(30));
    if (run.Status != RunStatuses.Promoted)
    {
        throw new InvalidOperationException($"the run was {run.Status}: {run.Detail}");
    }

    await daemon.GenerateAsync(Model, """{"count":1,"format":"json","seed":1}""", 1, TimeSpan.FromMinutes(2));
    var served = DateTimeOffset.UtcNow;
    var total = served - t0;
    Console.WriteLine();
    Console.WriteLine($"run {run.RunId}: {run.Status} v{run.Version} ({run.Trigger})");
    Row("trigger wait (commit → run start)", run.StartedAt - t0, total);
    foreach (var stage in run.Stages)
    {
        Row(stage.Stage, stage.Duration ?? TimeSpan.Zero, total);
    }

    var publishEnd = run.Stages.Single(s => s.Stage == "publish").FinishedAt!.Value;
    Row("swap (publish → first answer of v1)", served - publishEnd, total);
    Row("data-to-served", total, total);

    // Baseline: the same training budget alone, on the same snapshot, in its own process.
    var clock = Stopwatch.StartNew();
    var bare = DaemonProcess.StartRaw($"train --model {Model} --family dcgan --steps {steps} --batch-size 64 --lr 0.0002 --seed 1 --out {Path.Combine(work, "bare")}",
        new Dictionary<string, string> { ["Store:Path"] = daemon.StorePath, ["Loop:Enabled"] = "false" }, 0);
    await using (bare)
    {
        if (await bare.WaitForExitAsync(TimeSpan.FromMinutes(30)) != 0)
        {
            throw new InvalidOperationException($"the baseline training failed:\n{bare.Output}");
        }
    }

    var baseline = clock.Elapsed;
    var train = run.Stages.Single(s => s.Stage == "train").Duration!.Value;
    Console.WriteLine();
    Console.WriteLine(string.Format(inv, "baseline: `train` alone, same budget: {0:0.0} s (process start included)", baseline.TotalSeconds));
    Console.WriteLine(string.Format(inv, "ratios: loop train stage / baseline {0:0.00}; data-to-served / baseline {1:0.00}; data-to-served / 10 min target {2:0.00}; training share of data-to-served {3:0.00}",
        train / baseline, total / baseline, total / target, train / total));
    return total < target && train == run.Stages.Max(s => s.Duration ?? TimeSpan.Zero) ? 0 : 1;
}
finally
{
    Directory.Delete(work, recursive: true);
}

async Task PublishAsync(IReadOnlyList<RetrainDaemon.Messaging.Publishing.OutgoingMessage> messages)
{
    var brokerOptions = new RetrainDaemon.Core.Options.BrokerOptions { Endpoints = [broker.Endpoint], ConnectAttempts = 5 };
    var connector = new RetrainDaemon.Messaging.Broker.BrokerConnector(brokerOptions, Microsoft.Extensions.Logging.Abstractions.NullLogger<RetrainDaemon.Messaging.Broker.BrokerConnector>.Instance);
    await using var publisher = await ConfirmedPublisher.ConnectAsync(connector, new RetrainDaemon.Core.Options.IngestOptions(), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, window: 1000);
    var summary = await publisher.PublishAsync(messages, messages.Count, null, CancellationToken.None);
    if (summary.Confirmed != messages.Count)
    {
        throw new InvalidOperationException($"only {summary.Confirmed} of {messages.Count} confirmed");
    }
}

// The commit of the crossing sample, polled every 5 ms (the daemon acks right after it).
static async Task<DateTimeOffset> WaitCommittedAsync(string store, long count)
{
    var deadline = DateTime.UtcNow.AddMinutes(1);
    while (DateTime.UtcNow < deadline)
    {
        if (StoreProbe.Samples(store) >= count)
        {
            return DateTimeOffset.UtcNow;
        }

        await Task.Delay(5);
    }

    throw new TimeoutException("the crossing sample was not stored");
}

void Row(string what, TimeSpan took, TimeSpan total) =>
    Console.WriteLine(string.Format(inv, "  {0,-38} {1,8:0.0} s  {2,5:0.0} %", what, took.TotalSeconds, 100 * took / total));
