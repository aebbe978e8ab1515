using System.Text.Json;
using System.Text.Json.Nodes;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Messaging.Publishing;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.IntegrationTests.Loop;

/// <summary>
/// The loop end to end with nobody at the keyboard, through the real broker: an empty daemon receives
/// real Fashion-MNIST, the data-volume trigger fine-tunes a DCGAN, the gate passes it, the registry
/// promotes it and serving answers with it; more data fine-tunes the champion (transfer learning) into
/// the next version; low ratings of the new champion's generations roll it back automatically.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class ContinuousLoopTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-loop")
{
    private const string Model = "fashion-mnist";

    private static Dictionary<string, string> DcganSettings() => new()
    {
        ["Models:fashion-mnist:Retrain"] = "true",
        ["Models:fashion-mnist:Training:Steps"] = "150",
        ["Models:fashion-mnist:Training:FineTuneSteps"] = "60",
        ["Models:fashion-mnist:Training:Width"] = "16",
        ["Models:fashion-mnist:Training:MinTrainingSamples"] = "1000",
        ["Models:fashion-mnist:Training:MinHoldoutSamples"] = "50",
        ["Models:fashion-mnist:Triggers:MinNewSamples"] = "1500",
        ["Models:fashion-mnist:Triggers:Cooldown"] = "00:00:01",
        // The shipped thresholds are for the shipped budget (1,000 steps at width 64); seconds of training
        // get a gate that a trained generator passes and an untrained one would still fail on FID.
        ["Models:fashion-mnist:Gate:Checks:0:Metric"] = "fid",
        ["Models:fashion-mnist:Gate:Checks:0:Max"] = "400",
        ["Models:fashion-mnist:Gate:Checks:0:MaxRegressionRelative"] = "1.0",
        ["Models:fashion-mnist:Gate:Checks:1:Metric"] = "is",
        ["Models:fashion-mnist:Gate:Checks:1:Min"] = "1.0",
        ["Models:fashion-mnist:Gate:Checks:2:Metric"] = "class_coverage",
        ["Models:fashion-mnist:Gate:Checks:2:Min"] = "0.1",
        ["Models:fashion-mnist:Gate:Checks:3:Metric"] = "memorized_share",
        ["Models:fashion-mnist:Gate:Checks:3:Max"] = "0.5",
        ["Models:fashion-mnist:Rollback:Window"] = "01:00:00",
        ["Models:fashion-mnist:Rollback:MaxErrorRate"] = "",
        ["Models:fashion-mnist:Rollback:MinMeanRating"] = "2.5",
        ["Models:fashion-mnist:Rollback:MinRatings"] = "6",
        // Ratings must not start a fine-tune here: the rollback is what is under test.
        ["Models:fashion-mnist:Triggers:MinNewRatings"] = "",
        ["Models:fashion-mnist:Triggers:MaxRatingDrop"] = "",
        // Fresh data of one class only is far from the training window's mix (helper measurement: a balanced
        // fresh window scores ~4, half one class ~38).
        ["Models:fashion-mnist:Triggers:MaxDrift"] = "30",
        ["Models:fashion-mnist:Triggers:MaxStaleness"] = "",
    };

    private async Task PublishImagesAsync(int offset, int count, int? onlyClass = null)
    {
        var images = FashionMnist.Read("train", offset, onlyClass is null ? count : count * 12).Where(i => onlyClass is null || i.Label == onlyClass).Take(count).ToList();
        var published = await Fixture.PublishAsync(images.Select(i => CloudEventEncoder.FashionMnist(i, "train", Model, "png", null)), images.Count);
        Assert.Equal((count, 0L), (published.Confirmed, published.Failed));
    }

    [Fact]
    public async Task Dcgan_DataTriggersFineTune_PromotedAndServed_ThenFineTunedFromChampion_ThenRolledBackOnLowRatings()
    {
        await using var daemon = LoopDaemon.Start(Fixture.Broker, Directory, DcganSettings());
        await daemon.WaitConsumingAsync();
        string events = await LoopDaemon.BindEventQueueAsync(Fixture.Broker);

        // 1. Real data through the broker; crossing 1,500 new samples starts the first run, from scratch.
        await PublishImagesAsync(0, 2000);
        var first = await daemon.WaitForFinishedRunAsync(Model, 1, TimeSpan.FromMinutes(4));
        output.WriteLine($"run 1: {first.RunId} {first.Status} v{first.Version} ({first.Trigger}): {first.Detail}; {string.Join(", ", first.Stages.Select(s => $"{s.Stage} {s.Duration?.TotalSeconds:0.0}s"))}");
        Assert.Equal(RunStatuses.Promoted, first.Status);
        Assert.Equal(1, first.Version);
        Assert.Contains("new samples", first.Trigger, StringComparison.Ordinal);
        Assert.Null(first.ParentVersion);
        Assert.Equal(["snapshot", "train", "export", "evaluate", "publish", "announce"], first.Stages.Select(s => s.Stage).ToArray());
        Assert.All(first.Stages, s => Assert.Equal(StageOutcomes.Ok, s.Outcome));
        Assert.Contains("from scratch", first.Stages.Single(s => s.Stage == "train").Detail, StringComparison.Ordinal);
        var v1 = daemon.Registry.Verify(Model, 1);
        Assert.Equal("init", v1.Manifest.Hyperparameters["warm_start"]);
        Assert.Equal(first.RunId, v1.Manifest.RunId);
        await daemon.GenerateAsync(Model, """{"count":2,"format":"json","seed":3}""", 1, TimeSpan.FromSeconds(60));

        // 2. More data, all of one class (trousers): fewer than the volume trigger needs, but an error
        // analysis of the champion measures the drift, the drift trigger fires, and the second run
        // warm-starts from the champion's checkpoint, weighted by that analysis, and becomes v2.
        await PublishImagesAsync(2000, 1200, onlyClass: 1);
        await StoreProbe.WaitForSamplesAsync(daemon.StorePath, 3200, TimeSpan.FromSeconds(60));
        Assert.Single(await daemon.RunsAsync(Model));
        await using (var analyze = DaemonProcess.StartRaw("analyze --model fashion-mnist", LoopCommandSettings(daemon), 0))
        {
            Assert.True(await analyze.WaitForExitAsync(TimeSpan.FromMinutes(2)) == 0, analyze.Output);
            output.WriteLine(analyze.Output[^Math.Min(analyze.Output.Length, 1500)..]);
        }

        var second = await daemon.WaitForFinishedRunAsync(Model, 2, TimeSpan.FromMinutes(4));
        output.WriteLine($"run 2: {second.RunId} {second.Status} v{second.Version} ({second.Trigger}): {second.Detail}");
        Assert.Equal(RunStatuses.Promoted, second.Status);
        Assert.StartsWith("drift ", second.Trigger, StringComparison.Ordinal);
        Assert.Contains("slices weighted by analysis", second.Stages.Single(s => s.Stage == "snapshot").Detail, StringComparison.Ordinal);
        Assert.Equal(2, second.Version);
        Assert.Equal(1, second.ParentVersion);
        Assert.Equal(first.Watermark, second.PreviousWatermark);
        Assert.Contains("fine-tuned from the champion", second.Stages.Single(s => s.Stage == "train").Detail, StringComparison.Ordinal);
        var v2 = daemon.Registry.Verify(Model, 2);
        Assert.Equal("champion", v2.Manifest.Hyperparameters["warm_start"]);
        Assert.Equal(v1.Manifest.Hyperparameters["checkpoints"], v2.Manifest.Hyperparameters["from_checkpoints"]);
        Assert.Equal(1, v2.Manifest.ParentVersion);
        var (_, generations) = await daemon.GenerateAsync(Model, """{"count":8,"format":"json","seed":4}""", 2, TimeSpan.FromSeconds(60));
        // The champion and its recorded gate metrics are on /metrics for the dashboard's "over versions" panels.
        Assert.Equal(2.0, await daemon.Daemon.MetricAsync("retrain_champion_version", $"model=\"{Model}\""));
        double fid2 = v2.Manifest.Metrics.Single(m => m.Metric == "fid" && m.Slice is null).Value;
        Assert.Equal(fid2, await daemon.Daemon.MetricAsync("retrain_champion_metric", $"model=\"{Model}\"", "metric=\"fid\""), 6);

        // 3. Users rate v2's samples badly: the rollback watch moves champion back to v1 and says so.
        var ratings = generations.Select((id, i) => CloudEventEncoder.Encode($"rating-{i}", EventTypes.Feedback, Model, "/tests/raters",
            new JsonObject { ["generation_id"] = id, ["model"] = Model, ["version"] = 2, ["rating"] = 1 + (i % 2) })).ToList();
        var sent = await Fixture.PublishAsync(ratings, ratings.Count);
        Assert.Equal((8L, 0L), (sent.Confirmed, sent.Failed));
        await daemon.GenerateAsync(Model, """{"count":1,"format":"json","seed":5}""", 1, TimeSpan.FromSeconds(60));
        var aliases = daemon.Registry.ReadAliases(Model)!;
        Assert.Equal(1, aliases.Champion);
        var rollback = aliases.History[^1];
        Assert.Equal(AliasActions.Rollback, rollback.Action);
        Assert.Contains("mean rating 1.5 over 8 ratings < 2.5", rollback.Reason, StringComparison.Ordinal);
        Assert.Equal(1.0, await daemon.Daemon.MetricAsync("retrain_rollbacks_total", $"model=\"{Model}\""));
        Assert.Equal(1.0, await daemon.Daemon.MetricAsync("retrain_champion_version", $"model=\"{Model}\""));

        // The events of the whole story, in order, on retrain.events.
        var published = (await BrokerProbe.DrainAsync(Fixture.Broker, events))
            .Select(m => JsonDocument.Parse(m.Body).RootElement.GetProperty("type").GetString()).ToList();
        Assert.Equal([ModelEventTypes.Promoted, ModelEventTypes.AnalysisCompleted, ModelEventTypes.Promoted, ModelEventTypes.RolledBack], published);
    }

    /// <summary>The settings a CLI verb needs to work on the running daemon's store, registry and loop folders.</summary>
    private Dictionary<string, string> LoopCommandSettings(LoopDaemon daemon)
    {
        var settings = DaemonProcess.Settings(Fixture.Broker, daemon.StorePath, 0);
        foreach (var (key, value) in LoopDaemon.Settings(Directory))
        {
            settings[key] = value;
        }

        foreach (var (key, value) in DcganSettings())
        {
            settings[key] = value;
        }

        return settings;
    }

    private static Dictionary<string, string> TranslationSettings() => new()
    {
        ["Models:en-de:Retrain"] = "true",
        ["Serving:Models:0"] = "en-de",
        ["Models:en-de:Training:Steps"] = "1200",
        ["Models:en-de:Training:FineTuneSteps"] = "300",
        ["Models:en-de:Training:Width"] = "64",
        ["Models:en-de:Training:Layers"] = "2",
        ["Models:en-de:Training:Heads"] = "4",
        ["Models:en-de:Training:Context"] = "64",
        ["Models:en-de:Training:VocabularySize"] = "1024",
        ["Models:en-de:Training:MinTrainingSamples"] = "1000",
        ["Models:en-de:Training:MinHoldoutSamples"] = "50",
        ["Models:en-de:Triggers:MinNewSamples"] = "1500",
        ["Models:en-de:Triggers:Cooldown"] = "00:00:01",
        ["Models:en-de:Triggers:MinNewRatings"] = "",
        ["Models:en-de:Triggers:MaxRatingDrop"] = "",
        ["Models:en-de:Triggers:MaxStaleness"] = "",
        // Scored on 200 holdout pairs with at most 32 new tokens: seconds on 2 cores.
        ["Evaluation:Text:MaxHoldout"] = "200",
        ["Evaluation:Text:MaxNewTokens"] = "32",
        // BLEU must clear a floor that an untrained model (BLEU ~0.01) cannot; seconds of training can.
        ["Models:en-de:Gate:Checks:0:Metric"] = "bleu",
        ["Models:en-de:Gate:Checks:0:Min"] = "0.3",
        ["Models:en-de:Gate:Checks:0:MaxRegressionRelative"] = "1.0",
        ["Models:en-de:Gate:Checks:1:Metric"] = "source_copy_share",
        ["Models:en-de:Gate:Checks:1:Max"] = "0.9",
        ["Models:en-de:Gate:Checks:2:Metric"] = "chrf",
        ["Models:en-de:Gate:Checks:2:MaxRegressionRelative"] = "1.0",
        ["Models:en-de:Gate:Checks:3:Metric"] = "rougeL",
        ["Models:en-de:Gate:Checks:3:MaxRegressionRelative"] = "1.0",
        ["Models:en-de:Rollback:MaxErrorRate"] = "",
        ["Models:en-de:Rollback:MinMeanRating"] = "2.5",
        ["Models:en-de:Rollback:MinRatings"] = "6",
    };

    [Fact]
    public async Task ConditionalText_DataTriggersFineTune_BleuGated_PromotedAndServed_ThenFineTunedFromChampion_ThenRolledBackOnLowRatings()
    {
        const string model = "en-de";
        await using var daemon = LoopDaemon.Start(Fixture.Broker, Directory, TranslationSettings());
        await daemon.WaitConsumingAsync();
        string events = await LoopDaemon.BindEventQueueAsync(Fixture.Broker);
        var pairs = GettextCatalog.ReadLanguage("de").Take(4000).ToList();
        async Task PublishPairsAsync(IEnumerable<TranslationPair> batch)
        {
            var messages = batch.Select(p => CloudEventEncoder.Translation(p, "de", model, null)).ToList();
            var sent = await Fixture.PublishAsync(messages, messages.Count);
            Assert.Equal((messages.Count, 0L), (sent.Confirmed, sent.Failed));
        }

        await PublishPairsAsync(pairs.Take(2000));
        var first = await daemon.WaitForFinishedRunAsync(model, 1, TimeSpan.FromMinutes(5));
        output.WriteLine($"run 1: {first.RunId} {first.Status} v{first.Version}: {first.Detail}; {string.Join("; ", first.Stages.Select(s => $"{s.Stage} {s.Duration?.TotalSeconds:0.0}s: {s.Detail}"))}");
        Assert.Equal(RunStatuses.Promoted, first.Status);
        var v1 = daemon.Registry.Verify(model, 1);
        Assert.Equal("gpt", v1.Manifest.Hyperparameters["family"]);
        Assert.Equal("conditional", v1.Manifest.Hyperparameters["task"]);
        var bleu1 = v1.Manifest.Metrics.Single(m => m.Metric == "bleu" && m.Slice is null);
        Assert.InRange(bleu1.Value, 0.3, 100);
        await daemon.GenerateAsync(model, """{"source":"Open file","max_new_tokens":16}""", 1, TimeSpan.FromSeconds(60));

        await PublishPairsAsync(pairs.Skip(2000));
        var second = await daemon.WaitForFinishedRunAsync(model, 2, TimeSpan.FromMinutes(5));
        output.WriteLine($"run 2: {second.RunId} {second.Status} v{second.Version}: {second.Detail}; {string.Join("; ", second.Stages.Select(s => $"{s.Stage} {s.Duration?.TotalSeconds:0.0}s: {s.Detail}"))}");
        Assert.Equal(RunStatuses.Promoted, second.Status);
        Assert.Equal(2, second.Version);
        Assert.Equal(1, second.ParentVersion);
        Assert.Contains("fine-tuned from the champion", second.Stages.Single(s => s.Stage == "train").Detail, StringComparison.Ordinal);
        var v2 = daemon.Registry.Verify(model, 2);
        Assert.Equal("champion", v2.Manifest.Hyperparameters["warm_start"]);
        // The fine-tune keeps the champion's vocabulary (warm start), so the versions are comparable token for token.
        Assert.Equal(v1.Manifest.Hyperparameters["vocabulary_sha256"], v2.Manifest.Hyperparameters["vocabulary_sha256"]);

        var ids = new List<string>();
        foreach (var source in new[] { "Open file", "Save as", "Close window", "Print", "Quit", "Settings", "Help", "About" })
        {
            var (_, generated) = await daemon.GenerateAsync(model, JsonSerializer.Serialize(new { source, max_new_tokens = 16 }), 2, TimeSpan.FromSeconds(60));
            ids.AddRange(generated);
        }

        var ratings = ids.Select((id, i) => CloudEventEncoder.Encode($"text-rating-{i}", EventTypes.Feedback, model, "/tests/raters",
            new JsonObject { ["generation_id"] = id, ["model"] = model, ["version"] = 2, ["rating"] = 1 })).ToList();
        Assert.Equal(8L, (await Fixture.PublishAsync(ratings, ratings.Count)).Confirmed);
        await daemon.GenerateAsync(model, """{"source":"Open file","max_new_tokens":8}""", 1, TimeSpan.FromSeconds(60));
        var aliases = daemon.Registry.ReadAliases(model)!;
        Assert.Equal((1, AliasActions.Rollback), (aliases.Champion!.Value, aliases.History[^1].Action));
        Assert.Contains("mean rating 1 over 8 ratings < 2.5", aliases.History[^1].Reason, StringComparison.Ordinal);
        var published = (await BrokerProbe.DrainAsync(Fixture.Broker, events))
            .Select(m => JsonDocument.Parse(m.Body).RootElement.GetProperty("type").GetString()).ToList();
        Assert.Equal([ModelEventTypes.Promoted, ModelEventTypes.Promoted, ModelEventTypes.RolledBack], published);
    }
}
