using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetrainDaemon.Training.Models;

/// <summary>
/// VAE encoder: image in [0, 1] (and optional class plane) → (μ, log σ²).
/// x (B, 1, 28, 28) → down1 (B, W, 14, 14) → down2 (B, 2W, 7, 7) → flatten → head (B, 2L) → μ (B, L), log σ² (B, L).
/// </summary>
public sealed class VaeEncoder : Module<Tensor, Tensor?, (Tensor Mean, Tensor LogVariance)>
{
    private readonly VaeConfig config;
    private readonly Embedding? label;
    private readonly Conv2d down1;
    private readonly Conv2d down2;
    private readonly Linear head;

    public VaeEncoder(VaeConfig config) : base(nameof(VaeEncoder))
    {
        this.config = config;
        int channels = config.Channels;
        if (config.Classes > 0)
        {
            label = Embedding(config.Classes, config.Side * config.Side);
            channels += 1;
        }

        down1 = Conv2d(channels, config.Width, kernel_size: 4, stride: 2, padding: 1);
        down2 = Conv2d(config.Width, 2 * config.Width, kernel_size: 4, stride: 2, padding: 1);
        head = Linear(2L * config.Width * (config.Side / 4) * (config.Side / 4), 2L * config.Latent);
        RegisterComponents();
    }

    public VaeConfig Config => config;

    public override (Tensor Mean, Tensor LogVariance) forward(Tensor images, Tensor? labels)
    {
        var x = images;                                                                // (B, C, 28, 28)
        if (label is not null)
        {
            ArgumentNullException.ThrowIfNull(labels, "labels (this encoder is class-conditioned)");
            x = cat([x, label.forward(labels).view(-1, 1, config.Side, config.Side)], 1);
        }

        x = functional.relu(down1.forward(x));                                         // (B, W, 14, 14)
        x = functional.relu(down2.forward(x));                                         // (B, 2W, 7, 7)
        var stats = head.forward(x.flatten(1));                                       // (B, 2L)
        var halves = stats.chunk(2, 1);
        return (halves[0], halves[1]);                                                // (B, L), (B, L)
    }
}
