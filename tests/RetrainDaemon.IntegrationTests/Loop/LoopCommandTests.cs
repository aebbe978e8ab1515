using System.Text.Json;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Messaging.Publishing;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.IntegrationTests.Loop;

/// <summary>
/// The loop's verbs on a store the daemon filled through the broker: <c>analyze</c> without a champion
/// and <c>retrain</c> on too little data are skipped with their reasons (exit 4, nothing failed, nothing
/// published); <c>retrain</c> with a tuner budget runs the search, trains with the best trial and records
/// every stage; <c>runs list|show</c> read the ledger.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class LoopCommandTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-loopcli")
{
    private Dictionary<string, string> Settings(params (string Key, string Value)[] extra)
    {
        var settings = DaemonProcess.Settings(Fixture.Broker, StorePath, 0);
        foreach (var (key, value) in LoopDaemon.Settings(Directory))
        {
            settings[key] = value;
        }

        settings["Loop:Enabled"] = "false";
        settings["Models:fashion-mnist:Retrain"] = "true";
        settings["Models:fashion-mnist:Training:Steps"] = "40";
        settings["Models:fashion-mnist:Training:Width"] = "16";
        settings["Models:fashion-mnist:Training:MinTrainingSamples"] = "500";
        settings["Models:fashion-mnist:Training:MinHoldoutSamples"] = "20";
        foreach (var (key, value) in extra)
        {
            settings[key] = value;
        }

        return settings;
    }

    private async Task<(int Exit, string Output)> RunAsync(string verb, Dictionary<string, string> settings)
    {
        await using var process = DaemonProcess.StartRaw(verb, settings, 0);
        int exit = await process.WaitForExitAsync(TimeSpan.FromMinutes(3));
        output.WriteLine($"$ {verb} → {exit}\n{process.Output[^Math.Min(process.Output.Length, 2500)..]}");
        return (exit, process.Output);
    }

    [Fact]
    public async Task Verbs_SkipWithReasons_TuneThenTrain_AndReadTheLedger()
    {
        await using (var daemon = DaemonProcess.Start(Fixture.Broker, StorePath))
        {
            await daemon.WaitReadyAsync();
            var images = FashionMnist.Read("train", take: 1000).Select(i => CloudEventEncoder.FashionMnist(i, "train", "fashion-mnist", "png", null)).ToList();
            Assert.Equal(1000L, (await Fixture.PublishAsync(images, images.Count)).Confirmed);
            Assert.Equal(1000L, await StoreProbe.WaitForSamplesAsync(StorePath, 1000, TimeSpan.FromSeconds(60)));
        }

        // No champion yet: nothing to analyse.
        var (exit, text) = await RunAsync("analyze --model fashion-mnist", Settings());
        Assert.Equal(4, exit);
        Assert.Contains("skipped: no champion to analyse yet", text, StringComparison.Ordinal);

        // Too little data for the configured minimum: skipped, with the numbers, not failed.
        (exit, text) = await RunAsync("retrain --model fashion-mnist", Settings(("Models:fashion-mnist:Training:MinTrainingSamples", "5000")));
        Assert.Equal(4, exit);
        Assert.Contains("skipped: snapshot too small:", text, StringComparison.Ordinal);
        Assert.Contains("(Training:MinTrainingSamples = 5000)", text, StringComparison.Ordinal);
        Assert.Empty(new Core.Registry.ModelRegistry(Path.Combine(Directory, "registry")).Models());

        // A tuner budget: three short trials, the best one's parameters train the run.
        (exit, text) = await RunAsync("retrain --model fashion-mnist --reason cli-test",
            Settings(("Models:fashion-mnist:Training:Tune:Trials", "3"), ("Models:fashion-mnist:Training:Tune:TrialSteps", "10"), ("Models:fashion-mnist:Gate:Checks:0:Max", "1000"),
                ("Models:fashion-mnist:Gate:Checks:1:Min", "1.0"), ("Models:fashion-mnist:Gate:Checks:2:Min", "0.1"), ("Models:fashion-mnist:Gate:Checks:3:Max", "1.0")));
        Assert.True(exit is 0 or 3, text);

        (exit, text) = await RunAsync("runs list --model fashion-mnist --json", Settings());
        Assert.Equal(0, exit);
        using var runs = JsonDocument.Parse(text[text.IndexOf('[', StringComparison.Ordinal)..]);
        var list = runs.RootElement.EnumerateArray().ToList();
        Assert.Equal(["promoted-or-rejected", RunStatuses.Skipped, RunStatuses.Skipped],
            list.Select(r => r.GetProperty("status").GetString() is RunStatuses.Promoted or RunStatuses.Rejected ? "promoted-or-rejected" : r.GetProperty("status").GetString()!).ToArray());
        Assert.Equal(["finetune", "finetune", "analysis"], list.Select(r => r.GetProperty("kind").GetString()!).ToArray());
        var newest = list[0];
        Assert.Equal("manual: cli-test", newest.GetProperty("trigger").GetString());
        var stages = newest.GetProperty("stages").EnumerateArray().Select(s => (Stage: s.GetProperty("stage").GetString(), Outcome: s.GetProperty("outcome").GetString(), Detail: s.GetProperty("detail").GetString())).ToList();
        Assert.Equal(["snapshot", "tune", "train", "export", "evaluate", "publish", "announce"], stages.Select(s => s.Stage!).ToArray());
        Assert.StartsWith("best of 3 trials:", stages[1].Detail, StringComparison.Ordinal);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(newest.GetProperty("directory").GetString()!, "tuning", "trials.jsonl")).Length);

        (exit, text) = await RunAsync($"runs show {newest.GetProperty("run_id").GetString()}", Settings());
        Assert.Equal(0, exit);
        Assert.Contains("trigger   manual: cli-test", text, StringComparison.Ordinal);
        Assert.Contains("tune", text, StringComparison.Ordinal);

        (exit, text) = await RunAsync("runs show no-such-run", Settings());
        Assert.Equal(1, exit);
        Assert.Contains("no run 'no-such-run' in the ledger", text, StringComparison.Ordinal);
    }
}
