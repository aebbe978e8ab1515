using System.Reflection;
using System.Text.Json;
using Json.Schema;

namespace RetrainDaemon.Messaging.Ingestion;

/// <summary>The JSON Schemas of <c>docs/schemas/</c>, embedded in this assembly and compiled once.</summary>
public static class DataSchemas
{
    public static readonly JsonSchema Sample = Load("retrain.sample.v1.schema.json");
    public static readonly JsonSchema Feedback = Load("retrain.feedback.v1.schema.json");

    private static readonly EvaluationOptions Fast = new() { OutputFormat = OutputFormat.Flag };
    private static readonly EvaluationOptions Detailed = new() { OutputFormat = OutputFormat.List };

    private static JsonSchema Load(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("schemas/" + name)
            ?? throw new InvalidOperationException($"embedded schema {name} is missing from the build");
        using var reader = new StreamReader(stream);
        return JsonSchema.FromText(reader.ReadToEnd());
    }

    /// <summary>Null when <paramref name="data"/> conforms; otherwise the first problems, readable by an operator.</summary>
    public static string? Check(JsonSchema schema, JsonElement data)
    {
        if (schema.Evaluate(data, Fast).IsValid)
        {
            return null;
        }

        // Only failures pay for the detailed pass.
        var results = schema.Evaluate(data, Detailed);
        var problems = new List<string>();
        foreach (var detail in results.Details ?? [])
        {
            if (detail.Errors is null)
            {
                continue;
            }

            foreach (var (keyword, message) in detail.Errors)
            {
                string where = detail.InstanceLocation.ToString();
                problems.Add($"{(where.Length == 0 ? "/" : where)}: {message} ({keyword})");
                if (problems.Count == 3)
                {
                    return string.Join("; ", problems);
                }
            }
        }

        return problems.Count > 0 ? string.Join("; ", problems) : "data does not match the schema";
    }
}
