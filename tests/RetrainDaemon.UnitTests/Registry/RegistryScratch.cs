using System.Text.Json.Nodes;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.Registry;

namespace RetrainDaemon.UnitTests.Registry;

/// <summary>A registry in a fresh temp folder, plus source files to publish from; deleted on dispose.</summary>
internal sealed class RegistryScratch : IDisposable
{
    public const string Model = "fashion-mnist";

    public RegistryScratch(int keepLast = 5)
    {
        Directory = Path.Combine(Path.GetTempPath(), $"rd-registry-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(Directory);
        Sources = Path.Combine(Directory, "sources");
        System.IO.Directory.CreateDirectory(Sources);
        Registry = new ModelRegistry(Path.Combine(Directory, "repo"), keepLast);
    }

    public string Directory { get; }

    public string Sources { get; }

    public ModelRegistry Registry { get; }

    public string ModelFolder => Path.Combine(Registry.Root, Model);

    public string VersionFolder(int version) => Path.Combine(ModelFolder, version.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Writes source files (name → bytes) into a new folder and returns name → path.</summary>
    public Dictionary<string, string> Files(params (string Name, byte[] Bytes)[] files)
    {
        string folder = Path.Combine(Sources, Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(folder);
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, bytes) in files)
        {
            string path = Path.Combine(folder, name);
            File.WriteAllBytes(path, bytes);
            map[name] = path;
        }

        return map;
    }

    public PublishRequest Passed(PublishAlias alias = PublishAlias.None, byte[]? model = null, string? reason = null, int seed = 1) => new()
    {
        Model = Model,
        Status = VersionStatus.Passed,
        Files = Files(("model.onnx", model ?? TestOnnx.Model(payloadBytes: 1024, seed: seed))),
        RunId = $"run-{seed}",
        DataWatermark = 1234,
        Hyperparameters = new Dictionary<string, string> { ["lr"] = "0.0002", ["batch"] = "64" },
        Metrics = [new MetricValue("fid", null, 12.5, "extractor:abc|layer:pool|n:1000")],
        GateReport = JsonNode.Parse("""{"passed":true,"checks":[{"metric":"fid","verdict":"pass"}]}"""),
        Parity = new ExportParity(3e-6, 1e-5, 100),
        MaxBatchSize = 8,
        Alias = alias,
        Reason = reason,
    };

    public PublishRequest Rejected(int seed = 1) => new()
    {
        Model = Model,
        Status = VersionStatus.Rejected,
        Files = Files(("model.onnx", TestOnnx.Model(payloadBytes: 256, seed: seed))),
        RunId = $"run-rejected-{seed}",
        GateReport = JsonNode.Parse("""{"passed":false,"checks":[{"metric":"fid","verdict":"fail","value":80.1,"threshold":40}]}"""),
    };

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
