using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.Gate;

namespace RetrainDaemon.UnitTests.Gate;

public class GateDecisionTests
{
    private const string Sig = "extractor:sha256=ab12|layer:pool|n:1000|ref:holdout@w42|seed:7";

    internal static MetricValue Mv(string metric, double value, string? slice = null, string signature = Sig) => new(metric, slice, value, signature);

    private static GateOptions Gate(params GateCheckOptions[] checks) => new() { Checks = [.. checks] };

    /// <summary>
    /// One check with one threshold, one candidate value, optionally one champion value (same
    /// signature): the single row's verdict and a fragment of its reason.
    /// </summary>
    public static TheoryData<string, GateCheckOptions, double, double?, GateVerdict, string> SingleRowCases => new()
    {
        // Value thresholds: the quality bar of each direction, boundaries inclusive.
        { "lower-better Max: below", new() { Metric = "fid", Max = 35 }, 20, null, GateVerdict.Pass, "20 <= 35" },
        { "lower-better Max: at the boundary", new() { Metric = "fid", Max = 35 }, 35, null, GateVerdict.Pass, "35 <= 35" },
        { "lower-better Max: above", new() { Metric = "fid", Max = 35 }, 80.1, null, GateVerdict.Fail, "80.1 > 35" },
        { "lower-better Max: just above", new() { Metric = "fid", Max = 35 }, 35.0001, null, GateVerdict.Fail, "35.0001 > 35" },
        { "higher-better Min: above", new() { Metric = "bleu", Min = 20 }, 27.5, null, GateVerdict.Pass, "27.5 >= 20" },
        { "higher-better Min: at the boundary", new() { Metric = "bleu", Min = 20 }, 20, null, GateVerdict.Pass, "20 >= 20" },
        { "higher-better Min: below", new() { Metric = "bleu", Min = 20 }, 19.99, null, GateVerdict.Fail, "19.99 < 20" },
        { "sanity range: inside", new() { Metric = "nn_distance_mean", Min = 0.1, Max = 2 }, 1, null, GateVerdict.Pass, "1 in [0.1, 2]" },
        { "sanity range: upper end", new() { Metric = "nn_distance_mean", Min = 0.1, Max = 2 }, 2, null, GateVerdict.Pass, "2 in [0.1, 2]" },
        { "sanity range: lower end", new() { Metric = "nn_distance_mean", Min = 0.1, Max = 2 }, 0.1, null, GateVerdict.Pass, "0.1 in [0.1, 2]" },
        { "sanity range: above (noise images)", new() { Metric = "nn_distance_mean", Min = 0.1, Max = 2 }, 2.5, null, GateVerdict.Fail, "2.5 > 2" },
        { "sanity range: below (copies)", new() { Metric = "nn_distance_mean", Min = 0.1, Max = 2 }, 0.05, null, GateVerdict.Fail, "0.05 < 0.1" },
        { "value row ignores the champion", new() { Metric = "fid", Max = 35 }, 34, 10, GateVerdict.Pass, "34 <= 35" },

        // Absolute regression: champion moved by the allowance in the bad direction.
        { "lower-better regression: better", new() { Metric = "fid", MaxRegression = 2 }, 25, 30, GateVerdict.Pass, "25 <= 32 = champion 30 + 2" },
        { "lower-better regression: at the boundary", new() { Metric = "fid", MaxRegression = 2 }, 32, 30, GateVerdict.Pass, "32 <= 32" },
        { "lower-better regression: too much", new() { Metric = "fid", MaxRegression = 2 }, 32.01, 30, GateVerdict.Fail, "32.01 > 32 = champion 30 + 2" },
        { "lower-better regression 0: equal", new() { Metric = "fid", MaxRegression = 0 }, 30, 30, GateVerdict.Pass, "30 <= 30" },
        { "higher-better regression: at the boundary", new() { Metric = "bleu", MaxRegression = 1 }, 24, 25, GateVerdict.Pass, "24 >= 24 = champion 25 - 1" },
        { "higher-better regression: too much", new() { Metric = "bleu", MaxRegression = 1 }, 23.9, 25, GateVerdict.Fail, "23.9 < 24 = champion 25 - 1" },

        // Relative regression: a fraction of |champion|.
        { "lower-better rel regression: at the boundary", new() { Metric = "fid", MaxRegressionRelative = 0.1 }, 33, 30, GateVerdict.Pass, "33 <= 33 = champion 30 + 10%" },
        { "lower-better rel regression: too much", new() { Metric = "fid", MaxRegressionRelative = 0.1 }, 33.1, 30, GateVerdict.Fail, "33.1 > 33" },
        { "higher-better rel regression: decimal boundary survives rounding", new() { Metric = "rouge1", MaxRegressionRelative = 0.1 }, 0.27, 0.3, GateVerdict.Pass, "0.27 >= 0.27" },
        { "higher-better rel regression: too much", new() { Metric = "rouge1", MaxRegressionRelative = 0.1 }, 0.26, 0.3, GateVerdict.Fail, "0.26 < 0.27 = champion 0.3 - 10%" },
        { "lower-better rel regression: decimal boundary survives rounding", new() { Metric = "copy_share", MaxRegressionRelative = 0.1 }, 0.33, 0.3, GateVerdict.Pass, "0.33 <= 0.33" },
        { "rel regression at champion 0: no worsening allowed", new() { Metric = "memorized_share", MaxRegressionRelative = 0.5 }, 0.001, 0, GateVerdict.Fail, "0.001 > 0 = champion 0 + 50%" },
        { "rel regression at champion 0: equal passes", new() { Metric = "memorized_share", MaxRegressionRelative = 0.5 }, 0, 0, GateVerdict.Pass, "0 <= 0" },

        // Absolute improvement: the candidate must beat the champion by at least the margin.
        { "lower-better improvement: enough", new() { Metric = "fid", MinImprovement = 1 }, 29, 30, GateVerdict.Pass, "29 <= 29 = champion 30 - 1" },
        { "lower-better improvement: not enough", new() { Metric = "fid", MinImprovement = 1 }, 29.5, 30, GateVerdict.Fail, "29.5 > 29 = champion 30 - 1" },
        { "higher-better improvement: enough", new() { Metric = "bleu", MinImprovement = 0.5 }, 25.5, 25, GateVerdict.Pass, "25.5 >= 25.5 = champion 25 + 0.5" },
        { "higher-better improvement: worse", new() { Metric = "bleu", MinImprovement = 0.5 }, 24, 25, GateVerdict.Fail, "24 < 25.5" },
        { "improvement 0 means not worse", new() { Metric = "bleu", MinImprovement = 0 }, 25, 25, GateVerdict.Pass, "25 >= 25" },

        // Relative improvement.
        { "lower-better rel improvement: enough", new() { Metric = "fid", MinImprovementRelative = 0.1 }, 27, 30, GateVerdict.Pass, "27 <= 27 = champion 30 - 10%" },
        { "lower-better rel improvement: not enough", new() { Metric = "fid", MinImprovementRelative = 0.1 }, 27.3, 30, GateVerdict.Fail, "27.3 > 27" },
        { "higher-better rel improvement: enough", new() { Metric = "bleu", MinImprovementRelative = 0.02 }, 25.5, 25, GateVerdict.Pass, "25.5 >= 25.5 = champion 25 + 2%" },
        { "higher-better rel improvement: not enough", new() { Metric = "bleu", MinImprovementRelative = 0.02 }, 25.49, 25, GateVerdict.Fail, "25.49 < 25.5" },
        { "rel improvement at champion 0 asks only not worse", new() { Metric = "class_coverage", MinImprovementRelative = 0.1 }, 0, 0, GateVerdict.Pass, "0 >= 0" },

        // Fail closed on the candidate's value, whatever the threshold.
        { "NaN candidate, value row", new() { Metric = "fid", Max = 35 }, double.NaN, null, GateVerdict.Fail, "candidate value is NaN" },
        { "infinite candidate, value row", new() { Metric = "fid", Max = 35 }, double.PositiveInfinity, null, GateVerdict.Fail, "candidate value is Infinity" },
        { "NaN candidate, change row with champion", new() { Metric = "fid", MaxRegression = 2 }, double.NaN, 30, GateVerdict.Fail, "candidate value is NaN" },

        // Champion problems fail change rows.
        { "NaN champion", new() { Metric = "fid", MaxRegression = 2 }, 30, double.NaN, GateVerdict.Fail, "champion value is NaN (not comparable)" },
        { "negative-infinite champion", new() { Metric = "bleu", MaxRegression = 2 }, 30, double.NegativeInfinity, GateVerdict.Fail, "champion value is -Infinity" },
    };

