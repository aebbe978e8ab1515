using System.Diagnostics;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.FaultTests;

/// <summary>
/// reliability.md C1 with real crashes: `retrain-daemon train` checkpointing every step is SIGKILLed
/// at random moments 50 times; after every kill the newest loadable checkpoint verifies, and each
/// restart resumes from it (removing what the crash left half-written).
/// </summary>
public sealed class CheckpointKillTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string directory = TestPaths.NewTempDirectory("rd-ckill");

    private string StorePath => Path.Combine(directory, "retrain.db");

    public async Task InitializeAsync()
    {
        await using var store = new SqliteSampleStore(new StoreOptions { Path = StorePath });
        var images = FashionMnist.Read("t10k", take: 256);
        await store.CommitAsync(images.Select(i => IngestItem.Of(new SampleRecord($"fm/{i.Index}", "fashion-mnist", "/t", null, Modality.Image,
            Splits.Train, i.Label.ToString(System.Globalization.CultureInfo.InvariantCulture), 28, 28, 1, i.Pixels, null, null))).ToList(), CancellationToken.None);
    }

    public Task DisposeAsync()
    {
        Directory.Delete(directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task SigkillDuringCheckpointing_FiftyTimes_TheLatestLoadableCheckpointAlwaysVerifies()
    {
        string run = Path.Combine(directory, "run");
        string checkpoints = Path.Combine(run, "checkpoints");
        var random = new Random(Environment.TickCount);
        long lastStep = 0;
        int orphansSeen = 0;
        var watch = Stopwatch.StartNew();
        const int kills = 50;
        for (int k = 0; k < kills; k++)
        {
            var settings = new Dictionary<string, string> { ["Store:Path"] = StorePath };
            await using var train = DaemonProcess.StartRaw(
                $"train --family dcgan --steps 1000000 --batch-size 16 --checkpoint-every 1 --keep 2 --threads 1 --out {run}", settings, 0);
            // Kill once this run has had time to load libtorch and save a few checkpoints, at a random instant.
            await Task.Delay(random.Next(1200, 2600));
            Assert.False(train.HasExited, train.Output);
            await train.KillAsync();
            orphansSeen += Directory.Exists(checkpoints) ? Directory.GetDirectories(checkpoints, ".tmp-*").Length : 0;
            var store = new RetrainDaemon.Training.Checkpoints.CheckpointStore(checkpoints, keep: 2);
            var latest = store.LoadLatest();
            Assert.NotNull(latest);
            Assert.True(RetrainDaemon.Training.Checkpoints.CheckpointStore.Verify(latest.Directory, out _, out var problem), problem);
            Assert.True(latest.Step >= lastStep, $"kill {k}: latest step went back from {lastStep} to {latest.Step}");
            lastStep = latest.Step;
        }

        output.WriteLine($"{kills} SIGKILLs in {watch.Elapsed.TotalSeconds:0} s; every latest checkpoint verified; reached step {lastStep}; " +
            $"half-written temp directories found after kills: {orphansSeen} (removed at the next start)");
        Assert.True(lastStep > kills, "each restart should resume and make progress");
    }
}

/// <summary>reliability.md C3 across processes: 40 steps in one process vs 20, exit, and a new process resuming to 40.</summary>
public sealed class ResumeAcrossProcessesTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string directory = TestPaths.NewTempDirectory("rd-resume");

    private string StorePath => Path.Combine(directory, "retrain.db");

    public async Task InitializeAsync()
    {
        await using var store = new SqliteSampleStore(new StoreOptions { Path = StorePath });
        var images = FashionMnist.Read("t10k", take: 512);
        await store.CommitAsync(images.Select(i => IngestItem.Of(new SampleRecord($"fm/{i.Index}", "fashion-mnist", "/t", null, Modality.Image,
            i.Index % 8 == 0 ? Splits.Holdout : Splits.Train, i.Label.ToString(System.Globalization.CultureInfo.InvariantCulture), 28, 28, 1, i.Pixels, null, null))).ToList(), CancellationToken.None);
    }

    public Task DisposeAsync()
    {
        Directory.Delete(directory, recursive: true);
        return Task.CompletedTask;
    }

    private async Task TrainAsync(string run, int steps)
    {
        await using var train = DaemonProcess.StartRaw(
            $"train --family dcgan --conditional --steps {steps} --batch-size 32 --checkpoint-every 20 --keep 5 --threads 1 --out {run}",
            new Dictionary<string, string> { ["Store:Path"] = StorePath }, 0);
        Assert.True(await train.WaitForExitAsync(TimeSpan.FromMinutes(3)) == 0, train.Output);
    }

    [Fact]
    public async Task FortySteps_Equal_TwentyThenANewProcessResumingToForty_BitForBit()
    {
        string straight = Path.Combine(directory, "straight"), resumed = Path.Combine(directory, "resumed");
        await TrainAsync(straight, 40);
        await TrainAsync(resumed, 20);
        await TrainAsync(resumed, 40); // a new process: finds the step-20 checkpoint and resumes

        var a = new RetrainDaemon.Training.Checkpoints.CheckpointStore(Path.Combine(straight, "checkpoints")).LoadLatest()!;
        var b = new RetrainDaemon.Training.Checkpoints.CheckpointStore(Path.Combine(resumed, "checkpoints")).LoadLatest()!;
        Assert.Equal(40, a.Step);
        Assert.Equal(40, b.Step);
        foreach (var part in new[] { "generator.bin", "discriminator.bin", "generator.optimizer.bin", "discriminator.optimizer.bin" })
        {
            string ha = a.Manifest.Files.Single(f => f.Name == part).Sha256, hb = b.Manifest.Files.Single(f => f.Name == part).Sha256;
            output.WriteLine($"{part}: straight {ha[..16]}…, resumed {hb[..16]}…");
            Assert.Equal(ha, hb);
        }
    }
}
