using System.Reflection;
using System.Text.Json;

namespace RetrainDaemon.Messaging.Ingestion;

/// <summary>The JSON Schemas of <c>docs/schemas/</c>, embedded in this assembly and compiled once.</summary>
public static class DataSchemas
{
    public const string SampleSchemaName = "retrain.sample.v1.schema.json";
    public const string FeedbackSchemaName = "retrain.feedback.v1.schema.json";

    public static readonly CompiledSchema Sample = CompiledSchema.FromText(Text(SampleSchemaName));
    public static readonly CompiledSchema Feedback = CompiledSchema.FromText(Text(FeedbackSchemaName));

    /// <summary>The schema file as shipped (the tests feed the same text to the reference evaluator).</summary>
    public static string Text(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("schemas/" + name)
            ?? throw new InvalidOperationException($"embedded schema {name} is missing from the build");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>Null when <paramref name="data"/> conforms; otherwise the first problem, readable by an operator.</summary>
    public static string? Check(CompiledSchema schema, JsonElement data) => schema.Validate(data);
}
