using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetrainDaemon.Training.Models;

/// <summary>
/// Multi-head causal self-attention. Two paths with the same weights:
/// <list type="bullet">
/// <item><see cref="forward"/> (training): x (B, T, W) → qkv (B, T, 3W) → heads (B, H, T, D) → fused causal
/// attention (libtorch's scaled_dot_product_attention) → (B, T, W) → proj → dropout.</item>
/// <item><see cref="Cached"/> (inference, what the ONNX graph computes op for op): the new keys and values
/// are appended to the past ones (B, H, P+T, D); scores (B, H, T, P+T) = q·kᵀ·D^-½ + bias, where the
/// bias (B, 1, T, P+T) masks future and padded positions; softmax; ·v.</item>
/// </list>
/// </summary>
public sealed class CausalSelfAttention : Module<Tensor, Tensor>
{
    private readonly GptConfig config;
    private readonly Linear qkv;
    private readonly Linear proj;
    private readonly Dropout residualDropout;

    public CausalSelfAttention(GptConfig config) : base(nameof(CausalSelfAttention))
    {
        this.config = config;
        qkv = Linear(config.Width, 3L * config.Width);
        proj = Linear(config.Width, config.Width);
        residualDropout = Dropout(config.Dropout);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var (q, k, v) = Heads(x);                                                      // 3 × (B, H, T, D)
        double p = training ? config.Dropout : 0.0;
        var y = functional.scaled_dot_product_attention(q, k, v, p: p, is_casual: true); // (B, H, T, D)
        return residualDropout.forward(proj.forward(Merge(y)));                         // (B, T, W)
    }

    /// <summary>Attention over past + new positions; returns the output and the presents (B, H, P+T, D).</summary>
    public (Tensor Output, Tensor Key, Tensor Value) Cached(Tensor x, Tensor bias, Tensor pastKey, Tensor pastValue)
    {
        var (q, k, v) = Heads(x);                                                      // 3 × (B, H, T, D)
        var key = cat([pastKey, k], 2);                                                 // (B, H, P+T, D)
        var value = cat([pastValue, v], 2);
        var scores = matmul(q, key.transpose(2, 3)) * (1.0 / Math.Sqrt(config.HeadDim)) + bias; // (B, H, T, P+T)
        var y = matmul(functional.softmax(scores, -1), value);                          // (B, H, T, D)
        return (residualDropout.forward(proj.forward(Merge(y))), key, value);
    }

    private (Tensor Q, Tensor K, Tensor V) Heads(Tensor x)
    {
        long batch = x.shape[0], length = x.shape[1];
        var parts = qkv.forward(x).split(config.Width, 2);                               // 3 × (B, T, W)
        Tensor Split(Tensor t) => t.view(batch, length, config.Heads, config.HeadDim).transpose(1, 2); // (B, H, T, D)
        return (Split(parts[0]), Split(parts[1]), Split(parts[2]));
    }

    private Tensor Merge(Tensor y) =>
        y.transpose(1, 2).contiguous().view(y.shape[0], y.shape[2], config.Width);      // (B, T, W)
}
