using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Training.Checkpoints;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Trainers;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetrainDaemon.ModelTests;

/// <summary>reliability.md §4: atomic checkpoints (C1, C4, C6) and exact resume (C3).</summary>
public sealed class CheckpointTests(ITestOutputHelper output) : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), $"rd-ckpt-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static Dictionary<string, Action<Stream>> Parts(int seed, int bytes = 4096)
    {
        var payload = new byte[bytes];
        new Random(seed).NextBytes(payload);
        return new() { ["weights.bin"] = s => s.Write(payload), ["state.json"] = s => s.Write("{\"seed\":"u8.ToArray().Concat(System.Text.Encoding.ASCII.GetBytes(seed + "}")).ToArray()) };
    }

    [Fact]
    public void Retention_KeepsTheLastK()
    {
        var store = new CheckpointStore(root, keep: 3);
        for (int step = 1; step <= 20; step++)
        {
            store.Save(step * 100, Parts(step));
        }

        var left = Directory.GetDirectories(root).Select(Path.GetFileName).Order().ToList();
        Assert.Equal(["0000001800", "0000001900", "0000002000"], left);
        Assert.Equal(2000, store.LoadLatest()!.Step);
    }

    [Theory]
    [InlineData("flip")]
    [InlineData("truncate")]
    [InlineData("no-manifest")]
    [InlineData("garbled-manifest")]
    public void CorruptLatest_IsRejected_AndThePreviousOneLoads(string damage)
    {
        var store = new CheckpointStore(root, keep: 3);
        store.Save(1, Parts(1));
        var latest = store.Save(2, Parts(2));
        string weights = Path.Combine(latest.Directory, "weights.bin");
        switch (damage)
        {
            case "flip":
                var bytes = File.ReadAllBytes(weights);
                bytes[1234] ^= 0x40;
                File.WriteAllBytes(weights, bytes);
                break;
            case "truncate":
                using (var f = new FileStream(weights, FileMode.Open))
                {
                    f.SetLength(100);
                }

                break;
            case "no-manifest":
                File.Delete(Path.Combine(latest.Directory, CheckpointStore.ManifestName));
                break;
            default:
                File.WriteAllText(Path.Combine(latest.Directory, CheckpointStore.ManifestName), "{ not json");
                break;
        }

        var rejected = new List<string>();
        var loaded = store.LoadLatest(rejected);
        Assert.Equal(1, loaded!.Step);
        Assert.Single(rejected);
        output.WriteLine(rejected[0]);
    }

    [Fact]
    public void CrashDuringSave_AtAnyByte_LeavesThePreviousCheckpointLoadable()
    {
        // C1, in-process: the writer throws after k bytes (k random), as a crash mid-write would stop it.
        var store = new CheckpointStore(root, keep: 2);
        store.Save(0, Parts(0));
        var random = new Random(42);
        int failures = 0;
        for (int trial = 1; trial <= 200; trial++)
        {
            int failAt = random.Next(0, 9000);
            int written = 0;
            var parts = Parts(trial).ToDictionary(p => p.Key, p => (Action<Stream>)(s =>
            {
                var buffer = new MemoryStream();
                p.Value(buffer);
                foreach (var b in buffer.ToArray())
                {
                    if (written++ == failAt)
                    {
                        throw new IOException("injected crash");
                    }

                    s.WriteByte(b);
                }
            }));
            try
            {
                store.Save(trial, parts);
            }
            catch (IOException)
            {
                failures++;
            }

            var latest = store.LoadLatest();
            Assert.NotNull(latest);
            Assert.True(CheckpointStore.Verify(latest.Directory, out _, out _));
        }

        Assert.Equal(0, store.RemoveOrphans()); // failed saves cleaned up after themselves
        output.WriteLine($"200 trials, {failures} saves interrupted, every load verified");
        Assert.InRange(failures, 50, 200);
    }

    [Fact]
    public void OrphanTempDirectories_AreRemoved_AndNeverLoaded()
    {
        var store = new CheckpointStore(root);
        store.Save(5, Parts(5));
        Directory.CreateDirectory(Path.Combine(root, ".tmp-9-abc"));
        File.WriteAllText(Path.Combine(root, ".tmp-9-abc", "weights.bin"), "half");
        Assert.Equal(5, store.LoadLatest()!.Step);
        Assert.Equal(1, store.RemoveOrphans());
    }

    [Fact]
    public void Resume_IsExact_ModelOptimizerAndRngState()
    {
        // C3: 40 steps straight vs 20 + checkpoint + fresh objects + restore + 20. Dropout makes the RNG matter.
        var images = FashionMnist.Read("t10k", take: 32);
        var (x, y) = ImageTensors.FashionMnistBatch(images, symmetric: false);
        var config = new ClassifierConfig(Width: 8, Features: 32, Dropout: 0.3);

        manual_seed(11);
        var (straight, _) = Run(config, x, y, steps: 40, resumeAt: null);
        manual_seed(11);
        var (resumed, lossAfterResume) = Run(config, x, y, steps: 40, resumeAt: 20);

        double maxDiff = 0;
        foreach (var ((name, a), (_, b)) in straight.named_parameters().Zip(resumed.named_parameters()))
        {
            maxDiff = Math.Max(maxDiff, (a - b).abs().max().item<float>());
        }

        output.WriteLine($"max |Δw| after 40 steps straight vs 20 + resume + 20: {maxDiff}; loss after resume {lossAfterResume:0.0000}");
        Assert.Equal(0.0, maxDiff);
    }

    private (FashionClassifier Model, double Loss) Run(ClassifierConfig config, Tensor x, Tensor y, int steps, int? resumeAt)
    {
        var model = new FashionClassifier(config);
        Initialization.Apply(model, InitScheme.He);
        var optimizer = optim.Adam(model.parameters(), lr: 1e-3);
        double loss = 0;
        for (int step = 0; step < steps; step++)
        {
            if (resumeAt == step)
            {
                var store = new CheckpointStore(root);
                TrainingCheckpoint.Save(store, model, optimizer, step, dataCursor: 0, epoch: 0, learningRate: 1e-3);
                // Throw everything away and come back from disk; scramble the RNG to prove it is restored.
                model = new FashionClassifier(config);
                optimizer = optim.Adam(model.parameters(), lr: 1e-3);
                manual_seed(999);
                var state = TrainingCheckpoint.Restore(store.LoadLatest()!, model, optimizer);
                Assert.Equal(step, state.Step);
            }

            model.train();
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var value = functional.cross_entropy(model.forward(x), y);
            value.backward();
            OptimizerStep.Run(optimizer);
            loss = value.item<float>();
        }

        return (model, loss);
    }

    [Fact]
    public void WrongArchitecture_FailsWithTheExpectedShapes_AndLeavesTheCheckpointIntact()
    {
        var store = new CheckpointStore(root);
        var small = new FashionClassifier(new ClassifierConfig(Width: 8));
        var checkpoint = TrainingCheckpoint.Save(store, small, optim.Adam(small.parameters()), 1, 0, 0, 1e-3);
        var big = new FashionClassifier(new ClassifierConfig(Width: 16));
        var ex = Assert.Throws<InvalidOperationException>(() => TrainingCheckpoint.Restore(checkpoint, big, null));
        Assert.Contains("conv1.weight [16x1x3x3]", ex.Message, StringComparison.Ordinal);
        Assert.True(CheckpointStore.Verify(checkpoint.Directory, out _, out _));
    }
}
