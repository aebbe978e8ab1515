using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetrainDaemon.Training.Models;

/// <summary>A pre-LN transformer block: x + attn(ln1(x)), then + mlp(ln2(x)); (B, T, W) → (B, T, W).</summary>
public sealed class GptBlock : Module<Tensor, Tensor>
{
    public const double LayerNormEpsilon = 1e-5; // PyTorch's default; the ONNX LayerNormalization uses the same

    private readonly LayerNorm ln1;
    private readonly CausalSelfAttention attn;
    private readonly LayerNorm ln2;
    private readonly GptMlp mlp;

    public GptBlock(GptConfig config) : base(nameof(GptBlock))
    {
        ln1 = LayerNorm(config.Width, LayerNormEpsilon);
        attn = new CausalSelfAttention(config);
        ln2 = LayerNorm(config.Width, LayerNormEpsilon);
        mlp = new GptMlp(config);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = x + attn.forward(ln1.forward(x));
        return x + mlp.forward(ln2.forward(x));
    }

    /// <summary>The inference path with a key/value cache (see <see cref="CausalSelfAttention.Cached"/>).</summary>
    public (Tensor Output, Tensor Key, Tensor Value) Cached(Tensor x, Tensor bias, Tensor pastKey, Tensor pastValue)
    {
        var (attended, key, value) = attn.Cached(ln1.forward(x), bias, pastKey, pastValue);
        x = x + attended;
        return (x + mlp.forward(ln2.forward(x)), key, value);
    }
}
