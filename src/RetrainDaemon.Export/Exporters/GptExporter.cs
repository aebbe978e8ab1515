using System.Text.Json;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Export.Onnx;
using RetrainDaemon.Training.Models;
using static TorchSharp.torch;

namespace RetrainDaemon.Export.Exporters;

/// <summary>
/// The <c>gpt</c> family as one ONNX graph that does prefill and KV-cache decode (contract:
/// <see cref="GptGraph"/>); it computes exactly <see cref="Gpt.Cached"/>, op for op:
/// <code>
/// input_ids, position_ids (B, T) → Gather(wte) + Gather(wpe) (B, T, W)
/// attention_mask (B, P+T) → Range/LessOrEqual (causal) ∧ mask ≠ 0 → Where(0, MaskedBias) → bias (B, 1, T, P+T)
/// per layer: LayerNormalization → MatMul(qkvᵀ) + b → Split → Reshape/Transpose (B, H, T, D)
///            → Concat(past, new) on axis 2 = present (B, H, P+T, D)
///            → MatMul(q, kᵀ) · D^-½ + bias → Softmax → MatMul(v) → Transpose/Reshape (B, T, W) → MatMul(projᵀ) + b → residual
///            → LayerNormalization → MatMul(fcᵀ) + b → GELU = 0.5·x·(1 + Erf(x/√2)) → MatMul(projᵀ) + b → residual
/// LayerNormalization(ln_f) → MatMul(Transpose(wte)) when tied, else MatMul(headᵀ) → logits (B, T, V)
/// </code>
/// Dropout is absent (eval). Linear weights are stored transposed, (in, out), under
/// <c>&lt;name&gt;_t</c> so a plain MatMul applies them to (B, T, in) activations; the tied output
/// projection is a Transpose node over <c>wte.weight</c> instead, so the embedding is stored once
/// (ORT folds the constant Transpose at session start).
/// The file's <c>metadata_props</c> carry the family, task, shape (<see cref="ShapeJson"/>) and the
/// vocabulary with its sha256, so the bytes the registry hashes are all serving needs.
/// </summary>
public sealed class GptExporter(Gpt gpt, string task, TextVocabulary vocabulary) : IOnnxExporter
{
    /// <summary>
    /// Longest random sequence <see cref="RandomInputs"/> draws (capped further by the context): long
    /// enough to cover multi-block attention and 100-token pasts, short enough that the 100-case parity
    /// check at batch 64 stays a few seconds on two cores.
    /// </summary>
    public const int RandomLengthCap = 100;

    /// <summary>
    /// Batch sizes of the export's random-input check when the caller names none. Not the generic 1 and 64:
    /// at batch 64 the logits alone are 64 × 100 × V floats per case (210 MB at V = 8192, in both runtimes
    /// and copied for comparison); measured here, a default-config GPT with V = 8192 verified in 19 s and
    /// 1.7 GB RSS at 1/64 against 3.3 s and 0.7 GB at 1/8, with the same max difference.
    /// </summary>
    public static readonly IReadOnlyList<int> DefaultBatchSizes = [1, 8];

    /// <summary>
    /// How <see cref="GptGraph.ShapeKey"/> is written: System.Text.Json web defaults (camelCase), e.g.
    /// <c>{"layers":2,"heads":4,"width":64,"context":256,"vocabulary":900,"headDim":16}</c>.
    /// <c>headDim</c> is derived and ignored on read: <c>JsonSerializer.Deserialize&lt;GptShape&gt;(json, JsonSerializerOptions.Web)</c>.
    /// </summary>
    public static readonly JsonSerializerOptions ShapeJsonOptions = JsonSerializerOptions.Web;

    private readonly string task = GptTasks.All.Contains(task)
        ? task
        : throw new ArgumentException($"gpt task '{task}' is not one of {string.Join(", ", GptTasks.All)}", nameof(task));

