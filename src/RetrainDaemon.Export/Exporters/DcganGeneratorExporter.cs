using RetrainDaemon.Export.Onnx;
using RetrainDaemon.Training.Models;
using static TorchSharp.torch;

namespace RetrainDaemon.Export.Exporters;

/// <summary>
/// The DCGAN generator as an ONNX graph, batch norm in eval semantics (running statistics):
/// latent (batch, L) [, label (batch) int64] → Gather + Concat → Gemm → BatchNormalization → Relu →
/// Reshape (batch, 2W, s, s) → ConvTranspose → BatchNormalization → Relu → ConvTranspose → Tanh → image (batch, C, 4s, 4s).
/// </summary>
public static class DcganGeneratorExporter
{
    private const float BatchNormEpsilon = 1e-5f; // TorchSharp's BatchNorm default, as PyTorch's

    public static byte[] Export(DcganGenerator generator)
    {
        var config = generator.Config;
        var weights = generator.state_dict();
        var graph = new OnnxGraph("dcgan_generator");

        string Weight(string name)
        {
            var tensor = weights[name].detach().contiguous().to(CPU);
            return graph.Initializer(name, tensor.data<float>().ToArray(), [.. tensor.shape]);
        }

        graph.Input("latent", OnnxType.Float, "batch", config.Latent);
        string x = "latent";
        if (config.Classes > 0)
        {
            graph.Input("label", OnnxType.Int64, "batch");
            var embedded = graph.Node("Gather", [Weight("label.weight"), "label"], attributes: ("axis", 0L));   // (batch, L)
            x = graph.Node("Concat", [x, embedded], attributes: ("axis", 1L));                                   // (batch, 2L)
        }

        x = graph.Node("Gemm", [x, Weight("project.weight")], attributes: ("transB", 1L));                      // (batch, 2W·s·s)
        x = BatchNorm(graph, x, "projectNorm", Weight);
        x = graph.Node("Relu", [x]);
        string shape = graph.Initializer("seed_shape", [-1L, 2L * config.Width, config.Seed, config.Seed], 4);
        x = graph.Node("Reshape", [x, shape]);                                                                  // (batch, 2W, s, s)
        x = graph.Node("ConvTranspose", [x, Weight("up1.weight")], attributes: Upsample());                      // (batch, W, 2s, 2s)
        x = BatchNorm(graph, x, "up1Norm", Weight);
        x = graph.Node("Relu", [x]);
        x = graph.Node("ConvTranspose", [x, Weight("up2.weight"), Weight("up2.bias")], attributes: Upsample()); // (batch, C, 4s, 4s)
        graph.Node("Tanh", [x], "image");
        graph.Output("image", OnnxType.Float, "batch", config.Channels, config.Side, config.Side);
        return graph.ToModelBytes(docString: $"DCGAN generator {config}");
    }

    private static (string, object)[] Upsample() => [("kernel_shape", new long[] { 4, 4 }), ("strides", new long[] { 2, 2 }), ("pads", new long[] { 1, 1, 1, 1 })];

    private static string BatchNorm(OnnxGraph graph, string x, string module, Func<string, string> weight) =>
        graph.Node("BatchNormalization",
            [x, weight($"{module}.weight"), weight($"{module}.bias"), weight($"{module}.running_mean"), weight($"{module}.running_var")],
            attributes: ("epsilon", BatchNormEpsilon));
}
