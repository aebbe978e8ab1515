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
public sealed class KillDuringIngestionTests(BrokerFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string directory = TestPaths.NewTempDirectory("rd-kill");

    public Task InitializeAsync() => BrokerProbe.PurgeAsync(fixture.Broker, Topology.SamplesQueue, Topology.FeedbackQueue, Topology.DeadLetterQueue);

    public Task DisposeAsync()
    {
        Directory.Delete(directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task SigkillAtRandomPoints_EveryIdStoredExactlyOnce()
    {
        const int total = 10_000;
        int seed = Environment.TickCount;
        var random = new Random(seed);
        var messages = FashionMnist.Read("t10k").Select(i => CloudEventEncoder.FashionMnist(i, "t10k", "fashion-mnist", "png", null)).ToList();
        var published = await fixture.PublishAsync(messages, total);
        Assert.Equal(total, published.Confirmed);

        // Five kills, each after a random amount of progress within that run, so every kill lands while
        // deliveries are in flight; small batches make a kill between commit and ack likely.
        const int killCount = 5;
        string store = Path.Combine(directory, "retrain.db");
        var settings = new Dictionary<string, string> { ["Ingest:BatchSize"] = "64", ["Ingest:Prefetch"] = "300" };
        var watch = Stopwatch.StartNew();
        var kills = new List<string>();
        double deduplicated = 0;
        for (int k = 0; k < killCount; k++)
        {
            long point = StoreProbe.Samples(store) + random.Next(500, 1800);
            await using var daemon = DaemonProcess.Start(fixture.Broker, store, settings);
            // Kill by the store's progress, polling fast so the kill lands while deliveries are in flight.
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (StoreProbe.Samples(store) < point && !daemon.HasExited && DateTime.UtcNow < deadline)
            {
                await Task.Delay(random.Next(1, 15));
            }

            Assert.False(daemon.HasExited, daemon.Output);
            try
            {
                deduplicated += await daemon.MetricAsync("retrain_ingest_messages_total", "result=\"duplicate\"");
            }
            catch (HttpRequestException)
            {
                // Not listening yet: this run has deduplicated nothing we could read.
            }

            await daemon.KillAsync();
            long storedAtKill = StoreProbe.Samples(store);
            Assert.True(storedAtKill < total, $"kill at {point} landed after ingestion finished");
            kills.Add($"{storedAtKill}");
        }

        await using (var last = DaemonProcess.Start(fixture.Broker, store, settings))
        {
            await last.WaitReadyAsync();
            Assert.Equal(total, await StoreProbe.WaitForSamplesAsync(store, total, TimeSpan.FromSeconds(120)));
            await BrokerProbe.WaitForDepthAsync(fixture.Broker, Topology.SamplesQueue, 0, TimeSpan.FromSeconds(30));
            deduplicated += await last.MetricAsync("retrain_ingest_messages_total", "result=\"duplicate\"");
            output.WriteLine($"seed {seed}: SIGKILL after {string.Join(", ", kills)} stored; all {total} stored {watch.Elapsed.TotalSeconds:0.0} s after the first start; " +
                $"redeliveries of already-committed messages deduplicated (seen by scrapes just before each kill, a lower bound): {deduplicated}");
        }

        var stored = StoreProbe.SampleIds(store);
        Assert.Equal(total, stored.Count);
        Assert.True(messages.Select(m => m.EventId).ToHashSet().SetEquals(stored));
        Assert.True(StoreProbe.SequencesStrictlyIncrease(store));
        Assert.Equal(0u, await BrokerProbe.DepthAsync(fixture.Broker, Topology.SamplesQueue));
        Assert.Equal(0u, await BrokerProbe.DepthAsync(fixture.Broker, Topology.DeadLetterQueue));
    }
}
