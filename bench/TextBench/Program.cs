using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Preprocessing;
using RetrainDaemon.Export.Exporters;
using RetrainDaemon.IntegrationTests.Serving;
using RetrainDaemon.Tests.Shared;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Runtime;
using RetrainDaemon.Training.Trainers;
using static TorchSharp.torch;

// Text-model benchmark (issue 6 "Speed"), ratios from one run on this machine:
//   1. gpt training step (batch 32 × 128 tokens, vocabulary 4096, 2 layers, width 128, AdamW, clip):
//      TorchSharp vs Debian's PyTorch 1.13 on the same config (bench/TextBench/reference_gpt.py). Target ≤ 1.0×.
//   2. 256 new tokens at batch 1 through ONNX Runtime: the KV-cache graph (prefill + one-token decode
//      steps) vs recomputing the whole sequence every step (the same graph with an empty past). Target ≥ 4×.
//   3. Served tokens/s — the real `retrain-daemon run` over loopback HTTP, greedy, 256 new tokens — vs
//      TorchSharp eager generation of the same model with its own KV cache (Gpt.Cached). Target ≥ 1×.
// Usage: dotnet run -c Release --project bench/TextBench [-- --steps 30 --rounds 5]
var arguments = args.Chunk(2).Where(p => p.Length == 2).ToDictionary(p => p[0].TrimStart('-'), p => int.Parse(p[1], CultureInfo.InvariantCulture));
int steps = arguments.GetValueOrDefault("steps", 30), rounds = arguments.GetValueOrDefault("rounds", 5), threads = 2;
const int NewTokens = 256, PromptTokens = 16;
TorchRuntime.SetThreads(threads);
manual_seed(1);
var inv = CultureInfo.InvariantCulture;
Console.WriteLine($"text benchmark: {threads} threads, {Environment.ProcessorCount} cores");

// ── 1. training step ──
var trainConfig = new GptConfig(4096, Layers: 2, Heads: 4, Width: 128, Context: 128, Dropout: 0.1);
var trainModel = new Gpt(trainConfig);
Initialization.Apply(trainModel, InitScheme.Normal002);
var step = new GptStep(trainModel, new TrainingOptions { Optimizer = OptimizerKind.AdamW, LearningRate = 1e-3, Beta1 = 0.9, Beta2 = 0.99, WeightDecay = 0.1, GradientClip = 1.0 });
step.SetTraining(true);
var tokens = randint(4, trainConfig.Vocabulary, [32, trainConfig.Context]);
var targets = randint(4, trainConfig.Vocabulary, [32, trainConfig.Context]);
double torchSharpStep = Median(steps, () => step.Step(tokens, targets));
var (torchVersion, pyTorchStep) = PyTorch();

// ── the generation model: real vocabulary, context for prompt + 256 ──
var texts = Fortunes.Read().Select(f => TextNormalizer.Normalize(f.Text)).Take(4000).ToList();
var vocabulary = TextVocabulary.Build(texts, 4096);
var config = new GptConfig(vocabulary.Count, Layers: 2, Heads: 4, Width: 128, Context: PromptTokens + NewTokens + 16, Dropout: 0);
manual_seed(2);
using var gpt = new Gpt(config);
Initialization.Apply(gpt, InitScheme.Normal002);
gpt.eval();
byte[] onnx = ModelExporter.Export(new GptExporter(gpt, GptTasks.Lm, vocabulary), gpt).Onnx;
int[] prompt = [TextVocabulary.Bos, .. vocabulary.Encode(texts[7]).Take(PromptTokens - 1)];

