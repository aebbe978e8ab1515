using RetrainDaemon.Core.Registry;
using RetrainDaemon.Tests.Shared;

namespace RetrainDaemon.IntegrationTests;

/// <summary>The evaluation, gate, registry and extractor verbs of the real binary: refusals, exit codes, start-up validation.</summary>
public sealed class EvaluationCommandTests : IDisposable
{
    private readonly string directory = TestPaths.NewTempDirectory("rd-evalcli");

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static string PinnedExtractor => Path.Combine(Path.GetDirectoryName(TestPaths.DaemonDll)!, "extractor", "fashion-classifier.onnx");

    private static async Task<(int Exit, string Output)> Run(string verb, IDictionary<string, string>? settings = null)
    {
        await using var process = DaemonProcess.StartRaw(verb, settings ?? new Dictionary<string, string>(), 0);
        int exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));
        return (exit, process.Output);
    }

    [Fact]
    public async Task A_bad_gate_evaluation_or_registry_configuration_fails_startup_naming_each_key()
    {
        var (exit, text) = await Run("run", new Dictionary<string, string>
        {
            ["Models:fashion-mnist:Gate:Checks:0:Metric"] = "fdi",
            ["Models:fashion-mnist:Gate:Checks:1:Metric"] = "fid",
            ["Models:fashion-mnist:Gate:Checks:1:Min"] = "10",
            ["Evaluation:SampleCount"] = "1",
            ["Evaluation:Text:Decoding"] = "nucleus",
            ["Registry:KeepLast"] = "0",
        });

        Assert.Equal(2, exit);
        Assert.Contains("Models:fashion-mnist:Gate:Checks:0:Metric = 'fdi'", text, StringComparison.Ordinal);
        Assert.Contains("Models:fashion-mnist:Gate:Checks:1:Min = '10'", text, StringComparison.Ordinal);
        Assert.Contains("lower-is-better", text, StringComparison.Ordinal);
        Assert.Contains("Evaluation:SampleCount = '1'", text, StringComparison.Ordinal);
        Assert.Contains("Evaluation:Text:Decoding = 'nucleus'", text, StringComparison.Ordinal);
        Assert.Contains("Registry:KeepLast = '0'", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_hand_edited_registry_version_is_listed_as_unverified_and_refused_by_eval()
    {
        string root = Path.Combine(directory, "registry");
        var registry = new ModelRegistry(root);
        var published = registry.Publish(new PublishRequest
        {
            Model = "fashion-mnist",
            Status = VersionStatus.Passed,
            Files = new Dictionary<string, string> { ["model.onnx"] = PinnedExtractor },
            Alias = PublishAlias.Champion,
            Reason = "test",
        });
        var (listExit, listed) = await Run($"models list --model fashion-mnist --registry {root}");
        Assert.Equal(0, listExit);
        Assert.Contains("champion v1", listed, StringComparison.Ordinal);

        string file = Path.Combine(published.Directory, "model.onnx");
        var bytes = File.ReadAllBytes(file);
        bytes[^10] ^= 0x5A;
        File.WriteAllBytes(file, bytes);

        (listExit, listed) = await Run($"models list --model fashion-mnist --registry {root}");
        Assert.Contains("does not match its sha256", listed, StringComparison.Ordinal);
        var (evalExit, evaluated) = await Run($"eval --model fashion-mnist --version 1 --registry {root}");
        Assert.Equal(1, evalExit);
        Assert.Contains("fashion-mnist v1 is refused", evaluated, StringComparison.Ordinal);
        var (rollbackExit, rollback) = await Run($"models rollback --model fashion-mnist --reason test --registry {root}");
        Assert.Equal(1, rollbackExit);
        Assert.Contains("no previous version", rollback, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Gate_and_eval_refuse_missing_inputs_clearly()
    {
        string missing = Path.Combine(directory, "missing.onnx");
        var (exit, text) = await Run($"gate --model fashion-mnist --onnx {missing} --reference fashion-mnist", new Dictionary<string, string> { ["Registry:Root"] = Path.Combine(directory, "r") });
        Assert.Equal(1, exit);
        Assert.Contains($"'{missing}' does not exist", text, StringComparison.Ordinal);

        // A text model configured without gate checks (the shipped fortunes and en-de have some).
        (exit, text) = await Run("gate --model poems --onnx x.onnx", new Dictionary<string, string> { ["Models:poems:Modality"] = "text" });
        Assert.Equal(2, exit);
        Assert.Contains("Models:poems:Gate has no checks", text, StringComparison.Ordinal);

        (exit, text) = await Run("eval --model fashion-mnist");
        Assert.NotEqual(0, exit);
        Assert.Contains("exactly one of --version and --onnx", text, StringComparison.Ordinal);

        // The classifier is not a generator: refused by name, not scored.
        (exit, text) = await Run($"eval --model fashion-mnist --onnx {PinnedExtractor} --reference fashion-mnist --samples 20", new Dictionary<string, string> { ["Evaluation:StatisticsCache"] = Path.Combine(directory, "stats") });
        Assert.Equal(1, exit);
        Assert.Contains("'latent' input", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Extractor_verify_and_help_of_the_new_verbs()
    {
        var (exit, text) = await Run("extractor verify");
        Assert.Equal(0, exit);
        Assert.Contains("verified", text, StringComparison.Ordinal);

        foreach (var verb in new[] { "eval --help", "gate --help", "models --help", "models list --help", "models promote --help", "models rollback --help", "extractor build --help" })
        {
            (exit, text) = await Run(verb);
            Assert.Equal(0, exit);
            Assert.Contains("Usage:", text, StringComparison.Ordinal);
        }
    }
}
