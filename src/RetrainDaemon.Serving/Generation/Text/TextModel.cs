using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Core.Text;

namespace RetrainDaemon.Serving.Generation.Text;

/// <summary>
/// A loaded <c>gpt</c> version as serving needs it: its task (<see cref="GptTasks.Lm"/> or
/// <see cref="GptTasks.Conditional"/>), its shape and the vocabulary it was trained with — all read
/// from the model file's own metadata, so the bytes the registry hashed are all it depends on.
/// Immutable.
/// </summary>
internal sealed class TextModel(string model, int version, string task, GptShape shape, TextVocabulary vocabulary)
{
    public string Model => model;

    public int Version => version;

    public string VersionLabel { get; } = version.ToString(CultureInfo.InvariantCulture);

    public string Task => task;

    public bool Conditional => task == GptTasks.Conditional;

    public GptShape Shape => shape;

    /// <summary>The most tokens the graph has positions for: a sequence (prompt and generated tokens that are fed back) never exceeds it.</summary>
    public int Context => shape.Context;

    public TextVocabulary Vocabulary => vocabulary;

    /// <summary>"model 'x' v3", for messages.</summary>
    public string Name => string.Create(CultureInfo.InvariantCulture, $"model '{model}' v{version}");
}

/// <summary>The type and shape of a graph input or output (dimensions ≤ 0 are dynamic), independent of ONNX Runtime's metadata class so the checks are testable.</summary>
internal sealed record GraphTensor(TensorElementType Type, IReadOnlyList<int> Dimensions)
{
    public static GraphTensor Of(NodeMetadata meta) =>
        new(meta.IsTensor ? meta.ElementDataType : TensorElementType.DataTypeMax, meta.IsTensor ? meta.Dimensions : []);

    public override string ToString() =>
        $"{Type.ToString().ToLowerInvariant()} ({string.Join(", ", Dimensions.Select(d => d > 0 ? d.ToString(CultureInfo.InvariantCulture) : "?"))})";
}

/// <summary>
/// Recognizes text models among loaded versions and reads them (<see cref="GptGraph"/> is the
/// contract). A version that claims to be text but whose metadata is missing or inconsistent is
/// refused at load with every problem named, like any other bad candidate.
/// </summary>
internal static class TextModels
{
    public const string Family = "gpt";

    /// <summary>
    /// True when a version is a text model: its file says family <c>gpt</c>, or its graph has
    /// <c>input_ids</c>, or — without a catalog entry that says otherwise — the manifest's family
    /// hyperparameter is <c>gpt</c>, or the catalog calls the model text. A catalog that says image
    /// keeps the image contract (which then refuses a gpt graph by name).
    /// </summary>
    public static bool IsText(IReadOnlyDictionary<string, string> metadata, IEnumerable<string> inputs, VersionManifest? manifest, ModelOptions? catalog)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(inputs);
        if (metadata.TryGetValue(GptGraph.FamilyKey, out string? family) && family == Family)
        {
            return true;
        }

        if (catalog is not null && catalog.ParsedModality == Modality.Image)
        {
            return false;
        }

