using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using RetrainDaemon.Messaging.Ingestion;

namespace RetrainDaemon.UnitTests;

/// <summary>
/// The ingest path validates with <see cref="CompiledSchema"/>; these tests hold it to the verdicts
/// of a reference evaluator (JsonSchema.Net) on the shipped schemas, over valid documents, known bad
/// ones, and thousands of random mutations of both.
/// </summary>
public class CompiledSchemaTests
{
    private static readonly EvaluationOptions Flag = new() { OutputFormat = OutputFormat.Flag };

    private static JsonSchema Reference(string name) =>
        JsonSchema.FromText(DataSchemas.Text(name).Replace("\"$id\"", "\"$comment\"", StringComparison.Ordinal)); // no global registration clash between tests

    private static readonly JsonObject Png = new() { ["width"] = 28, ["height"] = 28, ["channels"] = 1, ["encoding"] = "png", ["data"] = "iVBORw0KGgo=" };

    private static IEnumerable<JsonNode> SampleSeeds() =>
    [
        new JsonObject { ["modality"] = "image", ["image"] = Png.DeepClone(), ["label"] = 3 },
        new JsonObject { ["modality"] = "image", ["image"] = Png.DeepClone(), ["label"] = "Sneaker", ["split"] = "holdout" },
        new JsonObject { ["modality"] = "text", ["text"] = "A fortune.", ["label"] = "fortunes" },
        new JsonObject { ["modality"] = "text", ["text"] = "Datei", ["source_text"] = "File" },
        new JsonObject { ["modality"] = "text", ["text"] = "" },
    ];

    private static IEnumerable<JsonNode> FeedbackSeeds() =>
    [
        new JsonObject { ["generation_id"] = "g", ["model"] = "fortunes", ["version"] = 2, ["rating"] = 5 },
        new JsonObject { ["generation_id"] = "g", ["model"] = "fortunes", ["version"] = "3", ["accepted"] = false, ["rater"] = "ann" },
        new JsonObject { ["generation_id"] = "g", ["model"] = "fashion-mnist", ["version"] = 1, ["correction"] = Png.DeepClone() },
        new JsonObject { ["generation_id"] = "g", ["model"] = "fortunes", ["version"] = 1, ["correction"] = "better" },
    ];

    [Theory]
    [InlineData(DataSchemas.SampleSchemaName)]
    [InlineData(DataSchemas.FeedbackSchemaName)]
    public void Seeds_AreValid_InBothEngines(string name)
    {
        var compiled = CompiledSchema.FromText(DataSchemas.Text(name));
        var reference = Reference(name);
        foreach (var seed in name == DataSchemas.SampleSchemaName ? SampleSeeds() : FeedbackSeeds())
        {
            using var document = JsonDocument.Parse(seed.ToJsonString());
            Assert.True(reference.Evaluate(document.RootElement, Flag).IsValid, seed.ToJsonString());
            Assert.Null(compiled.Validate(document.RootElement));
        }
    }

    [Theory]
    [InlineData(DataSchemas.SampleSchemaName, 4000)]
    [InlineData(DataSchemas.FeedbackSchemaName, 4000)]
    public void RandomMutations_GetTheSameVerdict_AsTheReferenceEvaluator(string name, int mutations)
    {
        var compiled = CompiledSchema.FromText(DataSchemas.Text(name));
        var reference = Reference(name);
        var seeds = (name == DataSchemas.SampleSchemaName ? SampleSeeds() : FeedbackSeeds()).ToList();
        var random = new Random(20261127);
        int invalid = 0;
        for (int i = 0; i < mutations; i++)
        {
            var document = seeds[random.Next(seeds.Count)].DeepClone();
            int steps = 1 + random.Next(3);
            for (int s = 0; s < steps; s++)
            {
                Mutate(document, random);
            }

            string json = document.ToJsonString();
            using var parsed = JsonDocument.Parse(json);
            bool expected = reference.Evaluate(parsed.RootElement, Flag).IsValid;
            string? problem = compiled.Validate(parsed.RootElement);
            Assert.True(expected == (problem is null), $"reference says {(expected ? "valid" : "invalid")}, compiled says {problem ?? "valid"}: {json}");
            invalid += expected ? 0 : 1;
        }

        // The mutations must actually exercise the invalid side.
        Assert.InRange(invalid, mutations / 4, mutations - mutations / 10);
    }

    [Fact]
    public void Violation_NamesThePathAndTheKeyword()
    {
        using var document = JsonDocument.Parse("""{"modality":"image","image":{"width":28,"height":28,"channels":9,"encoding":"png","data":"x"}}""");
        Assert.Equal("/image/channels: 9 is greater than the maximum 4 (maximum)", DataSchemas.Sample.Validate(document.RootElement));
    }

    [Fact]
    public void UnsupportedKeyword_FailsCompilation()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => CompiledSchema.FromText("""{"type":"object","patternProperties":{"^x":{}}}"""));
        Assert.Contains("patternProperties", ex.Message, StringComparison.Ordinal);
    }

    private static readonly JsonNode?[] Replacements =
    [
        null, 0, -1, 1, 3, 4, 5, 6, 28, 4097, 1.5, 2.0, "", "x", "png", "raw-u8", "gif", "image", "text", "train", "holdout", "test",
        true, false, new JsonArray(), new JsonObject(), new string('z', 129), new string('z', 201), "fortunes",
    ];

    private static readonly string[] Names =
        ["modality", "image", "label", "text", "source_text", "split", "width", "height", "channels", "encoding", "data", "extra",
         "generation_id", "model", "version", "rating", "accepted", "correction", "rater"];

    private static void Mutate(JsonNode root, Random random)
    {
        // Pick an object in the document (the root or a nested one), then delete, replace or add a member.
        var objects = new List<JsonObject>();
        void Collect(JsonNode? node)
        {
            if (node is JsonObject o)
            {
                objects.Add(o);
                foreach (var (_, child) in o)
                {
                    Collect(child);
                }
            }
        }

        Collect(root);
        var target = objects[random.Next(objects.Count)];
        string name = Names[random.Next(Names.Length)];
        switch (random.Next(3))
        {
            case 0:
                target.Remove(name);
                break;
            default:
                var replacement = Replacements[random.Next(Replacements.Length)];
                target[name] = replacement?.DeepClone();
                break;
        }
    }
}
