using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using RetrainDaemon.Evaluation.Features;
using RetrainDaemon.Evaluation.Images;

// FID on two sets of 10,000 x 2,048 features (the Inception pool3 shape): statistics (mean, ddof=1
// covariance) and distance, RetrainDaemon vs pytorch-fid's formula on Debian's numpy/scipy
// (OpenBLAS) on the same inputs in the same run. Target: at least 2x faster at equal accuracy.
// Usage: dotnet run -c Release --project bench/FidBench [-- --rows 10000 --dims 2048 --runs 3 --pytorch-fid <git dir>]
int rows = Arg("--rows", 10000);
int dims = Arg("--dims", 2048);
int runs = Arg("--runs", 3);
string? pytorchFid = ArgText("--pytorch-fid") ?? (Directory.Exists("/work/.mirror/mseitzer+pytorch-fid/repo") ? "/work/.mirror/mseitzer+pytorch-fid/repo" : null);
Console.WriteLine($"FID benchmark: 2 x {rows} x {dims} features, {Environment.ProcessorCount} cores, {runs} runs each");

var (a, b) = Features(rows, dims);
string directory = Path.Combine(Path.GetTempPath(), $"fid-bench-{Environment.ProcessId}");
Directory.CreateDirectory(directory);
try
{
    string aPath = Path.Combine(directory, "a.npy"), bPath = Path.Combine(directory, "b.npy");
    WriteNpy(aPath, a.Values, rows, dims);
    WriteNpy(bPath, b.Values, rows, dims);

    var ours = new List<(double Statistics, double Distance, double Fid, FidTraceMethod Method)>();
    for (int run = 0; run < runs + 1; run++)
    {
        var clock = Stopwatch.StartNew();
        var sa = FeatureStatistics.Compute(a);
        var sb = FeatureStatistics.Compute(b);
        double statistics = clock.Elapsed.TotalSeconds;
        clock.Restart();
        var fid = Fid.FromStatistics(sa, sb);
        double distance = clock.Elapsed.TotalSeconds;
        if (run > 0)
        {
            ours.Add((statistics, distance, fid.Value, fid.Method)); // run 0 warms up the JIT and OpenBLAS
        }
    }

    var reference = new List<JsonElement>();
    for (int run = 0; run < runs; run++)
    {
        reference.Add(Reference(aPath, bPath, pytorchFid));
    }

    double oursStats = Median(ours.Select(o => o.Statistics)), oursDistance = Median(ours.Select(o => o.Distance));
    double refStats = Median(reference.Select(r => r.GetProperty("statistics_s").GetDouble()));
    double refDistance = Median(reference.Select(r => r.GetProperty("distance_s").GetDouble()));
    double oursFid = ours[0].Fid, refFid = reference[0].GetProperty("fid").GetDouble();
    double relative = Math.Abs(oursFid - refFid) / Math.Abs(refFid);
    Console.WriteLine($"reference: {reference[0].GetProperty("source").GetString()} on numpy {reference[0].GetProperty("numpy").GetString()} (/usr/bin/python3)");
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"",-22}{"statistics s",14}{"distance s",12}{"total s",10}"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"pytorch-fid formula",-22}{refStats,14:0.000}{refDistance,12:0.000}{refStats + refDistance,10:0.000}"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"RetrainDaemon",-22}{oursStats,14:0.000}{oursDistance,12:0.000}{oursStats + oursDistance,10:0.000}   ({ours[0].Method} trace term)"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"speed-up (ref / ours)",-22}{refStats / oursStats,13:0.00}x{refDistance / oursDistance,11:0.00}x{(refStats + refDistance) / (oursStats + oursDistance),9:0.00}x   target >= 2x"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"FID {oursFid:R} vs reference {refFid:R}: relative difference {relative:E2} (target <= 1e-6)"));
    bool ok = (refStats + refDistance) / (oursStats + oursDistance) >= 2 && relative <= 1e-6;
    Console.WriteLine(ok ? "PASS" : "MISS");
    return ok ? 0 : 1;
}
finally
{
    Directory.Delete(directory, recursive: true);
}

static (FeatureMatrix A, FeatureMatrix B) Features(int rows, int dims)
{
    // Non-negative, correlated, ReLU-like features with a low-rank structure plus noise, so the
    // covariances are full rank but far from diagonal (like pool3 activations).
    var random = new Random(2048);
    int rank = 64;
    var mixing = new double[rank * dims];
    for (int i = 0; i < mixing.Length; i++)
    {
        mixing[i] = Normal(random) * 0.3;
    }

    FeatureMatrix Make(double shift, string name)
    {
        var values = new double[(long)rows * dims];
        var latent = new double[rank];
        for (int r = 0; r < rows; r++)
        {
            for (int k = 0; k < rank; k++)
            {
                latent[k] = Normal(random) + shift;
            }

            for (int d = 0; d < dims; d++)
            {
                double v = Normal(random) * 0.5;
                for (int k = 0; k < rank; k++)
                {
                    v += latent[k] * mixing[k * dims + d];
                }

                values[(long)r * dims + d] = Math.Max(0, v + 0.2);
            }
        }

        return new FeatureMatrix(rows, dims, values, name);
    }

    return (Make(0, "a"), Make(0.15, "b"));
}

static double Normal(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

static void WriteNpy(string path, ReadOnlySpan<double> values, int rows, int dims)
{
    string header = $"{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {dims}), }}";
    int total = 10 + header.Length + 1;
    header = header.PadRight(header.Length + ((total + 63) / 64 * 64 - total)) + "\n";
    using var file = File.Create(path);
    file.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
    file.Write(BitConverter.GetBytes((ushort)header.Length));
    file.Write(Encoding.ASCII.GetBytes(header));
    file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));
}

static JsonElement Reference(string a, string b, string? gitDir)
{
    var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
    start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "reference_fid.py"));
    start.ArgumentList.Add(a);
    start.ArgumentList.Add(b);
    if (gitDir is not null)
    {
        start.ArgumentList.Add(gitDir);
    }

    using var process = Process.Start(start)!;
    string output = process.StandardOutput.ReadToEnd();
    string error = process.StandardError.ReadToEnd();
    process.WaitForExit();
    if (process.ExitCode != 0)
    {
        throw new InvalidOperationException($"reference_fid.py failed (needs /usr/bin/python3 with python3-numpy, python3-scipy, libopenblas0-pthread): {error}");
    }

    return JsonDocument.Parse(output.Trim().Split('\n')[^1]).RootElement.Clone();
}

static double Median(IEnumerable<double> values)
{
    var sorted = values.Order().ToArray();
    return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : 0.5 * (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]);
}

int Arg(string name, int fallback) => ArgText(name) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

string? ArgText(string name)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
}
