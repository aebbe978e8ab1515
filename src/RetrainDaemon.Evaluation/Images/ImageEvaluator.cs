using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.Imaging;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Evaluation.Extractors;
using RetrainDaemon.Evaluation.Features;

namespace RetrainDaemon.Evaluation.Images;

/// <summary>
/// The real data a generator is scored against: holdout images (FID reference, per-class
/// references) and training images (novelty / memorization). 8-bit, row-major, channel-last.
/// </summary>
public sealed record ImageReferenceSet(string Name, IReadOnlyList<byte[]> Holdout, IReadOnlyList<int> HoldoutLabels, IReadOnlyList<byte[]> Training, int Width, int Height, int Channels)
{
    /// <summary>Name, count and the first 12 hex digits of a hash of the pixels and labels: equal only for the same set.</summary>
    public string Describe(IReadOnlyList<byte[]> images, IReadOnlyList<int>? labels)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var image in images)
        {
            hash.AppendData(image);
        }

        foreach (int label in labels ?? [])
        {
            hash.AppendData(BitConverter.GetBytes(label));
        }

        return $"{Name}:{images.Count}:{Convert.ToHexStringLower(hash.GetHashAndReset())[..12]}";
    }
}

/// <summary>Every metric of one evaluation, with the protocol and timings.</summary>
public sealed record ImageEvaluation(IReadOnlyList<MetricValue> Metrics, string GeneratorSha256, int Samples, int Seed, bool Conditional, TimeSpan Elapsed);

/// <summary>
/// Scores an exported generator (its ONNX file, through ONNX Runtime: what is gated is what is
/// served) by one fixed protocol, so a candidate and its champion are comparable: N latents from
/// one seed (class i mod C for class-conditioned generators), images quantized to 8 bits as PNG
/// serving will, features from the pinned (or configured) extractor, then FID against the holdout
/// (reference statistics cached per reference set and extractor), IS, KID, class coverage and
/// entropy, mean pairwise distance, nearest-neighbour novelty and memorization against training
/// images, MiFID, and for conditional generators conditional accuracy and per-class FID slices.
/// </summary>
public sealed class ImageEvaluator
{
    private const int PairwiseSamples = 2000;

    private readonly EvaluationOptions options;
    private readonly OnnxFeatureExtractor extractor;

