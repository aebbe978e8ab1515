namespace RetrainDaemon.Training.Models;

/// <summary>DCGAN for 1×28×28 images. <see cref="Classes"/> &gt; 0 conditions both networks on a label.</summary>
public sealed record DcganConfig(int Latent = 64, int Width = 64, int Classes = 0, int Channels = 1, int Side = 28)
{
    /// <summary>The generator starts from Width·2 maps of Side/4 × Side/4.</summary>
    public int Seed => Side / 4;
}

/// <summary>Convolutional VAE for 1×28×28 images, optionally class-conditioned.</summary>
public sealed record VaeConfig(int Latent = 16, int Width = 32, int Classes = 0, int Channels = 1, int Side = 28);

/// <summary>The Fashion-MNIST classifier that is also the pinned FID/IS feature extractor.</summary>
public sealed record ClassifierConfig(int Width = 32, int Features = 128, int Classes = 10, double Dropout = 0.25, int Channels = 1, int Side = 28);
