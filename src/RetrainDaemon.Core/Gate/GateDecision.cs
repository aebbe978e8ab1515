using System.Globalization;
using RetrainDaemon.Core.Evaluation;

namespace RetrainDaemon.Core.Gate;

/// <summary>
/// The promotion gate as a pure function (DESIGN.md §1, §4): configured checks, the candidate's
/// metric values and the champion's (scored by the same protocol on the same holdout) in, a
/// <see cref="GateReport"/> out. Deterministic: the same inputs give the same report, row order
/// included. Anything that prevents a sound comparison fails the row rather than being skipped.
/// </summary>
/// <remarks>
/// <para>Rows: each check expands to its slices (one for <c>all</c> or a named slice; for
/// <c>class=*</c> the union of the candidate's and the champion's <c>class=</c> slices, so a class
/// the candidate stopped reporting fails instead of vanishing), and each slice to one row per
/// configured threshold: the value range, then MaxRegression, MaxRegressionRelative,
/// MinImprovement, MinImprovementRelative.</para>
/// <para>Fail closed, in this order: candidate value missing, reported twice, or not finite (fails
/// every row of that slice, change rows too, even with no champion, so a missing metric can never
/// hide behind "skipped"); then, for change rows only: no champion → skipped; champion value
/// missing, reported twice or not finite → fail (the champion is re-scored under the candidate's
/// protocol at gate time, so a hole there is a protocol divergence, not "nothing to compare");
/// a blank or different signature → fail with both signatures in the reason. Value rows do not
/// look at the champion.</para>
/// <para>Change thresholds are magnitudes turned into a limit on the candidate's value using the
/// metric's direction: for a lower-is-better metric the limit of MaxRegression r is
/// <c>champion + r</c>, of MinImprovement m is <c>champion − m</c>; higher-is-better mirrors it.
/// Relative ones use <c>fraction × |champion|</c>; at champion = 0 the allowance is 0, so a relative
/// regression check allows no worsening at all and a relative improvement check asks only for "not
/// worse" (an improvement relative to 0 is undefined, and demanding one would lock a perfect
/// champion in forever).</para>
/// <para>All bounds are inclusive, within a relative 1e-12 of the operands' magnitude so that a
/// boundary written in decimal (champion 0.3, 10 %, candidate 0.33) is not failed by binary
/// rounding; metric noise is many orders of magnitude above that.</para>
/// <para>Overall: passed when no row failed and at least one row passed. An empty gate fails
/// ("no checks configured"); so does a gate whose rows were all skipped (only change thresholds
/// and no champion): the first model of a gate needs a value threshold.</para>
/// </remarks>
public static class GateDecision
{
    private const double RelativeTolerance = 1e-12;

    /// <summary>Evaluates <paramref name="gate"/> on the candidate's values against the champion's.</summary>
    /// <param name="gate">The configured checks (normally validated at start; unvalidated input still fails closed).</param>
    /// <param name="candidate">Every value the evaluator reported for the candidate.</param>
    /// <param name="champion">The champion's values under the same protocol, or null when there is no champion.</param>
    public static GateReport Evaluate(GateOptions gate, IReadOnlyList<MetricValue> candidate, IReadOnlyList<MetricValue>? champion)
    {
        ArgumentNullException.ThrowIfNull(gate);
        ArgumentNullException.ThrowIfNull(candidate);
        bool hasChampion = champion is not null;
        var checks = gate.Checks ?? [];
        if (checks.Count == 0)
        {
            return new GateReport(false, hasChampion, [], "no checks configured");
        }

        var candidateIndex = Index(candidate);
        var championIndex = champion is null ? null : Index(champion);
        var rows = new List<GateRow>();
        foreach (var check in checks)
        {
            if (check is null)
            {
                continue;
            }

            EvaluateCheck(check, candidateIndex, championIndex, rows);
        }

        if (rows.Count == 0)
        {
            return new GateReport(false, hasChampion, rows, "no checks configured");
        }

        bool anyFailed = rows.Exists(r => r.Verdict == GateVerdict.Fail);
        bool anyPassed = rows.Exists(r => r.Verdict == GateVerdict.Pass);
        string? reason = !anyFailed && !anyPassed
            ? "nothing was evaluated: every row was skipped (no champion and no value threshold); a first model needs a value threshold"
            : null;
        return new GateReport(!anyFailed && anyPassed, hasChampion, rows, reason);
    }

