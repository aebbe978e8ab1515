using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Options;
using RetrainDaemon.IntegrationTests.Serving;
using RetrainDaemon.Serving.Runtime;
using RetrainDaemon.Tests.Shared;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Runtime;
using static TorchSharp.torch;

// Serving benchmark (issue 5 "Speed"), ratios from one run on this machine:
//   1. The exported DCGAN generator (1x28x28, latent 64) at batch 1 and 64: TorchSharp eager (eval,
//      no_grad) vs raw InferenceSession.Run with the serving SessionFactory's options vs the same
//      model served by the daemon over loopback HTTP (/v2/.../infer with JSON tensors, and
//      /v1/.../generate with base64 PNGs). Targets: ORT >= 1.3x TorchSharp at batch 64; HTTP infer
//      p50 <= 1.25x raw Run p50 at batch 1.
//   2. Dynamic batching: 64 concurrent clients asking for one image each (generate, format png),
//      closed loop, against the daemon with batching on and then off (two daemon runs).
//      Target: throughput on >= 2x off; p99 reported.
//   3. Latency before, during and after hot swaps: a closed-loop client at 200 requests/s (single-image
//      generate) while new champions are published every 2 s. Target: p99 during <= 2x steady p99.
// Every daemon is the real `retrain-daemon run` (Release build) with a private RabbitMQ node.
// Usage: dotnet run -c Release --project bench/ServeBench [-- --seconds 8 --swaps 6]
var arguments = args.Chunk(2).Where(p => p.Length == 2).ToDictionary(p => p[0].TrimStart('-'), p => double.Parse(p[1], CultureInfo.InvariantCulture));
double seconds = arguments.GetValueOrDefault("seconds", 8);
int swaps = (int)arguments.GetValueOrDefault("swaps", 6);
var inv = CultureInfo.InvariantCulture;
var defaults = new ServingOptions();
int threads = defaults.IntraOpThreads;
Console.WriteLine($"serve benchmark: DCGAN generator latent {GeneratorModels.Config.Latent} -> 1x28x28, {threads} intra-op threads (Serving:IntraOpThreads), {Environment.ProcessorCount} cores");

var generators = GeneratorModels.Shared;
for (int seed = 1; seed <= swaps + 1; seed++)
{
    generators.Onnx(seed); // exported (with the parity check) before anything is timed
}

byte[] onnx = generators.Onnx(1);

// ── 1. in-process: TorchSharp eager and raw ONNX Runtime ──
TorchRuntime.SetThreads(threads);
manual_seed(1); // GeneratorModels exports seed 1 the same way: the same weights
using var torchGenerator = new DcganGenerator(GeneratorModels.Config);
Initialization.Apply(torchGenerator, InitScheme.Normal002);
torchGenerator.eval();
var loaded = new SessionFactory(new ServingOptions { UseCuda = false }).Create(onnx);
using var session = loaded.Session;
using var runOptions = new RunOptions();

var torch = new Dictionary<int, Stat>();
var ort = new Dictionary<int, Stat>();
double parity = 0;
foreach (int batch in new[] { 1, 64 })
{
    float[] latent = ServingDaemon.Latent(batch, seed: 5);
    using var z = tensor(latent, [batch, GeneratorModels.Config.Latent]);
    using var input = OrtValue.CreateTensorValueFromMemory(latent, [batch, GeneratorModels.Config.Latent]);
    // Rounds alternate between the two, and the median round is reported: a burst of other work on a
    // shared machine then hits both, not one.
    var torchRounds = new List<Stat>();
    var ortRounds = new List<Stat>();
    for (int round = 0; round < 5; round++)
    {
        torchRounds.Add(Measure(batch, batch == 1 ? 400 : 40, () =>
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            torchGenerator.forward(z, null);
        }));
        ortRounds.Add(Measure(batch, batch == 1 ? 400 : 40, () =>
        {
            using var results = session.Run(runOptions, ["latent"], [input], ["image"]);
        }));
    }

    torch[batch] = MedianRound(torchRounds);
    ort[batch] = MedianRound(ortRounds);

    using (var scope = NewDisposeScope())
    using (var noGrad = no_grad())
    using (var results = session.Run(runOptions, ["latent"], [input], ["image"]))
    {
        var reference = torchGenerator.forward(z, null).data<float>().ToArray();
        var served = results[0].GetTensorDataAsSpan<float>();
        for (int i = 0; i < reference.Length; i++)
        {
            parity = Math.Max(parity, Math.Abs(reference[i] - served[i]));
        }
    }
}

