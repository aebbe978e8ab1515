using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using RetrainDaemon.Core.Imaging;
using RetrainDaemon.Serving.Http;
using RetrainDaemon.Serving.Runtime;

namespace RetrainDaemon.Serving.Generation;

/// <summary>
/// Generators served by <see cref="IServedModels"/>: a graph with a <c>latent</c> input
/// <c>(batch, L)</c> of float32, optionally a <c>label</c> input <c>(batch)</c> of int64, and an
/// <c>image</c> output <c>(batch, C, H, W)</c> — the contract the exporters write and the evaluator
/// scores. Pixel range from the manifest hyperparameter <c>family</c> (<see cref="PixelQuantizer.RangeOf"/>),
/// class count from <c>classes</c> when present.
/// </summary>
internal sealed class OnnxGeneratorBackend(IServedModels served) : IGeneratorBackend
{
    public const string LatentInput = "latent";
    public const string LabelInput = "label";
    public const string ImageOutput = "image";

    // A version's spec (or why it is not a generator) is computed once: session metadata never changes.
    private static readonly ConditionalWeakTable<ServedVersion, object> Specs = [];

    public bool TryLease(string model, [NotNullWhen(true)] out IGeneratorLease? lease, [NotNullWhen(false)] out ServingException? failure)
    {
        lease = null;
        if (!served.TryLease(model, out var held, out string? reason, out bool unknown))
        {
            failure = unknown
                ? ServingException.NotFound($"no model '{model}' is served here")
                : ServingException.NotReady(reason ?? $"model '{model}' has no ready version");
            return false;
        }

        var version = held.Version;
        if (version is null)
        {
            held.Dispose();
            failure = ServingException.NotReady($"model '{model}' has no ready version");
            return false;
        }

        switch (Specs.GetValue(version, Describe))
        {
            case GeneratorSpec spec:
                lease = new Lease(held, version.Session, spec);
                failure = null;
                return true;
            case string problem:
                held.Dispose();
                failure = ServingException.BadRequest(problem, version.Version);
                return false;
            default:
                held.Dispose();
                throw new InvalidOperationException("unreachable");
        }
    }

    /// <summary>The generator spec of a served version, or a sentence saying why it is not an image generator.</summary>
    internal static object Describe(ServedVersion version)
    {
        var session = version.Session;
        string name = $"model '{version.Model}' v{version.Version}";
        if (!session.InputMetadata.TryGetValue(LatentInput, out var latent) || !session.OutputMetadata.ContainsKey(ImageOutput))
        {
            return $"{name} is not an image generator: /generate needs an input '{LatentInput}' and an output '{ImageOutput}' (it has inputs {string.Join(", ", session.InputMetadata.Keys)}; use /v2/models/{version.Model}/infer)";
        }

        if (latent.ElementDataType != TensorElementType.Float || latent.Dimensions.Length != 2 || latent.Dimensions[1] <= 0)
        {
            return $"{name}: input '{LatentInput}' must be float32 of shape (batch, L) with a fixed L";
        }

        bool conditional = session.InputMetadata.TryGetValue(LabelInput, out var label);
        if (conditional && label!.ElementDataType != TensorElementType.Int64)
        {
            return $"{name}: input '{LabelInput}' must be int64";
        }

        var hyper = version.Manifest.Hyperparameters;
        int? classes = hyper.TryGetValue("classes", out string? text) && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int c) && c > 0 ? c : null;
        var range = PixelQuantizer.RangeOf(hyper.GetValueOrDefault("family"));
        return new GeneratorSpec(version.Model, version.Version, version.Provider, latent.Dimensions[1], conditional, conditional ? classes : null, range);
    }

    private sealed class Lease(Runtime.Lease held, InferenceSession session, GeneratorSpec spec) : IGeneratorLease
    {
        private static readonly string[] ImageOnly = [ImageOutput];
        private static readonly string[] LatentOnly = [LatentInput];
        private static readonly string[] LatentAndLabel = [LatentInput, LabelInput];

        public GeneratorSpec Spec => spec;

        public GeneratorOutput Run(float[] latents, long[]? labels, int batch, CancellationToken cancellationToken)
        {
            using var z = OrtValue.CreateTensorValueFromMemory(latents, [batch, spec.LatentSize]);
            using var y = labels is null ? null : OrtValue.CreateTensorValueFromMemory(labels, [batch]);
            OrtValue[] inputs = y is null ? [z] : [z, y];
            using var results = OnnxRunner.Run(session, y is null ? LatentOnly : LatentAndLabel, inputs, ImageOnly, cancellationToken);
            var image = results[0];
            var info = image.GetTensorTypeAndShape();
            long[] shape = info.Shape;
            if (info.ElementDataType != TensorElementType.Float || shape.Length != 4 || shape[0] != batch || shape[1] is < 1 or > 4 || shape[2] < 1 || shape[3] < 1)
            {
                throw new ServingException(500, FailureReasons.Internal,
                    $"model '{spec.Model}' v{spec.Version}: output '{ImageOutput}' is {info.ElementDataType} of shape [{string.Join(", ", shape)}]; expected float32 (batch {batch}, 1-4 channels, height, width)",
                    spec.Version);
            }

            return new GeneratorOutput(image.GetTensorDataAsSpan<float>().ToArray(), batch, (int)shape[1], (int)shape[2], (int)shape[3]);
        }

        public void Dispose() => held.Dispose();
    }
}
