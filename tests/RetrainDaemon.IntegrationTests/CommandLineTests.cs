using System.Diagnostics;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.IntegrationTests;

/// <summary>The producer verbs and start-up ordering, through the real binary.</summary>
[Collection(BrokerCollection.Name)]
public sealed class CommandLineTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-cli")
{
    private Dictionary<string, string> BrokerSettings => new() { ["Broker:Endpoints:0"] = Fixture.Broker.Endpoint };

    [Fact]
    public async Task PublishVerbs_ConfirmEverything_AndTheDaemonStoresIt()
    {
        string feedbackFile = Path.Combine(Directory, "ratings.jsonl");
        await File.WriteAllLinesAsync(feedbackFile,
        [
            """{"generation_id":"g-1","model":"fashion-mnist","version":1,"rating":5}""",
            """{"id":"fb-explicit","generation_id":"g-2","model":"fortunes","version":"2","accepted":false,"correction":"A better fortune."}""",
            "",
            """{"generation_id":"g-3","model":"en-de","version":1,"rating":2,"rater":"qa"}""",
        ]);

        foreach (var (verb, expected) in new[]
        {
            ("publish fashion-mnist --count 300 --subset t10k --encoding raw-u8", "confirmed 300, failed 0"),
            ("publish fortunes --count 200", "confirmed 200, failed 0"),
            ("publish gettext --lang de --count 100", "confirmed 100, failed 0"),
            ($"publish feedback --file {feedbackFile}", "confirmed 3, failed 0"),
        })
        {
            await using var publish = DaemonProcess.StartRaw(verb, BrokerSettings, 0);
            Assert.Equal(0, await publish.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            Assert.Contains(expected, publish.Output, StringComparison.Ordinal);
        }

        // Feedback is stored only for generations the serving API handed out; these stand for them.
        await Store.GenerationSeed.RecordAsync(StorePath, [("g-1", "fashion-mnist", 1), ("g-2", "fortunes", 2), ("g-3", "en-de", 1)]);
        await using var daemon = DaemonProcess.Start(Fixture.Broker, StorePath);
        await daemon.WaitReadyAsync();
        // Some gettext messages may exceed en-de's 1,000-character limit and be dead-lettered; all others are stored.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (StoreProbe.Feedback(StorePath) < 3 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.Equal(3, StoreProbe.Feedback(StorePath));
        Assert.Equal(300, StoreProbe.Scalar(StorePath, "SELECT COUNT(*) FROM samples WHERE model = 'fashion-mnist';"));
        Assert.Equal(200, StoreProbe.Scalar(StorePath, "SELECT COUNT(*) FROM samples WHERE model = 'fortunes' AND origin = 'producer';"));
        // fb-explicit's correction of generation g-2 became a training sample of its own.
        Assert.Equal(1, StoreProbe.Scalar(StorePath, "SELECT COUNT(*) FROM samples WHERE model = 'fortunes' AND origin = 'correction' AND correction_of = 'g-2' AND text = 'A better fortune.';"));
        Assert.Equal(1, StoreProbe.Scalar(StorePath, "SELECT COUNT(*) FROM feedback WHERE event_id = 'fb-explicit' AND accepted = 0 AND correction_text = 'A better fortune.';"));
    }

    [Fact]
    public async Task PublishToAnUnconfiguredModel_IsRefusedUpFront()
    {
        await using var publish = DaemonProcess.StartRaw("publish fortunes --model nope --count 5", BrokerSettings, 0);
        Assert.Equal(1, await publish.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("model 'nope' is not configured", publish.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DaemonStartedBeforeTheBroker_RetriesTheFirstConnection_AndBecomesReady()
    {
        await using var late = PrivateBroker.CreateStopped();
        await using var daemon = DaemonProcess.Start(late, StorePath);
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.False(daemon.HasExited, daemon.Output);
        Assert.Equal(200, await daemon.GetStatusAsync("/v2/health/live"));
        Assert.Equal(503, await daemon.GetStatusAsync("/v2/health/ready"));
        Assert.Contains("unreachable (attempt", daemon.Output, StringComparison.Ordinal);

        var watch = Stopwatch.StartNew();
        await late.StartAgainAsync();
        await daemon.WaitReadyAsync(TimeSpan.FromSeconds(60));
        output.WriteLine($"ready {watch.Elapsed.TotalSeconds:0.0} s after the broker was started (including its own start-up)");
    }
}
