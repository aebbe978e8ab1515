using System.Security.Cryptography;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Evaluation.Features;

namespace RetrainDaemon.Evaluation.Extractors;

/// <summary>What an extractor returns for a batch of images: the FID features and, when the extractor has them, class probabilities.</summary>
public sealed record ExtractedFeatures(FeatureMatrix Features, FeatureMatrix? Probabilities);

/// <summary>
/// Runs an ONNX feature extractor through ONNX Runtime in batches. Images are 8-bit pixels
/// (row-major, channel-last, the store's canonical form); they are resized (bilinear) to the
/// extractor's input size when they differ, replicated to 3 channels when the extractor wants RGB,
/// and normalized as (pixel / 255 − Mean) / Std. Every score computed from it carries
/// <see cref="Signature"/>: the extractor's name, the first 12 hex digits of its sha256 and the layer.
/// </summary>
public sealed class OnnxFeatureExtractor : IDisposable
{
    private readonly InferenceSession session;
    private readonly FeatureExtractorOptions options;

    public OnnxFeatureExtractor(FeatureExtractorOptions options, int threads = 2)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.options = options;
        string path = options.Path.Length > 0 ? options.Path : PinnedExtractor.OnnxPath;
        if (!File.Exists(path))
        {
            throw new FileNotFoundException(options.Path.Length > 0
                ? $"feature extractor '{path}' does not exist"
                : $"the pinned feature extractor '{path}' is missing (build it with `retrain-daemon extractor build`)", path);
        }

        var bytes = File.ReadAllBytes(path);
        Sha256 = Convert.ToHexStringLower(SHA256.HashData(bytes));
        string? expected = options.Sha256.Length > 0 ? options.Sha256 : options.Path.Length == 0 ? PinnedExtractor.Load().Sha256 : null;
        if (expected is not null && !string.Equals(expected, Sha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidDataException($"feature extractor '{path}' has sha256 {Sha256}, expected {expected}: refusing scores from a different network");
        }

        Name = options.Name.Length > 0 ? options.Name : options.Path.Length == 0 ? PinnedExtractor.Name : Path.GetFileNameWithoutExtension(path);
        using var sessionOptions = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        session = new InferenceSession(bytes, sessionOptions);
        try
        {
            RequireName(session.InputMetadata.Keys, options.InputName, "input");
            RequireName(session.OutputMetadata.Keys, options.FeatureOutput, "output");
            if (options.ProbabilityOutput.Length > 0)
            {
                RequireName(session.OutputMetadata.Keys, options.ProbabilityOutput, "output");
            }

            if (options.LogitOutput.Length > 0)
            {
                RequireName(session.OutputMetadata.Keys, options.LogitOutput, "output");
            }
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    public string Name { get; }

    public string Sha256 { get; }

    public bool HasClasses => options.ProbabilityOutput.Length > 0 || options.LogitOutput.Length > 0;

    /// <summary>
    /// <c>extractor:&lt;name&gt;@&lt;sha256 prefix&gt;|layer:&lt;output&gt;|input:&lt;W&gt;x&lt;H&gt;x&lt;C&gt;|norm:&lt;mean&gt;/&lt;std&gt;|classes:&lt;output&gt;</c>:
    /// everything that changes the features, so statistics cached under one signature are never reused under another preprocessing.
    /// </summary>
    public string Signature => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"extractor:{Name}@{Sha256[..12]}|layer:{options.FeatureOutput}|input:{options.Width}x{options.Height}x{options.Channels}|norm:{options.Mean:R}/{options.Std:R}|classes:{(options.LogitOutput.Length > 0 ? "logits:" + options.LogitOutput : options.ProbabilityOutput.Length > 0 ? options.ProbabilityOutput : "none")}");

    /// <summary>Features (and probabilities) of images given as 8-bit pixels of <paramref name="width"/> × <paramref name="height"/> × <paramref name="channels"/>.</summary>
    public ExtractedFeatures Extract(IReadOnlyList<byte[]> images, int width, int height, int channels, string name = "features", CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0)
        {
            throw new ArgumentException($"{name}: no images to extract features from");
        }

        int inputSize = options.Width * options.Height * options.Channels;
        List<float> features = [];
        List<float> classes = [];
        int featureDims = 0, classCount = 0;
        for (int start = 0; start < images.Count; start += options.BatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int batch = Math.Min(options.BatchSize, images.Count - start);
            var input = new float[batch * inputSize];
            for (int i = 0; i < batch; i++)
            {
                var pixels = images[start + i];
                if (pixels.Length != width * height * channels)
                {
                    throw new ArgumentException($"{name}: image {start + i} has {pixels.Length} bytes, expected {width}x{height}x{channels}");
                }

                Normalize(pixels, width, height, channels, input.AsSpan(i * inputSize, inputSize));
            }

            var tensor = new DenseTensor<float>(input, [batch, options.Channels, options.Height, options.Width]);
            var outputs = new List<string> { options.FeatureOutput };
            string classOutput = options.ProbabilityOutput.Length > 0 ? options.ProbabilityOutput : options.LogitOutput;
            if (classOutput.Length > 0)
            {
                outputs.Add(classOutput);
            }

            using var results = session.Run([NamedOnnxValue.CreateFromTensor(options.InputName, tensor)], outputs);
            var featureTensor = results.First(r => r.Name == options.FeatureOutput).AsTensor<float>();
            if (featureTensor.Dimensions.Length < 1 || featureTensor.Dimensions[0] != batch)
            {
                throw new InvalidDataException($"the extractor's '{options.FeatureOutput}' output has shape ({string.Join(", ", featureTensor.Dimensions.ToArray())}) for a batch of {batch}");
            }

            featureDims = (int)(featureTensor.Length / batch);
            features.AddRange(featureTensor);
            if (classOutput.Length > 0)
            {
                var classTensor = results.First(r => r.Name == classOutput).AsTensor<float>();
                classCount = (int)(classTensor.Length / batch);
                classes.AddRange(classTensor);
            }
        }

        var featureMatrix = FeatureMatrix.FromFloats(images.Count, featureDims, features.ToArray(), name);
        FeatureMatrix? probabilities = null;
        if (classCount > 0)
        {
            probabilities = FeatureMatrix.FromFloats(images.Count, classCount, classes.ToArray(), name + " probabilities");
            if (options.LogitOutput.Length > 0)
            {
                probabilities = Softmax(probabilities);
            }
        }

        return new ExtractedFeatures(featureMatrix, probabilities);
    }

