using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Training.Checkpoints;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Trainers;
using Xunit.Abstractions;

namespace RetrainDaemon.ModelTests;

/// <summary>A whole run: store snapshot (watermark, splits, replay) → training → checkpoints and artifacts → warm start.</summary>
public sealed class TrainingRunTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string root = Path.Combine(Path.GetTempPath(), $"rd-run-{Guid.NewGuid():N}");
    private SqliteSampleStore store = null!;

    public async Task InitializeAsync()
    {
        store = new SqliteSampleStore(new StoreOptions { Path = Path.Combine(root, "retrain.db") });
        var images = FashionMnist.Read("t10k", take: 600);
        var items = images.Select(i => IngestItem.Of(new SampleRecord($"fm/{i.Index}", "fashion-mnist", "/t", null, Modality.Image,
            i.Index % 5 == 0 ? Splits.Holdout : Splits.Train, i.Label.ToString(System.Globalization.CultureInfo.InvariantCulture), 28, 28, 1, i.Pixels, null, null))).ToList();
        await store.CommitAsync(items[..400], CancellationToken.None);
        await store.CommitAsync(items[400..], CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await store.DisposeAsync();
        Directory.Delete(root, recursive: true);
    }

    [Fact]
    public async Task Snapshot_RespectsWatermarkSplitAndReplay()
    {
        var (train, holdout, counts) = await ImageSnapshot.LoadAsync(store, "fashion-mnist", 28, watermark: 400);
        Assert.Equal(new SnapshotCounts(400, 320, 0, 80), counts);
        Assert.Equal(320, train.Count);
        Assert.Equal(80, holdout.Count);

        var (_, _, fineTune) = await ImageSnapshot.LoadAsync(store, "fashion-mnist", 28, watermark: 600, previousWatermark: 400, replayRatio: 0.5);
        Assert.Equal(new SnapshotCounts(600, 160, 80, 120), fineTune);
    }

    [Fact]
    public async Task DcganRun_WritesCheckpointsSamplesAndLosses_AndAWarmStartResumesFromIt()
    {
        var (train, holdout, _) = await ImageSnapshot.LoadAsync(store, "fashion-mnist", 28, watermark: 600);
        var options = new TrainingOptions { Steps = 40, BatchSize = 32, EvalEvery = 20, CheckpointEvery = 20 };
        var first = ImageTrainingRun.Run(new ImageRunRequest("dcgan", Path.Combine(root, "run1"), options, Conditional: true), train, holdout);

        Assert.Equal(TrainingOutcome.Completed, first.Training.Outcome);
        Assert.Equal(40, first.LastCheckpoint!.Step);
        Assert.Equal(["discriminator.bin", "discriminator.optimizer.bin", "generator.bin", "generator.optimizer.bin", "state.json"], first.LastCheckpoint.Manifest.Files.Select(f => f.Name).Order().ToArray());
        Assert.True(new FileInfo(first.SamplesPng).Length > 1000);
        Assert.Equal(0x89, File.ReadAllBytes(first.LossPng)[0]); // PNG signature
        Assert.Equal(41, File.ReadAllLines(Path.Combine(root, "run1", "loss.csv")).Length);

        var second = ImageTrainingRun.Run(
            new ImageRunRequest("dcgan", Path.Combine(root, "run2"), options with { Steps = 10, Freeze = ["up1", "down1"] }, Conditional: true, FromCheckpoint: first.CheckpointDirectory),
            train, holdout);
        output.WriteLine($"run1 D/G losses at the end {string.Join(", ", first.Training.Losses[^1])}; warm-started run2 {second.Training.Outcome}");
        Assert.Equal(TrainingOutcome.Completed, second.Training.Outcome);

        var wrongFamily = Assert.Throws<InvalidOperationException>(() => ImageTrainingRun.Run(
            new ImageRunRequest("vae", Path.Combine(root, "run3"), options, FromCheckpoint: first.CheckpointDirectory), train, holdout));
        Assert.Contains("has no encoder.bin", wrongFamily.Message, StringComparison.Ordinal);
        var badFreeze = Assert.Throws<ArgumentException>(() => ImageTrainingRun.Run(
            new ImageRunRequest("dcgan", Path.Combine(root, "run4"), options with { Freeze = ["nonexistent"] }, Conditional: true, FromCheckpoint: first.CheckpointDirectory), train, holdout));
        Assert.Contains("cannot freeze 'nonexistent'", badFreeze.Message, StringComparison.Ordinal);
        Assert.True(CheckpointStore.Verify(first.LastCheckpoint.Directory, out _, out _)); // failed starts touched nothing
    }
}

/// <summary>The tuner over real short trainings: trials recorded, the best one chosen.</summary>
public sealed class TuningTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), $"rd-tune-{Guid.NewGuid():N}");

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void GridOverLearningRate_RecordsEveryTrial_AndPicksTheLowestHoldoutLoss()
    {
        var images = FashionMnist.Read("t10k", take: 768);
        var train = new ImageDataset(images.Take(512).Select(i => i.Pixels).ToList(), images.Take(512).Select(i => i.Label).ToList(), 28);
        var holdout = new ImageDataset(images.Skip(512).Select(i => i.Pixels).ToList(), images.Skip(512).Select(i => i.Label).ToList(), 28);
        var space = new[] { Core.Tuning.Dimension.Of("lr", 1e-6, 3e-3), Core.Tuning.Dimension.Of("batch_size", 64) };
        var result = ImageTuning.Run("classifier", root, new TrainingOptions { Steps = 40, Beta1 = 0.9 }, false, train, holdout, space, Core.Tuning.SearchMethod.Grid, 10, TimeSpan.FromMinutes(5));

        Assert.Equal(2, result.Trials.Count);
        Assert.Equal(3e-3, result.Best!.Parameters["lr"]); // 1e-6 barely moves in 40 steps
        Assert.Equal(2, File.ReadAllLines(Path.Combine(root, "trials.jsonl")).Length);
        Assert.True(Directory.Exists(Path.Combine(root, "trial-002", "checkpoints")));
    }
}
