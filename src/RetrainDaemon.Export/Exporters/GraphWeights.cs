using RetrainDaemon.Export.Onnx;
using static TorchSharp.torch;

namespace RetrainDaemon.Export.Exporters;

/// <summary>Helpers the exporters share: weights as initializers, and the layer patterns they emit.</summary>
internal sealed class GraphWeights(OnnxGraph graph, nn.Module module)
{
    private const float BatchNormEpsilon = 1e-5f; // TorchSharp's BatchNorm default, as PyTorch's
    private readonly Dictionary<string, Tensor> weights = module.state_dict();

    public OnnxGraph Graph => graph;

    public string this[string name]
    {
        get
        {
            var tensor = weights[name].detach().contiguous().to(CPU);
            return graph.Initializer(name, tensor.data<float>().ToArray(), [.. tensor.shape]);
        }
    }

    public string Gemm(string x, string layer, bool bias = true) =>
        graph.Node("Gemm", bias ? [x, this[$"{layer}.weight"], this[$"{layer}.bias"]] : [x, this[$"{layer}.weight"]], attributes: ("transB", 1L));

    public string BatchNorm(string x, string layer) =>
        graph.Node("BatchNormalization",
            [x, this[$"{layer}.weight"], this[$"{layer}.bias"], this[$"{layer}.running_mean"], this[$"{layer}.running_var"]],
            attributes: ("epsilon", BatchNormEpsilon));

    /// <summary>ConvTranspose 4×4, stride 2, padding 1: doubles the side.</summary>
    public string Upsample(string x, string layer, bool bias) =>
        graph.Node("ConvTranspose", bias ? [x, this[$"{layer}.weight"], this[$"{layer}.bias"]] : [x, this[$"{layer}.weight"]],
            attributes: [("kernel_shape", new long[] { 4, 4 }), ("strides", new long[] { 2, 2 }), ("pads", new long[] { 1, 1, 1, 1 })]);

    public string Conv(string x, string layer, int kernel, int stride, int padding) =>
        graph.Node("Conv", [x, this[$"{layer}.weight"], this[$"{layer}.bias"]],
            attributes: [("kernel_shape", new long[] { kernel, kernel }), ("strides", new long[] { stride, stride }), ("pads", new long[] { padding, padding, padding, padding })]);

    /// <summary>Concatenates a class embedding onto the latent: Gather(table, label) then Concat on axis 1.</summary>
    public string ConditionLatent(string latent, string table) =>
        graph.Node("Concat", [latent, graph.Node("Gather", [this[table], "label"], attributes: ("axis", 0L))], attributes: ("axis", 1L));

    /// <summary>Adds the class plane as an extra input channel: Gather → Reshape (batch, 1, side, side) → Concat on axis 1.</summary>
    public string ConditionImage(string images, string table, int side)
    {
        string plane = graph.Node("Reshape", [graph.Node("Gather", [this[table], "label"], attributes: ("axis", 0L)), graph.Initializer($"{table}.plane_shape", [-1L, 1, side, side], 4)]);
        return graph.Node("Concat", [images, plane], attributes: ("axis", 1L));
    }
}
