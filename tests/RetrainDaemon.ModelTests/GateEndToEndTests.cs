using RetrainDaemon.Core.Imaging;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.Gate;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Evaluation.Extractors;
using RetrainDaemon.Evaluation.Features;
using RetrainDaemon.Evaluation.Gating;
using RetrainDaemon.Evaluation.Images;
using RetrainDaemon.Export.Exporters;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Trainers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RetrainDaemon.ModelTests;

/// <summary>
/// The evaluation protocol and the gate end to end on real Fashion-MNIST: a DCGAN trained for a few
/// hundred steps and an untrained one, both exported to ONNX and scored through ONNX Runtime with
/// the pinned extractor, exactly as the fine-tune job will.
/// </summary>
public sealed class GateEndToEndTests(ITestOutputHelper output) : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("rd-gate-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static readonly GateOptions Gate = new()
    {
        Checks =
        [
            // Measured: 400 steps reach FID ~84 on this protocol, an untrained generator ~232 (noise floor ~0.5).
            new GateCheckOptions { Metric = "fid", Max = 120, MaxRegressionRelative = 0.25 },
            new GateCheckOptions { Metric = "class_coverage", Min = 0.8 },
            new GateCheckOptions { Metric = "is", Min = 2.0 },
            new GateCheckOptions { Metric = "memorized_share", Max = 0.05 },
        ],
    };

    private EvaluationOptions Options(int seed = 11) => new()
    {
        SampleCount = 1000,
        Seed = seed,
        KidSubsets = 5,
        MaxReferenceSamples = 2000,
        MaxTrainingSamples = 6000,
        StatisticsCache = Path.Combine(directory, "stats"),
    };

    [Fact]
    public void Trained_dcgan_passes_the_gate_and_an_untrained_one_fails_with_a_readable_report()
    {
        var train = FashionMnist.Read("train", take: 6000);
        var test = FashionMnist.Read("t10k", take: 2000);
        var reference = new ImageReferenceSet("fashion-mnist", test.Select(i => i.Pixels).ToList(), test.Select(i => i.Label).ToList(),
            train.Select(i => i.Pixels).ToList(), 28, 28, 1);

        string trained = Export(Train(train), "trained.onnx");
        manual_seed(5);
        var untrainedGenerator = new DcganGenerator(new DcganConfig());
        Initialization.Apply(untrainedGenerator, InitScheme.Normal002);
        string untrained = Export(untrainedGenerator, "untrained.onnx");

        using var extractor = new OnnxFeatureExtractor(new FeatureExtractorOptions());
        var registry = new ModelRegistry(Path.Combine(directory, "registry"));
        var gate = new ImageCandidateGate(Options(), extractor, registry);
        var hyperparameters = new Dictionary<string, string> { ["family"] = "dcgan" };

        // First model: no champion, so the change threshold is reported as skipped and the value thresholds decide.
        var first = gate.Evaluate("fashion-dcgan", trained, GeneratorRange.Tanh, reference, Gate);
        var candidate = first.Candidate;
        foreach (var metric in candidate.Metrics)
        {
            output.WriteLine($"trained   {metric}");
        }

        output.WriteLine(first.Report.ToText());
        Assert.True(first.Report.Passed, first.Report.ToText());
        Assert.Null(first.ChampionVersion);
        Assert.Contains(first.Report.Rows, r => r.Verdict == GateVerdict.Skipped);
        var published = gate.Publish("fashion-dcgan", new Dictionary<string, string> { ["model.onnx"] = trained }, first, hyperparameters);
        Assert.Equal(VersionStatus.Passed, published.Status);
        Assert.Equal(published.Version, registry.ResolveServable("fashion-dcgan").Version);

        // The untrained generator against the trained champion (re-scored from its registry file by the
        // same protocol): fails on value and on regression, readably, and is recorded as rejected.
        var second = gate.Evaluate("fashion-dcgan", untrained, GeneratorRange.Tanh, reference, Gate);
        foreach (var metric in second.Candidate.Metrics)
        {
            output.WriteLine($"untrained {metric}");
        }

        output.WriteLine($"evaluation took {candidate.Elapsed.TotalSeconds:0.0} s (trained), {second.Candidate.Elapsed.TotalSeconds:0.0} s (untrained)");
        string text = second.Report.ToText();
        output.WriteLine(text);
        Assert.Equal(published.Version, second.ChampionVersion);
        Assert.Equal(candidate.Metrics, second.Champion!.Metrics); // same protocol, same numbers: the comparison is reproducible
        Assert.False(second.Report.Passed);
        Assert.StartsWith("GATE FAILED", text, StringComparison.Ordinal);
        Assert.Contains("fid", text, StringComparison.Ordinal);
        Assert.Contains(second.Report.Rows, r => r.Metric == "fid" && r.Verdict == GateVerdict.Fail && r.ChampionValue is not null);
        Assert.Equal(second.Report.Passed, GateReport.FromJson(second.Report.ToJson()).Passed);
        var rejected = gate.Publish("fashion-dcgan", new Dictionary<string, string> { ["model.onnx"] = untrained }, second, hyperparameters);
        Assert.Equal(VersionStatus.Rejected, rejected.Status);
        Assert.Equal(published.Version, registry.ResolveServable("fashion-dcgan").Version);
        Assert.False(GateReport.FromJson(registry.Inspect("fashion-dcgan", rejected.Version)!.Manifest!.GateReport!.ToJsonString()).Passed);

        // A champion edited by hand is refused, and the gate fails closed instead of skipping its change checks.
        string championFile = registry.ResolveServable("fashion-dcgan").Verified!.ModelPath;
        var original = File.ReadAllBytes(championFile);
        var tampered = (byte[])original.Clone();
        tampered[^100] ^= 0xFF;
        File.WriteAllBytes(championFile, tampered);
        var closed = gate.Evaluate("fashion-dcgan", trained, GeneratorRange.Tanh, reference, Gate);
        output.WriteLine(closed.Report.ToText());
        Assert.False(closed.Report.Passed);
        Assert.Contains("not comparable with the champion", closed.Report.ToText(), StringComparison.Ordinal);
        Assert.Contains("sha256", closed.ChampionProblem, StringComparison.Ordinal);
        File.WriteAllBytes(championFile, original);

        // Scored by a different protocol (another latent seed), the same good candidate is not comparable: fail closed.
        var otherProtocol = new ImageEvaluator(Options(seed: 12), extractor).Evaluate(trained, GeneratorRange.Tanh, reference);
        Assert.NotEqual(candidate.Metrics.Single(m => m.Metric == "fid").Signature, otherProtocol.Metrics.Single(m => m.Metric == "fid").Signature);
        var mismatch = GateDecision.Evaluate(Gate, otherProtocol.Metrics, candidate.Metrics);
        output.WriteLine(mismatch.ToText());
        Assert.False(mismatch.Passed);
    }

    [Fact]
    public void Noise_floor_real_vs_real_fid_of_two_t10k_halves_is_small()
    {
        var test = FashionMnist.Read("t10k");
        using var extractor = new OnnxFeatureExtractor(new FeatureExtractorOptions());
        var first = extractor.Extract(test.Take(5000).Select(i => i.Pixels).ToList(), 28, 28, 1, "t10k[0:5000]");
        var second = extractor.Extract(test.Skip(5000).Select(i => i.Pixels).ToList(), 28, 28, 1, "t10k[5000:10000]");

        double floor = Fid.FromFeatures(first.Features, second.Features).Value;
        double self = Fid.FromFeatures(first.Features, first.Features).Value;
        output.WriteLine($"real-vs-real FID (t10k halves, 5,000 each, {extractor.Signature}): {floor:R}; self {self:R}");

        Assert.InRange(self, -1e-6, 1e-6);
        Assert.InRange(floor, 0.0, 5.0);
    }

    private DcganGenerator Train(IReadOnlyList<FashionMnistImage> images)
    {
        var data = new ImageDataset(images.Select(i => i.Pixels).ToList(), images.Select(i => i.Label).ToList(), 28);
        var options = new TrainingOptions { Steps = 400, BatchSize = 64, EvalEvery = 0, Seed = 3 };
        manual_seed(3);
        var config = new DcganConfig();
        var generator = new DcganGenerator(config);
        var discriminator = new DcganDiscriminator(config);
        Initialization.Apply(generator, InitScheme.Normal002);
        Initialization.Apply(discriminator, InitScheme.Normal002);
        var result = TrainingLoop.Run(new DcganStep(generator, discriminator, options, false), data, null, options);
        output.WriteLine($"trained DCGAN: {result.Outcome} after {result.Steps} steps");
        return generator;
    }

    private string Export(DcganGenerator generator, string name)
    {
        var export = ModelExporter.Export(generator, casesPerBatchSize: 5);
        string path = Path.Combine(directory, name);
        File.WriteAllBytes(path, export.Onnx);
        return path;
    }
}