    private readonly TextVocabulary vocabulary = vocabulary.Count == gpt.Config.Vocabulary
        ? vocabulary
        : throw new ArgumentException(
            $"the vocabulary has {vocabulary.Count} tokens but the model's logits cover {gpt.Config.Vocabulary}; export the vocabulary the model was trained with",
            nameof(vocabulary));

    public Gpt Model => gpt;

    public string Task => task;

    public TextVocabulary Vocabulary => vocabulary;

    public GptShape Shape => new(gpt.Config.Layers, gpt.Config.Heads, gpt.Config.Width, gpt.Config.Context, gpt.Config.Vocabulary);

    public static string ShapeJson(GptShape shape) => JsonSerializer.Serialize(shape, ShapeJsonOptions);

    public byte[] Export()
    {
        var config = gpt.Config;
        var graph = new OnnxGraph("gpt");
        var weights = new Weights(graph, gpt);
        const string batch = "batch", seq = "seq", past = "past", total = "total";

        graph.Input(GptGraph.InputIds, OnnxType.Int64, batch, seq);
        graph.Input(GptGraph.PositionIds, OnnxType.Int64, batch, seq);
        graph.Input(GptGraph.AttentionMask, OnnxType.Int64, batch, total);
        for (int layer = 0; layer < config.Layers; layer++)
        {
            graph.Input(GptGraph.PastKey(layer), OnnxType.Float, batch, config.Heads, past, config.HeadDim);
            graph.Input(GptGraph.PastValue(layer), OnnxType.Float, batch, config.Heads, past, config.HeadDim);
        }

        string bias = AttentionBias(graph);                                                            // (B, 1, T, P+T)
        string wte = weights.Plain("wte.weight");                                                      // (V, W)
        string x = graph.Node("Add", [
            graph.Node("Gather", [wte, GptGraph.InputIds], attributes: ("axis", 0L)),
            graph.Node("Gather", [weights.Plain("wpe.weight"), GptGraph.PositionIds], attributes: ("axis", 0L))]); // (B, T, W)

        // Reshape targets; 0 copies the input's dimension, so batch and seq stay dynamic.
        string headsShape = graph.Initializer("heads_shape", [0L, 0, config.Heads, config.HeadDim], 4);  // (B, T, H, D)
        string mergedShape = graph.Initializer("merged_shape", [0L, 0, config.Width], 3);                  // (B, T, W)
        string qkvSplit = graph.Initializer("qkv_split", [(long)config.Width, config.Width, config.Width], 3);
        string scale = graph.Initializer("attention_scale", [(float)(1.0 / Math.Sqrt(config.HeadDim))]);  // scalar, as CausalSelfAttention
        string half = graph.Initializer("gelu_half", [0.5f]);
        string one = graph.Initializer("gelu_one", [1f]);
        string sqrt2 = graph.Initializer("gelu_sqrt2", [MathF.Sqrt(2f)]);

        for (int layer = 0; layer < config.Layers; layer++)
        {
            string prefix = $"blocks.{layer}";

            // Attention: x + proj(attend(ln1(x))).
            string normed = weights.LayerNorm(x, $"{prefix}.ln1");                                   // (B, T, W)
            string qkv = weights.Linear(normed, $"{prefix}.attn.qkv");                               // (B, T, 3W)
            string[] parts = graph.Node("Split", [qkv, qkvSplit], [$"{prefix}.q", $"{prefix}.k", $"{prefix}.v"], ("axis", 2L)); // 3 × (B, T, W)
            string q = SplitHeads(graph, parts[0], headsShape);                                      // (B, H, T, D)
            string key = graph.Node("Concat", [GptGraph.PastKey(layer), SplitHeads(graph, parts[1], headsShape)], GptGraph.PresentKey(layer), ("axis", 2L));     // (B, H, P+T, D)
            string value = graph.Node("Concat", [GptGraph.PastValue(layer), SplitHeads(graph, parts[2], headsShape)], GptGraph.PresentValue(layer), ("axis", 2L)); // (B, H, P+T, D)
            string scores = graph.Node("MatMul", [q, graph.Node("Transpose", [key], attributes: ("perm", new long[] { 0, 1, 3, 2 }))]); // (B, H, T, P+T)
            scores = graph.Node("Add", [graph.Node("Mul", [scores, scale]), bias]);
            string attended = graph.Node("MatMul", [graph.Node("Softmax", [scores], attributes: ("axis", -1L)), value]);          // (B, H, T, D)
            attended = graph.Node("Reshape", [graph.Node("Transpose", [attended], attributes: ("perm", new long[] { 0, 2, 1, 3 })), mergedShape]); // (B, T, W)
            x = graph.Node("Add", [x, weights.Linear(attended, $"{prefix}.attn.proj")]);            // (B, T, W)

            // MLP: x + proj(gelu(fc(ln2(x)))), GELU exact (erf), as TorchSharp's default.
            string hidden = weights.Linear(weights.LayerNorm(x, $"{prefix}.ln2"), $"{prefix}.mlp.fc"); // (B, T, 4W)
            string erf = graph.Node("Erf", [graph.Node("Div", [hidden, sqrt2])]);
            string gelu = graph.Node("Mul", [graph.Node("Mul", [hidden, graph.Node("Add", [erf, one])]), half]); // (B, T, 4W)
            x = graph.Node("Add", [x, weights.Linear(gelu, $"{prefix}.mlp.proj")]);                  // (B, T, W)
        }

        x = weights.LayerNorm(x, "ln_f");                                                            // (B, T, W)
        string output = config.TieWeights
            ? graph.Node("Transpose", [wte], attributes: ("perm", new long[] { 1, 0 }))             // (W, V)
            : weights.Transposed("head.weight");                                                     // (W, V)
        graph.Node("MatMul", [x, output], GptGraph.Logits);                                          // (B, T, V)

        graph.Output(GptGraph.Logits, OnnxType.Float, batch, seq, config.Vocabulary);
        for (int layer = 0; layer < config.Layers; layer++)
        {
            graph.Output(GptGraph.PresentKey(layer), OnnxType.Float, batch, config.Heads, total, config.HeadDim);
            graph.Output(GptGraph.PresentValue(layer), OnnxType.Float, batch, config.Heads, total, config.HeadDim);
        }

        graph.Metadata(GptGraph.FamilyKey, "gpt");
        graph.Metadata(GptGraph.TaskKey, task);
        graph.Metadata(GptGraph.ShapeKey, ShapeJson(Shape));
        graph.Metadata(GptGraph.VocabularyKey, vocabulary.ToJson());
        graph.Metadata(GptGraph.VocabularySha256Key, vocabulary.Sha256);
        return graph.ToModelBytes(docString: $"GPT {config} task {task}: prefill and KV-cache decode");
    }

