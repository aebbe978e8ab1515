using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetrainDaemon.Training.Models;

/// <summary>
/// DCGAN discriminator: image (and optional class, as an extra input plane) → real/fake logit.
/// x (B, 1, 28, 28) ⊕ plane(y) (B, 1, 28, 28) → down1 (B, W, 14, 14) → down2 (B, 2W, 7, 7) → flatten → (B, 1).
/// </summary>
public sealed class DcganDiscriminator : Module<Tensor, Tensor?, Tensor>
{
    private readonly DcganConfig config;
    private readonly Embedding? label;
    private readonly Conv2d down1;
    private readonly Conv2d down2;
    private readonly BatchNorm2d down2Norm;
    private readonly Linear classify;

    public DcganDiscriminator(DcganConfig config) : base(nameof(DcganDiscriminator))
    {
        this.config = config;
        int channels = config.Channels;
        if (config.Classes > 0)
        {
            label = Embedding(config.Classes, config.Side * config.Side);
            channels += 1;
        }

        down1 = Conv2d(channels, config.Width, kernel_size: 4, stride: 2, padding: 1);
        down2 = Conv2d(config.Width, 2 * config.Width, kernel_size: 4, stride: 2, padding: 1, bias: false);
        down2Norm = BatchNorm2d(2 * config.Width);
        classify = Linear(2L * config.Width * config.Seed * config.Seed, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor images, Tensor? labels)
    {
        var x = images;                                                                // (B, C, 28, 28)
        if (label is not null)
        {
            ArgumentNullException.ThrowIfNull(labels, "labels (this discriminator is class-conditioned)");
            var plane = label.forward(labels).view(-1, 1, config.Side, config.Side);  // (B, 1, 28, 28)
            x = cat([x, plane], 1);                                                   // (B, C+1, 28, 28)
        }

        x = functional.leaky_relu(down1.forward(x), 0.2);                              // (B, W, 14, 14)
        x = functional.leaky_relu(down2Norm.forward(down2.forward(x)), 0.2);           // (B, 2W, 7, 7)
        return classify.forward(x.flatten(1));                                        // (B, 1) logits
    }
}
