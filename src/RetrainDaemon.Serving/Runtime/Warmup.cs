using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace RetrainDaemon.Serving.Runtime;

/// <summary>
/// What an image generator served here must look like: input <c>latent</c> float32 (batch, L),
/// optional <c>label</c> int64 (batch) for class-conditioned models, output <c>image</c> float32
/// (batch, C, H, W) channel-first — the contract the exporters write and the evaluator gated.
/// </summary>
/// <param name="Classes">Class count for conditioned models (labels are drawn below it); 0 or 1 = use label 0 only.</param>
/// <param name="Channels">Expected C (from the model catalog), or null to accept what the graph declares.</param>
/// <param name="Height">Expected H, or null.</param>
/// <param name="Width">Expected W, or null.</param>
public sealed record GeneratorContract(int Classes = 0, int? Channels = null, int? Height = null, int? Width = null)
{
    public const string LatentInput = "latent";
    public const string LabelInput = "label";
    public const string ImageOutput = "image";
}

/// <summary>How a warm-up went: passed or the reason it refused the version, how long it took, the batch sizes run.</summary>
public sealed record WarmupResult(bool Passed, TimeSpan Duration, string? Problem, IReadOnlyList<int> BatchSizes)
{
    internal static WarmupResult Refuse(Stopwatch watch, string problem, IReadOnlyList<int> batches) => new(false, watch.Elapsed, problem, batches);
}

/// <summary>
/// Runs a freshly loaded session before it may serve, so that (a) a version that cannot produce
/// valid output is refused while the old one keeps serving, and (b) the first user request does not
/// pay for ONNX Runtime's first-run allocations (arena growth, kernel selection) at the batch sizes
/// serving uses. Image generators are run at batch 1 and at the largest batch serving will form,
/// twice each, with seeded standard-normal latents; other models once, with inputs built from the
/// session's metadata (dynamic dimensions set to 1). Cancellation is checked between runs only:
/// a run lasts milliseconds, and ORT's own suite notes that <c>RunOptions.Terminate</c> crashed in
/// its C# tests, so it is not used on this path.
/// </summary>
public static class Warmup
{
    private const int RunsPerBatch = 2;
    private const int Seed = 20240611;

