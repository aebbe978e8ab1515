using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Preprocessing;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Publishing;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.IntegrationTests;

/// <summary>
/// The bad-input list of the ingestion issue against the real broker and daemon: each bad message
/// lands in <c>retrain.dead</c> with its reason, the valid messages around it are stored, and
/// nothing already stored changes (R4, R10).
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class BadInputTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-bad")
{
    private const int MaxMessageBytes = 64 * 1024;

    private sealed record Case(string Name, string RoutingKey, byte[] Body, string? ContentType, string Reason);

    private static byte[] Raw(string s) => Encoding.UTF8.GetBytes(s);

    private static byte[] Event(string id, string type, string subject, JsonObject data) =>
        CloudEventEncoder.Encode(id, type, subject, "/tests/bad-input", data).Body.ToArray();

    private static JsonObject ImageData(byte[] payload, int w = 28, int h = 28, int c = 1, string encoding = "png", string? base64 = null) => new()
    {
        ["modality"] = "image",
        ["image"] = new JsonObject { ["width"] = w, ["height"] = h, ["channels"] = c, ["encoding"] = encoding, ["data"] = base64 ?? Convert.ToBase64String(payload) },
    };

    private static List<Case> Cases(FashionMnistImage storedImage, string storedId)
    {
        var png = ImagePreprocessor.EncodePng(storedImage.Pixels, 28, 28, 1);
        var rgb = new byte[28 * 28 * 3];
        var big = new byte[32 * 32];
        var text = new JsonObject { ["modality"] = "text", ["text"] = "a fine fortune" };
        return
        [
            new("malformed JSON", "sample.fortunes", Raw("{\"specversion\":\"1.0\",\"id\":\"x\","), EventTypes.StructuredJsonContentType, RejectReasons.MalformedJson),
            new("not a CloudEvent", "sample.fortunes", Raw("{\"text\":\"hello\"}"), EventTypes.StructuredJsonContentType, RejectReasons.NotCloudEvent),
            new("unknown type", "sample.fortunes", Event("bad-type", "retrain.unknown.v1", "fortunes", text), null, RejectReasons.UnknownType),
            new("missing id", "sample.fortunes", Raw("""{"specversion":"1.0","type":"retrain.sample.v1","source":"/t","subject":"fortunes","data":{"modality":"text","text":"x"}}"""), null, RejectReasons.NotCloudEvent),
            new("missing subject", "sample.fortunes", Raw("""{"specversion":"1.0","id":"no-subject","type":"retrain.sample.v1","source":"/t","data":{"modality":"text","text":"x"}}"""), null, RejectReasons.MissingSubject),
            new("unknown model", "sample.nope", Event("bad-model", EventTypes.Sample, "nope", text), null, RejectReasons.UnknownModel),
            new("undecodable image", "sample.fashion-mnist", Event("bad-png", EventTypes.Sample, "fashion-mnist", ImageData(Raw("GIF89a not a png"))), null, RejectReasons.UndecodableImage),
            new("truncated png", "sample.fashion-mnist", Event("cut-png", EventTypes.Sample, "fashion-mnist", ImageData(png[..(png.Length / 2)])), null, RejectReasons.UndecodableImage),
            new("wrong size", "sample.fashion-mnist", Event("bad-size", EventTypes.Sample, "fashion-mnist", ImageData(ImagePreprocessor.EncodePng(big, 32, 32, 1), 32, 32)), null, RejectReasons.ImageShape),
            new("wrong channels", "sample.fashion-mnist", Event("bad-channels", EventTypes.Sample, "fashion-mnist", ImageData(ImagePreprocessor.EncodePng(rgb, 28, 28, 3), 28, 28, 3)), null, RejectReasons.ImageShape),
            new("bad base64", "sample.fashion-mnist", Event("bad-b64", EventTypes.Sample, "fashion-mnist", ImageData([], base64: "!!not*base64!!")), null, RejectReasons.BadBase64),
            new("text over limit", "sample.fortunes", Event("long-text", EventTypes.Sample, "fortunes", new JsonObject { ["modality"] = "text", ["text"] = new string('y', 4001) }), null, RejectReasons.TextTooLong),
            new("empty text", "sample.fortunes", Event("empty-text", EventTypes.Sample, "fortunes", new JsonObject { ["modality"] = "text", ["text"] = "" }), null, RejectReasons.TextEmpty),
            new("rating out of range", "feedback.fortunes", Event("bad-rating", EventTypes.Feedback, "fortunes", new JsonObject { ["generation_id"] = "g", ["model"] = "fortunes", ["version"] = 1, ["rating"] = 6 }), null, RejectReasons.SchemaViolation),
            new("wrong content type", "sample.fortunes", Event("bad-ctype", EventTypes.Sample, "fortunes", text), "application/x-protobuf", RejectReasons.ContentType),
            new("deep JSON", "sample.fortunes", Raw(new string('[', 20_000) + new string(']', 20_000)), null, RejectReasons.MalformedJson),
            new("stored id, invalid content", "sample.fashion-mnist", Event(storedId, EventTypes.Sample, "fashion-mnist", ImageData(Raw("not an image"))), null, RejectReasons.UndecodableImage),
        ];
    }

    [Fact]
    public async Task EachBadMessage_IsDeadLetteredWithItsReason_ValidOnesFlow_AndStoredDataNeverChanges()
    {
        string store = StorePath;
        await using var daemon = DaemonProcess.Start(Fixture.Broker, store, new Dictionary<string, string> { ["Ingest:MaxMessageBytes"] = MaxMessageBytes.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        await daemon.WaitReadyAsync();

        // Some good data first, snapshotted.
        var images = FashionMnist.Read("t10k", take: 100);
        var seeded = await Fixture.PublishAsync(images.Select(i => CloudEventEncoder.FashionMnist(i, "t10k", "fashion-mnist", "png", null)), 100);
        Assert.Equal(100L, seeded.Confirmed);
        Assert.Equal(100, await StoreProbe.WaitForSamplesAsync(store, 100, TimeSpan.FromSeconds(30)));
        var before = StoreSnapshot.Take(store);
        string storedId = "fashion-mnist/t10k/00007";

        var cases = Cases(images[7], storedId);
        var watch = Stopwatch.StartNew();
        int valid = 0;
        foreach (var c in cases)
        {
            // Valid messages on either side of each bad one.
            foreach (var side in new[] { "before", "after" })
            {
                if (side == "after")
                {
                    await Fixture.PublishRawAsync(c.RoutingKey, c.Body, "case:" + c.Name, c.ContentType);
                }

                var ok = CloudEventEncoder.Fortune(new Fortune("bad-input-test", valid++, $"valid fortune {valid} {side} {c.Name}"), "fortunes", null);
                await Fixture.PublishRawAsync(ok.RoutingKey, ok.Body.ToArray(), ok.EventId);
            }
        }

        // A valid message reusing a stored id with a different image: a duplicate, never an overwrite.
        var impostor = CloudEventEncoder.FashionMnist(images[8] with { Index = 7 }, "t10k", "fashion-mnist", "raw-u8", "holdout");
        await Fixture.PublishRawAsync(impostor.RoutingKey, impostor.Body.ToArray(), "case:impostor");

        // Oversized bodies (8 MiB each, 128x our limit): rejected unparsed; memory must not hold them.
        long rssBefore = PeakRssKb(daemon.Pid);
        const int oversized = 12;
        var huge = new byte[8 * 1024 * 1024];
        Array.Fill(huge, (byte)'x');
        for (int i = 0; i < oversized; i++)
        {
            await Fixture.PublishRawAsync("sample.fortunes", huge, $"case:too large {i}");
        }

        long expectedStored = 100 + valid;
        Assert.Equal(expectedStored, await StoreProbe.WaitForSamplesAsync(store, expectedStored, TimeSpan.FromSeconds(60)));
        await BrokerProbe.WaitForDepthAsync(Fixture.Broker, Topology.DeadLetterQueue, (uint)(cases.Count + oversized), TimeSpan.FromSeconds(60));
        long rssAfter = PeakRssKb(daemon.Pid);
        var dead = await BrokerProbe.DrainAsync(Fixture.Broker, Topology.DeadLetterQueue);
        output.WriteLine($"{cases.Count} bad + {oversized} oversized + {valid} valid messages handled in {watch.Elapsed.TotalSeconds:0.0} s; peak RSS {rssBefore / 1024} MB -> {rssAfter / 1024} MB");

        var problems = new List<string>();
        foreach (var c in cases)
        {
            var match = dead.Where(d => d.MessageId == "case:" + c.Name).ToList();
            if (match.Count != 1)
            {
                problems.Add($"{c.Name}: {match.Count} copies in retrain.dead");
                continue;
            }

            var headers = match[0].Headers;
            string reason = headers.GetValueOrDefault(Topology.RejectReasonHeader, "(none)");
            output.WriteLine($"{c.Name,-28} -> {reason,-18} {headers.GetValueOrDefault(Topology.RejectDetailHeader)}");
            if (reason != c.Reason)
            {
                problems.Add($"{c.Name}: reason {reason}, expected {c.Reason}");
            }

            if (!match[0].Body.AsSpan().SequenceEqual(c.Body))
            {
                problems.Add($"{c.Name}: the dead-lettered body differs from what was sent");
            }
        }

        Assert.Empty(problems);

        // Oversized: dead-lettered by the broker on reject (x-death), never copied into the daemon.
        var tooLarge = dead.Where(d => d.MessageId?.StartsWith("case:too large", StringComparison.Ordinal) == true).ToList();
        Assert.Equal(oversized, tooLarge.Count);
        Assert.All(tooLarge, d => Assert.True(d.Headers.ContainsKey("x-death") && d.Headers["x-first-death-reason"] == "rejected"));
        Assert.True(rssAfter - rssBefore < oversized * 8 * 1024, $"peak RSS grew by {(rssAfter - rssBefore) / 1024} MB for {oversized * 8} MB of oversized messages");

        Assert.Equal(oversized, await daemon.MetricAsync("retrain_ingest_messages_total", "reason=\"too_large\""));
        Assert.Equal(cases.Count, await daemon.MetricAsync("retrain_ingest_messages_total", "result=\"rejected\"") - oversized);
        Assert.Equal(1, await daemon.MetricAsync("retrain_ingest_messages_total", "result=\"duplicate\""));

        // Nothing that was stored before changed, the impostor included.
        var after = StoreSnapshot.Take(store);
        Assert.All(before, row => Assert.Equal(row.Value, after[row.Key]));
        Assert.Equal(images[7].Pixels, StoreSnapshot.Pixels(store, storedId));
        Assert.Equal(0u, await BrokerProbe.DepthAsync(Fixture.Broker, Topology.SamplesQueue));
    }

    private static long PeakRssKb(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }
}
