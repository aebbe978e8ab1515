using RetrainDaemon.Core.Text;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Preprocessing;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Trainers;
using Xunit.Abstractions;

namespace RetrainDaemon.ModelTests;

/// <summary>The gpt family's training on the real corpora: overfitting in both modes, warm starts, resume, and what a snapshot skips.</summary>
public sealed class TextTrainingTests(ITestOutputHelper output) : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), $"rd-text-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>Short real fortunes (≤ 60 characters so they fit a small context whole).</summary>
    internal static IReadOnlyList<TextPair> Fortunes(int skip, int take) => [.. RetrainDaemon.Data.Datasets.Fortunes.Read()
        .Select(f => TextNormalizer.Normalize(f.Text)).Where(t => t.Length is > 10 and <= 60).Skip(skip).Take(take).Select(t => new TextPair(t, null))];

    /// <summary>Short real English → German UI strings.</summary>
    internal static IReadOnlyList<TextPair> Pairs(int skip, int take) => [.. GettextCatalog.ReadLanguage("de")
        .Where(p => p.Source.Length is > 3 and <= 30 && p.Target.Length is > 3 and <= 40 && !p.Source.Contains('\n'))
        .Skip(skip).Take(take).Select(p => new TextPair(p.Target, p.Source))];

    private static TrainingOptions Overfit(int steps) => new()
    {
        Optimizer = OptimizerKind.AdamW,
        LearningRate = 3e-3,
        Beta1 = 0.9,
        Beta2 = 0.99,
        WeightDecay = 0,
        Steps = steps,
        BatchSize = 8,
        GradientClip = 1.0,
        EvalEvery = 0,
        Seed = 5,
    };

    private TextRunRequest Request(string task, string name, TrainingOptions options, string? from = null) =>
        new(task, Path.Combine(root, name), options, Layers: 2, Heads: 4, Width: 64, Context: 64, Dropout: 0, VocabularySize: 2048, MinTokenCount: 1, FromCheckpoint: from);

    [Fact]
    public void Lm_OverfitsATinyCorpus()
    {
        var corpus = Fortunes(0, 8);
        var result = TextTrainingRun.Run(Request(GptTasks.Lm, "lm", Overfit(300)), corpus, corpus);
        double final = result.Training.Losses.TakeLast(10).Average(l => l["loss"]);
        output.WriteLine($"initial holdout {result.InitialHoldoutLoss:0.000}, final training loss {final:0.0000}");
        Assert.Equal(TrainingOutcome.Completed, result.Training.Outcome);
        // The first token after BOS is a free choice among 8 texts (ln 8 ≈ 2.1 nats over ~15 tokens per
        // text ≈ 0.14 per token): that is the floor, everything else must be memorized.
        Assert.True(final < 0.3, $"training loss {final} did not fall below 0.3 on 8 texts");

        // Memorized: given the shortest prefix that tells a text apart from the others, greedy decoding reproduces the rest.
        using var gpt = Restore(result);
        var encoded = corpus.Select(p => result.Vocabulary.Encode(p.Text)).ToList();
        int reproduced = 0;
        foreach (var tokens in encoded)
        {
            int prefix = Enumerable.Range(1, tokens.Length).First(n => encoded.Count(other => other.Take(n).SequenceEqual(tokens.Take(n))) == 1);
            int[] prompt = [TextVocabulary.Bos, .. tokens.Take(prefix)];
            var generated = GptDecoding.Greedy(gpt, prompt, 64);
            string text = result.Vocabulary.Decode([.. tokens.Take(prefix), .. generated]);
            output.WriteLine($"{prefix} prefix tokens → {text}");
            reproduced += text == result.Vocabulary.Decode(tokens) ? 1 : 0;
        }

        Assert.True(reproduced == 8, $"only {reproduced} of 8 texts reproduced from their distinguishing prefix");
    }

    [Fact]
    public void Conditional_OverfitsATinySetOfPairs_AndLearnsOnlyTheTarget()
    {
        var pairs = Pairs(0, 8);
        var result = TextTrainingRun.Run(Request(GptTasks.Conditional, "cond", Overfit(300)), pairs, pairs);
        using var gpt = Restore(result);
        int exact = 0;
        foreach (var pair in pairs)
        {
            int[] prompt = [TextVocabulary.Bos, .. result.Vocabulary.Encode(pair.Source!), TextVocabulary.Sep];
            string translation = result.Vocabulary.Decode(GptDecoding.Greedy(gpt, prompt, 64));
            output.WriteLine($"{pair.Source} => {translation} (reference {pair.Text})");
            exact += translation == pair.Text ? 1 : 0;
        }

        Assert.True(exact >= 7, $"only {exact} of 8 pairs translated exactly after overfitting");

        // Loss is on target tokens only: the batches mark every source position as ignored.
        var example = TextExample.Conditional(result.Vocabulary, pairs[0].Source!, pairs[0].Text);
        var (_, targets) = new TextBatches([example], 64).Head(1);
        var values = targets.data<long>().ToArray();
        int sourceTokens = result.Vocabulary.Encode(pairs[0].Source!).Length;
        Assert.All(values.Take(sourceTokens + 1), v => Assert.Equal(TextBatches.IgnoreIndex, v));
        Assert.Equal(TextVocabulary.Eos, values[example.Tokens.Length - 2]);
        Assert.DoesNotContain(TextBatches.IgnoreIndex, values.Skip(sourceTokens + 1).Take(example.Tokens.Length - sourceTokens - 2));
    }

    [Fact]
    public void FineTuneFromACheckpoint_StartsAtTheCheckpointsHoldoutLoss()
    {
        var train = Fortunes(0, 200);
        var holdout = Fortunes(200, 40);
        var options = Overfit(100) with { LearningRate = 1e-3, EvalEvery = 50, CheckpointEvery = 50 };
        var champion = TextTrainingRun.Run(Request(GptTasks.Lm, "champion", options), train, holdout);
        double championLoss = champion.Training.HoldoutLosses[^1];

        var fresh = Fortunes(240, 200);
        var fineTune = TextTrainingRun.Run(Request(GptTasks.Lm, "fine-tune", options with { Steps = 20, EvalEvery = 10 }, from: champion.CheckpointDirectory), fresh, holdout);
        output.WriteLine($"champion holdout {championLoss:0.000000}; fine-tune starts at {fineTune.InitialHoldoutLoss:0.000000}, random init was {champion.InitialHoldoutLoss:0.000}");
        Assert.Equal(champion.Vocabulary.ToJson(), fineTune.Vocabulary.ToJson());
        Assert.Equal(championLoss, fineTune.InitialHoldoutLoss, 5);
        Assert.True(champion.InitialHoldoutLoss > championLoss + 0.1, "the champion did not learn anything, so the comparison proves nothing");
    }

    [Fact]
    public void FineTune_CanFreezeTheLowerBlocks()
    {
        var train = Fortunes(0, 100);
        var champion = TextTrainingRun.Run(Request(GptTasks.Lm, "base", Overfit(20)), train, []);
        var frozen = TextTrainingRun.Run(Request(GptTasks.Lm, "frozen", Overfit(20) with { Freeze = ["wte", "wpe", "blocks.0"] }, from: champion.CheckpointDirectory), Fortunes(100, 100), []);
        using var before = Restore(champion);
        using var after = Restore(frozen);
        var b = before.state_dict();
        var a = after.state_dict();
        Assert.True(b["blocks.0.attn.qkv.weight"].eq(a["blocks.0.attn.qkv.weight"]).all().item<bool>(), "a frozen block changed");
        Assert.True(b["wte.weight"].eq(a["wte.weight"]).all().item<bool>(), "the frozen embedding changed");
        Assert.False(b["blocks.1.attn.qkv.weight"].eq(a["blocks.1.attn.qkv.weight"]).all().item<bool>(), "the unfrozen block did not train");

        var ex = Assert.Throws<ArgumentException>(() => TextTrainingRun.Run(Request(GptTasks.Lm, "bad", Overfit(5) with { Freeze = ["blocks.7"] }, from: champion.CheckpointDirectory), train, []));
        Assert.Contains("blocks.7", ex.Message);
    }

    [Fact]
    public void AnInterruptedRun_ResumesFromItsCheckpoint()
    {
        var train = Fortunes(0, 100);
        var first = TextTrainingRun.Run(Request(GptTasks.Lm, "resume", Overfit(30) with { CheckpointEvery = 10 }), train, []);
        var resumed = TextTrainingRun.Run(Request(GptTasks.Lm, "resume", Overfit(50) with { CheckpointEvery = 10 }), train, []);
        Assert.Equal(30, first.LastCheckpoint!.Step);
        Assert.Equal(50, resumed.Training.Steps);
        Assert.Equal(20, resumed.Training.Losses.Count); // only steps 30..49 ran
    }

    [Fact]
    public void EmptyTextsAndPairsWithAnEmptySide_AreSkippedAndCounted()
    {
        var pairs = Pairs(0, 40).Concat([new TextPair("", "Open"), new TextPair("Öffnen", ""), new TextPair("Öffnen", null), new TextPair("   ", "x")]).ToList();
        var (kept, skipped) = TextSnapshot.Clean(pairs, conditional: true);
        Assert.Equal(4, skipped);
        Assert.Equal(40, kept.Count);

        var result = TextTrainingRun.Run(Request(GptTasks.Conditional, "skips", Overfit(5)), pairs, []);
        Assert.Equal(TrainingOutcome.Completed, result.Training.Outcome);

        var none = Assert.Throws<InvalidOperationException>(() => TextTrainingRun.Run(Request(GptTasks.Lm, "empty", Overfit(5)), [new TextPair("", null)], []));
        Assert.Contains("no usable training texts", none.Message);
    }

    [Fact]
    public void UnknownCharacters_FallBackToBytes_AndTrain()
    {
        var corpus = Fortunes(0, 50).Concat([new TextPair("Ünïcödé ☃ 中文 🎉 \u0007", null)]).ToList();
        var result = TextTrainingRun.Run(Request(GptTasks.Lm, "bytes", Overfit(5)), corpus, []);
        Assert.Equal(TrainingOutcome.Completed, result.Training.Outcome);
        Assert.Equal("Ünïcödé ☃ 中文 🎉 \u0007", result.Vocabulary.Decode(result.Vocabulary.Encode("Ünïcödé ☃ 中文 🎉 \u0007")));
    }

    private static Gpt Restore(TextRunResult result)
    {
        var gpt = new Gpt(result.Config);
        RetrainDaemon.Training.Checkpoints.TrainingCheckpoint.Restore(result.LastCheckpoint!, new Dictionary<string, TorchSharp.torch.nn.Module> { ["gpt"] = gpt }, null);
        gpt.eval();
        return gpt;
    }
}

