using System.Globalization;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.UnitTests.Registry;

// Usage: RetrainDaemon.RegistryWorker --root <repo> --scratch <dir> [--model m] [--count n (0 = until killed)]
//        [--payload-bytes b] [--keep k] [--seed s] [--mode mixed|champion] [--go <file>] [--pause-ms p]
// Prints "ready" once its source files exist, then one line per registry change:
// "published <version> <passed|rejected>", "promoted <version>", "rolled-back <version>".
var options = new Dictionary<string, string>(StringComparer.Ordinal);
for (int i = 0; i + 1 < args.Length; i += 2)
{
    options[args[i].TrimStart('-')] = args[i + 1];
}

string Get(string key, string fallback) => options.TryGetValue(key, out var value) ? value : fallback;
int GetInt(string key, int fallback) => int.Parse(Get(key, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);

string root = Get("root", "");
string model = Get("model", "fashion-mnist");
int count = GetInt("count", 0);
int payload = GetInt("payload-bytes", 3 << 20);
int seed = GetInt("seed", Environment.ProcessId);
string mode = Get("mode", "mixed");
var registry = new ModelRegistry(root, GetInt("keep", 3));
var random = new Random(seed);

// Source files, as an export would leave them: a single-file model, a small model with its weights
// as external data, and a rejected candidate.
string sources = Path.Combine(Get("scratch", Path.GetTempPath()), $"worker-{Environment.ProcessId}");
Directory.CreateDirectory(sources);
string Write(string name, byte[] bytes)
{
    string path = Path.Combine(sources, name);
    File.WriteAllBytes(path, bytes);
    return path;
}

var single = new Dictionary<string, string> { ["model.onnx"] = Write("single.onnx", TestOnnx.Model(payloadBytes: payload, seed: seed)) };
var weights = new byte[payload];
random.NextBytes(weights);
var external = new Dictionary<string, string>
{
    ["model.onnx"] = Write("external.onnx", TestOnnx.Model(externalLocation: "weights.bin", seed: seed)),
    ["weights.bin"] = Write("weights.bin", weights),
};
var rejected = new Dictionary<string, string> { ["model.onnx"] = Write("rejected.onnx", TestOnnx.Model(payloadBytes: payload / 2, seed: seed + 1)) };
Console.WriteLine("ready");
// --go <file>: start only once the file exists, so that several workers start publishing at the same instant.
if (options.TryGetValue("go", out var go))
{
    while (!File.Exists(go))
    {
        Thread.Sleep(1);
    }
}

var passedVersions = new List<int>();
int pauseMs = GetInt("pause-ms", 0);
for (int i = 0; count == 0 || i < count; i++)
{
    if (pauseMs > 0)
    {
        // A pipeline does other work between publishes; without a gap one process re-takes the lock at once.
        Thread.Sleep(random.Next(pauseMs + 1));
    }

    double roll = mode == "champion" ? 0 : random.NextDouble();
    try
    {
        if (roll < 0.55 || roll >= 0.65 && roll < 0.75)
        {
            var alias = roll < 0.55 ? PublishAlias.Champion : (i % 2 == 0 ? PublishAlias.None : PublishAlias.Challenger);
            var result = registry.Publish(new PublishRequest
            {
                Model = model,
                Status = VersionStatus.Passed,
                Files = i % 2 == 0 ? single : external,
                RunId = $"worker-{Environment.ProcessId}-{i}",
                MaxBatchSize = 8,
                Alias = alias,
                Reason = $"worker {Environment.ProcessId} iteration {i}",
            });
            passedVersions.Add(result.Version);
            Console.WriteLine($"published {result.Version} passed");
        }
        else if (roll < 0.65)
        {
            var result = registry.Publish(new PublishRequest
            {
                Model = model,
                Status = VersionStatus.Rejected,
                Files = rejected,
                RunId = $"worker-{Environment.ProcessId}-{i}",
                GateReport = System.Text.Json.Nodes.JsonNode.Parse("""{"passed":false,"reason":"fid above threshold"}"""),
            });
            Console.WriteLine($"published {result.Version} rejected");
        }
        else if (roll < 0.88)
        {
            var aliases = registry.Rollback(model, $"worker {Environment.ProcessId}: drill {i}");
            Console.WriteLine($"rolled-back {aliases.Champion}");
        }
        else if (passedVersions.Count > 0)
        {
            int version = passedVersions[random.Next(passedVersions.Count)];
            registry.Promote(model, version, $"worker {Environment.ProcessId}: re-promote {version}");
            Console.WriteLine($"promoted {version}");
        }
    }
    catch (RegistryException ex)
    {
        // Expected refusals (nothing to roll back to, a version retention deleted, already champion).
        Console.WriteLine($"refused: {ex.Message}");
    }
}

Directory.Delete(sources, recursive: true);
return 0;
