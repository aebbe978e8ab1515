using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace RetrainDaemon.Core.Gate;

/// <summary>The outcome of one row of the gate.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<GateVerdict>))]
public enum GateVerdict
{
    /// <summary>The threshold holds.</summary>
    [JsonStringEnumMemberName("pass")]
    Pass,

    /// <summary>The threshold does not hold, or the row could not be evaluated (fail closed).</summary>
    [JsonStringEnumMemberName("fail")]
    Fail,

    /// <summary>A change threshold with no champion to compare against.</summary>
    [JsonStringEnumMemberName("skipped")]
    Skipped,
}

/// <summary>What a row checks.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<GateThresholdKind>))]
public enum GateThresholdKind
{
    /// <summary><c>Min</c>/<c>Max</c> on the candidate's value.</summary>
    [JsonStringEnumMemberName("value")]
    Value,

    /// <summary><c>MaxRegression</c>: worsening vs the champion, in the metric's units.</summary>
    [JsonStringEnumMemberName("regression")]
    Regression,

    /// <summary><c>MaxRegressionRelative</c>: worsening vs the champion, as a fraction of |champion|.</summary>
    [JsonStringEnumMemberName("regression_relative")]
    RegressionRelative,

    /// <summary><c>MinImprovement</c>: improvement over the champion, in the metric's units.</summary>
    [JsonStringEnumMemberName("improvement")]
    Improvement,

    /// <summary><c>MinImprovementRelative</c>: improvement over the champion, as a fraction of |champion|.</summary>
    [JsonStringEnumMemberName("improvement_relative")]
    ImprovementRelative,
}

/// <summary>
/// One evaluated threshold on one slice.
/// </summary>
/// <param name="Metric">The metric name.</param>
/// <param name="Slice"><c>all</c> or the slice, e.g. <c>class=3</c>.</param>
/// <param name="Kind">Which threshold this row checks.</param>
/// <param name="Value">The candidate's value; null when the candidate did not report it.</param>
/// <param name="ChampionValue">The champion's value; null for value rows, with no champion, or when the champion did not report it.</param>
/// <param name="Limit">The bound the candidate's value was compared with (for a change row: the champion's value moved by the allowance); null when not evaluated or for a two-sided range.</param>
/// <param name="Threshold">The configured threshold as text, e.g. <c>&lt;= 35</c> or <c>regression &lt;= 2 (abs)</c>.</param>
/// <param name="Verdict">Pass, fail or skipped.</param>
/// <param name="Reason">Why, in a few words, e.g. <c>80.1 &gt; 35</c> or <c>missing from candidate</c>.</param>
public sealed record GateRow(
    string Metric,
    string Slice,
    GateThresholdKind Kind,
    double? Value,
    double? ChampionValue,
    double? Limit,
    string Threshold,
    GateVerdict Verdict,
    string Reason)
{
    /// <summary><c>fid</c> for the whole set, <c>fid[class=3]</c> for a slice.</summary>
    [JsonIgnore]
    public string Label => Slice == GateSlices.All ? Metric : $"{Metric}[{Slice}]";
}

/// <summary>
/// What the gate decided and why: every row with value, champion value, threshold and verdict.
/// Stored in the registry manifest (<see cref="ToJson"/>) and logged/alerted as text
/// (<see cref="ToText"/>).
/// </summary>
/// <param name="Passed">True only if no row failed and at least one row passed.</param>
/// <param name="HasChampion">Whether a champion's values were given (change thresholds evaluated rather than skipped).</param>
/// <param name="Rows">Every row, in configuration order, slices in natural order.</param>
/// <param name="Reason">Why the gate failed when no row says it (empty gate, nothing evaluated); otherwise null.</param>
public sealed record GateReport(bool Passed, bool HasChampion, IReadOnlyList<GateRow> Rows, string? Reason = null)
{
    private const int FailuresInHeadline = 3;