    /// <summary>
    /// Random valid inputs: per call one of prefill (past 0, seq 1…cap), decode (seq 1, past 1…cap) or
    /// a chunked continuation (past ≥ 1, seq 2…16), with about half of the rows left-padded.
    /// </summary>
    public IReadOnlyList<(string Name, Tensor Value)> RandomInputs(Generator random, int batch)
    {
        int cap = Math.Min(gpt.Config.Context, RandomLengthCap);

        // A chunk needs past ≥ 1 and seq ≥ 2, so it is drawn only when the context has room for three positions.
        (int pastLength, int seqLength) = Draw(random, 0, cap >= 3 ? 3 : 2) switch
        {
            0 => (0, Draw(random, 1, cap + 1)),
            1 => (Draw(random, 1, cap), 1),
            _ => Chunk(),
        };
        return Inputs(random, batch, pastLength, seqLength, padRows: true);

        (int, int) Chunk()
        {
            int chunk = Draw(random, 2, Math.Min(16, cap - 1) + 1);
            return (Draw(random, 1, cap - chunk + 1), chunk);
        }
    }

    /// <summary>
    /// Valid graph inputs for <paramref name="batch"/> rows of <paramref name="seqLength"/> new tokens after
    /// <paramref name="pastLength"/> cached ones: random tokens and random past keys/values. With
    /// <paramref name="padRows"/>, about half the rows are left-padded: a row of r real tokens has mask
    /// 0 on its first P+T−r positions (token <see cref="TextVocabulary.Pad"/>, position 0) and positions
    /// 0…r−1 on the real ones. When there is a past, every new token is real (padding only ever sits at
    /// the start of a sequence), so r ≥ T.
    /// </summary>
    public IReadOnlyList<(string Name, Tensor Value)> Inputs(Generator random, int batch, int pastLength, int seqLength, bool padRows)
    {
        var config = gpt.Config;
        int totalLength = pastLength + seqLength;
        if (seqLength < 1 || pastLength < 0 || totalLength > config.Context)
        {
            throw new ArgumentOutOfRangeException(nameof(seqLength), $"past {pastLength} + seq {seqLength} must be within the context of {config.Context}, with seq ≥ 1");
        }

        var tokens = new long[batch * seqLength];
        var positions = new long[batch * seqLength];
        var mask = new long[batch * totalLength];
        int minReal = pastLength == 0 ? 1 : seqLength;
        for (int b = 0; b < batch; b++)
        {
            int real = padRows && Draw(random, 0, 2) == 1 ? Draw(random, minReal, totalLength + 1) : totalLength;
            int firstReal = totalLength - real;
            for (int j = 0; j < totalLength; j++)
            {
                mask[(b * totalLength) + j] = j >= firstReal ? 1 : 0;
            }

            for (int t = 0; t < seqLength; t++)
            {
                int absolute = pastLength + t;
                int i = (b * seqLength) + t;
                tokens[i] = absolute >= firstReal ? Draw(random, 0, config.Vocabulary) : TextVocabulary.Pad;
                positions[i] = Math.Max(0, absolute - firstReal);
            }
        }

        var inputs = new List<(string, Tensor)>
        {
            (GptGraph.InputIds, tensor(tokens, [batch, seqLength])),
            (GptGraph.PositionIds, tensor(positions, [batch, seqLength])),
            (GptGraph.AttentionMask, tensor(mask, [batch, totalLength])),
        };
        for (int layer = 0; layer < config.Layers; layer++)
        {
            inputs.Add((GptGraph.PastKey(layer), randn([batch, config.Heads, pastLength, config.HeadDim], generator: random)));
            inputs.Add((GptGraph.PastValue(layer), randn([batch, config.Heads, pastLength, config.HeadDim], generator: random)));
        }

        return inputs;
    }

