using RetrainDaemon.Export.Onnx;
using RetrainDaemon.Training.Models;
using static TorchSharp.torch;

namespace RetrainDaemon.Export.Exporters;

/// <summary>
/// The VAE decoder as a generator of images in [0, 1]:
/// latent (batch, L) [, label] → Gemm → Relu → Reshape (batch, 2W, 7, 7) → ConvTranspose → Relu → ConvTranspose → Sigmoid → image.
/// </summary>
public sealed class VaeDecoderExporter(VaeDecoder decoder) : IOnnxExporter
{
    private readonly VaeConfig config = decoder.Config;

    public byte[] Export()
    {
        var graph = new OnnxGraph("vae_decoder");
        var w = new GraphWeights(graph, decoder);
        graph.Input("latent", OnnxType.Float, "batch", config.Latent);
        string x = "latent";
        if (config.Classes > 0)
        {
            graph.Input("label", OnnxType.Int64, "batch");
            x = w.ConditionLatent(x, "label.weight");
        }

        int side = config.Side / 4;
        x = graph.Node("Relu", [w.Gemm(x, "project")]);                                                     // (batch, 2W·7·7)
        x = graph.Node("Reshape", [x, graph.Initializer("seed_shape", [-1L, 2L * config.Width, side, side], 4)]);
        x = graph.Node("Relu", [w.Upsample(x, "up1", bias: true)]);                                          // (batch, W, 14, 14)
        graph.Node("Sigmoid", [w.Upsample(x, "up2", bias: true)], "image");                                  // (batch, C, 28, 28)
        graph.Output("image", OnnxType.Float, "batch", config.Channels, config.Side, config.Side);
        return graph.ToModelBytes(docString: $"VAE decoder {config}");
    }

    public IReadOnlyList<(string Name, Tensor Value)> RandomInputs(Generator random, int batch)
    {
        var inputs = new List<(string, Tensor)> { ("latent", randn([batch, config.Latent], generator: random)) };
        if (config.Classes > 0)
        {
            inputs.Add(("label", randint(0, config.Classes, [batch], generator: random)));
        }

        return inputs;
    }

    public IReadOnlyDictionary<string, Tensor> Reference(IReadOnlyList<(string Name, Tensor Value)> inputs) =>
        new Dictionary<string, Tensor> { ["image"] = sigmoid(decoder.forward(inputs[0].Value, inputs.Count > 1 ? inputs[1].Value : null)) };
}

/// <summary>
/// The VAE encoder: image (batch, C, 28, 28) in [0, 1] [, label] → Conv → Relu → Conv → Relu → Flatten → Gemm →
/// Split → mean (batch, L), log_variance (batch, L).
/// </summary>
public sealed class VaeEncoderExporter(VaeEncoder encoder) : IOnnxExporter
{
    private readonly VaeConfig config = encoder.Config;

    public byte[] Export()
    {
        var graph = new OnnxGraph("vae_encoder");
        var w = new GraphWeights(graph, encoder);
        graph.Input("image", OnnxType.Float, "batch", config.Channels, config.Side, config.Side);
        string x = "image";
        if (config.Classes > 0)
        {
            graph.Input("label", OnnxType.Int64, "batch");
            x = w.ConditionImage(x, "label.weight", config.Side);
        }

        x = graph.Node("Relu", [w.Conv(x, "down1", 4, 2, 1)]);                                               // (batch, W, 14, 14)
        x = graph.Node("Relu", [w.Conv(x, "down2", 4, 2, 1)]);                                               // (batch, 2W, 7, 7)
        x = w.Gemm(graph.Node("Flatten", [x], attributes: ("axis", 1L)), "head");                            // (batch, 2L)
        graph.Node("Split", [x, graph.Initializer("split_sizes", [(long)config.Latent, config.Latent], 2)], ["mean", "log_variance"], ("axis", 1L));
        graph.Output("mean", OnnxType.Float, "batch", config.Latent);
        graph.Output("log_variance", OnnxType.Float, "batch", config.Latent);
        return graph.ToModelBytes(docString: $"VAE encoder {config}");
    }

    public IReadOnlyList<(string Name, Tensor Value)> RandomInputs(Generator random, int batch)
    {
        var inputs = new List<(string, Tensor)> { ("image", rand([batch, config.Channels, config.Side, config.Side], generator: random)) };
        if (config.Classes > 0)
        {
            inputs.Add(("label", randint(0, config.Classes, [batch], generator: random)));
        }

        return inputs;
    }

    public IReadOnlyDictionary<string, Tensor> Reference(IReadOnlyList<(string Name, Tensor Value)> inputs)
    {
        var (mean, logVariance) = encoder.forward(inputs[0].Value, inputs.Count > 1 ? inputs[1].Value : null);
        return new Dictionary<string, Tensor> { ["mean"] = mean, ["log_variance"] = logVariance };
    }
}

/// <summary>
/// The classifier as the pinned feature extractor: image → Conv → Relu → MaxPool → Conv → Relu → MaxPool → Flatten →
/// Gemm → Relu → features (batch, F); → Gemm → Softmax → probabilities (batch, 10). Dropout is the identity in eval.
/// </summary>
public sealed class ClassifierExporter(FashionClassifier classifier) : IOnnxExporter
{
    private readonly ClassifierConfig config = classifier.Config;

    public byte[] Export()
    {
        var graph = new OnnxGraph("fashion_classifier");
        var w = new GraphWeights(graph, classifier);
        graph.Input("image", OnnxType.Float, "batch", config.Channels, config.Side, config.Side);
        (string, object)[] pool = [("kernel_shape", new long[] { 2, 2 }), ("strides", new long[] { 2, 2 })];
        string x = graph.Node("MaxPool", [graph.Node("Relu", [w.Conv("image", "conv1", 3, 1, 1)])], attributes: pool); // (batch, W, 14, 14)
        x = graph.Node("MaxPool", [graph.Node("Relu", [w.Conv(x, "conv2", 3, 1, 1)])], attributes: pool);            // (batch, 2W, 7, 7)
        string features = graph.Node("Relu", [w.Gemm(graph.Node("Flatten", [x], attributes: ("axis", 1L)), "features")], "features"); // (batch, F)
        graph.Node("Softmax", [w.Gemm(features, "logits")], "probabilities", ("axis", 1L));                          // (batch, 10)
        graph.Output("features", OnnxType.Float, "batch", config.Features);
        graph.Output("probabilities", OnnxType.Float, "batch", config.Classes);
        return graph.ToModelBytes(docString: $"Fashion-MNIST classifier {config}");
    }

    public IReadOnlyList<(string Name, Tensor Value)> RandomInputs(Generator random, int batch) =>
        [("image", rand([batch, config.Channels, config.Side, config.Side], generator: random))];

    public IReadOnlyDictionary<string, Tensor> Reference(IReadOnlyList<(string Name, Tensor Value)> inputs) => new Dictionary<string, Tensor>
    {
        ["features"] = classifier.Features(inputs[0].Value),
        ["probabilities"] = softmax(classifier.forward(inputs[0].Value), 1),
    };
}
