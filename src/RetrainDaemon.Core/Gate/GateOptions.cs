using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Options;

namespace RetrainDaemon.Core.Gate;

/// <summary>
/// A model's promotion gate (<c>Models:&lt;model&gt;:Gate</c>): the checks a candidate must pass
/// before it may replace the champion. An empty gate is valid configuration but admits nothing:
/// <see cref="GateDecision.Evaluate"/> fails closed with "no checks configured".
/// </summary>
/// <remarks>
/// There is deliberately no switch to tolerate a signature mismatch with the champion. Both models
/// are scored at gate time by the same evaluator on the same holdout, so a mismatch means a bug or
/// a half-deployed protocol change, never a legitimate comparison; a flag to compare FIDs from two
/// extractors would only ever be used to promote a model that should not be promoted.
/// </remarks>
public sealed class GateOptions
{
    /// <summary>The checks, evaluated in this order; the report keeps it.</summary>
    public List<GateCheckOptions> Checks { get; set; } = [];
}

/// <summary>
/// One check of the gate (TFMA's MetricThreshold, with the direction taken from
/// <see cref="MetricCatalog"/>): a value threshold and/or a change threshold against the champion,
/// on one slice or on every slice of a dimension. Every threshold that is set must hold; the
/// boundaries are inclusive.
/// </summary>
public sealed class GateCheckOptions
{
    /// <summary>A <see cref="MetricCatalog"/> name, e.g. <c>fid</c>.</summary>
    public string Metric { get; set; } = "";

    /// <summary>
    /// <c>all</c> (the whole evaluation set), <c>class=3</c> (one slice) or <c>class=*</c> (every
    /// <c>class=</c> slice the candidate or the champion reports, each checked on its own).
    /// </summary>
    public string Slice { get; set; } = GateSlices.All;

    /// <summary>
    /// Lower bound on the value. The quality bar of a higher-is-better metric; on a
    /// lower-is-better metric only allowed together with <see cref="Max"/>, as a sanity range.
    /// </summary>
    public double? Min { get; set; }

    /// <summary>
    /// Upper bound on the value. The quality bar of a lower-is-better metric; on a
    /// higher-is-better metric only allowed together with <see cref="Min"/>, as a sanity range.
    /// </summary>
    public double? Max { get; set; }

    /// <summary>How much worse than the champion the candidate may be, in the metric's units (≥ 0).</summary>
    public double? MaxRegression { get; set; }

    /// <summary>How much worse than the champion the candidate may be, as a fraction of |champion| (0.05 = 5 %; in [0, 1]).</summary>
    public double? MaxRegressionRelative { get; set; }

    /// <summary>How much better than the champion the candidate must be, in the metric's units (≥ 0; 0 = not worse).</summary>
    public double? MinImprovement { get; set; }

    /// <summary>How much better than the champion the candidate must be, as a fraction of |champion| (in [0, 1]).</summary>
    public double? MinImprovementRelative { get; set; }

    /// <summary>True when at least one change threshold (regression or improvement) is set.</summary>
    public bool HasChangeThreshold => MaxRegression is not null || MaxRegressionRelative is not null || MinImprovement is not null || MinImprovementRelative is not null;

    /// <summary>True when a value threshold (<see cref="Min"/> and/or <see cref="Max"/>) is set.</summary>
    public bool HasValueThreshold => Min is not null || Max is not null;
}

/// <summary>Slice selectors of a gate check and their matching against <see cref="Evaluation.MetricValue.Slice"/>.</summary>
public static partial class GateSlices
{
    /// <summary>The whole evaluation set (a <see cref="Evaluation.MetricValue"/> with a null slice).</summary>
    public const string All = "all";

    /// <summary>Slice dimensions the evaluators emit. A dimension outside this list is a typo.</summary>
    public static IReadOnlyList<string> Dimensions { get; } = ["class"];

    [GeneratedRegex("^(?<dim>[a-z][a-z0-9_]*)=(?<value>\\*|[A-Za-z0-9_.-]+)$", RegexOptions.CultureInvariant)]
    private static partial Regex Selector();

    /// <summary>
    /// Normalizes a configured selector: <c>all</c> (any case, or empty) becomes <see cref="All"/>;
    /// anything else is returned as written.
    /// </summary>
    public static string Normalize(string? selector) =>
        string.IsNullOrWhiteSpace(selector) || string.Equals(selector.Trim(), All, StringComparison.OrdinalIgnoreCase) ? All : selector.Trim();

    /// <summary>The report's name of a metric value's slice: <see cref="All"/> for the whole set.</summary>
    public static string Of(string? metricSlice) => metricSlice ?? All;