    public IReadOnlyDictionary<string, Tensor> Reference(IReadOnlyList<(string Name, Tensor Value)> inputs)
    {
        var byName = inputs.ToDictionary(i => i.Name, i => i.Value, StringComparer.Ordinal);
        var past = Enumerable.Range(0, gpt.Config.Layers)
            .Select(l => (byName[GptGraph.PastKey(l)], byName[GptGraph.PastValue(l)]))
            .ToList();
        var (logits, presents) = gpt.Cached(byName[GptGraph.InputIds], byName[GptGraph.PositionIds], byName[GptGraph.AttentionMask], past);
        var outputs = new Dictionary<string, Tensor>(StringComparer.Ordinal) { [GptGraph.Logits] = logits };
        for (int layer = 0; layer < presents.Count; layer++)
        {
            outputs[GptGraph.PresentKey(layer)] = presents[layer].Key;
            outputs[GptGraph.PresentValue(layer)] = presents[layer].Value;
        }

        return outputs;
    }

    /// <summary>
    /// <see cref="Gpt.AttentionBias"/> in graph form: 0 where query t (absolute P+t) may see key s — s ≤ P+t
    /// and attention_mask[b, s] ≠ 0 — else <see cref="GptGraph.MaskedBias"/>. P+T and T come from the
    /// inputs' shapes, so one graph serves every past and sequence length.
    /// </summary>
    private static string AttentionBias(OnnxGraph graph)
    {
        string zero = graph.Initializer("bias_zero_i64", [0L]);                                       // scalar
        string step = graph.Initializer("bias_one_i64", [1L]);                                        // scalar
        string axis0 = graph.Initializer("axes_0", [0L], 1);
        string axis1 = graph.Initializer("axes_1", [1L], 1);

        // Shape(…, start 1, end 2) is the 1-element [length]; Squeeze makes the scalar Range needs.
        string Length(string input) => graph.Node("Squeeze", [graph.Node("Shape", [input], attributes: [("start", 1L), ("end", 2L)]), axis0]);
        string total = Length(GptGraph.AttentionMask);                                                 // P+T
        string past = graph.Node("Sub", [total, Length(GptGraph.InputIds)]);                           // P
        string queries = graph.Node("Unsqueeze", [graph.Node("Range", [past, total, step]), axis1]);  // (T, 1): absolute P…P+T−1
        string keys = graph.Node("Unsqueeze", [graph.Node("Range", [zero, total, step]), axis0]);     // (1, P+T)
        string causal = graph.Node("LessOrEqual", [keys, queries]);                                   // (T, P+T) bool
        string real = graph.Node("Not", [graph.Node("Equal", [GptGraph.AttentionMask, zero])]);       // (B, P+T) bool
        string allowed = graph.Node("And", [causal, graph.Node("Unsqueeze", [real, axis1])]);         // (B, T, P+T)
        string bias = graph.Node("Where", [allowed, graph.Initializer("bias_allowed", [0f]), graph.Initializer("bias_masked", [GptGraph.MaskedBias])]);
        return graph.Node("Unsqueeze", [bias, axis1]);                                                 // (B, 1, T, P+T)
    }

