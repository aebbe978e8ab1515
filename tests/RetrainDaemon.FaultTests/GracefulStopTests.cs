using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Publishing;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.FaultTests;

/// <summary>
/// reliability.md R7: SIGTERM with hundreds of deliveries in flight. Everything committed is acked
/// before the channel closes (so a restart redelivers nothing already stored), the rest returns to
/// the queue, the process exits 0 well inside its shutdown budget, and no errors are logged.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class GracefulStopTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-term")
{

    [Fact]
    public async Task Sigterm_WithDeliveriesInFlight_AcksWhatIsCommitted_ReturnsTheRest_ExitsCleanly()
    {
        const int total = 20_000;
        var messages = FashionMnist.Read("train", take: total).Select(i => CloudEventEncoder.FashionMnist(i, "train", "fashion-mnist", "png", null)).ToList();
        Assert.Equal(total, (await Fixture.PublishAsync(messages, total)).Confirmed);
        string store = StorePath;
        var settings = new Dictionary<string, string> { ["Ingest:Prefetch"] = "1000", ["Ingest:BatchSize"] = "500" };

        TimeSpan stopTime;
        long storedAtStop;
        await using (var daemon = DaemonProcess.Start(Fixture.Broker, store, settings))
        {
            await StoreProbe.WaitForSamplesAsync(store, 3_000, TimeSpan.FromSeconds(60));
            stopTime = await daemon.TerminateAsync(TimeSpan.FromSeconds(40));
            storedAtStop = StoreProbe.Samples(store);
            Assert.Equal(0, daemon.ExitCode);
            string log = daemon.Output;
            output.WriteLine(log[Math.Max(0, log.Length - 1500)..]);
            Assert.DoesNotContain("fail:", log, StringComparison.Ordinal);
            Assert.DoesNotContain("crit:", log, StringComparison.Ordinal);
            Assert.DoesNotContain("Exception", log, StringComparison.Ordinal);
            Assert.Contains("Ingestion stopped", log, StringComparison.Ordinal);
        }

        Assert.True(storedAtStop < total, "the stop should land mid-stream");
        // Returned deliveries are requeued by the broker as the channel closes; give the count a moment to settle.
        await BrokerProbe.WaitForDepthAsync(Fixture.Broker, Topology.SamplesQueue, (uint)(total - storedAtStop), TimeSpan.FromSeconds(15));
        uint left = await BrokerProbe.DepthAsync(Fixture.Broker, Topology.SamplesQueue);
        Assert.Equal(total - storedAtStop, left);

        await using (var again = DaemonProcess.Start(Fixture.Broker, store, settings))
        {
            Assert.Equal(total, await StoreProbe.WaitForSamplesAsync(store, total, TimeSpan.FromSeconds(60)));
            await BrokerProbe.WaitForDepthAsync(Fixture.Broker, Topology.SamplesQueue, 0, TimeSpan.FromSeconds(30));
            double duplicates = await again.MetricAsync("retrain_ingest_messages_total", "result=\"duplicate\"");
            output.WriteLine($"SIGTERM -> exit in {stopTime.TotalSeconds:0.00} s with {storedAtStop} stored and {left} returned to the queue; redelivered-but-already-stored after restart: {duplicates}");
            Assert.Equal(0, duplicates);
        }

        Assert.True(stopTime < TimeSpan.FromSeconds(30), $"stop took {stopTime}");
        Assert.Equal(0u, await BrokerProbe.DepthAsync(Fixture.Broker, Topology.DeadLetterQueue));
    }
}
