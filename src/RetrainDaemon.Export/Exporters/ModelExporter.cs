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
/// mode) and ONNX Runtime (CPU), and the export fails unless the largest difference is within tolerance.
/// </summary>
public static class ModelExporter
{
    public const double Tolerance = 1e-5;

    public static ExportResult Export(nn.Module module, int casesPerBatchSize = 50, IReadOnlyList<int>? batchSizes = null, long seed = 1234)
    {
        batchSizes ??= [1, 64];
        return module switch
        {
            DcganGenerator generator => Verify(DcganGeneratorExporter.Export(generator), generator, casesPerBatchSize, batchSizes, seed),
            _ => throw new NotSupportedException($"no ONNX exporter for {module.GetType().Name} ('{module.GetName()}'); exporters exist for: {nameof(DcganGenerator)}"),
        };
    }

    /// <summary>Runs the parity check of <paramref name="onnx"/> against <paramref name="generator"/>; throws <see cref="ParityException"/> beyond tolerance.</summary>
    public static ExportResult Verify(byte[] onnx, DcganGenerator generator, int cases = 50, IReadOnlyList<int>? batchSizes = null, long seed = 1234)
    {
        batchSizes ??= [1, 64];
        generator.eval();
        var config = generator.Config;
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = 2 };
        using var session = new InferenceSession(onnx, options);
        var generatorState = new Generator(unchecked((ulong)seed));
        double max = 0, sum = 0;
        long count = 0;
        foreach (int batch in batchSizes)
        {
            for (int c = 0; c < cases; c++)
            {
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                var latent = randn([batch, config.Latent], generator: generatorState);
                var labels = config.Classes > 0 ? randint(0, config.Classes, [batch], generator: generatorState) : null;
                var expected = generator.forward(latent, labels).contiguous().data<float>().ToArray();

                var inputs = new List<NamedOnnxValue>
                {
                    NamedOnnxValue.CreateFromTensor("latent", new DenseTensor<float>(latent.data<float>().ToArray(), [batch, config.Latent])),
                };
                if (labels is not null)
                {
                    inputs.Add(NamedOnnxValue.CreateFromTensor("label", new DenseTensor<long>(labels.data<long>().ToArray(), [batch])));
                }

                using var results = session.Run(inputs);
                var actual = results.First().AsEnumerable<float>().ToArray();
                if (actual.Length != expected.Length)
                {
                    throw new ParityException($"ONNX output has {actual.Length} values, TorchSharp {expected.Length}");
                }

                for (int i = 0; i < actual.Length; i++)
                {
                    double diff = Math.Abs(actual[i] - expected[i]);
                    max = Math.Max(max, double.IsNaN(diff) ? double.PositiveInfinity : diff);
                    sum += diff;
                }

                count += actual.Length;
            }
        }

        var report = new ParityReport(max, sum / count, cases * batchSizes.Count, batchSizes);
        if (!(max <= Tolerance))
        {
            throw new ParityException($"export parity failed: max |TorchSharp - ONNX Runtime| = {max:E2} > {Tolerance:E0} over {report.Cases} cases");
        }

        return new ExportResult(onnx, report);
    }
}
