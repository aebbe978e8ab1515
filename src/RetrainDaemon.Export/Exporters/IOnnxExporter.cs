using static TorchSharp.torch;

namespace RetrainDaemon.Export.Exporters;

/// <summary>
/// One module family's export: the ONNX graph, random inputs for the parity check, and the TorchSharp
/// reference computation whose named outputs the graph's outputs must match.
/// </summary>
public interface IOnnxExporter
{
    byte[] Export();

    /// <summary>Named inputs (float32 or int64) for a batch of <paramref name="batch"/>.</summary>
    IReadOnlyList<(string Name, Tensor Value)> RandomInputs(Generator generator, int batch);

    /// <summary>The same computation in TorchSharp, eval mode, by output name.</summary>
    IReadOnlyDictionary<string, Tensor> Reference(IReadOnlyList<(string Name, Tensor Value)> inputs);
}
