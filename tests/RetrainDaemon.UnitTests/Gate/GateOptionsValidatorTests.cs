using Microsoft.Extensions.Configuration;
using RetrainDaemon.Core.Gate;
using RetrainDaemon.Core.Options;

namespace RetrainDaemon.UnitTests.Gate;

public class GateOptionsValidatorTests
{
    private static List<string> Validate(string modality, params GateCheckOptions[] checks)
    {
        var catalog = new ModelCatalogOptions();
        catalog.Models["dcgan"] = new ModelOptions { Modality = modality, Gate = new GateOptions { Checks = [.. checks] } };
        var result = new ModelCatalogOptionsValidator().Validate(null, catalog);
        return result.Failures?.ToList() ?? [];
    }

    /// <summary>A bad check, the start of the one failure it must produce (key and value), and what the message must say.</summary>
    public static TheoryData<string, GateCheckOptions, string, string> BadChecks => new()
    {
        { "unknown metric", new() { Metric = "fid_score", Max = 35 }, "Models:dcgan:Gate:Checks:0:Metric = 'fid_score'", "unknown metric; known metrics: fid, is, kid" },
        { "wrong case", new() { Metric = "FID", Max = 35 }, "Models:dcgan:Gate:Checks:0:Metric = 'FID'", "did you mean 'fid'?" },
        { "empty metric", new() { Metric = "", Max = 35 }, "Models:dcgan:Gate:Checks:0:Metric = ''", "unknown metric" },
        { "metric of the other modality", new() { Metric = "bleu", Min = 20 }, "Models:dcgan:Gate:Checks:0:Metric = 'bleu'", "is a metric of text models, but the model's Modality is image" },
        { "Min alone on a lower-is-better metric", new() { Metric = "fid", Min = 10 }, "Models:dcgan:Gate:Checks:0:Min = '10'", "wrong direction: fid is lower-is-better" },
        { "Max alone on a higher-is-better metric", new() { Metric = "class_coverage", Max = 0.9 }, "Models:dcgan:Gate:Checks:0:Max = '0.9'", "wrong direction: class_coverage is higher-is-better" },
        { "Min above Max", new() { Metric = "nn_distance_mean", Min = 3, Max = 2 }, "Models:dcgan:Gate:Checks:0:Min = '3'", "must not exceed Max (2)" },
        { "NaN Max", new() { Metric = "fid", Max = double.NaN }, "Models:dcgan:Gate:Checks:0:Max = 'NaN'", "must be a finite number" },
        { "infinite Min", new() { Metric = "is", Min = double.NegativeInfinity }, "Models:dcgan:Gate:Checks:0:Min = '-Infinity'", "must be a finite number" },
        { "infinite MaxRegression", new() { Metric = "fid", MaxRegression = double.PositiveInfinity }, "Models:dcgan:Gate:Checks:0:MaxRegression = 'Infinity'", "must be a finite number" },
        { "negative MaxRegression", new() { Metric = "fid", MaxRegression = -2 }, "Models:dcgan:Gate:Checks:0:MaxRegression = '-2'", "must be >= 0" },
        { "negative MaxRegressionRelative", new() { Metric = "fid", MaxRegressionRelative = -0.1 }, "Models:dcgan:Gate:Checks:0:MaxRegressionRelative = '-0.1'", "must be >= 0" },
        { "percent written as a whole number", new() { Metric = "fid", MaxRegressionRelative = 5 }, "Models:dcgan:Gate:Checks:0:MaxRegressionRelative = '5'", "in [0, 1] (0.05 = 5%)" },
        { "negative MinImprovement", new() { Metric = "is", MinImprovement = -1 }, "Models:dcgan:Gate:Checks:0:MinImprovement = '-1'", "must be >= 0" },
        { "negative MinImprovementRelative", new() { Metric = "is", MinImprovementRelative = -0.01 }, "Models:dcgan:Gate:Checks:0:MinImprovementRelative = '-0.01'", "must be >= 0" },
        { "NaN MinImprovementRelative", new() { Metric = "is", MinImprovementRelative = double.NaN }, "Models:dcgan:Gate:Checks:0:MinImprovementRelative = 'NaN'", "must be a finite number" },
        { "regression and improvement together", new() { Metric = "fid", MaxRegression = 2, MinImprovement = 1 }, "Models:dcgan:Gate:Checks:0:MinImprovement = '1'", "either tolerates a regression or demands an improvement" },
        { "no threshold at all", new() { Metric = "fid" }, "Models:dcgan:Gate:Checks:0 = 'fid'", "sets no threshold" },
        { "slice without '='", new() { Metric = "fid", Slice = "class3", Max = 35 }, "Models:dcgan:Gate:Checks:0:Slice = 'class3'", "unknown slice syntax" },
        { "slice with spaces", new() { Metric = "fid", Slice = "class = 3", Max = 35 }, "Models:dcgan:Gate:Checks:0:Slice = 'class = 3'", "unknown slice syntax" },
        { "slice with a partial wildcard", new() { Metric = "fid", Slice = "class=1*", Max = 35 }, "Models:dcgan:Gate:Checks:0:Slice = 'class=1*'", "unknown slice syntax" },
        { "unknown slice dimension", new() { Metric = "fid", Slice = "label=3", Max = 35 }, "Models:dcgan:Gate:Checks:0:Slice = 'label=3'", "unknown slice dimension 'label'" },
    };

