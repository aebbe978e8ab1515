using Microsoft.ML.OnnxRuntime.Tensors;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Serving.Generation.Text;

namespace RetrainDaemon.UnitTests.Serving;

/// <summary>
/// Reading a text version at load: what makes a version a text model, and every reason one is refused
/// (metadata missing or inconsistent with itself or with the graph), each named in the refusal.
/// </summary>
public sealed class TextModelMetadataTests
{
    private static readonly Lazy<TextVocabulary> SharedVocabulary = new(() => TextVocabulary.Build(["the cat sat on the mat"], maxSize: 280, minCount: 1));

    private static TextVocabulary Vocabulary => SharedVocabulary.Value;

    private static Dictionary<string, string> Metadata(int? vocabularyInShape = null) => new(StringComparer.Ordinal)
    {
        [GptGraph.FamilyKey] = "gpt",
        [GptGraph.TaskKey] = GptTasks.Lm,
        [GptGraph.ShapeKey] = $$"""{"layers":1,"heads":2,"width":8,"context":32,"vocabulary":{{vocabularyInShape ?? Vocabulary.Count}},"headDim":4}""",
        [GptGraph.VocabularyKey] = Vocabulary.ToJson(),
        [GptGraph.VocabularySha256Key] = Vocabulary.Sha256,
    };

    private static Dictionary<string, GraphTensor> Inputs() => new(StringComparer.Ordinal)
    {
        [GptGraph.InputIds] = new(TensorElementType.Int64, [-1, -1]),
        [GptGraph.PositionIds] = new(TensorElementType.Int64, [-1, -1]),
        [GptGraph.AttentionMask] = new(TensorElementType.Int64, [-1, -1]),
        [GptGraph.PastKey(0)] = new(TensorElementType.Float, [-1, 2, -1, 4]),
        [GptGraph.PastValue(0)] = new(TensorElementType.Float, [-1, 2, -1, 4]),
    };

    private static Dictionary<string, GraphTensor> Outputs(int? logits = null) => new(StringComparer.Ordinal)
    {
        [GptGraph.Logits] = new(TensorElementType.Float, [-1, -1, logits ?? Vocabulary.Count]),
        [GptGraph.PresentKey(0)] = new(TensorElementType.Float, [-1, 2, -1, 4]),
        [GptGraph.PresentValue(0)] = new(TensorElementType.Float, [-1, 2, -1, 4]),
    };

    [Fact]
    public void A_consistent_file_is_read_with_its_task_shape_and_vocabulary()
    {
        var model = TextModels.Read("tiny", 2, Metadata(), Inputs(), Outputs());

        Assert.Equal((GptTasks.Lm, false, 32), (model.Task, model.Conditional, model.Context));
        Assert.Equal(new GptShape(1, 2, 8, 32, Vocabulary.Count), model.Shape);
        Assert.Equal(Vocabulary.Sha256, model.Vocabulary.Sha256);
    }

    [Fact]
    public void The_shape_is_read_in_any_case_and_extra_members_are_ignored()
    {
        var shape = TextModels.ParseShape("""{"Layers":2,"HEADS":4,"width":64,"context":128,"vocabulary":900,"headDim":16,"extra":"x"}""", out string? problem);

        Assert.Null(problem);
        Assert.Equal(new GptShape(2, 4, 64, 128, 900), shape);
    }

