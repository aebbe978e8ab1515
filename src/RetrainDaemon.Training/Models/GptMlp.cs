using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetrainDaemon.Training.Models;

/// <summary>The block's feed-forward part: x (B, T, W) → fc (B, T, 4W) → GELU (exact, erf) → proj (B, T, W) → dropout.</summary>
public sealed class GptMlp : Module<Tensor, Tensor>
{
    private readonly Linear fc;
    private readonly Linear proj;
    private readonly Dropout dropout;

    public GptMlp(GptConfig config) : base(nameof(GptMlp))
    {
        fc = Linear(config.Width, 4L * config.Width);
        proj = Linear(4L * config.Width, config.Width);
        dropout = Dropout(config.Dropout);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) =>
        dropout.forward(proj.forward(functional.gelu(fc.forward(x))));                // (B, T, W)
}
