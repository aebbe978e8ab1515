using RetrainDaemon.Training.Models;
using static TorchSharp.torch;

namespace RetrainDaemon.ModelTests;

public sealed class ModelShapeTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(10)]
    public void Generators_MakeImagesOfTheConfiguredShape(int classes)
    {
        using var scope = NewDisposeScope();
        var gan = new DcganGenerator(new DcganConfig(Classes: classes));
        var vae = new VaeDecoder(new VaeConfig(Classes: classes));
        gan.eval();
        var labels = classes > 0 ? arange(5L) : null;
        using var noGrad = no_grad();
        Assert.Equal([5L, 1L, 28L, 28L], gan.forward(randn(5, 64), labels).shape);
        Assert.Equal([5L, 1L, 28L, 28L], vae.forward(randn(5, 16), labels).shape);
        var (mean, logVariance) = new VaeEncoder(new VaeConfig(Classes: classes)).forward(rand(5, 1, 28, 28), labels);
        Assert.Equal([5L, 16L], mean.shape);
        Assert.Equal([5L, 16L], logVariance.shape);
        Assert.Equal([5L, 1L], new DcganDiscriminator(new DcganConfig(Classes: classes)).forward(rand(5, 1, 28, 28), labels).shape);
    }

    [Fact]
    public void ConditionedModel_WithoutLabels_SaysWhatIsMissing()
    {
        using var scope = NewDisposeScope();
        var gan = new DcganGenerator(new DcganConfig(Classes: 10));
        var ex = Assert.Throws<ArgumentNullException>(() => gan.forward(randn(2, 64), null));
        Assert.Contains("class-conditioned", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(InitScheme.Normal002)]
    [InlineData(InitScheme.Xavier)]
    [InlineData(InitScheme.He)]
    public void Initialization_DrawsWeightsWithTheSchemesSpread(InitScheme scheme)
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        var model = new FashionClassifier(new ClassifierConfig());
        Initialization.Apply(model, scheme);
        var weight = model.named_parameters().Single(p => p.name == "features.weight").parameter; // (128, 64·7·7)
        double fanIn = weight.shape[1], fanOut = weight.shape[0];
        double expected = scheme switch
        {
            InitScheme.Normal002 => 0.02,
            InitScheme.Xavier => Math.Sqrt(2.0 / (fanIn + fanOut)), // uniform(±sqrt(6/(in+out))) has this standard deviation
            _ => Math.Sqrt(2.0 / fanIn),
        };
        double std = weight.std().item<float>();
        Assert.InRange(std, expected * 0.95, expected * 1.05);
        Assert.All(model.named_parameters().Where(p => p.name.EndsWith("bias", StringComparison.Ordinal)), p => Assert.Equal(0f, p.parameter.abs().max().item<float>()));
    }

    [Fact]
    public void Device_IsCpuHere()
    {
        // No GPU is reachable from this machine; the CUDA path is a build switch (TorchSharpCuda) plus this check.
        Assert.Equal(TorchSharp.DeviceType.CPU, RetrainDaemon.Training.Runtime.TorchRuntime.SelectDevice().type);
    }
}