    private static Dictionary<(string Metric, string Slice), List<MetricValue>> Index(IReadOnlyList<MetricValue> values)
    {
        var index = new Dictionary<(string, string), List<MetricValue>>();
        foreach (var v in values)
        {
            var key = (v.Metric, GateSlices.Of(v.Slice));
            if (!index.TryGetValue(key, out var list))
            {
                index[key] = list = [];
            }

            list.Add(v);
        }

        return index;
    }

    private static void EvaluateCheck(
        GateCheckOptions check,
        Dictionary<(string Metric, string Slice), List<MetricValue>> candidate,
        Dictionary<(string Metric, string Slice), List<MetricValue>>? champion,
        List<GateRow> rows)
    {
        string metric = check.Metric ?? "";
        string selector = GateSlices.Normalize(check.Slice);
        var kinds = Kinds(check);
        if (!MetricCatalog.TryGet(metric, out var info))
        {
            rows.Add(new GateRow(metric, selector, kinds.Count > 0 ? kinds[0] : GateThresholdKind.Value, null, null, null, "-", GateVerdict.Fail, "unknown metric"));
            return;
        }

        if (kinds.Count == 0)
        {
            rows.Add(new GateRow(metric, selector, GateThresholdKind.Value, null, null, null, "-", GateVerdict.Fail, "check sets no threshold"));
            return;
        }

        if (!GateSlices.TryParse(selector, out var wildcard, out _))
        {
            foreach (var kind in kinds)
            {
                rows.Add(new GateRow(metric, selector, kind, null, null, null, ThresholdText(check, kind), GateVerdict.Fail, "unknown slice syntax"));
            }

            return;
        }

        IReadOnlyList<string> slices = wildcard is null ? [selector] : Expand(metric, wildcard, candidate, champion);
        if (slices.Count == 0)
        {
            foreach (var kind in kinds)
            {
                rows.Add(new GateRow(metric, selector, kind, null, null, null, ThresholdText(check, kind), GateVerdict.Fail, "no such slices in candidate"));
            }

            return;
        }

        foreach (var slice in slices)
        {
            foreach (var kind in kinds)
            {
                rows.Add(EvaluateRow(check, info, slice, kind, candidate, champion));
            }
        }
    }

    private static List<GateThresholdKind> Kinds(GateCheckOptions c)
    {
        var kinds = new List<GateThresholdKind>(5);
        if (c.HasValueThreshold)
        {
            kinds.Add(GateThresholdKind.Value);
        }

        if (c.MaxRegression is not null)
        {
            kinds.Add(GateThresholdKind.Regression);
        }

        if (c.MaxRegressionRelative is not null)
        {
            kinds.Add(GateThresholdKind.RegressionRelative);
        }

        if (c.MinImprovement is not null)
        {
            kinds.Add(GateThresholdKind.Improvement);
        }

        if (c.MinImprovementRelative is not null)
        {
            kinds.Add(GateThresholdKind.ImprovementRelative);
        }

        return kinds;
    }

