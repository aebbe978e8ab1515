namespace RetrainDaemon.Core.Text;

/// <summary>
/// The contract of an exported <c>gpt</c> model: one ONNX graph that does both prefill and decode.
/// Prefill feeds the prompt with zero-length past tensors; each decode step feeds one new token per
/// row with the previous step's presents as past. Rows of a batch may have different true lengths:
/// they are left-padded, the padding is 0 in <see cref="AttentionMask"/>, and <see cref="PositionIds"/>
/// counts only real tokens. The exporter, the evaluator and the serving loop all use these names.
/// <code>
/// inputs   input_ids       int64 (batch, seq)
///          position_ids    int64 (batch, seq)             position of each token, 0-based, &lt; context
///          attention_mask  int64 (batch, past + seq)      1 = a real token, 0 = padding
///          past_key_{l}    float (batch, heads, past, head_dim)   l = 0 … layers-1 (past may be 0)
///          past_value_{l}  float (batch, heads, past, head_dim)
/// outputs  logits          float (batch, seq, vocab)
///          present_key_{l} float (batch, heads, past + seq, head_dim)
///          present_value_{l}
/// </code>
/// The model file carries its vocabulary and configuration in <c>metadata_props</c>, so the bytes the
/// registry hashes are everything serving needs; a file without them, or whose vocabulary does not
/// match the graph's logits, is refused at load.
/// </summary>
public static class GptGraph
{
    public const string InputIds = "input_ids";
    public const string PositionIds = "position_ids";
    public const string AttentionMask = "attention_mask";
    public const string Logits = "logits";

    public static string PastKey(int layer) => $"past_key_{layer}";

    public static string PastValue(int layer) => $"past_value_{layer}";

    public static string PresentKey(int layer) => $"present_key_{layer}";

    public static string PresentValue(int layer) => $"present_value_{layer}";

    /// <summary>Metadata: the model family, <c>gpt</c>.</summary>
    public const string FamilyKey = "retrain.family";

    /// <summary>Metadata: <see cref="GptTasks.Lm"/> or <see cref="GptTasks.Conditional"/>.</summary>
    public const string TaskKey = "retrain.task";

    /// <summary>Metadata: <see cref="GptShape"/> as JSON.</summary>
    public const string ShapeKey = "retrain.gpt.shape";

    /// <summary>Metadata: the model's vocabulary (<see cref="TextVocabulary.ToJson"/>).</summary>
    public const string VocabularyKey = "retrain.vocabulary";

    /// <summary>Metadata: sha256 (hex) of the vocabulary JSON, checked at load.</summary>
    public const string VocabularySha256Key = "retrain.vocabulary.sha256";

    /// <summary>Additive attention bias of a masked position (finite, so a fully padded row stays finite).</summary>
    public const float MaskedBias = -1e9f;
}

/// <summary>The two task modes of the <c>gpt</c> family.</summary>
public static class GptTasks
{
    /// <summary>Unconditional or prompted text: <c>[BOS] text [EOS]</c>.</summary>
    public const string Lm = "lm";

    /// <summary>Source ⇒ target: <c>[BOS] source [SEP] target [EOS]</c>, loss on target tokens only.</summary>
    public const string Conditional = "conditional";

    public static readonly IReadOnlyList<string> All = [Lm, Conditional];
}

/// <summary>What a consumer of the graph needs to know about its shape (stored as metadata).</summary>
public sealed record GptShape(int Layers, int Heads, int Width, int Context, int Vocabulary)
{
    public int HeadDim => Width / Heads;
}
