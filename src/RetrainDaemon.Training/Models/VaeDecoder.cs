using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetrainDaemon.Training.Models;

/// <summary>
/// VAE decoder: latent (and optional class) → pixel logits (sigmoid gives the image in [0, 1]).
/// z (B, L) ⊕ embed(y) (B, L) → project (B, 2W·7·7) → view (B, 2W, 7, 7) → up1 (B, W, 14, 14) → up2 (B, 1, 28, 28).
/// </summary>
public sealed class VaeDecoder : Module<Tensor, Tensor?, Tensor>
{
    private readonly VaeConfig config;
    private readonly Embedding? label;
    private readonly Linear project;
    private readonly ConvTranspose2d up1;
    private readonly ConvTranspose2d up2;

    public VaeDecoder(VaeConfig config) : base(nameof(VaeDecoder))
    {
        this.config = config;
        int input = config.Latent;
        if (config.Classes > 0)
        {
            label = Embedding(config.Classes, config.Latent);
            input += config.Latent;
        }

        project = Linear(input, 2L * config.Width * (config.Side / 4) * (config.Side / 4));
        up1 = ConvTranspose2d(2 * config.Width, config.Width, kernel_size: 4, stride: 2, padding: 1);
        up2 = ConvTranspose2d(config.Width, config.Channels, kernel_size: 4, stride: 2, padding: 1);
        RegisterComponents();
    }

    public VaeConfig Config => config;

    public override Tensor forward(Tensor z, Tensor? labels)
    {
        var input = z;                                                                 // (B, L)
        if (label is not null)
        {
            ArgumentNullException.ThrowIfNull(labels, "labels (this decoder is class-conditioned)");
            input = cat([z, label.forward(labels)], 1);                               // (B, 2L)
        }

        int side = config.Side / 4;
        var x = functional.relu(project.forward(input)).view(-1, 2 * config.Width, side, side); // (B, 2W, 7, 7)
        x = functional.relu(up1.forward(x));                                           // (B, W, 14, 14)
        return up2.forward(x);                                                        // (B, C, 28, 28) logits
    }
}