    public static TheoryData<string, string> Refusals => new()
    {
        { "no-vocabulary", "no vocabulary in its metadata ('retrain.vocabulary')" },
        { "no-sha", "no vocabulary sha256 in its metadata ('retrain.vocabulary.sha256')" },
        { "wrong-sha", "its vocabulary does not match its sha256: the metadata says 00ff" },
        { "bad-vocabulary", "its vocabulary metadata cannot be read: vocabulary JSON" },
        { "no-task", "no task in its metadata ('retrain.task': lm or conditional)" },
        { "bad-task", "its task metadata ('retrain.task') is 'chat', not lm or conditional" },
        { "no-shape", "no shape in its metadata ('retrain.gpt.shape')" },
        { "bad-shape", "its shape metadata ('retrain.gpt.shape') is unusable: missing or non-integer layers, heads" },
        { "odd-heads", "width must be a positive multiple of heads" },
        { "other-family", "its family metadata ('retrain.family') is 'dcgan', not 'gpt'" },
        { "logits-width", "the graph's 'logits' have 999 per position" },
        { "shape-vocabulary", "but its shape metadata says 12345" },
        { "missing-past", "the graph has no input 'past_value_0'" },
        { "float-ids", "input 'input_ids' is float (?, ?); the shape metadata needs int64 (?, ?)" },
        { "wrong-heads", "input 'past_key_0' is float (?, 3, ?, 4); the shape metadata needs float (?, 2, ?, 4)" },
        { "extra-input", "the graph has inputs a gpt model of 1 layer(s) does not: 'latent'" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void Inconsistent_files_are_refused_naming_the_problem(string kind, string expected)
    {
        var metadata = Metadata();
        var inputs = Inputs();
        var outputs = Outputs();
        switch (kind)
        {
            case "no-vocabulary": metadata.Remove(GptGraph.VocabularyKey); break;
            case "no-sha": metadata.Remove(GptGraph.VocabularySha256Key); break;
            case "wrong-sha": metadata[GptGraph.VocabularySha256Key] = "00ff"; break;
            case "bad-vocabulary":
                metadata[GptGraph.VocabularyKey] = """{"format":1}""";
                metadata[GptGraph.VocabularySha256Key] = "0d9d1fb5c87a8a4a59bb6d4f1c5c5c47e4e6fe7fb0b8d6fd7bd4c7db6c1b3e0d";
                break;
            case "no-task": metadata.Remove(GptGraph.TaskKey); break;
            case "bad-task": metadata[GptGraph.TaskKey] = "chat"; break;
            case "no-shape": metadata.Remove(GptGraph.ShapeKey); break;
            case "bad-shape": metadata[GptGraph.ShapeKey] = "{}"; break;
            case "odd-heads": metadata[GptGraph.ShapeKey] = """{"layers":1,"heads":3,"width":8,"context":32,"vocabulary":300}"""; break;
            case "other-family": metadata[GptGraph.FamilyKey] = "dcgan"; break;
            case "logits-width": outputs = Outputs(logits: 999); break;
            case "shape-vocabulary": metadata = Metadata(vocabularyInShape: 12345); break;
            case "missing-past": inputs.Remove(GptGraph.PastValue(0)); break;
            case "float-ids": inputs[GptGraph.InputIds] = new(TensorElementType.Float, [-1, -1]); break;
            case "wrong-heads": inputs[GptGraph.PastKey(0)] = new(TensorElementType.Float, [-1, 3, -1, 4]); break;
            case "extra-input": inputs["latent"] = new(TensorElementType.Float, [-1, 64]); break;
            default: throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }

        var refused = Assert.Throws<InvalidDataException>(() => TextModels.Read("tiny", 7, metadata, inputs, outputs));

        Assert.StartsWith("model 'tiny' v7 is not a servable gpt text model: ", refused.Message, StringComparison.Ordinal);
        Assert.Contains(expected, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_problem_is_named_at_once()
    {
        var metadata = Metadata();
        metadata.Remove(GptGraph.VocabularyKey);
        metadata.Remove(GptGraph.TaskKey);
        var inputs = Inputs();
        inputs.Remove(GptGraph.AttentionMask);

        var refused = Assert.Throws<InvalidDataException>(() => TextModels.Read("tiny", 7, metadata, inputs, Outputs()));

        Assert.Contains("no vocabulary", refused.Message, StringComparison.Ordinal);
        Assert.Contains("no task", refused.Message, StringComparison.Ordinal);
        Assert.Contains("no input 'attention_mask'", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    // family metadata, catalog modality (null: not in the catalog), manifest family, has input_ids → text?
    [InlineData("gpt", null, null, false, true)]
    [InlineData("gpt", "image", null, false, true)]
    [InlineData(null, "text", null, false, true)]
    [InlineData(null, null, "gpt", false, true)]
    [InlineData(null, null, null, true, true)]
    [InlineData(null, "image", "gpt", true, false)]
    [InlineData(null, null, "dcgan", false, false)]
    [InlineData("dcgan", null, null, false, false)]
    public void What_makes_a_version_a_text_model(string? family, string? modality, string? manifestFamily, bool inputIds, bool expected)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        if (family is not null)
        {
            metadata[GptGraph.FamilyKey] = family;
        }

        var catalog = modality is null ? null : new ModelOptions { Modality = modality };
        var manifest = manifestFamily is null ? null : Manifest(manifestFamily);
        string[] inputs = inputIds ? [GptGraph.InputIds] : ["latent"];

        Assert.Equal(expected, TextModels.IsText(metadata, inputs, manifest, catalog));
    }

    private static RetrainDaemon.Core.Registry.VersionManifest Manifest(string family) =>
        new()
        {
            Model = "tiny",
            Version = 1,
            Status = RetrainDaemon.Core.Registry.VersionStatus.Passed,
            CreatedAt = DateTimeOffset.UnixEpoch,
            Hyperparameters = new Dictionary<string, string>(StringComparer.Ordinal) { ["family"] = family },
        };
}