    [Theory]
    [MemberData(nameof(SingleRowCases))]
    public void SingleThreshold_DecidesEachBranch(string because, GateCheckOptions check, double value, double? championValue, GateVerdict verdict, string reason)
    {
        var champion = championValue is { } c ? new[] { Mv(check.Metric, c) } : null;

        var report = GateDecision.Evaluate(Gate(check), [Mv(check.Metric, value)], champion);

        var row = Assert.Single(report.Rows);
        Assert.True(verdict == row.Verdict, $"{because}: expected {verdict}, got {row.Verdict} ({row.Reason})");
        Assert.Contains(reason, row.Reason, StringComparison.Ordinal);
        Assert.Equal(verdict == GateVerdict.Pass, report.Passed);
        Assert.Equal(champion is not null, report.HasChampion);
    }

    [Fact]
    public void ChangeRow_CarriesTheLimitOnTheCandidate()
    {
        var report = GateDecision.Evaluate(Gate(new GateCheckOptions { Metric = "fid", MaxRegression = 2, MaxRegressionRelative = 0.05 }), [Mv("fid", 31)], [Mv("fid", 30)]);

        Assert.Collection(
            report.Rows,
            r => Assert.Equal((GateThresholdKind.Regression, 32.0, "regression <= 2 (abs)", 30.0, GateVerdict.Pass), (r.Kind, r.Limit!.Value, r.Threshold, r.ChampionValue!.Value, r.Verdict)),
            r => Assert.Equal((GateThresholdKind.RegressionRelative, 31.5, "regression <= 5% (rel)", 30.0, GateVerdict.Pass), (r.Kind, r.Limit!.Value, r.Threshold, r.ChampionValue!.Value, r.Verdict)));
    }

