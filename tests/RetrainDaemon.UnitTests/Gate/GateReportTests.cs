using System.Text.Json;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.Gate;
using static RetrainDaemon.UnitTests.Gate.GateDecisionTests;

namespace RetrainDaemon.UnitTests.Gate;

public class GateReportTests
{
    private static GateOptions DcganGate() => new()
    {
        Checks =
        [
            new() { Metric = "fid", Max = 35, MaxRegression = 2 },
            new() { Metric = "class_coverage", Min = 0.9 },
            new() { Metric = "conditional_accuracy", Slice = "class=*", Min = 0.6 },
        ],
    };

    private static GateReport Failing() => GateDecision.Evaluate(
        DcganGate(),
        [Mv("fid", 80.123456789), Mv("class_coverage", 1.0), Mv("conditional_accuracy", 0.7, "class=0"), Mv("conditional_accuracy", double.NaN, "class=1")],
        [Mv("fid", 30.1)]);

    [Fact]
    public void Json_RoundTrips_BitForBit_IncludingNaN()
    {
        var report = Failing();

        var back = GateReport.FromJson(report.ToJson());

        Assert.Equal(report.Passed, back.Passed);
        Assert.Equal(report.HasChampion, back.HasChampion);
        Assert.Equal(report.Reason, back.Reason);
        Assert.Equal(report.Rows, back.Rows);
        Assert.Equal(80.123456789, back.Rows[0].Value);
        Assert.True(double.IsNaN(back.Rows[^1].Value!.Value));
        Assert.Equal(report.ToJson(), back.ToJson());
    }

    [Fact]
    public void Json_HasStableCamelCaseNames_AndSnakeCaseEnums()
    {
        using var doc = JsonDocument.Parse(Failing().ToJson());
        var root = doc.RootElement;

        Assert.Equal(
            ["passed", "hasChampion", "rows", "reason", "checks", "failed", "skipped"],
            root.EnumerateObject().Select(p => p.Name));
        var row = root.GetProperty("rows")[1];
        Assert.Equal(
            ["metric", "slice", "kind", "value", "championValue", "limit", "threshold", "verdict", "reason"],
            row.EnumerateObject().Select(p => p.Name));
        Assert.Equal("regression", row.GetProperty("kind").GetString());
        Assert.Equal("fail", row.GetProperty("verdict").GetString());
        Assert.Equal(32.1, row.GetProperty("limit").GetDouble());
        var rows = root.GetProperty("rows");
        Assert.Equal("NaN", rows[rows.GetArrayLength() - 1].GetProperty("value").GetString());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("rows")[0].GetProperty("championValue").ValueKind);
        Assert.Equal(3, root.GetProperty("failed").GetInt32());
    }

    [Fact]
    public void Json_KeepsThresholdTextReadable()
    {
        string json = Failing().ToJson();

        Assert.Contains("\"threshold\": \"regression <= 2 (abs)\"", json, StringComparison.Ordinal);
        Assert.Contains("\"reason\": \"80.1235 > 32.1 = champion 30.1 + 2\"", json, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_EmptyGateReport_RoundTrips()
    {
        var report = GateDecision.Evaluate(new GateOptions(), [], null);

        var back = GateReport.FromJson(report.ToJson());

        Assert.Equal((false, false, "no checks configured"), (back.Passed, back.HasChampion, back.Reason));
        Assert.Empty(back.Rows);
    }

    [Theory]
    [InlineData("null")]
    [InlineData("[1, 2]")]
    [InlineData("{\"passed\": \"yes\"}")]
    public void FromJson_RejectsWhatIsNotAReport(string json)
    {
        Assert.ThrowsAny<JsonException>(() => GateReport.FromJson(json));
    }

    [Fact]
    public void Text_FailedReport_HeadlineThenOneAlignedLinePerRow()
    {
        string text = Failing().ToText();

        string expected =
            "GATE FAILED: fid 80.1235 > 35; fid 80.1235 > 32.1 = champion 30.1 + 2; conditional_accuracy[class=1] candidate value is NaN (5 checks, 3 failed, 0 skipped)\n" +
            "verdict  check                          value    champion  threshold              reason\n" +
            "FAIL     fid                            80.1235  -         <= 35                  80.1235 > 35\n" +
            "FAIL     fid                            80.1235  30.1      regression <= 2 (abs)  80.1235 > 32.1 = champion 30.1 + 2\n" +
            "PASS     class_coverage                 1        -         >= 0.9                 1 >= 0.9\n" +
            "PASS     conditional_accuracy[class=0]  0.7      -         >= 0.6                 0.7 >= 0.6\n" +
            "FAIL     conditional_accuracy[class=1]  NaN      -         >= 0.6                 candidate value is NaN\n";
        Assert.Equal(expected, text);
    }

    [Fact]
    public void Text_PassedReport_CountsSkippedRows()
    {
        var report = GateDecision.Evaluate(
            DcganGate(),
            [Mv("fid", 30), Mv("class_coverage", 1.0), Mv("conditional_accuracy", 0.7, "class=0")],
            champion: null);

        string[] lines = report.ToText().Split('\n');

        Assert.Equal("GATE PASSED (4 checks, 0 failed, 1 skipped)", lines[0]);
        Assert.StartsWith("SKIP     fid", lines[3], StringComparison.Ordinal);
        Assert.EndsWith("no champion", lines[3], StringComparison.Ordinal);
        Assert.DoesNotContain(lines, l => l.EndsWith(' '));
    }

    [Fact]
    public void Text_Headline_ListsAtMostThreeFailures()
    {
        var gate = new GateOptions { Checks = [new() { Metric = "conditional_accuracy", Slice = "class=*", Min = 0.6 }] };
        var candidate = Enumerable.Range(0, 5).Select(c => Mv("conditional_accuracy", 0.1, $"class={c}")).ToList();

        string headline = GateDecision.Evaluate(gate, candidate, null).Headline();

        Assert.Equal(
            "GATE FAILED: conditional_accuracy[class=0] 0.1 < 0.6; conditional_accuracy[class=1] 0.1 < 0.6; conditional_accuracy[class=2] 0.1 < 0.6; +2 more (5 checks, 5 failed, 0 skipped)",
            headline);
    }

    [Fact]
    public void Text_UsesInvariantCulture()
    {
        var previous = Thread.CurrentThread.CurrentCulture;
        try
        {
            Thread.CurrentThread.CurrentCulture = new System.Globalization.CultureInfo("de-DE");
            var report = GateDecision.Evaluate(new GateOptions { Checks = [new() { Metric = "bleu", Min = 20.5 }] }, [new MetricValue("bleu", null, 27.25, "s")], null);

            Assert.Contains("27.25 >= 20.5", report.ToText(), StringComparison.Ordinal);
            Assert.Contains("27.25", report.ToJson(), StringComparison.Ordinal);
        }
        finally
        {
            Thread.CurrentThread.CurrentCulture = previous;
        }
    }
}