    /// <summary>
    /// Parses <paramref name="selector"/>: <c>all</c>, <c>dim=value</c> or <c>dim=*</c> with a known
    /// dimension. <paramref name="wildcardDimension"/> is set for <c>dim=*</c>.
    /// </summary>
    public static bool TryParse(string? selector, out string? wildcardDimension, out string? problem)
    {
        wildcardDimension = null;
        problem = null;
        if (selector is null || string.Equals(selector, All, StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        var match = Selector().Match(selector);
        if (!match.Success)
        {
            problem = "unknown slice syntax; expected all, class=* or class=<value> (e.g. class=3)";
            return false;
        }

        string dim = match.Groups["dim"].Value;
        if (!Dimensions.Contains(dim, StringComparer.Ordinal))
        {
            problem = $"unknown slice dimension '{dim}'; known: {string.Join(", ", Dimensions)}";
            return false;
        }

        if (match.Groups["value"].Value == "*")
        {
            wildcardDimension = dim;
        }

        return true;
    }
}

/// <summary>
/// Start-up validation of a gate, in the style of <see cref="ModelCatalogOptionsValidator"/> (which
/// calls it for every model, with keys like <c>Models:dcgan:Gate:Checks:0:Max</c>): every problem
/// at once, naming the key, the value and what is wrong.
/// </summary>
/// <remarks>
/// Direction rules, so that a threshold cannot silently admit worse models:
/// <list type="bullet">
/// <item>On a lower-is-better metric (fid) only <c>Max</c> is a quality bar; a <c>Min</c> alone
/// rejects good models and admits arbitrarily bad ones, so it is an error. <c>Min</c> with
/// <c>Max</c> is allowed as a sanity range (a perplexity of 1.0 or an FID of 0 on real data means a
/// broken evaluator or a model that copies). Higher-is-better metrics mirror this.</item>
/// <item>Change thresholds are magnitudes (≥ 0): the direction comes from the metric. Relative
/// ones are fractions in [0, 1], which also catches "5" written for 5 %.</item>
/// <item>A check either tolerates a regression or demands an improvement, not both.</item>
/// </list>
/// Two checks on one metric with the same slice are an error (merge them); <c>class=*</c> next to
/// <c>class=3</c> is allowed, so one class can be held to a stricter bar.
/// </remarks>
public sealed class GateOptionsValidator : IValidateOptions<GateOptions>
{
    /// <summary>The section name used when a gate is validated on its own.</summary>
    public const string Section = "Gate";

    /// <summary>Validates a gate on its own (keys <c>Gate:Checks:i:…</c>); modality is not checked.</summary>
    public ValidateOptionsResult Validate(string? name, GateOptions options)
    {
        var f = new Failures(Section);
        Collect(f, "", options, modality: null);
        return f.Result();
    }

    /// <summary>
    /// Adds every problem of <paramref name="gate"/> to <paramref name="f"/> under
    /// <paramref name="keyPrefix"/> (e.g. <c>dcgan:Gate</c>). With a known
    /// <paramref name="modality"/> (<c>image</c>/<c>text</c>), a metric of the other modality is an
    /// error: its value would never be reported and the gate would reject every candidate.
    /// </summary>
    internal static void Collect(Failures f, string keyPrefix, GateOptions? gate, string? modality)
    {
        string checksKey = keyPrefix.Length == 0 ? nameof(GateOptions.Checks) : $"{keyPrefix}:{nameof(GateOptions.Checks)}";
        var checks = gate?.Checks ?? [];
        var seen = new Dictionary<(string Metric, string Slice), int>();
        for (int i = 0; i < checks.Count; i++)
        {
            string key = $"{checksKey}:{i}";
            var c = checks[i];
            if (c is null)
            {
                f.Add(key, "", "empty check");
                continue;
            }

            CheckMetric(f, key, c, modality, out var info);
            string slice = GateSlices.Normalize(c.Slice);
            if (!GateSlices.TryParse(slice, out _, out var sliceProblem))
            {
                f.Add($"{key}:{nameof(c.Slice)}", c.Slice, sliceProblem!);
            }

            if (!c.HasValueThreshold && !c.HasChangeThreshold)
            {
                f.Add(key, c.Metric, "sets no threshold; give Min and/or Max, or MaxRegression(Relative) / MinImprovement(Relative)");
            }

            CheckValueThreshold(f, key, c, info);
            CheckChangeThresholds(f, key, c);

            if (seen.TryGetValue((c.Metric, slice), out int first))
            {
                f.Add(key, $"{c.Metric}[{slice}]", $"same metric and slice as {nameof(GateOptions.Checks)}:{first}; merge the thresholds into one check");
            }
            else
            {
                seen[(c.Metric, slice)] = i;
            }
        }
    }

    private static void CheckMetric(Failures f, string key, GateCheckOptions c, string? modality, out MetricInfo? info)
    {
        string metricKey = $"{key}:{nameof(c.Metric)}";
        if (!MetricCatalog.TryGet(c.Metric, out info))
        {
            string? hint = MetricCatalog.Suggest(c.Metric);
            f.Add(metricKey, c.Metric, hint is null
                ? $"unknown metric; known metrics: {MetricCatalog.NameList}"
                : $"unknown metric (names are case-sensitive; did you mean '{hint}'?); known metrics: {MetricCatalog.NameList}");
            return;
        }

        if (modality is not null
            && (string.Equals(modality, "image", StringComparison.OrdinalIgnoreCase) || string.Equals(modality, "text", StringComparison.OrdinalIgnoreCase))
            && !string.Equals(info.Modality.ToString(), modality, StringComparison.OrdinalIgnoreCase))
        {
            f.Add(metricKey, c.Metric, $"is a metric of {info.Modality.ToString().ToLowerInvariant()} models, but the model's Modality is {modality.ToLowerInvariant()}; it would never be reported");
        }
    }

    private static void CheckValueThreshold(Failures f, string key, GateCheckOptions c, MetricInfo? info)
    {
        bool minOk = Finite(f, $"{key}:{nameof(c.Min)}", c.Min);
        bool maxOk = Finite(f, $"{key}:{nameof(c.Max)}", c.Max);
        if (minOk && maxOk && c.Min is { } min && c.Max is { } max && min > max)
        {
            f.Add($"{key}:{nameof(c.Min)}", min, $"must not exceed Max ({max.ToString("R", System.Globalization.CultureInfo.InvariantCulture)})");
        }

        if (info is null)
        {
            return;
        }

        // A one-sided bound on the wrong side admits every worse model: a fid "Min 10" passes fid 500.
        if (info.Better == MetricDirection.Lower && c.Min is not null && c.Max is null)
        {
            f.Add($"{key}:{nameof(c.Min)}", c.Min, $"wrong direction: {c.Metric} is lower-is-better, so a Min alone admits any worse model; use Max (Min is only allowed with Max, as a sanity range)");
        }
        else if (info.Better == MetricDirection.Higher && c.Max is not null && c.Min is null)
        {
            f.Add($"{key}:{nameof(c.Max)}", c.Max, $"wrong direction: {c.Metric} is higher-is-better, so a Max alone admits any worse model; use Min (Max is only allowed with Min, as a sanity range)");
        }
    }

    private static void CheckChangeThresholds(Failures f, string key, GateCheckOptions c)
    {
        Magnitude(f, $"{key}:{nameof(c.MaxRegression)}", c.MaxRegression, relative: false);
        Magnitude(f, $"{key}:{nameof(c.MaxRegressionRelative)}", c.MaxRegressionRelative, relative: true);
        Magnitude(f, $"{key}:{nameof(c.MinImprovement)}", c.MinImprovement, relative: false);
        Magnitude(f, $"{key}:{nameof(c.MinImprovementRelative)}", c.MinImprovementRelative, relative: true);

        bool tolerates = c.MaxRegression is not null || c.MaxRegressionRelative is not null;
        bool demands = c.MinImprovement is not null || c.MinImprovementRelative is not null;
        if (tolerates && demands)
        {
            string demandKey = c.MinImprovement is not null ? nameof(c.MinImprovement) : nameof(c.MinImprovementRelative);
            f.Add($"{key}:{demandKey}", c.MinImprovement ?? c.MinImprovementRelative,
                "contradicts MaxRegression(Relative) on the same check: a check either tolerates a regression or demands an improvement");
        }
    }

    private static bool Finite(Failures f, string key, double? value)
    {
        if (value is { } v && !double.IsFinite(v))
        {
            f.Add(key, v, "must be a finite number");
            return false;
        }

        return true;
    }

    private static void Magnitude(Failures f, string key, double? value, bool relative)
    {
        if (value is not { } v || !Finite(f, key, v))
        {
            return;
        }

        if (v < 0)
        {
            f.Add(key, v, "must be >= 0: it is a magnitude, the metric's direction says which way is worse");
        }
        else if (relative && v > 1)
        {
            f.Add(key, v, "must be a fraction of |champion| in [0, 1] (0.05 = 5%)");
        }
    }
}
