using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetrainDaemon.Training.Models;

/// <summary>
/// DCGAN generator: latent (and optional class) → image in [-1, 1].
/// Shapes for the default config (L = 64, W = 64, 28×28, batch B):
/// z (B, L) ⊕ embed(y) (B, L) → project (B, 2W·7·7) → view (B, 2W, 7, 7) → up1 (B, W, 14, 14) → up2 (B, 1, 28, 28) → tanh.
/// </summary>
public sealed class DcganGenerator : Module<Tensor, Tensor?, Tensor>
{
    private readonly DcganConfig config;
    private readonly Embedding? label;
    private readonly Linear project;
    private readonly BatchNorm1d projectNorm;
    private readonly ConvTranspose2d up1;
    private readonly BatchNorm2d up1Norm;
    private readonly ConvTranspose2d up2;

    public DcganGenerator(DcganConfig config) : base(nameof(DcganGenerator))
    {
        this.config = config;
        int input = config.Latent;
        if (config.Classes > 0)
        {
            label = Embedding(config.Classes, config.Latent);
            input += config.Latent;
        }

        long seedMaps = 2L * config.Width * config.Seed * config.Seed;
        project = Linear(input, seedMaps, hasBias: false);
        projectNorm = BatchNorm1d(seedMaps);
        up1 = ConvTranspose2d(2 * config.Width, config.Width, kernel_size: 4, stride: 2, padding: 1, bias: false);
        up1Norm = BatchNorm2d(config.Width);
        up2 = ConvTranspose2d(config.Width, config.Channels, kernel_size: 4, stride: 2, padding: 1);
        RegisterComponents();
    }

    public DcganConfig Config => config;

    public override Tensor forward(Tensor z, Tensor? labels)
    {
        var input = Conditioned(z, labels);                                            // (B, L) or (B, 2L)
        var x = functional.relu(projectNorm.forward(project.forward(input)));          // (B, 2W·s·s)
        x = x.view(-1, 2 * config.Width, config.Seed, config.Seed);                   // (B, 2W, s, s)
        x = functional.relu(up1Norm.forward(up1.forward(x)));                          // (B, W, 2s, 2s)
        return tanh(up2.forward(x));                                                  // (B, C, 4s, 4s)
    }

    private Tensor Conditioned(Tensor z, Tensor? labels)
    {
        if (label is null)
        {
            return z;
        }

        ArgumentNullException.ThrowIfNull(labels, "labels (this generator is class-conditioned)");
        return cat([z, label.forward(labels)], 1);
    }
}