    [Theory]
    [MemberData(nameof(BadChecks))]
    public void BadCheck_FailsStartUp_NamingKeyValueAndProblem(string because, GateCheckOptions check, string keyAndValue, string problem)
    {
        var failures = Validate("image", check);

        var failure = Assert.Single(failures);
        Assert.True(failure.StartsWith(keyAndValue + ": ", StringComparison.Ordinal), $"{because}: {failure}");
        Assert.Contains(problem, failure, StringComparison.Ordinal);
    }

    [Fact]
    public void DuplicateMetricAndSlice_IsReportedOnTheSecondCheck()
    {
        var failures = Validate(
            "image",
            new() { Metric = "fid", Max = 35 },
            new() { Metric = "fid", Slice = "ALL", MaxRegression = 2 },
            new() { Metric = "fid", Slice = "class=*", Max = 60 },
            new() { Metric = "fid", Slice = "class=3", Max = 40 });

        var failure = Assert.Single(failures);
        Assert.StartsWith("Models:dcgan:Gate:Checks:1 = 'fid[all]': same metric and slice as Checks:0", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void EveryProblemIsReportedAtOnce()
    {
        var failures = Validate(
            "image",
            new() { Metric = "fid", Min = 10, MaxRegression = -1 },
            new() { Metric = "nope", Slice = "x" });

        Assert.Contains(failures, f => f.StartsWith("Models:dcgan:Gate:Checks:0:Min = '10'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Models:dcgan:Gate:Checks:0:MaxRegression = '-1'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Models:dcgan:Gate:Checks:1:Metric = 'nope'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Models:dcgan:Gate:Checks:1:Slice = 'x'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Models:dcgan:Gate:Checks:1 = 'nope': sets no threshold", StringComparison.Ordinal));
    }

    public static TheoryData<string, string, GateCheckOptions> GoodChecks => new()
    {
        { "fid quality bar", "image", new() { Metric = "fid", Max = 35, MaxRegression = 2 } },
        { "higher-is-better bar with relative regression", "image", new() { Metric = "class_coverage", Min = 0.9, MaxRegressionRelative = 0.05 } },
        { "sanity range on a higher-is-better metric", "image", new() { Metric = "nn_distance_mean", Min = 0.1, Max = 2 } },
        { "sanity range on a lower-is-better metric", "text", new() { Metric = "perplexity", Min = 1.5, Max = 80 } },
        { "change threshold only", "text", new() { Metric = "bleu", MinImprovement = 0 } },
        { "relative improvement only, per class", "image", new() { Metric = "conditional_accuracy", Slice = "class=*", MinImprovementRelative = 0.01 } },
        { "both regressions", "image", new() { Metric = "kid", MaxRegression = 0.001, MaxRegressionRelative = 0.1 } },
        { "one slice", "image", new() { Metric = "fid", Slice = "class=3", Max = 50 } },
        { "empty slice means all", "text", new() { Metric = "rougeLsum", Slice = "", Min = 0.2 } },
        { "relative of exactly 1", "image", new() { Metric = "fid", MaxRegressionRelative = 1 } },
    };

    [Theory]
    [MemberData(nameof(GoodChecks))]
    public void GoodCheck_IsValid(string because, string modality, GateCheckOptions check)
    {
        Assert.True(Validate(modality, check).Count == 0, $"{because}: {string.Join(" | ", Validate(modality, check))}");
    }

    [Fact]
    public void EmptyGate_IsValidConfig()
    {
        Assert.Empty(Validate("image"));
        Assert.True(new GateOptionsValidator().Validate(null, new GateOptions()).Succeeded);
    }

    [Fact]
    public void StandaloneValidator_UsesTheGateSection_AndSkipsTheModalityCheck()
    {
        var gate = new GateOptions { Checks = [new() { Metric = "bleu", Max = 30 }] };

        var failure = Assert.Single(new GateOptionsValidator().Validate(null, gate).Failures!);

        Assert.StartsWith("Gate:Checks:0:Max = '30': wrong direction", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Catalog_HasEveryMetricOnce_WithTheDocumentedDirection()
    {
        string[] lower = ["fid", "kid", "mifid", "memorized_share", "reconstruction_mse", "self_bleu", "perplexity", "copy_share", "source_copy_share"];
        string[] higher =
        [
            "is", "nn_distance_mean", "class_coverage", "class_entropy", "mean_pairwise_distance", "conditional_accuracy",
            "bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum", "distinct_1", "distinct_2", "test_bleu",
        ];

        Assert.Equal(lower.Length + higher.Length, MetricCatalog.All.Count);
        Assert.All(lower, m => Assert.Equal(MetricDirection.Lower, Assert.IsType<MetricInfo>(MetricCatalog.TryGet(m, out var i) ? i : null).Better));
        Assert.All(higher, m => Assert.Equal(MetricDirection.Higher, Assert.IsType<MetricInfo>(MetricCatalog.TryGet(m, out var i) ? i : null).Better));
        Assert.All(MetricCatalog.All, m => Assert.False(string.IsNullOrWhiteSpace(m.Description)));
    }

    /// <summary>The example gate of the hand-over note, bound the way the host binds appsettings.json.</summary>
    [Fact]
    public void ExampleGate_BindsFromConfiguration_AndIsValid()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Models:dcgan:Modality"] = "image",
            ["Models:dcgan:Gate:Checks:0:Metric"] = "fid",
            ["Models:dcgan:Gate:Checks:0:Max"] = "35",
            ["Models:dcgan:Gate:Checks:0:MaxRegression"] = "2",
            ["Models:dcgan:Gate:Checks:0:MaxRegressionRelative"] = "0.05",
            ["Models:dcgan:Gate:Checks:1:Metric"] = "class_coverage",
            ["Models:dcgan:Gate:Checks:1:Min"] = "0.9",
            ["Models:dcgan:Gate:Checks:2:Metric"] = "conditional_accuracy",
            ["Models:dcgan:Gate:Checks:2:Slice"] = "class=*",
            ["Models:dcgan:Gate:Checks:2:Min"] = "0.6",
            ["Models:dcgan:Gate:Checks:2:MaxRegression"] = "0.05",
            ["Models:dcgan:Gate:Checks:3:Metric"] = "memorized_share",
            ["Models:dcgan:Gate:Checks:3:Max"] = "0.01",
        }).Build();
        var catalog = new ModelCatalogOptions();
        config.GetSection(ModelCatalogOptions.Section).Bind(catalog.Models);

        var checks = catalog.Models["dcgan"].Gate.Checks;

        Assert.Equal(4, checks.Count);
        Assert.Equal(("fid", "all", 35.0, 2.0, 0.05), (checks[0].Metric, checks[0].Slice, checks[0].Max!.Value, checks[0].MaxRegression!.Value, checks[0].MaxRegressionRelative!.Value));
        Assert.Null(checks[0].Min);
        Assert.Equal("class=*", checks[2].Slice);
        Assert.True(new ModelCatalogOptionsValidator().Validate(null, catalog).Succeeded);
    }
}
