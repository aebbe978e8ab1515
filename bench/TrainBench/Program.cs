using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using RetrainDaemon.Export.Exporters;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Runtime;
using RetrainDaemon.Training.Trainers;
using static TorchSharp.torch;

// Training and inference speed (issue 3 "Speed"), measured in one run on this machine:
//   1. DCGAN (D+G) and VAE optimizer steps, batch 64, 2 threads: TorchSharp vs Debian's PyTorch
//      (bench/TrainBench/reference.py, same architectures), medians over the same number of steps.
//   2. The exported DCGAN generator through ONNX Runtime vs TorchSharp eval, batch 1 and 64.
// Needs Debian's python3-torch with OpenBLAS (apt-get install python3-torch libopenblas0-pthread).
// Usage: dotnet run -c Release --project bench/TrainBench [-- --steps 60 --threads 2]
var arguments = args.Chunk(2).Where(p => p.Length == 2).ToDictionary(p => p[0].TrimStart('-'), p => int.Parse(p[1], CultureInfo.InvariantCulture));
int steps = arguments.GetValueOrDefault("steps", 60), threads = arguments.GetValueOrDefault("threads", 2), batch = 64;
TorchRuntime.SetThreads(threads);
manual_seed(1);
Console.WriteLine($"train benchmark: batch {batch}, {threads} threads, median of {steps} steps after 5 warm-up steps, {Environment.ProcessorCount} cores");

var options = new TrainingOptions { BatchSize = batch };
var real = rand(batch, 1, 28, 28) * 2 - 1;
var labels = randint(0, 10, [batch]);
var dcgan = new DcganStep(new DcganGenerator(new DcganConfig(Classes: 10)), new DcganDiscriminator(new DcganConfig(Classes: 10)), options, conditional: true);
double dcganMs = Median(() => dcgan.Step(real, labels));
var images = rand(batch, 1, 28, 28);
var vae = new VaeStep(new VaeEncoder(new VaeConfig()), new VaeDecoder(new VaeConfig()), options, conditional: false);
double vaeMs = Median(() => vae.Step(images, labels));

var (torchVersion, pyDcgan, pyVae) = PyTorch();
Console.WriteLine();
Console.WriteLine($"{"training step",-14} {"TorchSharp",12} {"PyTorch " + torchVersion,18} {"ratio",7}   target ≤ 1.00");
Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-14} {1,9:0.0} ms {2,15:0.0} ms {3,7:0.00}", "DCGAN D+G", dcganMs, pyDcgan, dcganMs / pyDcgan));
Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-14} {1,9:0.0} ms {2,15:0.0} ms {3,7:0.00}", "VAE", vaeMs, pyVae, vaeMs / pyVae));

// Inference: the exported generator.
var generator = new DcganGenerator(new DcganConfig(Classes: 10));
Initialization.Apply(generator, InitScheme.Normal002);
generator.eval();
var onnx = ModelExporter.Export(generator, casesPerBatchSize: 5).Onnx;
using var sessionOptions = new SessionOptions { IntraOpNumThreads = threads, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
using var session = new InferenceSession(onnx, sessionOptions);
Console.WriteLine();
Console.WriteLine($"{"generator",-14} {"TorchSharp",12} {"ONNX Runtime",15} {"ratio",7}");
foreach (int n in new[] { 1, 64 })
{
    var z = randn(n, 64);
    var y = randint(0, 10, [n]);
    double torchMs = Median(() =>
    {
        using var noGrad = no_grad();
        generator.forward(z, y);
        return (IReadOnlyDictionary<string, double>)new Dictionary<string, double>();
    }, 200);
    var feeds = new List<NamedOnnxValue>
    {
        NamedOnnxValue.CreateFromTensor("latent", new DenseTensor<float>(z.data<float>().ToArray(), [n, 64])),
        NamedOnnxValue.CreateFromTensor("label", new DenseTensor<long>(y.data<long>().ToArray(), [n])),
    };
    double ortMs = Median(() =>
    {
        using var results = session.Run(feeds);
        return (IReadOnlyDictionary<string, double>)new Dictionary<string, double>();
    }, 200);
    Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-14} {1,9:0.00} ms {2,12:0.00} ms {3,7:0.00}", $"batch {n}", torchMs, ortMs, ortMs / torchMs));
}

return dcganMs <= pyDcgan && vaeMs <= pyVae ? 0 : 1;

double Median(Func<IReadOnlyDictionary<string, double>> step, int count = 0)
{
    count = count == 0 ? steps : count;
    var times = new List<double>();
    for (int i = 0; i < count + 5; i++)
    {
        using var scope = NewDisposeScope();
        long start = Stopwatch.GetTimestamp();
        step();
        if (i >= 5)
        {
            times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
    }

    times.Sort();
    return times[times.Count / 2];
}

(string Version, double Dcgan, double Vae) PyTorch()
{
    var info = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
    info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "reference.py"));
    foreach (var a in new[] { "--threads", threads.ToString(CultureInfo.InvariantCulture), "--steps", steps.ToString(CultureInfo.InvariantCulture), "--batch", batch.ToString(CultureInfo.InvariantCulture) })
    {
        info.ArgumentList.Add(a);
    }

    using var process = Process.Start(info)!;
    string stdout = process.StandardOutput.ReadToEnd(), stderr = process.StandardError.ReadToEnd();
    process.WaitForExit();
    if (process.ExitCode != 0)
    {
        throw new InvalidOperationException($"the PyTorch reference failed (is python3-torch installed? apt-get install python3-torch libopenblas0-pthread): {stderr}");
    }

    using var json = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
    var root = json.RootElement;
    return (root.GetProperty("torch").GetString()!, root.GetProperty("dcgan_step_ms").GetDouble(), root.GetProperty("vae_step_ms").GetDouble());
}