// ── 2. KV cache vs recompute, both ONNX Runtime ──
using var sessionOptions = new SessionOptions { IntraOpNumThreads = threads, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
using var session = new InferenceSession(onnx, sessionOptions);
var shape = new GptShape(config.Layers, config.Heads, config.Width, config.Context, config.Vocabulary);
var cachedTimes = new List<double>();
var recomputeTimes = new List<double>();
int[]? cachedTokens = null, recomputedTokens = null;
for (int round = 0; round < rounds; round++)
{
    long start = Stopwatch.GetTimestamp();
    cachedTokens = OrtGeneration.WithCache(session, shape, prompt, NewTokens);
    cachedTimes.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
    start = Stopwatch.GetTimestamp();
    recomputedTokens = OrtGeneration.Recompute(session, shape, prompt, NewTokens);
    recomputeTimes.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
}

// ── 3. served (HTTP) vs TorchSharp eager ──
var eagerTimes = new List<double>();
int[]? eagerTokens = null;
for (int round = 0; round < rounds; round++)
{
    long start = Stopwatch.GetTimestamp();
    eagerTokens = GptDecoding.Greedy(gpt, prompt, NewTokens, stopAtEos: false);
    eagerTimes.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
}

var servedTimes = new List<double>();
int servedTokens = 0;
string promptText = vocabulary.Decode(prompt);
await using (var broker = await PrivateBroker.StartAsync())
{
    string work = TestPaths.NewTempDirectory("rd-textbench");
    try
    {
        string file = Path.Combine(work, "model.onnx");
        File.WriteAllBytes(file, onnx);
        ServingDaemon.OpenRegistry(work).Publish(new PublishRequest
        {
            Model = "bench-lm", Status = VersionStatus.Passed, Files = new Dictionary<string, string> { ["model.onnx"] = file },
            Hyperparameters = new Dictionary<string, string> { ["family"] = "gpt" }, Alias = PublishAlias.Champion, MaxBatchSize = 0, Reason = "benchmark",
        });
        await using var serving = ServingDaemon.Start(broker, work, new ServingDaemonOptions { Settings = { ["Serving:Models:0"] = "bench-lm", ["Serving:MaxNewTokens"] = "400" } });
        await serving.Daemon.WaitReadyAsync();
        for (int attempt = 0; attempt < 600 && (await serving.Http.GetAsync(new Uri("/v2/models/bench-lm/ready", UriKind.Relative))).StatusCode != System.Net.HttpStatusCode.OK; attempt++)
        {
            await Task.Delay(100);
        }

        // The daemon's own stop on EOS would end a random model's text early; the benchmark needs 256 tokens,
        // so it asks greedily and counts what came back (reported below).
        var body = new Dictionary<string, object> { ["prompt"] = promptText, ["max_new_tokens"] = NewTokens, ["temperature"] = 0 };
        for (int round = 0; round < rounds + 1; round++)
        {
            long start = Stopwatch.GetTimestamp();
            using var response = await serving.Http.PostAsJsonAsync(new Uri("/v1/models/bench-lm/generate", UriKind.Relative), body);
            string json = await response.Content.ReadAsStringAsync();
            double elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
            if (!response.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"generate failed: {(int)response.StatusCode} {json}");
            }

            servedTokens = JsonDocument.Parse(json).RootElement.GetProperty("completion_tokens").GetInt32();
            if (round > 0)
            {
                servedTimes.Add(elapsed); // round 0 warms the connection and the engine
            }
        }
    }
    finally
    {
        Directory.Delete(work, recursive: true);
    }
}

// ── report ──
Console.WriteLine();
Console.WriteLine($"1. gpt training step, batch 32 x {trainConfig.Context} tokens, vocabulary {trainConfig.Vocabulary}, {trainConfig.Layers} layers, width {trainConfig.Width} (median of {steps})");
Console.WriteLine(string.Format(inv, "   TorchSharp {0:0.0} ms   PyTorch {1} {2:0.0} ms   ratio {3:0.00}   target <= 1.00", torchSharpStep, torchVersion, pyTorchStep, torchSharpStep / pyTorchStep));
double cached = MedianOf(cachedTimes), recompute = MedianOf(recomputeTimes);
Console.WriteLine($"2. {NewTokens} new tokens at batch 1 through ONNX Runtime (prompt {prompt.Length}, context {config.Context}, median of {rounds})");
Console.WriteLine(string.Format(inv, "   KV cache {0:0.0} tokens/s ({1:0.000} s)   recompute {2:0.0} tokens/s ({3:0.000} s)   ratio {4:0.00}   target >= 4.00   same tokens: {5}",
    NewTokens / cached, cached, NewTokens / recompute, recompute, recompute / cached, cachedTokens!.SequenceEqual(recomputedTokens!)));
double eager = MedianOf(eagerTimes), served = MedianOf(servedTimes);
Console.WriteLine($"3. served (HTTP, greedy) vs TorchSharp eager with KV cache, batch 1 (median of {rounds})");
Console.WriteLine(string.Format(inv, "   served {0:0.0} tokens/s ({1} tokens in {2:0.000} s)   TorchSharp {3:0.0} tokens/s ({4} tokens in {5:0.000} s)   ratio {6:0.00}   target >= 1.00",
    servedTokens / served, servedTokens, served, eagerTokens!.Length / eager, eagerTokens.Length, eager, servedTokens / served / (eagerTokens.Length / eager)));
return 0;

double Median(int count, Func<IReadOnlyDictionary<string, double>> action)
{
    var times = new List<double>();
    for (int i = 0; i < count + 5; i++)
    {
        using var scope = NewDisposeScope();
        long start = Stopwatch.GetTimestamp();
        action();
        if (i >= 5)
        {
            times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
    }

    return MedianOf(times);
}

static double MedianOf(List<double> values)
{
    var sorted = values.Order().ToList();
    return sorted[sorted.Count / 2];
}

(string Version, double StepMs) PyTorch()
{
    var info = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
    info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "reference_gpt.py"));
    foreach (var a in new[] { "--threads", threads.ToString(inv), "--steps", steps.ToString(inv), "--batch", "32", "--vocab", "4096", "--layers", "2", "--heads", "4", "--width", "128", "--context", "128" })
    {
        info.ArgumentList.Add(a);
    }

    using var process = Process.Start(info)!;
    string stdout = process.StandardOutput.ReadToEnd(), stderr = process.StandardError.ReadToEnd();
    process.WaitForExit();
    if (process.ExitCode != 0)
    {
        throw new InvalidOperationException($"the PyTorch reference failed (apt-get install python3-torch libopenblas0-pthread): {stderr}");
    }

    using var json = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
    return (json.RootElement.GetProperty("torch").GetString()!, json.RootElement.GetProperty("gpt_step_ms").GetDouble());
}