    [Fact]
    public void NoChampion_ChangeRowsAreSkipped_ValueRowsStillDecide()
    {
        var gate = Gate(new GateCheckOptions { Metric = "fid", Max = 35, MaxRegression = 2, MaxRegressionRelative = 0.1 });

        var report = GateDecision.Evaluate(gate, [Mv("fid", 30)], champion: null);

        Assert.True(report.Passed);
        Assert.False(report.HasChampion);
        Assert.Equal([GateVerdict.Pass, GateVerdict.Skipped, GateVerdict.Skipped], report.Rows.Select(r => r.Verdict));
        Assert.All(report.Rows.Skip(1), r => Assert.Equal("no champion", r.Reason));
        Assert.Equal((3, 0, 2), (report.Checks, report.Failed, report.Skipped));
    }

    [Fact]
    public void NoChampion_OnlyChangeThresholds_FailsBecauseNothingWasEvaluated()
    {
        var report = GateDecision.Evaluate(Gate(new GateCheckOptions { Metric = "fid", MaxRegression = 2 }), [Mv("fid", 30)], champion: null);

        Assert.False(report.Passed);
        Assert.Equal(GateVerdict.Skipped, Assert.Single(report.Rows).Verdict);
        Assert.Contains("every row was skipped", report.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingCandidateMetric_FailsEveryRow_EvenChangeRowsWithoutChampion()
    {
        var gate = Gate(new GateCheckOptions { Metric = "fid", Max = 35, MaxRegression = 2 });

        var report = GateDecision.Evaluate(gate, [Mv("kid", 0.01)], champion: null);

        Assert.False(report.Passed);
        Assert.All(report.Rows, r =>
        {
            Assert.Equal(GateVerdict.Fail, r.Verdict);
            Assert.Equal("missing from candidate", r.Reason);
            Assert.Null(r.Value);
        });
    }

    [Fact]
    public void ChampionMissingTheMetric_FailsChangeRows_NotValueRows()
    {
        var gate = Gate(new GateCheckOptions { Metric = "fid", Max = 35, MaxRegression = 2 });

        var report = GateDecision.Evaluate(gate, [Mv("fid", 30)], [Mv("kid", 0.01)]);

        Assert.False(report.Passed);
        Assert.Equal(GateVerdict.Pass, report.Rows[0].Verdict);
        Assert.Equal(GateVerdict.Fail, report.Rows[1].Verdict);
        Assert.Equal("missing from champion (not comparable)", report.Rows[1].Reason);
    }

    [Fact]
    public void EmptyChampionList_IsAChampionWithNothingComparable()
    {
        var report = GateDecision.Evaluate(Gate(new GateCheckOptions { Metric = "fid", MaxRegression = 2 }), [Mv("fid", 30)], []);

        Assert.True(report.HasChampion);
        Assert.Equal(GateVerdict.Fail, Assert.Single(report.Rows).Verdict);
    }

    [Fact]
    public void SignatureMismatch_FailsClosed_NamingBothSignatures()
    {
        var gate = Gate(new GateCheckOptions { Metric = "bleu", Min = 10, MaxRegression = 1 });
        const string candidateSig = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0";
        const string championSig = "nrefs:1|case:mixed|eff:no|tok:intl|smooth:exp|version:2.6.0";

        var report = GateDecision.Evaluate(gate, [Mv("bleu", 40, signature: candidateSig)], [Mv("bleu", 20, signature: championSig)]);

        Assert.False(report.Passed);
        Assert.Equal(GateVerdict.Pass, report.Rows[0].Verdict);
        var change = report.Rows[1];
        Assert.Equal(GateVerdict.Fail, change.Verdict);
        Assert.Contains("signatures differ", change.Reason, StringComparison.Ordinal);
        Assert.Contains(candidateSig, change.Reason, StringComparison.Ordinal);
        Assert.Contains(championSig, change.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", Sig)]
    [InlineData(Sig, " ")]
    public void BlankSignature_FailsChangeRows(string candidateSig, string championSig)
    {
        var report = GateDecision.Evaluate(Gate(new GateCheckOptions { Metric = "fid", MaxRegression = 2 }), [Mv("fid", 30, signature: candidateSig)], [Mv("fid", 30, signature: championSig)]);

        var row = Assert.Single(report.Rows);
        Assert.Equal(GateVerdict.Fail, row.Verdict);
        Assert.Contains("signature missing", row.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void DuplicateCandidateValue_IsAmbiguous_AndFails()
    {
        var report = GateDecision.Evaluate(Gate(new GateCheckOptions { Metric = "fid", Max = 35 }), [Mv("fid", 30), Mv("fid", 31)], null);

        var row = Assert.Single(report.Rows);
        Assert.Equal(GateVerdict.Fail, row.Verdict);
        Assert.Contains("reported 2 times by candidate", row.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void PerClassWildcard_ExpandsInNaturalOrder_AndOneFailingClassFailsTheGate()
    {
        var candidate = Enumerable.Range(0, 12).Select(c => Mv("conditional_accuracy", c == 10 ? 0.4 : 0.9, $"class={c}"))
            .Append(Mv("conditional_accuracy", 0.85))
            .Reverse()
            .ToList();

        var report = GateDecision.Evaluate(Gate(new GateCheckOptions { Metric = "conditional_accuracy", Slice = "class=*", Min = 0.6 }), candidate, null);

        Assert.False(report.Passed);
        Assert.Equal(Enumerable.Range(0, 12).Select(c => $"class={c}"), report.Rows.Select(r => r.Slice));
        var failed = Assert.Single(report.Rows, r => r.Verdict == GateVerdict.Fail);
        Assert.Equal("class=10", failed.Slice);
        Assert.Equal("0.4 < 0.6", failed.Reason);
        Assert.StartsWith("GATE FAILED: conditional_accuracy[class=10] 0.4 < 0.6 (12 checks, 1 failed, 0 skipped)", report.ToText(), StringComparison.Ordinal);
    }

    [Fact]
    public void PerClassWildcard_ChampionMissingASlice_FailsThatSlice()
    {
        var gate = Gate(new GateCheckOptions { Metric = "fid", Slice = "class=*", MaxRegression = 5 });
        MetricValue[] candidate = [Mv("fid", 40, "class=0"), Mv("fid", 41, "class=1"), Mv("fid", 42, "class=2")];
        MetricValue[] champion = [Mv("fid", 40, "class=0"), Mv("fid", 41, "class=2")];

        var report = GateDecision.Evaluate(gate, candidate, champion);

        Assert.False(report.Passed);
        Assert.Equal(
            [("class=0", GateVerdict.Pass), ("class=1", GateVerdict.Fail), ("class=2", GateVerdict.Pass)],
            report.Rows.Select(r => (r.Slice, r.Verdict)));
        Assert.Equal("missing from champion (not comparable)", report.Rows[1].Reason);
    }

    [Fact]
    public void PerClassWildcard_ASliceOnlyTheChampionHas_FailsAsMissingFromCandidate()
    {
        var gate = Gate(new GateCheckOptions { Metric = "fid", Slice = "class=*", Max = 100 });

        var report = GateDecision.Evaluate(gate, [Mv("fid", 40, "class=0")], [Mv("fid", 40, "class=0"), Mv("fid", 40, "class=1")]);

        Assert.Equal([("class=0", GateVerdict.Pass), ("class=1", GateVerdict.Fail)], report.Rows.Select(r => (r.Slice, r.Verdict)));
        Assert.Equal("missing from candidate", report.Rows[1].Reason);
    }

    [Fact]
    public void PerClassWildcard_NoSlicesAtAll_Fails()
    {
        var report = GateDecision.Evaluate(Gate(new GateCheckOptions { Metric = "fid", Slice = "class=*", Max = 100 }), [Mv("fid", 40)], null);

        var row = Assert.Single(report.Rows);
        Assert.Equal((GateVerdict.Fail, "class=*", "no such slices in candidate"), (row.Verdict, row.Slice, row.Reason));
    }

    [Fact]
    public void SpecificSlice_MatchesOnlyThatSlice_AndAllMatchesTheWholeSet()
    {
        var gate = Gate(
            new GateCheckOptions { Metric = "fid", Max = 50 },
            new GateCheckOptions { Metric = "fid", Slice = "class=3", Max = 30 });
        MetricValue[] candidate = [Mv("fid", 45), Mv("fid", 20, "class=3"), Mv("fid", 99, "class=4")];

        var report = GateDecision.Evaluate(gate, candidate, null);

        Assert.True(report.Passed);
        Assert.Equal([("all", 45.0), ("class=3", 20.0)], report.Rows.Select(r => (r.Slice, r.Value!.Value)));
    }

    [Fact]
    public void EmptyGate_FailsClosed()
    {
        var report = GateDecision.Evaluate(new GateOptions(), [Mv("fid", 1)], null);

        Assert.False(report.Passed);
        Assert.Empty(report.Rows);
        Assert.Equal("no checks configured", report.Reason);
        Assert.Equal("GATE FAILED: no checks configured (0 checks, 0 failed, 0 skipped)\n", report.ToText());
    }

    [Fact]
    public void UnvalidatedConfig_UnknownMetricOrNoThreshold_FailsClosed()
    {
        var report = GateDecision.Evaluate(Gate(new GateCheckOptions { Metric = "FID", Max = 35 }, new GateCheckOptions { Metric = "fid" }), [Mv("FID", 1), Mv("fid", 1)], null);

        Assert.False(report.Passed);
        Assert.Equal(["unknown metric", "check sets no threshold"], report.Rows.Select(r => r.Reason));
    }

    public static TheoryData<string, double, double, bool> OverallCases => new()
    {
        // fid <= 35 and bleu >= 20 (a mixed gate is unrealistic but exercises both directions at once).
        { "all pass", 30, 25, true },
        { "one fails", 36, 25, false },
        { "both fail", 36, 19, false },
    };

    [Theory]
    [MemberData(nameof(OverallCases))]
    public void Overall_PassesOnlyWhenNoRowFails(string because, double fid, double bleu, bool passed)
    {
        var gate = Gate(new GateCheckOptions { Metric = "fid", Max = 35 }, new GateCheckOptions { Metric = "bleu", Min = 20, MaxRegression = 1 });

        var report = GateDecision.Evaluate(gate, [Mv("fid", fid), Mv("bleu", bleu)], null);

        Assert.True(passed == report.Passed, because);
        Assert.Equal(1, report.Skipped);
    }

    [Fact]
    public void Evaluate_IsDeterministic()
    {
        var gate = Gate(new GateCheckOptions { Metric = "fid", Slice = "class=*", Max = 50, MaxRegressionRelative = 0.1 }, new GateCheckOptions { Metric = "is", Min = 5 });
        var candidate = Enumerable.Range(0, 10).Select(c => Mv("fid", 30 + c, $"class={c}")).Append(Mv("is", 6)).ToList();
        var champion = Enumerable.Range(0, 10).Select(c => Mv("fid", 31 + c, $"class={c}")).ToList();

        string first = GateDecision.Evaluate(gate, candidate, champion).ToJson();
        candidate.Reverse();
        champion.Reverse();
        string second = GateDecision.Evaluate(gate, candidate, champion).ToJson();

        Assert.Equal(first, second);
    }
}
