using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using RetrainDaemon.Training.Models;
using static TorchSharp.torch;

namespace RetrainDaemon.Export.Exporters;

/// <summary>Max and mean absolute difference between TorchSharp and ONNX Runtime on the same inputs.</summary>
public sealed record ParityReport(double MaxAbsDiff, double MeanAbsDiff, int Cases, IReadOnlyList<int> BatchSizes);

/// <summary>An exported model: the ONNX bytes and the parity that was proven for them.</summary>
public sealed record ExportResult(byte[] Onnx, ParityReport Parity);

public sealed class ParityException(string message) : Exception(message);

/// <summary>
/// Exports a module to ONNX and proves the export: the same random inputs go through TorchSharp (eval
/// mode) and ONNX Runtime (CPU), and the export fails unless the largest difference over every
/// output is within <see cref="Tolerance"/>. Modules without an exporter are refused by name.
/// </summary>
public static class ModelExporter
{
    public const double Tolerance = 1e-5;

    public static IOnnxExporter ExporterFor(nn.Module module) => module switch
    {
        DcganGenerator generator => new DcganGeneratorExporter(generator),
        VaeDecoder decoder => new VaeDecoderExporter(decoder),
        VaeEncoder encoder => new VaeEncoderExporter(encoder),
        FashionClassifier classifier => new ClassifierExporter(classifier),
        _ => throw new NotSupportedException(
            $"no ONNX exporter for {module.GetType().Name} ('{module.GetName()}'); exporters exist for {nameof(DcganGenerator)}, {nameof(VaeDecoder)}, {nameof(VaeEncoder)}, {nameof(FashionClassifier)}"),
    };

    public static ExportResult Export(nn.Module module, int casesPerBatchSize = 50, IReadOnlyList<int>? batchSizes = null, long seed = 1234)
    {
        var exporter = ExporterFor(module);
        return Verify(exporter.Export(), exporter, module, casesPerBatchSize, batchSizes, seed);
    }

    /// <summary>Runs the parity check of <paramref name="onnx"/> against the module behind <paramref name="exporter"/>.</summary>
    public static ExportResult Verify(byte[] onnx, IOnnxExporter exporter, nn.Module module, int cases = 50, IReadOnlyList<int>? batchSizes = null, long seed = 1234)
    {
        batchSizes ??= [1, 64];
        module.eval();
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = 2 };
        using var session = new InferenceSession(onnx, options);
        var random = new Generator(unchecked((ulong)seed));
        double max = 0, sum = 0;
        long count = 0;
        foreach (int batch in batchSizes)
        {
            for (int c = 0; c < cases; c++)
            {
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                var inputs = exporter.RandomInputs(random, batch);
                var expected = exporter.Reference(inputs);
                var feeds = inputs.Select(i => i.Value.dtype == ScalarType.Int64
                    ? NamedOnnxValue.CreateFromTensor(i.Name, new DenseTensor<long>(i.Value.data<long>().ToArray(), Dims(i.Value)))
                    : NamedOnnxValue.CreateFromTensor(i.Name, new DenseTensor<float>(i.Value.contiguous().data<float>().ToArray(), Dims(i.Value)))).ToList();
                using var results = session.Run(feeds);
                foreach (var result in results)
                {
                    var actual = result.AsEnumerable<float>().ToArray();
                    var reference = expected[result.Name].contiguous().data<float>().ToArray();
                    if (actual.Length != reference.Length)
                    {
                        throw new ParityException($"output '{result.Name}': ONNX has {actual.Length} values, TorchSharp {reference.Length}");
                    }

                    for (int i = 0; i < actual.Length; i++)
                    {
                        double diff = Math.Abs(actual[i] - reference[i]);
                        max = Math.Max(max, double.IsNaN(diff) ? double.PositiveInfinity : diff);
                        sum += diff;
                    }

                    count += actual.Length;
                }
            }
        }

        var report = new ParityReport(max, sum / count, cases * batchSizes.Count, batchSizes);
        if (!(max <= Tolerance))
        {
            throw new ParityException($"export parity failed: max |TorchSharp - ONNX Runtime| = {max:E2} > {Tolerance:E0} over {report.Cases} cases");
        }

        return new ExportResult(onnx, report);
    }

    private static int[] Dims(TorchSharp.torch.Tensor tensor) => tensor.shape.Select(d => (int)d).ToArray();
}