    public void Dispose() => session.Dispose();

    private void Normalize(byte[] pixels, int width, int height, int channels, Span<float> target)
    {
        int outW = options.Width, outH = options.Height, outC = options.Channels;
        float scale = (float)(1.0 / (255.0 * options.Std));
        float shift = (float)(options.Mean / options.Std);
        for (int c = 0; c < outC; c++)
        {
            int sourceChannel = channels == 1 ? 0 : Math.Min(c, channels - 1);
            for (int y = 0; y < outH; y++)
            {
                for (int x = 0; x < outW; x++)
                {
                    float value;
                    if (outW == width && outH == height)
                    {
                        value = pixels[(y * width + x) * channels + sourceChannel];
                    }
                    else
                    {
                        // Bilinear with half-pixel centres (align_corners = false).
                        double sy = Math.Clamp((y + 0.5) * height / outH - 0.5, 0, height - 1);
                        double sx = Math.Clamp((x + 0.5) * width / outW - 0.5, 0, width - 1);
                        int y0 = (int)sy, x0 = (int)sx;
                        int y1 = Math.Min(y0 + 1, height - 1), x1 = Math.Min(x0 + 1, width - 1);
                        double fy = sy - y0, fx = sx - x0;
                        double top = pixels[(y0 * width + x0) * channels + sourceChannel] * (1 - fx) + pixels[(y0 * width + x1) * channels + sourceChannel] * fx;
                        double bottom = pixels[(y1 * width + x0) * channels + sourceChannel] * (1 - fx) + pixels[(y1 * width + x1) * channels + sourceChannel] * fx;
                        value = (float)(top * (1 - fy) + bottom * fy);
                    }

                    target[(c * outH + y) * outW + x] = value * scale - shift;
                }
            }
        }
    }

    private static FeatureMatrix Softmax(FeatureMatrix logits)
    {
        int c = logits.Dimensions;
        var p = new double[(long)logits.Rows * c];
        for (int i = 0; i < logits.Rows; i++)
        {
            var row = logits.Row(i);
            double max = double.NegativeInfinity;
            foreach (double v in row)
            {
                max = Math.Max(max, v);
            }

            double sum = 0;
            foreach (double v in row)
            {
                sum += Math.Exp(v - max);
            }

            for (int j = 0; j < c; j++)
            {
                p[(long)i * c + j] = Math.Exp(row[j] - max) / sum;
            }
        }

        return new FeatureMatrix(logits.Rows, c, p, logits.Name);
    }

    private static void RequireName(IEnumerable<string> names, string wanted, string kind)
    {
        var list = names.ToList();
        if (!list.Contains(wanted, StringComparer.Ordinal))
        {
            throw new ArgumentException($"the feature extractor has no {kind} named '{wanted}' (it has: {string.Join(", ", list)})");
        }
    }
}