// ── the daemons ──
await using var broker = await PrivateBroker.StartAsync();
string work = TestPaths.NewTempDirectory("rd-servebench");
var httpInfer = new Dictionary<int, Stat>();
var httpGenerate = new Dictionary<int, Stat>();
Stat httpFloor;
Concurrent batchingOn, batchingOff;
SwapFigures swapFigures;
try
{
    generators.PublishChampion(ServingDaemon.OpenRegistry(work), ServingDaemon.Model, seed: 1);
    await using (var serving = ServingDaemon.Start(broker, work))
    {
        await serving.Daemon.WaitReadyAsync();
        // The loopback HTTP round trip without a model: GET /v2 (server metadata, a few bytes of JSON).
        httpFloor = await MeasureAsync(1, 1000, i => serving.Http, i => new HttpRequestMessage(HttpMethod.Get, "/v2"));
        foreach (int batch in new[] { 1, 64 })
        {
            string[] bodies = [.. Enumerable.Range(0, 8).Select(s => ServingDaemon.InferBody(batch, s))];
            httpInfer[batch] = await MeasureAsync(batch, batch == 1 ? 1000 : 100, i => serving.Http, i =>
                new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{ServingDaemon.Model}/infer") { Content = ServingDaemon.Json(bodies[i % bodies.Length]) });
            httpGenerate[batch] = await MeasureAsync(batch, batch == 1 ? 1000 : 100, i => serving.Http, i => ServingDaemon.Generate(batch, "json", seed: i));
        }

        batchingOn = await ConcurrentAsync(serving, clients: 64);
        swapFigures = await SwapsAsync(serving);
    }

    await using (var serving = ServingDaemon.Start(broker, work, new ServingDaemonOptions { Settings = { ["Serving:Batching"] = "false" } }))
    {
        await serving.Daemon.WaitReadyAsync();
        batchingOff = await ConcurrentAsync(serving, clients: 64);
    }
}
finally
{
    Directory.Delete(work, recursive: true);
}

// ── report ──
Console.WriteLine();
Console.WriteLine($"1. generator, per call: p50 latency and images/s (TorchSharp vs ONNX Runtime max |diff| {parity:g2})");
Console.WriteLine($"   {"",-34} {"batch 1",24} {"batch 64",26}");
Row("TorchSharp eager (eval, no_grad)", torch);
Row("InferenceSession.Run (raw)", ort);
Row("HTTP /v2/.../infer (JSON tensors)", httpInfer);
Row("HTTP /v1/.../generate (JSON, PNGs)", httpGenerate);
double ortVsTorch = ort[64].PerSecond / torch[64].PerSecond;
double httpOverhead = httpInfer[1].P50 / ort[1].P50;
Console.WriteLine(string.Format(inv, "   ONNX Runtime / TorchSharp throughput at batch 64: {0:0.00}x (target >= 1.30) {1}", ortVsTorch, Verdict(ortVsTorch >= 1.3)));
Console.WriteLine(string.Format(inv, "   ONNX Runtime / TorchSharp throughput at batch 1:  {0:0.00}x", ort[1].PerSecond / torch[1].PerSecond));
Console.WriteLine(string.Format(inv, "   HTTP infer p50 / raw Run p50 at batch 1: {0:0.00}x, +{1:0.000} ms (target <= 1.25x) {2}", httpOverhead, httpInfer[1].P50 - ort[1].P50, Verdict(httpOverhead <= 1.25)));
Console.WriteLine(string.Format(inv, "   of which: loopback HTTP round trip without a model (GET /v2) p50 {0:0.000} ms; JSON tensors in and out + routing {1:0.000} ms",
    httpFloor.P50, httpInfer[1].P50 - ort[1].P50 - httpFloor.P50));
Console.WriteLine(string.Format(inv, "   HTTP infer / raw Run throughput at batch 64: {0:0.00}x; generate / raw Run: {1:0.00}x", httpInfer[64].PerSecond / ort[64].PerSecond, httpGenerate[64].PerSecond / ort[64].PerSecond));

Console.WriteLine();
Console.WriteLine("2. dynamic batching: 64 concurrent clients, one image each (generate, png), closed loop");
Console.WriteLine(string.Format(inv, "   batching on  (max batch {0}, max queue delay {1} ms): {2}", defaults.MaxBatchSize, defaults.MaxQueueDelay.TotalMilliseconds, batchingOn));
Console.WriteLine(string.Format(inv, "   batching off:                                   {0}", batchingOff));
double batchingRatio = batchingOn.PerSecond / batchingOff.PerSecond;
// What batching can save at most here: the model's own cost per image at batch 1 vs batch 64.
Console.WriteLine(string.Format(inv, "   ceiling from the model alone: raw Run {0:0.000} ms/image at batch 1 vs {1:0.000} ms/image at batch 64 = {2:0.00}x",
    ort[1].P50, ort[64].P50 / 64, ort[1].P50 / (ort[64].P50 / 64)));
Console.WriteLine(string.Format(inv, "   throughput on / off: {0:0.00}x (target >= 2.00) {1}", batchingRatio, Verdict(batchingRatio >= 2)));

Console.WriteLine();
Console.WriteLine($"3. latency around hot swaps: closed loop at 200 requests/s (generate, 1 image), {swaps} promotions 2 s apart");
Console.WriteLine($"   steady (before swaps)   {swapFigures.Before}");
Console.WriteLine($"   during swaps            {swapFigures.During}   (requests starting between an alias change and 500 ms after its swap)");
Console.WriteLine($"   after swaps             {swapFigures.After}");
Console.WriteLine(string.Format(inv, "   swap durations (alias change -> swapped in): {0} ms; failed requests: {1}", string.Join(", ", swapFigures.SwapMs.Select(s => s.ToString("0", inv))), swapFigures.Failed));
double swapRatio = swapFigures.DuringP99 / swapFigures.BeforeP99;
Console.WriteLine(string.Format(inv, "   p99 during / steady p99: {0:0.00}x (target <= 2.00) {1}", swapRatio, Verdict(swapRatio <= 2 && swapFigures.Failed == 0)));

return ortVsTorch >= 1.3 && httpOverhead <= 1.25 && batchingRatio >= 2 && swapRatio <= 2 && swapFigures.Failed == 0 ? 0 : 1;

static string Verdict(bool met) => met ? "met" : "NOT MET";

void Row(string name, Dictionary<int, Stat> stats) =>
    Console.WriteLine(string.Format(inv, "   {0,-34} {1,8:0.000} ms {2,9:0} img/s {3,9:0.000} ms {4,9:0} img/s", name, stats[1].P50, stats[1].PerSecond, stats[64].P50, stats[64].PerSecond));

static Stat MedianRound(List<Stat> rounds) =>
    new(Percentiles.Of(rounds.Select(r => r.P50), 50), Percentiles.Of(rounds.Select(r => r.P99), 50), Percentiles.Of(rounds.Select(r => r.PerSecond), 50));

static Stat Measure(int batch, int iterations, Action run)
{
    for (int i = 0; i < Math.Max(10, iterations / 5); i++)
    {
        run();
    }

    var times = new double[iterations];
    long start = Stopwatch.GetTimestamp();
    for (int i = 0; i < iterations; i++)
    {
        long t = Stopwatch.GetTimestamp();
        run();
        times[i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
    }

    return new Stat(Percentiles.Of(times, 50), Percentiles.Of(times, 99), batch * iterations / Stopwatch.GetElapsedTime(start).TotalSeconds);
}

// One client, one request at a time: latency and throughput through the whole HTTP path.
static async Task<Stat> MeasureAsync(int batch, int iterations, Func<int, HttpClient> client, Func<int, HttpRequestMessage> request)
{
    var clock = Stopwatch.StartNew();
    for (int i = 0; i < Math.Max(10, iterations / 5); i++)
    {
        Check(await LoadRunner.SendAsync(client(i), "warm-up", request(i), clock));
    }

    var samples = new List<LoadSample>(iterations);
    long start = Stopwatch.GetTimestamp();
    for (int i = 0; i < iterations; i++)
    {
        samples.Add(Check(await LoadRunner.SendAsync(client(i), "measure", request(i), clock)));
    }

    double elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
    var latencies = samples.Select(s => s.LatencyMs).ToList();
    return new Stat(Percentiles.Of(latencies, 50), Percentiles.Of(latencies, 99), batch * iterations / elapsed);
}

static LoadSample Check(LoadSample sample) =>
    sample.Ok ? sample : throw new InvalidOperationException($"{sample.Route}: {sample.Status} {sample.Failure} {sample.Detail}");

async Task<Concurrent> ConcurrentAsync(ServingDaemon serving, int clients)
{
    var clock = Stopwatch.StartNew();
    (string, HttpRequestMessage) Request(int w, int i) => ("generate", ServingDaemon.Generate(count: 1, format: "png", seed: (w * 1_000_000) + i));
    using (var warm = new CancellationTokenSource(TimeSpan.FromSeconds(1)))
    {
        await LoadRunner.RunAsync(serving.Http, clients, 0, clock, Request, warm.Token);
    }

    clock.Restart();
    using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
    var samples = await LoadRunner.RunAsync(serving.Http, clients, 0, clock, Request, stop.Token);
    double elapsed = samples.Max(s => s.EndMs) / 1000;
    var ok = samples.Where(s => s.Ok).ToList();
    var batchSizes = await serving.Daemon.MetricAsync("retrain_serving_batch_size_sum") / Math.Max(1, await serving.Daemon.MetricAsync("retrain_serving_batch_size_count"));
    return new Concurrent(ok.Count / elapsed, Percentiles.Of(ok.Select(s => s.LatencyMs), 50), Percentiles.Of(ok.Select(s => s.LatencyMs), 99), samples.Count - ok.Count, batchSizes);
}

async Task<SwapFigures> SwapsAsync(ServingDaemon serving)
{
    var clock = Stopwatch.StartNew();
    var wallBase = DateTimeOffset.UtcNow;
    using var stop = new CancellationTokenSource();
    var load = LoadRunner.RunAsync(serving.Http, 8, 200, clock, (w, i) => ("generate", ServingDaemon.Generate(count: 1, seed: (w * 1_000_000) + i)), stop.Token);
    var windows = new List<(double Start, double End, double Loaded)>();
    await Task.Delay(TimeSpan.FromSeconds(5));
    for (int k = 0; k < swaps; k++)
    {
        var at = TimeSpan.FromSeconds(5 + (2 * k)) - clock.Elapsed;
        if (at > TimeSpan.Zero)
        {
            await Task.Delay(at);
        }

        double start = clock.Elapsed.TotalMilliseconds;
        var published = generators.PublishChampion(serving.Registry, ServingDaemon.Model, seed: k + 2, reason: "serve benchmark swap");
        double end = clock.Elapsed.TotalMilliseconds;
        await serving.WaitServingAsync(published.Version, TimeSpan.FromSeconds(10));
        var (_, loadedAt) = await serving.LoadedAtAsync();
        windows.Add((start, end, (loadedAt - wallBase).TotalMilliseconds));
    }

    await Task.Delay(TimeSpan.FromSeconds(5));
    await stop.CancelAsync();
    var samples = await load;
    var before = samples.Where(s => s.StartMs < windows[0].Start).ToList();
    var during = samples.Where(s => windows.Any(w => s.StartMs >= w.Start && s.StartMs <= w.Loaded + 500)).ToList();
    var after = samples.Where(s => s.StartMs > windows[^1].Loaded + 500).ToList();
    return new SwapFigures(Percentiles.Describe(before), Percentiles.Describe(during), Percentiles.Describe(after),
        Percentiles.Of(before.Select(s => s.LatencyMs), 99), Percentiles.Of(during.Select(s => s.LatencyMs), 99),
        windows.Select(w => w.Loaded - w.End).ToList(), samples.Count(s => !s.Ok));
}

/// <summary>Latency percentiles of single calls and the images per second they sustain.</summary>
internal sealed record Stat(double P50, double P99, double PerSecond);

/// <summary>A concurrent run: requests (= images) per second, latency of the answered ones, failures, mean samples per ONNX Runtime run.</summary>
internal sealed record Concurrent(double PerSecond, double P50, double P99, int Failed, double MeanBatch)
{
    public override string ToString() => string.Format(CultureInfo.InvariantCulture,
        "{0,7:0} images/s, p50 {1,7:0.00} ms, p99 {2,7:0.00} ms, mean batch {3,5:0.0}, failed {4}", PerSecond, P50, P99, MeanBatch, Failed);
}

/// <summary>Latency before, during and after swaps, and how long each swap took.</summary>
internal sealed record SwapFigures(string Before, string During, string After, double BeforeP99, double DuringP99, IReadOnlyList<double> SwapMs, int Failed);