    /// <summary>
    /// Warms <paramref name="session"/> up. With a <paramref name="generator"/> contract the graph
    /// must satisfy it; otherwise it is run as a generic model. Refusals (never exceptions, except
    /// cancellation) name what is wrong: a missing or mistyped input/output, a wrong output shape,
    /// a non-finite value, or the error a run threw.
    /// </summary>
    /// <param name="session">The session to warm up; not disposed here.</param>
    /// <param name="generator">The image-generator contract, or null for a generic model.</param>
    /// <param name="maxBatchSize">The largest batch serving forms (<c>Serving:MaxBatchSize</c>, capped by the manifest's).</param>
    /// <param name="cancellationToken">Stops between runs.</param>
    public static WarmupResult Run(InferenceSession session, GeneratorContract? generator, int maxBatchSize, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchSize, 1);
        var watch = Stopwatch.StartNew();
        try
        {
            return generator is null
                ? RunGeneric(session, watch, cancellationToken)
                : RunGenerator(session, generator, maxBatchSize, watch, cancellationToken);
        }
        catch (OnnxRuntimeException ex)
        {
            return WarmupResult.Refuse(watch, $"a warm-up run failed: {ex.Message}", []);
        }
    }

    private static WarmupResult RunGenerator(InferenceSession session, GeneratorContract contract, int maxBatchSize, Stopwatch watch, CancellationToken cancellationToken)
    {
        if (ContractProblem(session, contract, out int latent, out bool conditional, out int fixedBatch) is { } problem)
        {
            return WarmupResult.Refuse(watch, problem, []);
        }

        // A graph with a fixed batch dimension can only run at that size.
        int[] batches = fixedBatch > 0 ? [fixedBatch] : maxBatchSize > 1 ? [1, maxBatchSize] : [1];
        var random = new Random(Seed);
        int[]? imageShape = null;
        foreach (int batch in batches)
        {
            for (int run = 0; run < RunsPerBatch; run++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var z = new float[batch * latent];
                for (int i = 0; i < z.Length; i++)
                {
                    z[i] = (float)StandardNormal(random);
                }

                using var latentValue = OrtValue.CreateTensorValueFromMemory(z, [batch, latent]);
                var names = new List<string> { GeneratorContract.LatentInput };
                var values = new List<OrtValue> { latentValue };
                using var labelValue = conditional ? OrtValue.CreateTensorValueFromMemory(Labels(batch, contract.Classes), [batch]) : null;
                if (labelValue is not null)
                {
                    names.Add(GeneratorContract.LabelInput);
                    values.Add(labelValue);
                }

                using var runOptions = new RunOptions();
                using var outputs = session.Run(runOptions, names, values, [GeneratorContract.ImageOutput]);
                var image = outputs[0];
                var info = image.GetTensorTypeAndShape();
                long[] shape = info.Shape;
                if (ShapeProblem(shape, batch, contract, imageShape) is { } shapeProblem)
                {
                    return WarmupResult.Refuse(watch, shapeProblem, batches);
                }

                imageShape ??= [(int)shape[1], (int)shape[2], (int)shape[3]];
                if (NonFinite(image.GetTensorDataAsSpan<float>(), out int index, out float value))
                {
                    int perSample = imageShape[0] * imageShape[1] * imageShape[2];
                    return WarmupResult.Refuse(watch,
                        $"output '{GeneratorContract.ImageOutput}' holds a non-finite value ({value}) at sample {index / perSample} of a batch of {batch}: the weights are broken (NaN/Inf)", batches);
                }
            }
        }

        return new WarmupResult(true, watch.Elapsed, null, batches);
    }

    /// <summary>The generator contract checked against the session's metadata before anything runs.</summary>
    private static string? ContractProblem(InferenceSession session, GeneratorContract contract, out int latent, out bool conditional, out int fixedBatch)
    {
        latent = 0;
        fixedBatch = 0;
        conditional = false;
        var inputs = session.InputMetadata;
        if (!inputs.TryGetValue(GeneratorContract.LatentInput, out var latentMeta))
        {
            return $"the generator contract needs a float32 input '{GeneratorContract.LatentInput}' of shape (batch, L); the graph has inputs {Describe(inputs)}";
        }

        if (!latentMeta.IsTensor || latentMeta.ElementDataType != TensorElementType.Float || latentMeta.Dimensions.Length != 2 || latentMeta.Dimensions[1] <= 0)
        {
            return $"input '{GeneratorContract.LatentInput}' must be float32 of shape (batch, L) with a fixed L; it is {Describe(latentMeta)}";
        }

        latent = latentMeta.Dimensions[1];
        fixedBatch = Math.Max(0, latentMeta.Dimensions[0]);
        if (inputs.TryGetValue(GeneratorContract.LabelInput, out var labelMeta))
        {
            if (!labelMeta.IsTensor || labelMeta.ElementDataType != TensorElementType.Int64 || labelMeta.Dimensions.Length != 1)
            {
                return $"input '{GeneratorContract.LabelInput}' must be int64 of shape (batch); it is {Describe(labelMeta)}";
            }

            conditional = true;
        }

        var extra = inputs.Keys.Where(k => k is not (GeneratorContract.LatentInput or GeneratorContract.LabelInput)).ToList();
        if (extra.Count > 0)
        {
            return $"unexpected input(s) {string.Join(", ", extra.Select(e => $"'{e}'"))}: the generator contract has '{GeneratorContract.LatentInput}' and optionally '{GeneratorContract.LabelInput}'";
        }

        if (!session.OutputMetadata.TryGetValue(GeneratorContract.ImageOutput, out var imageMeta))
        {
            return $"the generator contract needs a float32 output '{GeneratorContract.ImageOutput}' of shape (batch, C, H, W); the graph has outputs {Describe(session.OutputMetadata)}";
        }

        if (!imageMeta.IsTensor || imageMeta.ElementDataType != TensorElementType.Float || imageMeta.Dimensions.Length != 4)
        {
            return $"output '{GeneratorContract.ImageOutput}' must be float32 of shape (batch, C, H, W); it is {Describe(imageMeta)}";
        }

        return null;
    }

    private static string? ShapeProblem(long[] shape, int batch, GeneratorContract contract, int[]? seen)
    {
        string actual = $"({string.Join(", ", shape)})";
        if (shape.Length != 4 || shape[0] != batch || shape[1] <= 0 || shape[2] <= 0 || shape[3] <= 0)
        {
            return $"output '{GeneratorContract.ImageOutput}' has shape {actual} for a batch of {batch}; expected ({batch}, C, H, W)";
        }

        if ((contract.Channels is int c && shape[1] != c) || (contract.Height is int h && shape[2] != h) || (contract.Width is int w && shape[3] != w))
        {
            return $"output '{GeneratorContract.ImageOutput}' has shape {actual}; the model's images are ({batch}, {contract.Channels?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "C"}, " +
                $"{contract.Height?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "H"}, {contract.Width?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "W"})";
        }

        if (seen is not null && (shape[1] != seen[0] || shape[2] != seen[1] || shape[3] != seen[2]))
        {
            return $"output '{GeneratorContract.ImageOutput}' changes its image shape with the batch size: {actual} at batch {batch}, ({string.Join(", ", seen)}) before";
        }

        return null;
    }

    private static WarmupResult RunGeneric(InferenceSession session, Stopwatch watch, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var random = new Random(Seed);
        var names = new List<string>();
        var values = new List<OrtValue>();
        try
        {
            foreach (var (name, meta) in session.InputMetadata)
            {
                if (!meta.IsTensor)
                {
                    return WarmupResult.Refuse(watch, $"input '{name}' is a {meta.OnnxValueType}; warm-up builds tensors only", [1]);
                }

                long[] shape = meta.Dimensions.Select(d => d > 0 ? (long)d : 1L).ToArray();
                values.Add(InputTensor(meta.ElementDataType, shape, random));
                names.Add(name);
            }

            using var runOptions = new RunOptions();
            var outputNames = session.OutputMetadata.Keys.ToList();
            using var outputs = session.Run(runOptions, names, values, outputNames);
            for (int i = 0; i < outputs.Count; i++)
            {
                var output = outputs[i];
                if (!output.IsTensor)
                {
                    continue;
                }

                var type = output.GetTensorTypeAndShape().ElementDataType;
                bool bad = type switch
                {
                    TensorElementType.Float => NonFinite(output.GetTensorDataAsSpan<float>(), out _, out _),
                    TensorElementType.Double => NonFiniteDouble(output.GetTensorDataAsSpan<double>()),
                    _ => false,
                };
                if (bad)
                {
                    return WarmupResult.Refuse(watch, $"output '{outputNames[i]}' holds a non-finite value (NaN/Inf): the weights are broken", [1]);
                }
            }

            return new WarmupResult(true, watch.Elapsed, null, [1]);
        }
        finally
        {
            foreach (var value in values)
            {
                value.Dispose();
            }
        }
    }

    /// <summary>Normal floats for floating inputs (a representative activation), zeros otherwise (index 0 is valid for any lookup).</summary>
    private static OrtValue InputTensor(TensorElementType type, long[] shape, Random random)
    {
        long count = shape.Aggregate(1L, (a, d) => a * d);
        switch (type)
        {
            case TensorElementType.Float:
                var floats = new float[count];
                for (long i = 0; i < count; i++)
                {
                    floats[i] = (float)StandardNormal(random);
                }

                return OrtValue.CreateTensorValueFromMemory(floats, shape);
            case TensorElementType.Double:
                var doubles = new double[count];
                for (long i = 0; i < count; i++)
                {
                    doubles[i] = StandardNormal(random);
                }

                return OrtValue.CreateTensorValueFromMemory(doubles, shape);
            case TensorElementType.String:
                return OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, shape);
            default:
                var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, type, shape);
                value.GetTensorMutableRawData().Clear();
                return value;
        }
    }

    private static long[] Labels(int batch, int classes)
    {
        var labels = new long[batch];
        int n = Math.Max(1, classes);
        for (int i = 0; i < batch; i++)
        {
            labels[i] = i % n;
        }

        return labels;
    }

    private static bool NonFinite(ReadOnlySpan<float> values, out int index, out float value)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                index = i;
                value = values[i];
                return true;
            }
        }

        index = -1;
        value = 0;
        return false;
    }

    private static bool NonFiniteDouble(ReadOnlySpan<double> values)
    {
        foreach (double v in values)
        {
            if (!double.IsFinite(v))
            {
                return true;
            }
        }

        return false;
    }

    private static string Describe(IReadOnlyDictionary<string, NodeMetadata> metadata) =>
        metadata.Count == 0 ? "(none)" : string.Join(", ", metadata.Select(p => $"'{p.Key}' {Describe(p.Value)}"));

    private static string Describe(NodeMetadata meta) =>
        meta.IsTensor
            ? $"{meta.ElementDataType.ToString().ToLowerInvariant()} ({string.Join(", ", meta.Dimensions.Select((d, i) => d > 0 ? d.ToString(System.Globalization.CultureInfo.InvariantCulture) : Symbol(meta, i)))})"
            : meta.OnnxValueType.ToString();

    private static string Symbol(NodeMetadata meta, int axis) =>
        axis < meta.SymbolicDimensions.Length && !string.IsNullOrEmpty(meta.SymbolicDimensions[axis]) ? meta.SymbolicDimensions[axis] : "?";

    private static double StandardNormal(Random random)
    {
        // Box–Muller on a seeded Random, as the evaluator draws its latents.
        double u1 = 1.0 - random.NextDouble();
        double u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
