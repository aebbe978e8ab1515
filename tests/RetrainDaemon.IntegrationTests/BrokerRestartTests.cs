using System.Diagnostics;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Publishing;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.IntegrationTests;

/// <summary>
/// reliability.md R2: the broker stops and restarts while a producer publishes and the daemon
/// consumes. Jepsen-style counts: lost (confirmed, not stored) = 0, unexpected = 0; duplicates
/// cannot exist in the store (unique event id), redeliveries show up as duplicate metrics.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class BrokerRestartTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-restart")
{

    [Fact]
    public async Task BrokerRestartMidStream_LosesNothing_DuplicatesNothing_AndConsumptionResumesByItself()
    {
        const int total = 10_000;
        var messages = FashionMnist.Read("train", take: total).Select(i => CloudEventEncoder.FashionMnist(i, "train", "fashion-mnist", "png", null)).ToList();
        string store = StorePath;
        await using var daemon = DaemonProcess.Start(Fixture.Broker, store);
        await daemon.WaitReadyAsync();

        // One producer connection across the outage (its automatic recovery is part of what is tested),
        // pacing itself so that the restart lands mid-stream.
        static IEnumerable<OutgoingMessage> Paced(List<OutgoingMessage> all)
        {
            for (int i = 0; i < all.Count; i++)
            {
                if (i % 250 == 0)
                {
                    Thread.Sleep(150); // ~6 s for 10,000: the broker stop (2.5–7 s here) must land mid-stream
                }

                yield return all[i];
            }
        }

        var publishing = Task.Run(() => Fixture.PublishAsync(Paced(messages), total, maxAttempts: 60));

        await StoreProbe.WaitForSamplesAsync(store, 2_000, TimeSpan.FromSeconds(60));
        await Fixture.Broker.StopAsync();
        Assert.Equal(503, await daemon.GetStatusAsync("/v2/health/ready"));
        long storedWhileDown = StoreProbe.Samples(store);
        Assert.True(storedWhileDown < total, $"the broker stopped only after all {total} were stored: the test did not exercise a restart mid-stream");
        await Task.Delay(1000);
        Assert.Equal(storedWhileDown, StoreProbe.Samples(store));
        await Fixture.Broker.StartAgainAsync();
        var restarted = Stopwatch.StartNew();
        await daemon.WaitReadyAsync(TimeSpan.FromSeconds(60)); // recovered connection, consumers re-registered
        var reconnectTime = restarted.Elapsed;
        while (StoreProbe.Samples(store) == storedWhileDown && restarted.Elapsed < TimeSpan.FromSeconds(60))
        {
            await Task.Delay(50);
        }

        var resumeTime = restarted.Elapsed;
        var summary = await publishing.WaitAsync(TimeSpan.FromMinutes(4)); // a hung publisher is a failure, not a stuck CI
        long confirmed = summary.Confirmed, failed = summary.Failed, retried = summary.Retried;
        Assert.True(failed == 0, $"{failed} publishes failed, e.g. {string.Join("; ", summary.FailedIds.Take(3))}");
        output.WriteLine($"publisher: confirmed {confirmed}, retried {retried}, reconnects {summary.Reconnects}");
        Assert.Equal(total, confirmed);

        Assert.Equal(total, await StoreProbe.WaitForSamplesAsync(store, total, TimeSpan.FromSeconds(120)));
        await daemon.WaitReadyAsync(TimeSpan.FromSeconds(30));
        await BrokerProbe.WaitForDepthAsync(Fixture.Broker, Topology.SamplesQueue, 0, TimeSpan.FromSeconds(30));

        var stored = StoreProbe.SampleIds(store);
        var published = messages.Select(m => m.EventId).ToHashSet();
        long lost = published.Count(id => !stored.Contains(id));
        long unexpected = stored.Count(id => !published.Contains(id));
        double redelivered = await daemon.MetricAsync("retrain_ingest_messages_total", "result=\"duplicate\"");
        output.WriteLine($"stored {stored.Count} at restart {storedWhileDown}; lost {lost}, unexpected {unexpected}, duplicates in store 0 (unique key), " +
            $"redeliveries deduplicated {redelivered}, publishes retried {retried}, daemon ready again {reconnectTime.TotalSeconds:0.0} s and storing again {resumeTime.TotalSeconds:0.0} s after the broker was back");
        Assert.Equal(0, lost);
        Assert.Equal(0, unexpected);
        Assert.Equal(total, stored.Count);
        Assert.Equal(0u, await BrokerProbe.DepthAsync(Fixture.Broker, Topology.DeadLetterQueue));
        Assert.True(await daemon.MetricAsync("retrain_broker_recoveries_total") >= 1);
        Assert.Equal(1, await daemon.MetricAsync("retrain_broker_connected"));
    }
}
