using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using RetrainDaemon.Evaluation.Text;

namespace RetrainDaemon.UnitTests.Evaluation.Text;

/// <summary>
/// The expected values written by tests/reference/generate.py with the real sacreBLEU 2.6.0, rouge-score 0.1.2
/// and NLTK 3.8 (see tests/reference/README.md). The JSON files are copied next to the test assembly.
/// </summary>
internal static class ReferenceData
{
    private static readonly ConcurrentDictionary<string, JsonDocument> Cache = new(StringComparer.Ordinal);

    public static JsonElement Load(string name) =>
        Cache.GetOrAdd(name, n =>
        {
            string path = Path.Combine(AppContext.BaseDirectory, "Evaluation", "Text", "ReferenceData", n);
            return JsonDocument.Parse(File.ReadAllText(path));
        }).RootElement;

    public static string[] Strings(JsonElement array) => array.EnumerateArray().Select(e => e.GetString()!).ToArray();

    public static string?[] NullableStrings(JsonElement array) => array.EnumerateArray().Select(e => e.GetString()).ToArray();

    public static double[] Doubles(JsonElement array) => array.EnumerateArray().Select(e => e.GetDouble()).ToArray();

    public static IReadOnlyList<IReadOnlyList<string>> Sentences(JsonElement array) =>
        array.EnumerateArray().Select(s => (IReadOnlyList<string>)Strings(s)).ToList();

    public static BleuOptions BleuOptions(JsonElement options) => new()
    {
        Tokenize = options.GetProperty("tokenize").GetString() switch
        {
            "13a" => TextTokenizer.Mteval13a,
            "none" => TextTokenizer.None,
            "char" => TextTokenizer.Char,
            var other => throw new InvalidDataException($"tokenizer {other}"),
        },
        Lowercase = options.GetProperty("lowercase").GetBoolean(),
        SmoothMethod = options.GetProperty("smooth_method").GetString() switch
        {
            "exp" => BleuSmoothing.Exp,
            "none" => BleuSmoothing.None,
            "floor" => BleuSmoothing.Floor,
            "add-k" => BleuSmoothing.AddK,
            var other => throw new InvalidDataException($"smoothing {other}"),
        },
        SmoothValue = options.GetProperty("smooth_value").ValueKind == JsonValueKind.Null ? null : options.GetProperty("smooth_value").GetDouble(),
        MaxNgramOrder = options.GetProperty("max_ngram_order").GetInt32(),
        EffectiveOrder = options.GetProperty("effective_order").GetBoolean(),
    };

    /// <summary>Human-readable text for failure messages (control characters escaped).</summary>
    public static string Show(string? text) =>
        text is null ? "null" : "\"" + string.Concat(text.Select(c => c < ' ' || c is '\u0085' or '\u2028' ? $"\\u{(int)c:X4}" : c.ToString())) + "\"";

    public static string Show(IEnumerable<string> tokens) => "[" + string.Join(", ", tokens.Select(t => Show(t))) + "]";

    /// <summary>Fails with the first few mismatches (and their count) instead of stopping at the first.</summary>
    public static void AssertNoFailures(List<string> failures, int checkedCount)
    {
        Assert.True(checkedCount > 0, "no reference cases were checked");
        if (failures.Count > 0)
        {
            Assert.Fail(string.Create(CultureInfo.InvariantCulture,
                $"{failures.Count} of {checkedCount} reference cases differ:\n") + string.Join("\n", failures.Take(25)));
        }
    }

    public static bool Close(double actual, double expected, double tolerance) =>
        Math.Abs(actual - expected) <= tolerance;
}