    /// <summary>(B, T, W) → (B, H, T, D), as CausalSelfAttention's view + transpose(1, 2).</summary>
    private static string SplitHeads(OnnxGraph graph, string x, string headsShape) =>
        graph.Node("Transpose", [graph.Node("Reshape", [x, headsShape])], attributes: ("perm", new long[] { 0, 2, 1, 3 }));

    private static int Draw(Generator random, long low, long high)
    {
        using var value = randint(low, high, [1], generator: random);
        return (int)value.item<long>();
    }

    /// <summary>The model's parameters as initializers: as stored, or transposed for MatMul.</summary>
    private sealed class Weights(OnnxGraph graph, nn.Module module)
    {
        private readonly Dictionary<string, Tensor> state = module.state_dict();

        public string Plain(string name) => Add(name, state[name]);

        /// <summary>A Linear weight (out, in) as (in, out) under <c>&lt;name&gt;_t</c>.</summary>
        public string Transposed(string name)
        {
            using var transposed = state[name].t();
            return Add($"{name}_t", transposed);
        }

        /// <summary>x (…, in) → x·Wᵀ + b (…, out), as TorchSharp's Linear.</summary>
        public string Linear(string x, string layer) =>
            graph.Node("Add", [graph.Node("MatMul", [x, Transposed($"{layer}.weight")]), Plain($"{layer}.bias")]);

        /// <summary>LayerNormalization over the last axis with the model's epsilon.</summary>
        public string LayerNorm(string x, string layer) =>
            graph.Node("LayerNormalization", [x, Plain($"{layer}.weight"), Plain($"{layer}.bias")],
                attributes: [("axis", -1L), ("epsilon", (float)GptBlock.LayerNormEpsilon)]);

        private string Add(string name, Tensor value)
        {
            using var cpu = value.detach().to(CPU).contiguous();
            return graph.Initializer(name, cpu.data<float>().ToArray(), [.. cpu.shape]);
        }
    }
}