/// <summary>The text snapshot against a real SQLite store: splits, the watermark, fresh-only training texts, the whole holdout, skips.</summary>
public sealed class TextSnapshotStoreTests : IAsyncLifetime
{
    private readonly string root = Path.Combine(Path.GetTempPath(), $"rd-textsnap-{Guid.NewGuid():N}");
    private RetrainDaemon.Data.Store.SqliteSampleStore store = null!;

    public async Task InitializeAsync()
    {
        store = new RetrainDaemon.Data.Store.SqliteSampleStore(new RetrainDaemon.Core.Options.StoreOptions { Path = Path.Combine(root, "retrain.db") });
        var pairs = TextTrainingTests.Pairs(0, 100);
        RetrainDaemon.Core.Contracts.IngestItem Item(int i, string text, string? source) => RetrainDaemon.Core.Contracts.IngestItem.Of(new RetrainDaemon.Core.Contracts.SampleRecord(
            $"de/{i}", "en-de", "/t", null, RetrainDaemon.Core.Contracts.Modality.Text, i % 5 == 0 ? RetrainDaemon.Core.Contracts.Splits.Holdout : RetrainDaemon.Core.Contracts.Splits.Train,
            null, 0, 0, 0, null, text, source));
        var items = pairs.Select((p, i) => Item(i, p.Text, p.Source)).ToList();
        items[1] = Item(1, " ", "Open");   // an empty side: skipped and counted, never fatal
        items[2] = Item(2, "Öffnen", null);
        await store.CommitAsync(items[..60], CancellationToken.None);   // sequences 1..60
        await store.CommitAsync(items[60..], CancellationToken.None);   // 61..100
    }

    public async Task DisposeAsync()
    {
        await store.DisposeAsync();
        Directory.Delete(root, recursive: true);
    }

    [Fact]
    public async Task A_fine_tune_trains_on_fresh_texts_and_keeps_the_whole_holdout()
    {
        var (train, holdout, counts) = await TextSnapshot.LoadAsync(store, "en-de", conditional: true, watermark: 100);
        Assert.Equal(new TextSnapshotCounts(100, 78, 20, 1, 1, 0), counts); // 80 train - 2 skipped, 20 holdout
        Assert.All(train.Concat(holdout), p => Assert.False(string.IsNullOrWhiteSpace(p.Source)));

        var (freshTrain, sameHoldout, freshCounts) = await TextSnapshot.LoadAsync(store, "en-de", conditional: true, watermark: 100, previousWatermark: 60);
        Assert.Equal(32, freshTrain.Count);                  // train samples among sequences 61..100
        Assert.Equal(holdout, sameHoldout);                  // the comparison set does not move with the watermark
        Assert.Equal(0, freshCounts.Skipped);
    }
}
