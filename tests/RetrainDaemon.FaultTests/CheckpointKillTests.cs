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
