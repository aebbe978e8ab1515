using TorchSharp.Modules;
using RetrainDaemon.Core.Text;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetrainDaemon.Training.Models;

/// <summary>
/// The <c>gpt</c> family's model. Training: tokens (B, T) → token + position embeddings (B, T, W) →
/// dropout → blocks → ln_f → logits (B, T, V). Inference (<see cref="Cached"/>) takes explicit
/// positions, an attention mask and past keys/values — the exported graph's contract (Core.Text.GptGraph).
/// Parameter names (wte, wpe, blocks.N…, ln_f, head) are what checkpoints and the exporter address.
/// </summary>
public sealed class Gpt : Module<Tensor, Tensor>
{
    private readonly GptConfig config;
    private readonly Embedding wte;
    private readonly Embedding wpe;
    private readonly Dropout dropout;
    private readonly ModuleList<GptBlock> blocks;
    private readonly LayerNorm ln_f;
    private readonly Linear? head;

    public Gpt(GptConfig config) : base(nameof(Gpt))
    {
        if (config.Problems() is { Count: > 0 } problems)
        {
            throw new ArgumentException($"invalid gpt configuration: {string.Join("; ", problems)}", nameof(config));
        }

        this.config = config;
        wte = Embedding(config.Vocabulary, config.Width);
        wpe = Embedding(config.Context, config.Width);
        dropout = Dropout(config.Dropout);
        blocks = new ModuleList<GptBlock>([.. Enumerable.Range(0, config.Layers).Select(_ => new GptBlock(config))]);
        ln_f = LayerNorm(config.Width, GptBlock.LayerNormEpsilon);
        head = config.TieWeights ? null : Linear(config.Width, config.Vocabulary, hasBias: false);
        RegisterComponents();
    }

    public GptConfig Config => config;

    /// <summary>The token embedding (B, T) → (B, T, W); with tied weights also the output projection.</summary>
    public Embedding TokenEmbedding => wte;

    /// <summary>Training / full-context forward: tokens (B, T ≤ context) → logits (B, T, V).</summary>
    public override Tensor forward(Tensor tokens)
    {
        long length = tokens.shape[1];
        if (length > config.Context)
        {
            throw new ArgumentException($"sequence of {length} tokens exceeds the context of {config.Context}");
        }

        using var positions = arange(length, dtype: ScalarType.Int64, device: tokens.device);
        var x = dropout.forward(wte.forward(tokens) + wpe.forward(positions));            // (B, T, W)
        foreach (var block in blocks)
        {
            x = block.forward(x);
        }

        return Logits(ln_f.forward(x));                                                  // (B, T, V)
    }

    /// <summary>
    /// The exported graph's computation: tokens and positions (B, T), mask (B, P+T) of 1/0, and per layer
    /// past keys/values (B, H, P, D) → logits (B, T, V) and presents (B, H, P+T, D).
    /// </summary>
    public (Tensor Logits, IReadOnlyList<(Tensor Key, Tensor Value)> Presents) Cached(Tensor tokens, Tensor positions, Tensor attentionMask, IReadOnlyList<(Tensor Key, Tensor Value)> past)
    {
        if (past.Count != config.Layers)
        {
            throw new ArgumentException($"{past.Count} past key/value pairs for {config.Layers} layers");
        }

        var bias = AttentionBias(attentionMask, tokens.shape[1]);                        // (B, 1, T, P+T)
        var x = wte.forward(tokens) + wpe.forward(positions);                            // (B, T, W)
        var presents = new List<(Tensor, Tensor)>(config.Layers);
        for (int layer = 0; layer < config.Layers; layer++)
        {
            var (output, key, value) = blocks[layer].Cached(x, bias, past[layer].Key, past[layer].Value);
            x = output;
            presents.Add((key, value));
        }

        return (Logits(ln_f.forward(x)), presents);
    }

    /// <summary>Empty past keys/values (B, H, 0, D) for a prefill.</summary>
    public IReadOnlyList<(Tensor Key, Tensor Value)> EmptyPast(long batch) =>
        [.. Enumerable.Range(0, config.Layers).Select(_ => (zeros(batch, config.Heads, 0, config.HeadDim), zeros(batch, config.Heads, 0, config.HeadDim)))];

    /// <summary>
    /// Additive bias (B, 1, T, P+T): 0 where query t (absolute index P+t) may attend key s — s ≤ P+t and
    /// key s is not padding — else <see cref="GptGraph.MaskedBias"/> (finite, so padded rows stay finite).
    /// </summary>
    public static Tensor AttentionBias(Tensor attentionMask, long newTokens)
    {
        long total = attentionMask.shape[1], past = total - newTokens;
        // On the mask's device: a CUDA mask combined with CPU index tensors would throw in logical_and.
        var queries = arange(past, total, dtype: ScalarType.Int64, device: attentionMask.device).unsqueeze(1); // (T, 1)
        var keys = arange(0, total, dtype: ScalarType.Int64, device: attentionMask.device).unsqueeze(0);       // (1, P+T)
        var causal = keys.le(queries);                                                   // (T, P+T)
        var allowed = causal.unsqueeze(0).logical_and(attentionMask.ne(0).unsqueeze(1)); // (B, T, P+T)
        return where(allowed, 0f, GptGraph.MaskedBias).unsqueeze(1);                     // (B, 1, T, P+T)
    }

    private Tensor Logits(Tensor x) =>
        head is null ? functional.linear(x, wte.weight!) : head.forward(x);              // (B, T, V)
}
