using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Evaluation.Text;

// Corpus BLEU speed (target: 10,000 segments of 8–30 words in well under 0.5 s on 2 cores; sacreBLEU ≈ 1 s).
// Segments are real sentences from Debian's fortunes (apt-get install fortunes fortunes-min); each hypothesis
// is its reference with seeded word drops, swaps, substitutions and punctuation changes. Our time is the median
// of several runs after warm-up. With a sacreBLEU 2.6.0 checkout (--sacrebleu DIR or SACREBLEU_SRC) the same
// segments are also scored by sacreBLEU through /usr/bin/python3 in this run, and the scores must agree.
// Usage: dotnet run -c Release --project bench/BleuBench [-- --segments 10000 --runs 9 --sacrebleu DIR]
var options = ParseArguments(args);
int segments = int.Parse(options.GetValueOrDefault("segments", "10000"), CultureInfo.InvariantCulture);
int runs = int.Parse(options.GetValueOrDefault("runs", "9"), CultureInfo.InvariantCulture);
string? sacrebleu = options.GetValueOrDefault("sacrebleu") ?? Environment.GetEnvironmentVariable("SACREBLEU_SRC");
string python = options.GetValueOrDefault("python", "/usr/bin/python3");
const double TargetSeconds = 0.5;
var inv = CultureInfo.InvariantCulture;

var references = RealSentences(segments);
var random = new Random(20250611);
var vocabulary = references.SelectMany(s => s.Split(' ')).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
var hypotheses = references.Select(r => Perturb(r, random, vocabulary)).ToList();
var referenceSets = references.Select(r => (IReadOnlyList<string?>)[r]).ToList();
Console.WriteLine(string.Format(inv, "BLEU benchmark: {0:N0} fortunes segments of 8–30 words ({1:N0} hypothesis words), 1 reference each, {2} cores, median of {3} runs after 2 warm-ups",
    segments, hypotheses.Sum(h => h.Split(' ').Length), Environment.ProcessorCount, runs));

BleuResult result = Bleu.Corpus(hypotheses, referenceSets); // warm-up 1: JIT
result = Bleu.Corpus(hypotheses, referenceSets);            // warm-up 2: tiered code, pools, caches

var times = new List<double>();
for (int run = 0; run < runs; run++)
{
    var watch = Stopwatch.StartNew();
    result = Bleu.Corpus(hypotheses, referenceSets);
    times.Add(watch.Elapsed.TotalSeconds);
}

double median = Median(times);
bool fast = median < TargetSeconds;
Console.WriteLine($"score: {result} {result.Signature}");
Console.WriteLine(string.Format(inv, "RetrainDaemon: median {0:F4} s (min {1:F4}, max {2:F4}) for {3:N0} segments — target < {4} s on 2 cores: {5}",
    median, times.Min(), times.Max(), segments, TargetSeconds, fast ? "met" : "MISSED"));

if (sacrebleu is null)
{
    Console.WriteLine("sacreBLEU: not timed (pass --sacrebleu DIR or set SACREBLEU_SRC to a v2.6.0 checkout to compare in this run)");
    return fast ? 0 : 1;
}

string json = Path.Combine(Path.GetTempPath(), $"bleubench-{Environment.ProcessId}.json");
try
{
    await File.WriteAllTextAsync(json, JsonSerializer.Serialize(new { hypotheses, references }));
    var (exit, stdout, stderr) = await RunAsync(python, [Path.Combine(AppContext.BaseDirectory, "sacrebleu_bench.py"), sacrebleu, json, runs.ToString(inv)]);
    if (exit != 0)
    {
        Console.Error.WriteLine($"sacreBLEU run failed ({exit}): {stderr}");
        return 2;
    }

    using var report = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
    var root = report.RootElement;
    double theirScore = root.GetProperty("score").GetDouble();
    double theirMedian = root.GetProperty("median").GetDouble();
    bool equal = Math.Abs(theirScore - result.Score) <= 1e-9;
    Console.WriteLine(string.Format(inv, "sacreBLEU {0}: median {1:F4} s, score {2:R} ({3})",
        root.GetProperty("version").GetString(), theirMedian, theirScore, root.GetProperty("signature").GetString()));
    Console.WriteLine(string.Format(inv, "ratio: sacreBLEU / RetrainDaemon = {0:F1}x; scores equal (|Δ| ≤ 1e-9): {1} (Δ = {2:E2})",
        theirMedian / median, equal ? "yes" : "NO", theirScore - result.Score));
    return fast && equal ? 0 : 1;
}
finally
{
    File.Delete(json);
}

static List<string> RealSentences(int count)
{
    // Fortune records, whitespace collapsed, split after . ! ? — then every sentence of 8–30 words, in file order.
    var sentences = new List<string>(count);
    foreach (var fortune in Fortunes.Read())
    {
        string flat = string.Join(' ', PythonText.Split(fortune.Text));
        foreach (string sentence in Regex.Split(flat, @"(?<=[.!?])\s+"))
        {
            int words = sentence.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
            if (words is >= 8 and <= 30 && !sentence.Any(c => c < ' '))
            {
                sentences.Add(sentence);
                if (sentences.Count == count)
                {
                    return sentences;
                }
            }
        }
    }

    throw new InvalidOperationException($"only {sentences.Count} sentences of 8–30 words in the fortunes; need {count}");
}

static string Perturb(string reference, Random random, string[] vocabulary)
{
    var words = reference.Split(' ').ToList();
    for (int edits = random.Next(0, 5); edits > 0 && words.Count > 1; edits--)
    {
        int i = random.Next(words.Count);
        switch (random.Next(5))
        {
            case 0: words.RemoveAt(i); break;
            case 1: (words[i], words[(i + 1) % words.Count]) = (words[(i + 1) % words.Count], words[i]); break;
            case 2: words[i] = vocabulary[random.Next(vocabulary.Length)]; break;
            case 3: words.Insert(i, words[i]); break;
            default: words[i] = words[i].TrimEnd('.', ',', '!', '?') + ",.!?"[random.Next(4)]; break;
        }
    }

    return string.Join(' ', words);
}

static double Median(List<double> values)
{
    var sorted = values.Order().ToList();
    return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
}

static Dictionary<string, string> ParseArguments(string[] args)
{
    var result = new Dictionary<string, string>(StringComparer.Ordinal);
    for (int i = 0; i + 1 < args.Length; i += 2)
    {
        result[args[i].TrimStart('-')] = args[i + 1];
    }

    return result;
}

static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(string file, string[] arguments)
{
    var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (string argument in arguments)
    {
        start.ArgumentList.Add(argument);
    }

    using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
    var stdout = process.StandardOutput.ReadToEndAsync();
    var stderr = process.StandardError.ReadToEndAsync();
    await process.WaitForExitAsync();
    return (process.ExitCode, await stdout, await stderr);
}