        return catalog?.ParsedModality == Modality.Text
            || manifest?.Hyperparameters.GetValueOrDefault("family") == Family
            || inputs.Contains(GptGraph.InputIds, StringComparer.Ordinal);
    }

    /// <summary>Reads a loaded session as a text model, or says everything that is wrong with it.</summary>
    public static TextModel Read(string model, int version, InferenceSession session) =>
        Read(model, version, session.ModelMetadata.CustomMetadataMap,
            session.InputMetadata.ToDictionary(p => p.Key, p => GraphTensor.Of(p.Value), StringComparer.Ordinal),
            session.OutputMetadata.ToDictionary(p => p.Key, p => GraphTensor.Of(p.Value), StringComparer.Ordinal));

    /// <summary>
    /// Reads the metadata (task, shape, vocabulary and its sha256) and checks it against the graph's
    /// signature: inputs and outputs of <see cref="GptGraph"/> for the shape's layers, heads and head
    /// size, and logits exactly as wide as the vocabulary.
    /// </summary>
    /// <exception cref="InvalidDataException">Every problem found, in one message.</exception>
    public static TextModel Read(string model, int version, IReadOnlyDictionary<string, string> metadata,
        IReadOnlyDictionary<string, GraphTensor> inputs, IReadOnlyDictionary<string, GraphTensor> outputs)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outputs);
        var problems = new List<string>();
        if (metadata.TryGetValue(GptGraph.FamilyKey, out string? family) && family != Family)
        {
            problems.Add($"its family metadata ('{GptGraph.FamilyKey}') is '{family}', not '{Family}'");
        }

        string? task = metadata.GetValueOrDefault(GptGraph.TaskKey);
        if (task is null)
        {
            problems.Add($"no task in its metadata ('{GptGraph.TaskKey}': {string.Join(" or ", GptTasks.All)})");
        }
        else if (!GptTasks.All.Contains(task))
        {
            problems.Add($"its task metadata ('{GptGraph.TaskKey}') is '{task}', not {string.Join(" or ", GptTasks.All)}");
        }

        GptShape? shape = null;
        if (!metadata.TryGetValue(GptGraph.ShapeKey, out string? shapeJson))
        {
            problems.Add($"no shape in its metadata ('{GptGraph.ShapeKey}')");
        }
        else if (ParseShape(shapeJson, out string? shapeProblem) is { } parsed)
        {
            shape = parsed;
        }
        else
        {
            problems.Add($"its shape metadata ('{GptGraph.ShapeKey}') is unusable: {shapeProblem}");
        }

        TextVocabulary? vocabulary = null;
        if (!metadata.TryGetValue(GptGraph.VocabularyKey, out string? vocabularyJson))
        {
            problems.Add($"no vocabulary in its metadata ('{GptGraph.VocabularyKey}')");
        }
        else
        {
            if (!metadata.TryGetValue(GptGraph.VocabularySha256Key, out string? expected))
            {
                problems.Add($"no vocabulary sha256 in its metadata ('{GptGraph.VocabularySha256Key}')");
            }
            else
            {
                string actual = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(vocabularyJson)));
                if (!string.Equals(actual, expected.Trim(), StringComparison.OrdinalIgnoreCase))
                {
                    problems.Add($"its vocabulary does not match its sha256: the metadata says {expected}, the vocabulary hashes to {actual}");
                }
            }

            try
            {
                vocabulary = TextVocabulary.FromJson(vocabularyJson);
            }
            catch (InvalidDataException ex)
            {
                problems.Add($"its vocabulary metadata cannot be read: {ex.Message}");
            }
        }

        if (shape is not null)
        {
            problems.AddRange(SignatureProblems(shape, inputs, outputs));
            if (vocabulary is not null && vocabulary.Count != shape.Vocabulary)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"its vocabulary has {vocabulary.Count} tokens but its shape metadata says {shape.Vocabulary}"));
            }
        }

        if (vocabulary is not null && outputs.TryGetValue(GptGraph.Logits, out var logits) && logits.Dimensions.Count == 3
            && logits.Dimensions[2] > 0 && logits.Dimensions[2] != vocabulary.Count)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture,
                $"its vocabulary has {vocabulary.Count} tokens but the graph's '{GptGraph.Logits}' have {logits.Dimensions[2]} per position"));
        }

        if (problems.Count > 0)
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"model '{model}' v{version} is not a servable {Family} text model: {string.Join("; ", problems)}"));
        }

        return new TextModel(model, version, task!, shape!, vocabulary!);
    }

    /// <summary>
    /// <see cref="GptShape"/> from its JSON (the exporter writes camelCase web defaults; any case is
    /// read, extra members such as the derived <c>headDim</c> are ignored), or null with the problem.
    /// Read by hand rather than by reflection: serving's JSON is source-generated throughout.
    /// </summary>
    internal static GptShape? ParseShape(string json, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            using var document = JsonDocument.Parse(json);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                problem = $"expected a JSON object, not {document.RootElement.ValueKind}";
                return null;
            }

            var values = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Value.ValueKind == JsonValueKind.Number && property.Value.TryGetInt32(out int value))
                {
                    values[property.Name] = value;
                }
            }

            string[] names = [nameof(GptShape.Layers), nameof(GptShape.Heads), nameof(GptShape.Width), nameof(GptShape.Context), nameof(GptShape.Vocabulary)];
            var missing = names.Where(n => !values.ContainsKey(n)).ToList();
            if (missing.Count > 0)
            {
                problem = $"missing or non-integer {string.Join(", ", missing.Select(m => m.ToLowerInvariant()))}";
                return null;
            }

            var shape = new GptShape(values["layers"], values["heads"], values["width"], values["context"], values["vocabulary"]);
            problem = shape.Layers < 1 ? "layers must be at least 1"
                : shape.Heads < 1 || shape.Width < 1 || shape.Width % shape.Heads != 0 ? "width must be a positive multiple of heads"
                : shape.Context < 2 ? "context must be at least 2"
                : shape.Vocabulary <= TextVocabulary.SpecialCount ? "vocabulary must have more than the special tokens"
                : null;
            return problem is null ? shape : null;
        }
        catch (JsonException ex)
        {
            problem = $"not JSON ({ex.Message})";
            return null;
        }
    }

    private static IEnumerable<string> SignatureProblems(GptShape shape, IReadOnlyDictionary<string, GraphTensor> inputs, IReadOnlyDictionary<string, GraphTensor> outputs)
    {
        var expectedInputs = new List<(string Name, TensorElementType Type, int[] Dims)>
        {
            (GptGraph.InputIds, TensorElementType.Int64, [-1, -1]),
            (GptGraph.PositionIds, TensorElementType.Int64, [-1, -1]),
            (GptGraph.AttentionMask, TensorElementType.Int64, [-1, -1]),
        };
        var expectedOutputs = new List<(string Name, TensorElementType Type, int[] Dims)>
        {
            (GptGraph.Logits, TensorElementType.Float, [-1, -1, -1]),
        };
        for (int layer = 0; layer < shape.Layers; layer++)
        {
            int[] cache = [-1, shape.Heads, -1, shape.HeadDim];
            expectedInputs.Add((GptGraph.PastKey(layer), TensorElementType.Float, cache));
            expectedInputs.Add((GptGraph.PastValue(layer), TensorElementType.Float, cache));
            expectedOutputs.Add((GptGraph.PresentKey(layer), TensorElementType.Float, cache));
            expectedOutputs.Add((GptGraph.PresentValue(layer), TensorElementType.Float, cache));
        }

        foreach (var (kind, expected, actual) in new[] { ("input", expectedInputs, inputs), ("output", expectedOutputs, outputs) })
        {
            foreach (var (name, type, dims) in expected)
            {
                if (!actual.TryGetValue(name, out var tensor))
                {
                    yield return $"the graph has no {kind} '{name}' (its {kind}s: {string.Join(", ", actual.Keys)})";
                    continue;
                }

                // A fixed dimension must match; a dynamic one in the graph is accepted (the runs check the real sizes).
                bool dimsMatch = tensor.Dimensions.Count == dims.Length
                    && dims.Select((d, i) => d <= 0 || tensor.Dimensions[i] <= 0 || tensor.Dimensions[i] == d).All(ok => ok);
                if (tensor.Type != type || !dimsMatch)
                {
                    string want = string.Join(", ", dims.Select(d => d > 0 ? d.ToString(CultureInfo.InvariantCulture) : "?"));
                    yield return $"{kind} '{name}' is {tensor}; the shape metadata needs {type.ToString().ToLowerInvariant()} ({want})";
                }
            }
        }

        var extra = inputs.Keys.Where(k => !expectedInputs.Any(e => e.Name == k)).ToList();
        if (extra.Count > 0)
        {
            yield return $"the graph has inputs a {Family} model of {shape.Layers} layer(s) does not: {string.Join(", ", extra.Select(e => $"'{e}'"))}";
        }
    }
}
