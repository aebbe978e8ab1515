using System.Diagnostics;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Export.Exporters;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Trainers;
using Xunit.Abstractions;
using static TorchSharp.torch;


namespace RetrainDaemon.ModelTests;

/// <summary>Hand-written ONNX graphs against TorchSharp, through the real ONNX Runtime and Debian's ONNX checker.</summary>
public sealed class ExportTests(ITestOutputHelper output) : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("rd-export-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    /// <summary>A generator after a few real training steps, so batch-norm running statistics are not the defaults.</summary>
    private static DcganGenerator TrainedGenerator(int classes)
    {
        manual_seed(21);
        var config = new DcganConfig(Classes: classes);
        var generator = new DcganGenerator(config);
        var discriminator = new DcganDiscriminator(config);
        Initialization.Apply(generator, InitScheme.Normal002);
        Initialization.Apply(discriminator, InitScheme.Normal002);
        var images = FashionMnist.Read("t10k", take: 256);
        var data = new ImageDataset(images.Select(i => i.Pixels).ToList(), images.Select(i => i.Label).ToList(), 28);
        var options = new TrainingOptions { Steps = 20, BatchSize = 32, EvalEvery = 0 };
        TrainingLoop.Run(new DcganStep(generator, discriminator, options, classes > 0), data, null, options);
        return generator;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(10)]
    public void DcganGenerator_ParityWithinTolerance_AtBatch1And64_OnHundredInputs(int classes)
    {
        var generator = TrainedGenerator(classes);
        var watch = Stopwatch.StartNew();
        var result = ModelExporter.Export(generator);
        output.WriteLine($"classes {classes}: {result.Onnx.Length} bytes, {result.Parity.Cases} cases at batch {string.Join("/", result.Parity.BatchSizes)}, " +
            $"max |diff| {result.Parity.MaxAbsDiff:E2}, mean {result.Parity.MeanAbsDiff:E2} ({watch.Elapsed.TotalSeconds:0.0} s)");
        Assert.Equal(100, result.Parity.Cases);
        Assert.True(result.Parity.MaxAbsDiff <= ModelExporter.Tolerance);

        string path = Path.Combine(directory, $"generator-{classes}.onnx");
        File.WriteAllBytes(path, result.Onnx);
        var (exit, text) = OnnxChecker(path);
        Assert.True(exit == 0, $"Debian's onnx checker refused {path}: {text}");
    }

    [Fact]
    public void ExportOfOtherWeights_FailsTheParityCheck()
    {
        var generator = TrainedGenerator(0);
        var onnx = ModelExporter.Export(generator).Onnx;
        var other = new DcganGenerator(generator.Config);
        var ex = Assert.Throws<ParityException>(() => ModelExporter.Verify(onnx, new DcganGeneratorExporter(other), other, cases: 2));
        Assert.Contains("export parity failed", ex.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string> Families() => ["vae-decoder", "vae-decoder-conditional", "vae-encoder", "vae-encoder-conditional", "classifier"];

    [Theory]
    [MemberData(nameof(Families))]
    public void OtherExporters_ParityWithinTolerance_AndCheckerAccepts(string family)
    {
        manual_seed(31);
        bool conditional = family.EndsWith("conditional", StringComparison.Ordinal);
        var vae = new VaeConfig(Classes: conditional ? 10 : 0);
        nn.Module module = family switch
        {
            "classifier" => new FashionClassifier(new ClassifierConfig()),
            _ when family.StartsWith("vae-decoder", StringComparison.Ordinal) => new VaeDecoder(vae),
            _ => new VaeEncoder(vae),
        };
        Initialization.Apply(module, InitScheme.He);
        var result = ModelExporter.Export(module, casesPerBatchSize: 50);
        output.WriteLine($"{family}: max |diff| {result.Parity.MaxAbsDiff:E2}, mean {result.Parity.MeanAbsDiff:E2} over {result.Parity.Cases} cases at batch 1 and 64");
        Assert.Equal(100, result.Parity.Cases);
        string path = Path.Combine(directory, family + ".onnx");
        File.WriteAllBytes(path, result.Onnx);
        var (exit, text) = OnnxChecker(path);
        Assert.True(exit == 0, $"Debian's onnx checker refused {family}: {text}");
    }

    [Fact]
    public void UnsupportedModule_IsRefused_ByName()
    {
        var ex = Assert.Throws<NotSupportedException>(() => ModelExporter.Export(new DcganDiscriminator(new DcganConfig())));
        Assert.Contains("DcganDiscriminator", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>onnx.checker from Debian's python3-onnx (installed by deploy/local/setup.sh and .ci/run), full check with shape inference.</summary>
    private static (int Exit, string Output) OnnxChecker(string path)
    {
        var info = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print('ok')");
        info.ArgumentList.Add(path);
        using var process = Process.Start(info) ?? throw new InvalidOperationException("cannot start /usr/bin/python3");
        string text = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (text.Contains("No module named 'onnx'", StringComparison.Ordinal))
        {
            throw new InvalidOperationException("Debian's python3-onnx is not installed (apt-get install python3-onnx); the export check needs it");
        }

        return (process.ExitCode, text);
    }
}