    public ImageEvaluator(EvaluationOptions options, OnnxFeatureExtractor extractor)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.options = options;
        this.extractor = extractor;
        // OpenBLAS would otherwise start one thread per core and compete with ONNX Runtime's.
        LinearAlgebra.OpenBlas.EnsureAvailable();
        LinearAlgebra.OpenBlas.SetNumThreads(options.Threads);
    }

    public ImageEvaluation Evaluate(string generatorOnnx, GeneratorRange range, ImageReferenceSet reference, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reference);
        if (!File.Exists(generatorOnnx))
        {
            throw new FileNotFoundException($"generator '{generatorOnnx}' does not exist", generatorOnnx);
        }

        if (reference.Holdout.Count < 2 || reference.Training.Count < 2)
        {
            throw new ArgumentException($"reference set '{reference.Name}' needs at least 2 holdout and 2 training images (has {reference.Holdout.Count} and {reference.Training.Count})");
        }

        var clock = Stopwatch.StartNew();
        var bytes = File.ReadAllBytes(generatorOnnx);
        string generatorHash = Convert.ToHexStringLower(SHA256.HashData(bytes));
        var (images, labels, conditional, classes) = Generate(bytes, range, reference, cancellationToken);

        var holdout = reference.Holdout.Take(options.MaxReferenceSamples).ToList();
        var holdoutLabels = reference.HoldoutLabels.Take(holdout.Count).ToList();
        var training = reference.Training.Take(options.MaxTrainingSamples).ToList();
        string referenceId = reference.Describe(holdout, holdoutLabels);
        string trainingId = reference.Describe(training, null).Replace(reference.Name + ":", reference.Name + "-train:", StringComparison.Ordinal);
        string basis = $"{extractor.Signature}|n:{images.Count}|seed:{options.Seed}|gen:{(conditional ? "conditional" : "unconditional")}|range:{range.ToString().ToLowerInvariant()}";

        var generated = extractor.Extract(images, reference.Width, reference.Height, reference.Channels, "generated", cancellationToken);
        var referenceStatistics = ReferenceStatistics(holdout, reference, referenceId, cancellationToken);
        var generatedStatistics = FeatureStatistics.Compute(generated.Features);
        var metrics = new List<MetricValue>();
        void Add(string metric, double value, string signature, string? slice = null) => metrics.Add(new MetricValue(metric, slice, value, signature));

        var fid = Fid.FromStatistics(generatedStatistics, referenceStatistics);
        Add("fid", fid.Value, $"{basis}|ref:{referenceId}");

        if (generated.Probabilities is { } probabilities)
        {
            var inception = InceptionScore.FromProbabilities(probabilities, options.Splits);
            Add("is", inception.Mean, $"{basis}|splits:{options.Splits}");
            var coverage = Diversity.Coverage(probabilities);
            Add("class_coverage", coverage.Coverage, basis);
            Add("class_entropy", coverage.Entropy, basis);
            if (conditional)
            {
                Add("conditional_accuracy", Diversity.ConditionalAccuracy(probabilities, labels), basis);
            }
        }

        if (options.KidSubsets > 0)
        {
            var holdoutFeatures = HoldoutFeatures(holdout, reference, referenceId, cancellationToken);
            int size = Math.Min(1000, Math.Min(generated.Features.Rows, holdoutFeatures.Rows));
            var kid = Kid.Compute(generated.Features, holdoutFeatures, options.KidSubsets, size, seed: options.Seed);
            Add("kid", kid.Mean, $"{basis}|ref:{referenceId}|kid:{options.KidSubsets}x{size}");
        }

        cancellationToken.ThrowIfCancellationRequested();
        var pairwise = generated.Features.Rows > PairwiseSamples ? generated.Features.Slice(0, PairwiseSamples) : generated.Features;
        Add("mean_pairwise_distance", Diversity.MeanPairwiseDistance(pairwise), $"{basis}|pairs-of:{pairwise.Rows}");

        var trainingFeatures = extractor.Extract(training, reference.Width, reference.Height, reference.Channels, "training", cancellationToken).Features;
        var neighbours = Novelty.Nearest(generated.Features, trainingFeatures);
        Add("nn_distance_mean", neighbours.MeanNearest, $"{basis}|train:{trainingId}");
        Add("memorized_share", neighbours.MemorizedShare(), $"{basis}|train:{trainingId}|ratio:1/3");
        var (_, thresholded) = Novelty.MemorizationDistance(trainingFeatures, generated.Features);
        Add("mifid", Novelty.MiFid(fid.Value, thresholded), $"{basis}|ref:{referenceId}|train:{trainingId}|eps:0.1");

        if (conditional)
        {
            // Per-class FID: generated samples of class k against holdout images labelled k.
            var holdoutFeatures = HoldoutFeatures(holdout, reference, referenceId, cancellationToken);
            for (int k = 0; k < classes; k++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var generatedRows = Enumerable.Range(0, labels.Count).Where(i => labels[i] == k).ToList();
                var referenceRows = Enumerable.Range(0, holdoutLabels.Count).Where(i => holdoutLabels[i] == k).ToList();
                if (generatedRows.Count < 2 || referenceRows.Count < 2)
                {
                    continue;
                }

                double classFid = Fid.FromFeatures(Rows(generated.Features, generatedRows, "generated"), Rows(holdoutFeatures, referenceRows, "holdout")).Value;
                Add("fid", classFid, $"{basis}|ref:{referenceId}", string.Create(CultureInfo.InvariantCulture, $"class={k}"));
            }
        }

        return new ImageEvaluation(metrics, generatorHash, images.Count, options.Seed, conditional, clock.Elapsed);
    }

    // The holdout features of the last reference set, keyed by its content hash (one immutable pair,
    // so a shared evaluator never pairs one set's key with another's features).
    private (string Key, FeatureMatrix Features)? holdoutFeatures;

    private FeatureMatrix HoldoutFeatures(IReadOnlyList<byte[]> holdout, ImageReferenceSet reference, string key, CancellationToken cancellationToken)
    {
        if (holdoutFeatures is { } cached && cached.Key == key)
        {
            return cached.Features;
        }

        var features = extractor.Extract(holdout, reference.Width, reference.Height, reference.Channels, "holdout", cancellationToken).Features;
        holdoutFeatures = (key, features);
        return features;
    }

    /// <summary>Reference statistics are computed once per (reference set, extractor) and cached as .npz.</summary>
    private FeatureStatistics ReferenceStatistics(IReadOnlyList<byte[]> holdout, ImageReferenceSet reference, string referenceId, CancellationToken cancellationToken)
    {
        string signature = $"{extractor.Signature}|ref:{referenceId}";
        string file = Path.Combine(options.StatisticsCache, $"{referenceId.Replace(':', '-')}-{extractor.Sha256[..12]}.npz");
        if (File.Exists(file))
        {
            try
            {
                var cached = FeatureStatistics.Load(file);
                if (cached.Signature == signature)
                {
                    return cached;
                }
            }
            catch (Exception ex) when (ex is InvalidDataException or IOException)
            {
                // A damaged cache entry is recomputed and replaced (Load reports every parse error as InvalidDataException).
            }
        }

        var statistics = FeatureStatistics.Compute(HoldoutFeatures(holdout, reference, referenceId, cancellationToken), signature);
        statistics.Save(file);
        return statistics;
    }

    private (List<byte[]> Images, List<int> Labels, bool Conditional, int Classes) Generate(byte[] onnx, GeneratorRange range, ImageReferenceSet reference, CancellationToken cancellationToken)
    {
        using var sessionOptions = new SessionOptions { IntraOpNumThreads = options.Threads, InterOpNumThreads = 1 };
        using var session = new InferenceSession(onnx, sessionOptions);
        if (!session.InputMetadata.TryGetValue("latent", out var latentMeta) || latentMeta.Dimensions.Length != 2 || latentMeta.Dimensions[1] <= 0)
        {
            throw new ArgumentException($"the generator must have a 'latent' input of shape (batch, L); it has inputs {string.Join(", ", session.InputMetadata.Keys)}");
        }

        if (!session.OutputMetadata.ContainsKey("image"))
        {
            throw new ArgumentException($"the generator must have an 'image' output; it has {string.Join(", ", session.OutputMetadata.Keys)}");
        }

        int latent = latentMeta.Dimensions[1];
        bool conditional = session.InputMetadata.ContainsKey("label");
        int classes = 0;
        if (conditional)
        {
            // Classes i mod C are requested; C comes from the labelled holdout, which must carry class indices.
            if (reference.HoldoutLabels.Count == 0 || reference.HoldoutLabels.Any(l => l < 0))
            {
                throw new ArgumentException($"the generator is class-conditioned, but the holdout of '{reference.Name}' has samples without an integer class label");
            }

            classes = reference.HoldoutLabels.Max() + 1;
        }

        int n = options.SampleCount;
        int pixels = reference.Width * reference.Height * reference.Channels;
        var random = new Random(options.Seed);
        var images = new List<byte[]>(n);
        var labels = new List<int>(n);
        const int batchSize = 256;
        for (int start = 0; start < n; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int batch = Math.Min(batchSize, n - start);
            var z = new float[batch * latent];
            for (int i = 0; i < z.Length; i++)
            {
                z[i] = (float)StandardNormal(random);
            }

            var feeds = new List<NamedOnnxValue> { NamedOnnxValue.CreateFromTensor("latent", new DenseTensor<float>(z, [batch, latent])) };
            if (conditional)
            {
                var y = new long[batch];
                for (int i = 0; i < batch; i++)
                {
                    y[i] = (start + i) % classes;
                }

                feeds.Add(NamedOnnxValue.CreateFromTensor("label", new DenseTensor<long>(y, [batch])));
            }

            using var results = session.Run(feeds, ["image"]);
            var output = results[0].AsTensor<float>();
            var shape = output.Dimensions.ToArray();
            if (shape.Length != 4 || shape[0] != batch || shape[1] != reference.Channels || shape[2] != reference.Height || shape[3] != reference.Width)
            {
                throw new ArgumentException($"the generator's image output has shape ({string.Join(", ", shape)}); expected (batch {batch}, {reference.Channels}, {reference.Height}, {reference.Width}) channel-first like the reference set's images");
            }

            var values = output.ToArray();
            int bad = Array.FindIndex(values, v => !float.IsFinite(v));
            if (bad >= 0)
            {
                // Clamping would turn NaN into black pixels and score a diverged model as if it were valid.
                throw new InvalidDataException($"the generator produced a non-finite value ({values[bad]}) for sample {start + bad / pixels}: the model has diverged");
            }

            int plane = reference.Width * reference.Height;
            for (int i = 0; i < batch; i++)
            {
                // Generator output is channel-first (C, H, W); stored images are channel-last.
                var image = new byte[pixels];
                for (int c = 0; c < reference.Channels; c++)
                {
                    for (int p = 0; p < plane; p++)
                    {
                        image[p * reference.Channels + c] = Quantize(values[i * pixels + c * plane + p], range);
                    }
                }

                images.Add(image);
                labels.Add(conditional ? (start + i) % classes : -1);
            }
        }

        return (images, labels, conditional, classes);
    }

    /// <summary>The 8-bit pixel PNG serving will produce for a generator output value (<see cref="PixelQuantizer"/>).</summary>
    public static byte Quantize(float value, GeneratorRange range) => PixelQuantizer.Quantize(value, range);

    private static double StandardNormal(Random random)
    {
        // Box–Muller on .NET's seeded Random: the same latents on every machine and run.
        double u1 = 1.0 - random.NextDouble();
        double u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    private static FeatureMatrix Rows(FeatureMatrix m, List<int> rows, string name)
    {
        var values = new double[rows.Count * m.Dimensions];
        for (int i = 0; i < rows.Count; i++)
        {
            m.Row(rows[i]).CopyTo(values.AsSpan(i * m.Dimensions, m.Dimensions));
        }

        return new FeatureMatrix(rows.Count, m.Dimensions, values, name);
    }
}
