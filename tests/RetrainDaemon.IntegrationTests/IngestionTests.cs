using System.Diagnostics;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Publishing;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.IntegrationTests;

/// <summary>Real Fashion-MNIST through the real broker into the real store, exactly once.</summary>
[Collection(BrokerCollection.Name)]
public sealed class IngestionTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-ingest")
{

    [Fact]
    public async Task TenThousandFashionMnistImages_AreStoredExactlyOnce_AndRepublishingStoresNothingNew()
    {
        var images = FashionMnist.Read("t10k");
        var messages = images.Select(i => CloudEventEncoder.FashionMnist(i, "t10k", "fashion-mnist", "png", split: null)).ToList();
        string store = StorePath;
        await using var daemon = DaemonProcess.Start(Fixture.Broker, store);
        await daemon.WaitReadyAsync();

        var watch = Stopwatch.StartNew();
        var first = await Fixture.PublishAsync(messages, messages.Count);
        Assert.Equal((10_000L, 0L), (first.Confirmed, first.Failed));
        Assert.Equal(10_000, await StoreProbe.WaitForSamplesAsync(store, 10_000, TimeSpan.FromSeconds(90)));
        output.WriteLine($"10,000 published ({first.MessagesPerSecond:0} msg/s confirmed) and stored in {watch.Elapsed.TotalSeconds:0.00} s");

        Assert.True(messages.Select(m => m.EventId).ToHashSet().SetEquals(StoreProbe.SampleIds(store)));
        Assert.True(StoreProbe.SequencesStrictlyIncrease(store));
        foreach (int index in new[] { 0, 1234, 9999 })
        {
            Assert.Equal(images[index].Pixels, StoreSnapshot.Pixels(store, messages[index].EventId));
        }

        var before = StoreSnapshot.Take(store);
        var second = await Fixture.PublishAsync(messages, messages.Count);
        Assert.Equal(10_000L, second.Confirmed);
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (await daemon.MetricAsync("retrain_ingest_messages_total", "result=\"duplicate\"") < 10_000 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
        }

        Assert.Equal(10_000, await daemon.MetricAsync("retrain_ingest_messages_total", "result=\"duplicate\""));
        Assert.Equal(10_000, await daemon.MetricAsync("retrain_ingest_messages_total", "result=\"stored\""));
        Assert.Equal(before, StoreSnapshot.Take(store));
        Assert.Equal(0u, await BrokerProbe.DepthAsync(Fixture.Broker, Topology.SamplesQueue));
        Assert.Equal(0u, await BrokerProbe.DepthAsync(Fixture.Broker, Topology.DeadLetterQueue));
        Assert.Equal(10_000, await daemon.MetricAsync("retrain_store_samples", "model=\"fashion-mnist\""));
    }

    [Fact]
    public async Task TextAndFeedback_FromRealCatalogs_AreStored()
    {
        var fortunes = Fortunes.Read().Take(500).Select(f => CloudEventEncoder.Fortune(f, "fortunes", null)).ToList();
        var pairs = GettextCatalog.ReadLanguage("de").Where(p => p.Source.Length < 200 && p.Target.Trim().Length > 0 && p.Target.Length < 200)
            .Take(500).Select(p => CloudEventEncoder.Translation(p, "de", "en-de", null)).ToList();
        var feedback = Enumerable.Range(0, 50).Select(i => CloudEventEncoder.Encode($"fb-{i}", Core.Contracts.EventTypes.Feedback, "fortunes", "/tests",
            new System.Text.Json.Nodes.JsonObject { ["generation_id"] = $"gen-{i}", ["model"] = "fortunes", ["version"] = 1, ["rating"] = 1 + i % 5 })).ToList();
        string store = StorePath;
        // Feedback is stored only for generations the serving API handed out; these stand for them.
        await Store.GenerationSeed.RecordAsync(store, Enumerable.Range(0, 50).Select(i => ($"gen-{i}", "fortunes", 1)));
        await using var daemon = DaemonProcess.Start(Fixture.Broker, store);
        await daemon.WaitReadyAsync();

        var all = fortunes.Concat(pairs).Concat(feedback).ToList();
        var summary = await Fixture.PublishAsync(all, all.Count);
        Assert.Equal(all.Count, summary.Confirmed);
        Assert.Equal(1000, await StoreProbe.WaitForSamplesAsync(store, 1000, TimeSpan.FromSeconds(60)));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (StoreProbe.Feedback(store) < 50 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.Equal(50, StoreProbe.Feedback(store));
        Assert.Equal(500, StoreProbe.Scalar(store, "SELECT COUNT(*) FROM samples WHERE model = 'en-de' AND source_text IS NOT NULL AND text IS NOT NULL;"));
        Assert.Equal(0, StoreProbe.Scalar(store, "SELECT COUNT(*) FROM samples WHERE instr(text, char(8)) > 0;")); // overstrikes removed
        Assert.Equal(3.0, StoreProbe.Scalar(store, "SELECT CAST(AVG(rating) AS INTEGER) FROM feedback;"));

        // `samples stats` reads the same store and agrees.
        await using var stats = DaemonProcess.StartRaw("samples stats --json", new Dictionary<string, string> { ["Store:Path"] = store }, 0);
        Assert.Equal(0, await stats.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("\"Model\": \"en-de\"", stats.Output, StringComparison.Ordinal);
        Assert.Contains("\"Watermark\": 1000", stats.Output, StringComparison.Ordinal);
    }
}
