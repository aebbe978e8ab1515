using System.Text.Json.Nodes;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Evaluation.Analysis;

namespace RetrainDaemon.UnitTests.Analysis;

/// <summary>The report's JSON contract: a stable round trip, the documented field names, and the weights reader the next fine-tune uses.</summary>
public sealed class AnalysisReportJsonTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("rd-analysis-json-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    internal static AnalysisReport Sample() => new()
    {
        Model = "fashion-dcgan",
        Family = "dcgan",
        Modality = "image",
        CreatedUtc = new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero),
        Seed = 42,
        Champion = new ChampionInfo("/registry/fashion-dcgan/3/model.onnx", new string('a', 64), 3),
        Watermarks = new AnalysisWatermarks(4000, 4600),
        Protocol = "extractor:fashion-classifier@0123456789ab|layer:features|n:1000|seed:42",
        Holdout = new HoldoutInfo("store-fashion-dcgan@4600-recent:1000:abcdefabcdef", 1000, 0),
        GeneratedCount = 1000,
        Overall = [new AnalysisMetric("fid", 84.25, "extractor:fashion-classifier@0123456789ab|ref:x")],
        Slices =
        [
            new SliceReport
            {
                Slice = "class=1", Kind = SliceKind.Class, Status = SliceStatus.TooFewGenerated, HoldoutCount = 100, GeneratedCount = 2,
                Metrics = ReportDictionary.Ordered([KeyValuePair.Create("holdout_share", 0.1), KeyValuePair.Create("generated_share", 0.002)]),
                FeedbackCount = 3, MeanRating = 1.6666666666666667, Badness = 0.99, Score = 1.2, Weight = 3.1, Note = "2 of 1000 generated images are of this class",
            },
            new SliceReport
            {
                Slice = "class=0", Kind = SliceKind.Class, Status = SliceStatus.Ok, HoldoutCount = 98, GeneratedCount = 120,
                Metrics = ReportDictionary.Ordered([KeyValuePair.Create("frechet_distance", 40.5)]), Badness = 0.1, Score = 0.1, Weight = 0.77,
            },
        ],
        Feedback = new FeedbackSummary(3, 1, [new RatingSlice("rating=1", 1, 2, 2.0 / 3), new RatingSlice("rating=3", 3, 1, 1.0 / 3)], [new UnmatchedFeedback("class=42", 1, 2)]),
        Worst = ["class=1", "class=0"],
        Weights = ReportDictionary.Ordered([KeyValuePair.Create("class=1", 3.1), KeyValuePair.Create("class=0", 0.77)]),
        Weighting = WeightingReport.From(new SliceWeightOptions()),
        Drift = new DriftReport
        {
            Metric = "frechet_distance", Status = DriftStatus.Ok, Value = 12.5, FreshCount = 600, FreshAvailable = 600, TrainingCount = 2000, MinSamples = 50,
            Signature = "extractor:x|fresh:600|train:2000", Details = ReportDictionary.Ordered([KeyValuePair.Create("mean_term", 3.0)]),
        },
        Examples = [new TextExampleReport("len=0-15", "Open", "Öffnen", "Öffne")],
    };

    [Fact]
    public void Json_round_trips_byte_for_byte()
    {
        string json = Sample().ToJson();
        string again = AnalysisReport.FromJson(json).ToJson();
        Assert.Equal(json, again);
    }

    [Fact]
    public void Json_has_the_documented_field_names_in_ordinal_key_order()
    {
        var root = JsonNode.Parse(Sample().ToJson())!.AsObject();
        Assert.Equal(["format", "model", "family", "modality", "task", "created_utc", "seed", "champion", "watermarks", "protocol", "holdout", "generated_count",
            "overall", "slices", "feedback", "worst", "weights", "weighting", "drift", "examples"], root.Select(p => p.Key));
        Assert.Equal(1, root["format"]!.GetValue<int>());
        Assert.Equal(["class=0", "class=1"], root["weights"]!.AsObject().Select(p => p.Key)); // ordinal, whatever the insertion order
        var slice = root["slices"]![0]!.AsObject();
        Assert.Equal(["slice", "kind", "status", "holdout_count", "generated_count", "metrics", "feedback_count", "mean_rating", "badness", "score", "weight", "note"], slice.Select(p => p.Key));
        Assert.Equal("too_few_generated", slice["status"]!.GetValue<string>());
        Assert.Equal(["generated_share", "holdout_share"], slice["metrics"]!.AsObject().Select(p => p.Key));
        Assert.Equal(["metric", "status", "value", "fresh_count", "fresh_available", "training_count", "min_samples", "signature", "details"], root["drift"]!.AsObject().Select(p => p.Key));
        Assert.Contains("Öffnen", Sample().ToJson(), StringComparison.Ordinal); // readable, not \u-escaped
    }

    [Fact]
    public void Slice_weights_are_read_from_the_report_for_the_next_fine_tune()
    {
        string path = Path.Combine(directory, ErrorAnalysis.JsonFileName);
        File.WriteAllText(path, Sample().ToJson());
        var weights = SliceWeights.Read(path, expectedModel: "fashion-dcgan");
        Assert.Equal("fashion-dcgan", weights.Model);
        Assert.Equal(3.1, weights.ForClass(1));
        Assert.Equal(0.77, weights.WeightOf("class=0"));
        Assert.Equal(1.0, weights.ForClass(5)); // not in the report: neutral
        Assert.Equal(3.1 * 0.77, weights.ForText("class=1", "class=0"));
    }

    [Fact]
    public void The_weights_reader_refuses_what_it_cannot_trust_and_says_why()
    {
        string Problem(string json) => Assert.Throws<InvalidDataException>(() => SliceWeights.Parse(json, "r.json", "fashion-dcgan")).Message;
        Assert.Contains("not JSON", Problem("{"), StringComparison.Ordinal);
        Assert.Contains("no integer 'format'", Problem("""{"model":"fashion-dcgan","weights":{}}"""), StringComparison.Ordinal);
        Assert.Contains("format 2", Problem("""{"format":2,"model":"fashion-dcgan","weights":{}}"""), StringComparison.Ordinal);
        Assert.Contains("about model 'other'", Problem("""{"format":1,"model":"other","weights":{}}"""), StringComparison.Ordinal);
        Assert.Contains("no 'weights' object", Problem("""{"format":1,"model":"fashion-dcgan"}"""), StringComparison.Ordinal);
        Assert.Contains("class=1 = 0", Problem("""{"format":1,"model":"fashion-dcgan","weights":{"class=1":0}}"""), StringComparison.Ordinal);
        Assert.Contains("'class=1' is not a number", Problem("""{"format":1,"model":"fashion-dcgan","weights":{"class=1":"2"}}"""), StringComparison.Ordinal);
        Assert.Contains("two weights", Problem("""{"format":1,"model":"fashion-dcgan","weights":{"class=1":1,"class=1":2}}"""), StringComparison.Ordinal);
        Assert.Throws<FileNotFoundException>(() => SliceWeights.Read(Path.Combine(directory, "missing.json")));
    }

    [Fact]
    public void Report_reader_refuses_another_format()
    {
        string json = Sample().ToJson().Replace("\"format\": 1", "\"format\": 9", StringComparison.Ordinal);
        Assert.Contains("format 9", Assert.Throws<InvalidDataException>(() => AnalysisReport.FromJson(json)).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => ReportDictionary.Ordered([KeyValuePair.Create("x", double.NaN)]));
    }

    [Fact]
    public void Html_page_is_self_contained_and_encodes_data()
    {
        var report = Sample() with { Model = "<script>alert(1)</script>" };
        string html = AnalysisHtml.Render(report, [new ClassStrip("class=1", null, 0, [0x89, 0x50, 0x4E, 0x47], 1)]);
        Assert.DoesNotContain("<script>", html, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;", html, StringComparison.Ordinal);
        Assert.DoesNotContain("src=\"http", html, StringComparison.Ordinal);
        Assert.Contains("data:image/png;base64,iVBORw==", html, StringComparison.Ordinal);
        Assert.Contains("no generated samples", html, StringComparison.Ordinal);
        Assert.Contains("<svg", html, StringComparison.Ordinal);
        // A slice without a number shows its note in the chart instead of a bar.
        Assert.Contains("2 of 1000 generated images are of this class", html, StringComparison.Ordinal);
    }
}
