using System.Diagnostics;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Publishing;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.FaultTests;

/// <summary>
/// reliability.md R1: the daemon is SIGKILLed at random points while it ingests 10,000 real
/// messages and restarted each time; every id must end up stored exactly once, nothing in the
/// dead-letter queue.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class KillDuringIngestionTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-kill")
{

    [Fact]
    public async Task SigkillAtRandomPoints_EveryIdStoredExactlyOnce()
    {
        const int total = 10_000;
        int seed = Environment.TickCount;
        var random = new Random(seed);
        var messages = FashionMnist.Read("t10k").Select(i => CloudEventEncoder.FashionMnist(i, "t10k", "fashion-mnist", "png", null)).ToList();
        var published = await Fixture.PublishAsync(messages, total);
        Assert.Equal(total, published.Confirmed);

        // Five kills, each 40..250 ms after that run started consuming, so every kill lands while
        // deliveries are in flight; small batches make a kill between commit and ack likely.
        const int killCount = 5;
        string store = StorePath;
        // Small batches and prefetch: many commit/ack boundaries for a kill to hit, and a pace the poll below can follow.
        var settings = new Dictionary<string, string> { ["Ingest:BatchSize"] = "4", ["Ingest:Prefetch"] = "8" };
        var watch = Stopwatch.StartNew();
        var kills = new List<string>();
        double deduplicated = 0;
        for (int k = 0; k < killCount; k++)
        {
            await using var daemon = DaemonProcess.Start(Fixture.Broker, store, settings);
            await daemon.WaitReadyAsync(); // ready = subscribed: deliveries are flowing from here on
            long before = StoreProbe.Samples(store);
            await Task.Delay(random.Next(40, 250));
            try
            {
                deduplicated += await daemon.MetricAsync("retrain_ingest_messages_total", "result=\"duplicate\"");
            }
            catch (HttpRequestException)
            {
                // Not answering this instant: this run's deduplications go uncounted (the figure is a lower bound).
            }

            await daemon.KillAsync();
            long storedAtKill = StoreProbe.Samples(store);
            output.WriteLine($"run {k}: {before} stored at ready, {storedAtKill} at SIGKILL");
            Assert.True(storedAtKill < total, $"kill {k} landed after ingestion finished");
            kills.Add($"{storedAtKill}");
        }

        await using (var last = DaemonProcess.Start(Fixture.Broker, store, settings))
        {
            await last.WaitReadyAsync();
            Assert.Equal(total, await StoreProbe.WaitForSamplesAsync(store, total, TimeSpan.FromSeconds(120)));
            await BrokerProbe.WaitForDepthAsync(Fixture.Broker, Topology.SamplesQueue, 0, TimeSpan.FromSeconds(30));
            deduplicated += await last.MetricAsync("retrain_ingest_messages_total", "result=\"duplicate\"");
            output.WriteLine($"seed {seed}: SIGKILL after {string.Join(", ", kills)} stored; all {total} stored {watch.Elapsed.TotalSeconds:0.0} s after the first start; " +
                $"redeliveries of already-committed messages deduplicated (seen by scrapes just before each kill, a lower bound): {deduplicated}");
        }

        var stored = StoreProbe.SampleIds(store);
        Assert.Equal(total, stored.Count);
        Assert.True(messages.Select(m => m.EventId).ToHashSet().SetEquals(stored));
        Assert.True(StoreProbe.SequencesStrictlyIncrease(store));
        Assert.Equal(0u, await BrokerProbe.DepthAsync(Fixture.Broker, Topology.SamplesQueue));
        Assert.Equal(0u, await BrokerProbe.DepthAsync(Fixture.Broker, Topology.DeadLetterQueue));
    }
}
