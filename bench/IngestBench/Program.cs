using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Publishing;
using RetrainDaemon.Tests.Shared;

// Ingestion benchmark (issue: "at least 10,000 samples/s stored, and at least 40% of the measured ceiling").
// In one run, on one private broker, alternating rounds:
//   ceiling: N real Fashion-MNIST messages queued, then drained by a consumer that acks each delivery
//            and stores nothing (same prefetch, same per-message ack as the daemon);
//   daemon:  the same N messages queued, then drained by `retrain-daemon run` (validate, decode PNG,
//            commit to SQLite with synchronous=FULL, ack), timed from its first stored row to its last.
// Usage: dotnet run -c Release --project bench/IngestBench [-- --messages 50000 --rounds 3 --prefetch 600 --batch 256]
// (prefetch and batch default to the daemon's own defaults; the ceiling consumer uses the same prefetch)
var arguments = ParseArguments(args);
int messages = arguments.GetValueOrDefault("messages", 50_000);
int rounds = arguments.GetValueOrDefault("rounds", 3);
int prefetch = arguments.GetValueOrDefault("prefetch", new IngestOptions().Prefetch);
int batch = arguments.GetValueOrDefault("batch", Math.Min(prefetch, new IngestOptions().BatchSize));
var inv = CultureInfo.InvariantCulture;

Console.WriteLine($"ingest benchmark: {messages} Fashion-MNIST PNG messages per round, {rounds} rounds, prefetch {prefetch}, daemon batch {batch}, {Environment.ProcessorCount} cores");
var encoded = FashionMnist.Read("train", take: messages).Select(i => CloudEventEncoder.FashionMnist(i, "train", "fashion-mnist", "png", null)).ToList();
Console.WriteLine($"mean message size {encoded.Average(m => m.Body.Length):0} bytes");

await using var broker = await PrivateBroker.StartAsync();
var brokerOptions = new BrokerOptions { Endpoints = [broker.Endpoint], ConnectAttempts = 5 };
var ingest = new IngestOptions { Prefetch = prefetch };
var work = TestPaths.NewTempDirectory("rd-bench");
var ceilings = new List<double>();
var daemons = new List<double>();
try
{
    for (int round = 1; round <= rounds; round++)
    {
        await FillAsync();
        double ceiling = await CeilingAsync();
        ceilings.Add(ceiling);
        await FillAsync();
        double daemon = await DaemonAsync(round);
        daemons.Add(daemon);
        Console.WriteLine(string.Format(inv, "round {0}: ceiling {1,8:0} msg/s   daemon {2,8:0} msg/s   ratio {3:0.00}", round, ceiling, daemon, daemon / ceiling));
    }
}
finally
{
    Directory.Delete(work, recursive: true);
}

double medianCeiling = Median(ceilings), medianDaemon = Median(daemons);
Console.WriteLine();
Console.WriteLine(string.Format(inv, "median: ceiling {0:0} msg/s, daemon {1:0} samples/s stored and acked, ratio {2:0.00} (targets: >= 10000 samples/s, ratio >= 0.40)",
    medianCeiling, medianDaemon, medianDaemon / medianCeiling));
return medianDaemon >= 10_000 && medianDaemon / medianCeiling >= 0.40 ? 0 : 1;

async Task FillAsync()
{
    var connector = new BrokerConnector(brokerOptions, NullLogger<BrokerConnector>.Instance);
    await using var publisher = await ConfirmedPublisher.ConnectAsync(connector, ingest, NullLogger.Instance, window: 2000);
    var summary = await publisher.PublishAsync(encoded, encoded.Count, null, CancellationToken.None);
    if (summary.Confirmed != messages)
    {
        throw new InvalidOperationException($"only {summary.Confirmed} of {messages} confirmed");
    }

    await BrokerProbe.WaitForDepthAsync(broker, Topology.SamplesQueue, (uint)messages, TimeSpan.FromSeconds(30));
}

async Task<double> CeilingAsync()
{
    await using var connection = await broker.ConnectAsync();
    await using var channel = await connection.CreateChannelAsync();
    await channel.BasicQosAsync(0, (ushort)prefetch, false);
    var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    long first = 0, received = 0;
    var consumer = new AsyncEventingBasicConsumer(channel);
    consumer.ReceivedAsync += async (_, ea) =>
    {
        if (received == 0)
        {
            first = Stopwatch.GetTimestamp();
        }

        _ = ea.Body.ToArray(); // the daemon copies every body too
        await channel.BasicAckAsync(ea.DeliveryTag, multiple: false);
        if (++received == messages)
        {
            done.SetResult();
        }
    };
    string tag = await channel.BasicConsumeAsync(Topology.SamplesQueue, autoAck: false, consumer);
    await done.Task.WaitAsync(TimeSpan.FromMinutes(5));
    var elapsed = Stopwatch.GetElapsedTime(first);
    await channel.BasicCancelAsync(tag);
    return (messages - 1) / elapsed.TotalSeconds;
}

async Task<double> DaemonAsync(int round)
{
    string store = Path.Combine(work, $"round-{round}.db");
    await using var daemon = DaemonProcess.Start(broker, store, new Dictionary<string, string> { ["Ingest:Prefetch"] = prefetch.ToString(inv), ["Ingest:BatchSize"] = batch.ToString(inv) });
    long startCount, first;
    var deadline = DateTime.UtcNow.AddMinutes(2);
    // Poll the watermark (an O(1) rowid lookup on a fresh store), not COUNT(*), so that watching does not slow the daemon.
    while ((startCount = StoreProbe.Watermark(store)) == 0 && DateTime.UtcNow < deadline)
    {
        await Task.Delay(2);
    }

    first = Stopwatch.GetTimestamp();
    while (StoreProbe.Watermark(store) < messages && DateTime.UtcNow < deadline)
    {
        await Task.Delay(10);
    }

    var elapsed = Stopwatch.GetElapsedTime(first);
    long stored = StoreProbe.Samples(store);
    if (stored != messages)
    {
        throw new InvalidOperationException($"daemon stored {stored} of {messages}:\n{daemon.Output}");
    }

    await BrokerProbe.WaitForDepthAsync(broker, Topology.SamplesQueue, 0, TimeSpan.FromSeconds(30));
    return (messages - startCount) / elapsed.TotalSeconds;
}

static double Median(List<double> values)
{
    var sorted = values.Order().ToList();
    return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
}

static Dictionary<string, int> ParseArguments(string[] args)
{
    var result = new Dictionary<string, int>();
    for (int i = 0; i + 1 < args.Length; i += 2)
    {
        if (!args[i].StartsWith("--", StringComparison.Ordinal) || !int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out int value))
        {
            throw new ArgumentException($"usage: [--messages N] [--rounds N] [--prefetch N] [--batch N]; bad '{args[i]}'");
        }

        result[args[i][2..]] = value;
    }

    return result;
}
