using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Text;
using RetrainDaemon.IntegrationTests.Serving;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Publishing;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.IntegrationTests;

/// <summary>
/// Feedback in the loop, through the real daemon and broker: generations handed out over HTTP are
/// journaled, feedback citing them is stored with the generation's slice, corrections become samples
/// marked as corrections, and feedback citing a generation that never existed (or another version of
/// a real one) lands in <c>retrain.dead</c> with its reason while the rest flows.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class FeedbackJoinTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-feedback")
{
    private static OutgoingMessage Feedback(string id, string model, string generationId, int version, JsonObject extra)
    {
        var data = new JsonObject { ["generation_id"] = generationId, ["model"] = model, ["version"] = version };
        foreach (var (key, value) in extra)
        {
            data[key] = value?.DeepClone();
        }

        return CloudEventEncoder.Encode(id, EventTypes.Feedback, model, "/tests/feedback", data);
    }

    private async Task WaitForAsync(Func<bool> done, string what, DaemonProcess daemon)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!done() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.True(done(), $"{what} within 30 s; daemon output:\n{daemon.Output[^Math.Min(daemon.Output.Length, 4000)..]}");
    }

    [Fact]
    public async Task ImageFeedback_JoinsItsGeneration_CorrectionsBecomeSamples_MadeUpGenerationsAreDeadLettered()
    {
        var registry = ServingDaemon.OpenRegistry(Directory);
        var champion = GeneratorModels.Shared.PublishChampion(registry, ServingDaemon.Model, seed: 1, classes: 10);
        await using var serving = ServingDaemon.Start(Fixture.Broker, Directory);
        await serving.Daemon.WaitReadyAsync();

        using var response = await serving.Http.PostAsync(new Uri($"/v1/models/{ServingDaemon.Model}/generate", UriKind.Relative),
            ServingDaemon.Json("""{"count":2,"class":3,"format":"json","seed":5}"""));
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        string[] ids;
        using (var json = JsonDocument.Parse(body))
        {
            ids = json.RootElement.GetProperty("samples").EnumerateArray().Select(s => s.GetProperty("generation_id").GetString()!).ToArray();
        }

        Assert.Equal(2, ids.Length);
        var correction = Enumerable.Range(0, 28 * 28).Select(i => (byte)(i % 251)).ToArray();
        string madeUp = $"{ServingDaemon.Model}/{champion.Version}/{Guid.CreateVersion7():N}";
        // Published the moment the answer arrives: the journal writes in the background, so this also
        // exercises ingestion flushing it before it calls a generation unknown.
        var messages = new[]
        {
            Feedback("fb-rating", ServingDaemon.Model, ids[0], champion.Version, new JsonObject { ["rating"] = 2 }),
            Feedback("fb-made-up", ServingDaemon.Model, madeUp, champion.Version, new JsonObject { ["rating"] = 1 }),
            Feedback("fb-correction", ServingDaemon.Model, ids[1], champion.Version, new JsonObject
            {
                ["accepted"] = false,
                ["correction"] = new JsonObject { ["width"] = 28, ["height"] = 28, ["channels"] = 1, ["encoding"] = "raw-u8", ["data"] = Convert.ToBase64String(correction) },
            }),
            Feedback("fb-wrong-version", ServingDaemon.Model, ids[0], champion.Version + 1, new JsonObject { ["rating"] = 5 }),
        };
        var published = await Fixture.PublishAsync(messages, messages.Length);
        Assert.Equal((4L, 0L), (published.Confirmed, published.Failed));

        string store = StorePath;
        await WaitForAsync(() => StoreProbe.Feedback(store) >= 2, "two feedback rows stored", serving.Daemon);
        await BrokerProbe.WaitForDepthAsync(Fixture.Broker, Topology.DeadLetterQueue, 2, TimeSpan.FromSeconds(30));
        var dead = await BrokerProbe.DrainAsync(Fixture.Broker, Topology.DeadLetterQueue);
        foreach (var (id, headers) in dead.Select(d => (d.MessageId, d.Headers)))
        {
            output.WriteLine($"{id}: {headers.GetValueOrDefault(Topology.RejectReasonHeader)}: {headers.GetValueOrDefault(Topology.RejectDetailHeader)}");
        }

        Assert.Equal(2, dead.Count);
        var unknown = Assert.Single(dead, d => d.MessageId == "fb-made-up");
        Assert.Equal(RejectReasons.UnknownGeneration, unknown.Headers[Topology.RejectReasonHeader]);
        Assert.Contains(madeUp, unknown.Headers[Topology.RejectDetailHeader], StringComparison.Ordinal);
        Assert.Equal(Topology.FeedbackQueue, unknown.Headers[Topology.OriginalQueueHeader]);
        var mismatch = Assert.Single(dead, d => d.MessageId == "fb-wrong-version");
        Assert.Equal(RejectReasons.GenerationMismatch, mismatch.Headers[Topology.RejectReasonHeader]);

        Assert.Equal(2, StoreProbe.Feedback(store));
        Assert.Equal(1, StoreProbe.Scalar(store, $"SELECT COUNT(*) FROM feedback WHERE event_id = 'fb-rating' AND generation_id = '{ids[0]}' AND slice = '3' AND rating = 2;"));
        Assert.Equal(1, StoreProbe.Scalar(store, $"SELECT COUNT(*) FROM feedback WHERE event_id = 'fb-correction' AND slice = '3' AND accepted = 0;"));
        Assert.Equal(2, StoreProbe.Scalar(store, $"SELECT COUNT(*) FROM generations WHERE generation_id IN ('{ids[0]}', '{ids[1]}') AND slice = '3' AND version = {champion.Version};"));
        Assert.Equal(1, StoreProbe.Scalar(store,
            $"SELECT COUNT(*) FROM samples WHERE origin = 'correction' AND correction_of = '{ids[1]}' AND label = '3' AND split = 'train' AND width = 28 AND length(pixels) = 784;"));
        Assert.Equal(1, StoreProbe.Scalar(store, "SELECT COUNT(*) FROM samples;"));

        // Rejections are counted by reason like every other bad input.
        Assert.Equal(1, await serving.Daemon.MetricAsync("retrain_ingest_messages_total", $"reason=\"{RejectReasons.UnknownGeneration}\""));
        Assert.Equal(1, await serving.Daemon.MetricAsync("retrain_ingest_messages_total", $"reason=\"{RejectReasons.GenerationMismatch}\""));
    }

    [Fact]
    public async Task TextCorrection_OfAConditionalModel_BecomesASourceTargetSample()
    {
        // The shipped catalog's conditional text model, served by a tiny GPT of the same task.
        const string model = "en-de";
        var models = TinyTextModels.Shared;
        var published = models.Publish(ServingDaemon.OpenRegistry(Directory), model, models.ConditionalOnnx, GptTasks.Conditional);
        await using var serving = ServingDaemon.Start(Fixture.Broker, Directory, new ServingDaemonOptions
        {
            Settings = new Dictionary<string, string> { ["Serving:Models:0"] = model, ["Serving:RequestTimeout"] = "00:01:00" },
        });
        await serving.Daemon.WaitReadyAsync();

        using var response = await serving.Http.PostAsync(new Uri($"/v1/models/{model}/generate", UriKind.Relative),
            ServingDaemon.Json("""{"source":"Open file","max_new_tokens":8,"seed":3}"""));
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        string id;
        using (var json = JsonDocument.Parse(body))
        {
            id = json.RootElement.GetProperty("generation_id").GetString()!;
        }

        var messages = new[] { Feedback("fb-translation", model, id, published.Version, new JsonObject { ["rating"] = 1, ["correction"] = "Datei öffnen" }) };
        Assert.Equal(1L, (await Fixture.PublishAsync(messages, 1)).Confirmed);

        string store = StorePath;
        await WaitForAsync(() => StoreProbe.Samples(store) >= 1, "the correction sample stored", serving.Daemon);
        Assert.Equal(1, StoreProbe.Scalar(store,
            $"SELECT COUNT(*) FROM samples WHERE model = '{model}' AND origin = 'correction' AND correction_of = '{id}' AND text = 'Datei öffnen' AND source_text = 'Open file' AND split = 'train';"));
        Assert.Equal(1, StoreProbe.Scalar(store, $"SELECT COUNT(*) FROM feedback WHERE generation_id = '{id}' AND slice IS NULL AND rating = 1;"));
        Assert.Equal(0u, await BrokerProbe.DepthAsync(Fixture.Broker, Topology.DeadLetterQueue));
    }
}