    // Relaxed escaping keeps "<= 35" readable in manifest.json instead of "\u003C= 35"; the report is
    // data, and whatever renders it into HTML encodes it there.
    private static readonly JsonTypeInfo<GateReport> JsonContract = (JsonTypeInfo<GateReport>)new JsonSerializerOptions(GateJsonContext.Default.Options)
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    }.GetTypeInfo(typeof(GateReport));

    /// <summary>Number of rows.</summary>
    public int Checks => Rows.Count;

    /// <summary>Number of failed rows.</summary>
    public int Failed => Rows.Count(r => r.Verdict == GateVerdict.Fail);

    /// <summary>Number of skipped rows.</summary>
    public int Skipped => Rows.Count(r => r.Verdict == GateVerdict.Skipped);

    /// <summary>
    /// The report as indented JSON, camelCase property names and snake_case enum values. Doubles are
    /// written round-trippable (shortest form that parses back to the same bits); NaN and ±Infinity
    /// as the strings <c>"NaN"</c>, <c>"Infinity"</c>, <c>"-Infinity"</c>, so a NaN candidate can
    /// be reported. Non-ASCII and HTML-sensitive characters are not escaped.
    /// </summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonContract);

    /// <summary>Reads a report written by <see cref="ToJson"/>.</summary>
    /// <exception cref="JsonException">The text is not a gate report.</exception>
    public static GateReport FromJson(string json) =>
        JsonSerializer.Deserialize(json, JsonContract) ?? throw new JsonException("the JSON is null, not a gate report");

    /// <summary>
    /// One headline (<c>GATE PASSED (5 checks, 0 failed, 2 skipped)</c> or
    /// <c>GATE FAILED: fid 80.1 &gt; 35; … (5 checks, 1 failed, 0 skipped)</c>), then one aligned
    /// line per row. Numbers in 6 significant digits, invariant culture.
    /// </summary>
    public string ToText()
    {
        var sb = new StringBuilder();
        sb.Append(Headline()).Append('\n');
        if (Rows.Count == 0)
        {
            return sb.ToString();
        }

        string[] header = ["verdict", "check", "value", "champion", "threshold", "reason"];
        var table = Rows.Select(r => new[]
        {
            r.Verdict switch { GateVerdict.Pass => "PASS", GateVerdict.Fail => "FAIL", _ => "SKIP" },
            r.Label,
            Number(r.Value),
            Number(r.ChampionValue),
            r.Threshold,
            r.Reason,
        }).Prepend(header).ToList();

        int[] widths = Enumerable.Range(0, header.Length).Select(c => table.Max(row => row[c].Length)).ToArray();
        foreach (var row in table)
        {
            for (int c = 0; c < row.Length; c++)
            {
                // The last column is not padded, so lines carry no trailing blanks.
                sb.Append(c == row.Length - 1 ? row[c] : row[c].PadRight(widths[c] + 2));
            }

            sb.Append('\n');
        }

        return sb.ToString();
    }

    /// <summary>The first line of <see cref="ToText"/>.</summary>
    public string Headline()
    {
        string counts = string.Create(CultureInfo.InvariantCulture, $"({Checks} checks, {Failed} failed, {Skipped} skipped)");
        if (Passed)
        {
            return $"GATE PASSED {counts}";
        }

        var failed = Rows.Where(r => r.Verdict == GateVerdict.Fail).ToList();
        var reasons = failed.Take(FailuresInHeadline).Select(r => $"{r.Label} {r.Reason}").ToList();
        if (failed.Count > FailuresInHeadline)
        {
            reasons.Add(string.Create(CultureInfo.InvariantCulture, $"+{failed.Count - FailuresInHeadline} more"));
        }

        if (Reason is not null)
        {
            reasons.Insert(0, Reason);
        }

        return $"GATE FAILED: {string.Join("; ", reasons)} {counts}";
    }

    /// <summary>A number for humans: 6 significant digits, invariant culture, "-" when absent.</summary>
    internal static string Number(double? value) => value is { } v ? v.ToString("G6", CultureInfo.InvariantCulture) : "-";
}

/// <summary>Source-generated JSON contract of <see cref="GateReport"/>: stable names, no reflection.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    WriteIndented = true,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(GateReport))]
internal sealed partial class GateJsonContext : JsonSerializerContext;
