using System.Globalization;
using System.Text.Json;

namespace RetrainDaemon.Core.Evaluation;

/// <summary>
/// The sampling weights an error-analysis report hands to the next fine-tune of its model: slice key
/// (<see cref="SliceKeys"/>) → weight. A slice the report does not name weighs 1. Read from the
/// report's <c>report.json</c> (fields <c>format</c>, <c>model</c>, <c>weights</c>; everything else in the
/// report is ignored here), so the training side needs nothing of the evaluation code.
/// </summary>
public sealed class SliceWeights
{
    /// <summary>The report format this reader understands (the report's <c>format</c> field).</summary>
    public const int Format = 1;

    private readonly Dictionary<string, double> weights;

    public SliceWeights(string model, IReadOnlyDictionary<string, double> weights)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(model);
        ArgumentNullException.ThrowIfNull(weights);
        var bad = weights.Where(w => !double.IsFinite(w.Value) || w.Value <= 0).Select(w => $"{w.Key} = {w.Value.ToString("R", CultureInfo.InvariantCulture)}").ToList();
        if (bad.Count > 0)
        {
            // A zero or negative weight would silently drop a slice from training; refuse it by name.
            throw new ArgumentException($"slice weights of model '{model}' must be positive finite numbers: {string.Join(", ", bad)}", nameof(weights));
        }

        Model = model;
        this.weights = new Dictionary<string, double>(weights, StringComparer.Ordinal);
    }

    public string Model { get; }

    public IReadOnlyDictionary<string, double> Weights => weights;

    /// <summary>The weight of <paramref name="slice"/>; 1 for a slice the report does not name.</summary>
    public double WeightOf(string slice) => weights.GetValueOrDefault(slice, 1.0);

    /// <summary>An image's weight: its class slice.</summary>
    public double ForClass(int label) => WeightOf(SliceKeys.Class(label));

    /// <summary>A text's weight: the product of its length-bucket and catalog weights (each slice family averages 1 on its own).</summary>
    public double ForText(string lengthBucket, string catalog) => WeightOf(lengthBucket) * WeightOf(catalog);

    /// <summary>Weights from a report file (<c>report.json</c>).</summary>
    /// <param name="path">The report.</param>
    /// <param name="expectedModel">When given, the report must be about this model (weights of another model are refused).</param>
    /// <exception cref="InvalidDataException">The file is not a report this reader understands; the message names the file and the problem.</exception>
    public static SliceWeights Read(string path, string? expectedModel = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"error-analysis report '{path}' does not exist", path);
        }

        return Parse(File.ReadAllText(path), $"'{path}'", expectedModel);
    }

    /// <summary>Weights from report JSON text; <paramref name="source"/> names it in errors.</summary>
    public static SliceWeights Parse(string json, string source = "the report", string? expectedModel = null)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{source} is not JSON: {ex.Message}", ex);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"{source}: expected a JSON object, found {root.ValueKind}");
            }

            if (!root.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.Number || !format.TryGetInt32(out int version))
            {
                throw new InvalidDataException($"{source} has no integer 'format' field: not an error-analysis report");
            }

            if (version != Format)
            {
                throw new InvalidDataException($"{source} has format {version}; this reader understands format {Format}");
            }

            if (!root.TryGetProperty("model", out var modelElement) || modelElement.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(modelElement.GetString()))
            {
                throw new InvalidDataException($"{source} has no 'model' string");
            }

            string model = modelElement.GetString()!;
            if (expectedModel is not null && !string.Equals(model, expectedModel, StringComparison.Ordinal))
            {
                throw new InvalidDataException($"{source} is about model '{model}', not '{expectedModel}'");
            }

            if (!root.TryGetProperty("weights", out var weightsElement) || weightsElement.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"{source} has no 'weights' object");
            }

            var weights = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var property in weightsElement.EnumerateObject())
            {
                if (property.Value.ValueKind != JsonValueKind.Number || !property.Value.TryGetDouble(out double weight))
                {
                    throw new InvalidDataException($"{source}: weight of slice '{property.Name}' is not a number ({property.Value.GetRawText()})");
                }

                if (!weights.TryAdd(property.Name, weight))
                {
                    throw new InvalidDataException($"{source}: slice '{property.Name}' has two weights");
                }
            }

            try
            {
                return new SliceWeights(model, weights);
            }
            catch (ArgumentException ex)
            {
                throw new InvalidDataException($"{source}: {ex.Message}", ex);
            }
        }
    }
}