    /// <summary>The <paramref name="dimension"/> slices of <paramref name="metric"/> either side reports, in natural order.</summary>
    private static List<string> Expand(
        string metric,
        string dimension,
        Dictionary<(string Metric, string Slice), List<MetricValue>> candidate,
        Dictionary<(string Metric, string Slice), List<MetricValue>>? champion)
    {
        string prefix = dimension + "=";
        var slices = new HashSet<string>(StringComparer.Ordinal);
        foreach (var index in champion is null ? [candidate] : new[] { candidate, champion })
        {
            foreach (var (m, s) in index.Keys)
            {
                if (m == metric && s.StartsWith(prefix, StringComparison.Ordinal) && s.Length > prefix.Length)
                {
                    slices.Add(s);
                }
            }
        }

        var list = slices.ToList();
        list.Sort(NaturalSliceOrder);
        return list;
    }

    /// <summary>class=2 before class=10: numeric values compare as numbers, the rest ordinally.</summary>
    private static int NaturalSliceOrder(string a, string b)
    {
        int ia = a.IndexOf('=', StringComparison.Ordinal), ib = b.IndexOf('=', StringComparison.Ordinal);
        if (long.TryParse(a.AsSpan(ia + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long na)
            && long.TryParse(b.AsSpan(ib + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long nb)
            && na != nb)
        {
            return na.CompareTo(nb);
        }

        return string.CompareOrdinal(a, b);
    }

    private static GateRow EvaluateRow(
        GateCheckOptions check,
        MetricInfo info,
        string slice,
        GateThresholdKind kind,
        Dictionary<(string Metric, string Slice), List<MetricValue>> candidateIndex,
        Dictionary<(string Metric, string Slice), List<MetricValue>>? championIndex)
    {
        string threshold = ThresholdText(check, kind);
        GateRow Row(double? value, double? championValue, double? limit, GateVerdict verdict, string reason) =>
            new(info.Name, slice, kind, value, championValue, limit, threshold, verdict, reason);

        var key = (info.Name, slice);
        if (!candidateIndex.TryGetValue(key, out var cands))
        {
            return Row(null, null, null, GateVerdict.Fail, "missing from candidate");
        }

        if (cands.Count > 1)
        {
            return Row(null, null, null, GateVerdict.Fail, Invariant($"reported {cands.Count} times by candidate (ambiguous)"));
        }

        var cand = cands[0];
        if (!double.IsFinite(cand.Value))
        {
            return Row(cand.Value, null, null, GateVerdict.Fail, Invariant($"candidate value is {cand.Value}"));
        }

        if (kind == GateThresholdKind.Value)
        {
            return ValueRow(check, cand.Value, Row);
        }

        if (championIndex is null)
        {
            return Row(cand.Value, null, null, GateVerdict.Skipped, "no champion");
        }

        if (!championIndex.TryGetValue(key, out var champs))
        {
            return Row(cand.Value, null, null, GateVerdict.Fail, "missing from champion (not comparable)");
        }

        if (champs.Count > 1)
        {
            return Row(cand.Value, null, null, GateVerdict.Fail, Invariant($"reported {champs.Count} times by champion (ambiguous)"));
        }

        var champ = champs[0];
        if (!double.IsFinite(champ.Value))
        {
            return Row(cand.Value, champ.Value, null, GateVerdict.Fail, Invariant($"champion value is {champ.Value} (not comparable)"));
        }

        if (string.IsNullOrWhiteSpace(cand.Signature) || string.IsNullOrWhiteSpace(champ.Signature))
        {
            return Row(cand.Value, champ.Value, null, GateVerdict.Fail,
                $"signature missing (candidate '{cand.Signature}', champion '{champ.Signature}'); not comparable");
        }

        if (!string.Equals(cand.Signature, champ.Signature, StringComparison.Ordinal))
        {
            return Row(cand.Value, champ.Value, null, GateVerdict.Fail,
                $"signatures differ: candidate '{cand.Signature}' vs champion '{champ.Signature}'; not comparable");
        }

        return ChangeRow(check, info, kind, cand.Value, champ.Value, Row);
    }

    private static GateRow ValueRow(GateCheckOptions check, double value, Func<double?, double?, double?, GateVerdict, string, GateRow> row)
    {
        if (check.Min is { } min && !AtLeast(value, min))
        {
            return row(value, null, min, GateVerdict.Fail, $"{N(value)} < {N(min)}");
        }

        if (check.Max is { } max && !AtMost(value, max))
        {
            return row(value, null, max, GateVerdict.Fail, $"{N(value)} > {N(max)}");
        }

        // A two-sided range has no single limit; the threshold text carries both ends.
        double? limit = check.Min is not null && check.Max is not null ? null : check.Min ?? check.Max;
        string reason = (check.Min, check.Max) switch
        {
            ({ } lo, { } hi) => $"{N(value)} in [{N(lo)}, {N(hi)}]",
            ({ } lo, null) => $"{N(value)} >= {N(lo)}",
            (null, { } hi) => $"{N(value)} <= {N(hi)}",
            _ => "",
        };
        return row(value, null, limit, GateVerdict.Pass, reason);
    }

    private static GateRow ChangeRow(
        GateCheckOptions check,
        MetricInfo info,
        GateThresholdKind kind,
        double value,
        double champion,
        Func<double?, double?, double?, GateVerdict, string, GateRow> row)
    {
        // +1 when a larger value is better: an improvement moves the value up, a regression down.
        double better = info.Better == MetricDirection.Higher ? 1 : -1;
        (double allowance, string how) = kind switch
        {
            GateThresholdKind.Regression => (-check.MaxRegression!.Value, N(check.MaxRegression.Value)),
            GateThresholdKind.RegressionRelative => (-check.MaxRegressionRelative!.Value * Math.Abs(champion), Percent(check.MaxRegressionRelative.Value)),
            GateThresholdKind.Improvement => (check.MinImprovement!.Value, N(check.MinImprovement.Value)),
            GateThresholdKind.ImprovementRelative => (check.MinImprovementRelative!.Value * Math.Abs(champion), Percent(check.MinImprovementRelative.Value)),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "not a change threshold"),
        };

        // The candidate must be on the better side of (champion moved by the allowance).
        double limit = champion + (better * allowance);
        bool pass = better > 0 ? AtLeast(value, limit) : AtMost(value, limit);
        string sign = better * allowance >= 0 ? "+" : "-";
        string op = pass ? (better > 0 ? ">=" : "<=") : (better > 0 ? "<" : ">");
        string reason = $"{N(value)} {op} {N(limit)} = champion {N(champion)} {sign} {how}";
        return row(value, champion, limit, pass ? GateVerdict.Pass : GateVerdict.Fail, reason);
    }

    private static bool AtMost(double value, double limit) =>
        value <= limit || value - limit <= RelativeTolerance * Math.Max(Math.Abs(value), Math.Abs(limit));

    private static bool AtLeast(double value, double limit) =>
        value >= limit || limit - value <= RelativeTolerance * Math.Max(Math.Abs(value), Math.Abs(limit));

    /// <summary>The configured threshold of one row, as the report shows it.</summary>
    internal static string ThresholdText(GateCheckOptions c, GateThresholdKind kind) => kind switch
    {
        GateThresholdKind.Value => (c.Min, c.Max) switch
        {
            ({ } lo, { } hi) => $"in [{N(lo)}, {N(hi)}]",
            ({ } lo, null) => $">= {N(lo)}",
            (null, { } hi) => $"<= {N(hi)}",
            _ => "-",
        },
        GateThresholdKind.Regression => $"regression <= {N(c.MaxRegression)} (abs)",
        GateThresholdKind.RegressionRelative => $"regression <= {Percent(c.MaxRegressionRelative)} (rel)",
        GateThresholdKind.Improvement => $"improvement >= {N(c.MinImprovement)} (abs)",
        GateThresholdKind.ImprovementRelative => $"improvement >= {Percent(c.MinImprovementRelative)} (rel)",
        _ => "-",
    };

    private static string N(double? value) => GateReport.Number(value);

    private static string Percent(double? fraction) => fraction is { } f ? GateReport.Number(f * 100) + "%" : "-";

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
