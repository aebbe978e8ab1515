using RetrainDaemon.Export.Onnx;
using RetrainDaemon.Training.Models;
using static TorchSharp.torch;

namespace RetrainDaemon.Export.Exporters;

/// <summary>
/// The DCGAN generator, batch norm in eval semantics (running statistics):
/// latent (batch, L) [, label (batch) int64] → Gather + Concat → Gemm → BatchNormalization → Relu →
/// Reshape (batch, 2W, s, s) → ConvTranspose → BatchNormalization → Relu → ConvTranspose → Tanh → image (batch, C, 4s, 4s).
/// </summary>
public sealed class DcganGeneratorExporter(DcganGenerator generator) : IOnnxExporter
{
    public byte[] Export()
    {
        var config = generator.Config;
        var graph = new OnnxGraph("dcgan_generator");
        var w = new GraphWeights(graph, generator);
        graph.Input("latent", OnnxType.Float, "batch", config.Latent);
        string x = "latent";
        if (config.Classes > 0)
        {
            graph.Input("label", OnnxType.Int64, "batch");
            x = w.ConditionLatent(x, "label.weight");                                                       // (batch, 2L)
        }

        x = graph.Node("Relu", [w.BatchNorm(w.Gemm(x, "project", bias: false), "projectNorm")]);            // (batch, 2W·s·s)
        x = graph.Node("Reshape", [x, graph.Initializer("seed_shape", [-1L, 2L * config.Width, config.Seed, config.Seed], 4)]); // (batch, 2W, s, s)
        x = graph.Node("Relu", [w.BatchNorm(w.Upsample(x, "up1", bias: false), "up1Norm")]);               // (batch, W, 2s, 2s)
        graph.Node("Tanh", [w.Upsample(x, "up2", bias: true)], "image");                                      // (batch, C, 4s, 4s)
        graph.Output("image", OnnxType.Float, "batch", config.Channels, config.Side, config.Side);
        return graph.ToModelBytes(docString: $"DCGAN generator {config}");
    }

    public IReadOnlyList<(string Name, Tensor Value)> RandomInputs(Generator random, int batch)
    {
        var inputs = new List<(string, Tensor)> { ("latent", randn([batch, generator.Config.Latent], generator: random)) };
        if (generator.Config.Classes > 0)
        {
            inputs.Add(("label", randint(0, generator.Config.Classes, [batch], generator: random)));
        }

        return inputs;
    }

    public IReadOnlyDictionary<string, Tensor> Reference(IReadOnlyList<(string Name, Tensor Value)> inputs) =>
        new Dictionary<string, Tensor> { ["image"] = generator.forward(inputs[0].Value, inputs.Count > 1 ? inputs[1].Value : null) };
}
