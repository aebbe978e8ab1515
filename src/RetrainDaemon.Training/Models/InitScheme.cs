using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetrainDaemon.Training.Models;

/// <summary>How fresh weights are drawn (a warm start from a checkpoint replaces them anyway).</summary>
public enum InitScheme
{
    /// <summary>N(0, 0.02) for conv/linear/embedding weights, N(1, 0.02) for norm scales (the DCGAN paper).</summary>
    Normal002,

    /// <summary>Glorot uniform.</summary>
    Xavier,

    /// <summary>Kaiming normal (fan-in, ReLU gain).</summary>
    He,
}

public static class Initialization
{
    /// <summary>Re-initializes every weight of <paramref name="module"/> in place; biases become zero.</summary>
    public static void Apply(Module module, InitScheme scheme)
    {
        using var noGrad = no_grad();
        foreach (var (_, child) in module.named_modules())
        {
            switch (child)
            {
                case TorchSharp.Modules.BatchNorm1d or TorchSharp.Modules.BatchNorm2d:
                    foreach (var (name, p) in child.named_parameters(recurse: false))
                    {
                        if (name == "weight")
                        {
                            init.normal_(p, 1.0, 0.02);
                        }
                        else
                        {
                            init.zeros_(p);
                        }
                    }

                    break;
                case TorchSharp.Modules.Linear or TorchSharp.Modules.Conv2d or TorchSharp.Modules.ConvTranspose2d or TorchSharp.Modules.Embedding:
                    foreach (var (name, p) in child.named_parameters(recurse: false))
                    {
                        if (name != "weight")
                        {
                            init.zeros_(p);
                            continue;
                        }

                        switch (scheme)
                        {
                            case InitScheme.Normal002:
                                init.normal_(p, 0.0, 0.02);
                                break;
                            case InitScheme.Xavier:
                                init.xavier_uniform_(p);
                                break;
                            case InitScheme.He:
                                init.kaiming_normal_(p);
                                break;
                        }
                    }

                    break;
            }
        }
    }
}
