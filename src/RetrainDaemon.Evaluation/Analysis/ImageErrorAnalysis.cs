using System.Globalization;
using System.Security.Cryptography;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.Imaging;
using RetrainDaemon.Data.Preprocessing;
using RetrainDaemon.Evaluation.Extractors;
using RetrainDaemon.Evaluation.Features;
using RetrainDaemon.Evaluation.Images;

namespace RetrainDaemon.Evaluation.Analysis;

/// <summary>Sample strips of one image class for the HTML page: the champion's samples and real holdout samples.</summary>
internal sealed record ClassStrip(string Slice, byte[]? GeneratedPng, int Generated, byte[]? HoldoutPng, int Holdout);

/// <summary>
/// Error analysis of an image generator (dcgan / vae): the champion's generated samples against the recent
/// holdout, per class, in the pinned (or configured) extractor's feature space; drift of fresh images against
/// the training window as a Fréchet distance on the same features. See docs/architecture.md, "Error analysis".
/// </summary>
internal static class ImageErrorAnalysis
{
    private const int GenerateBatch = 256;

    public static async Task<(AnalysisReport Report, IReadOnlyList<ClassStrip> Strips)> RunAsync(AnalysisRequest request, CancellationToken cancellationToken)
    {
        var extractor = request.Extractor ?? throw new ArgumentException($"model '{request.Model}' ({request.Family}) is an image model: the request needs a feature extractor");
        var options = request.Options;
        var shape = request.ModelOptions.Image;
        int width = shape.Width, height = shape.Height, channels = shape.Channels;
        LinearAlgebra.OpenBlas.EnsureAvailable();
        LinearAlgebra.OpenBlas.SetNumThreads(request.Evaluation.Threads);

        bool Accept(SampleRecord r) => r.Pixels is not null && r.Width == width && r.Height == height && r.Channels == channels && r.Pixels.Length == width * height * channels;
        var (windows, skipped) = await StoreWindows.ReadAsync(request.Store, request.StoreKey, request.TrainedWatermark, request.Watermark,
            options.MaxHoldout, options.MaxDriftSamples, Accept, cancellationToken).ConfigureAwait(false);
        var holdout = windows.Holdout;
        if (holdout.Count < 2)
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"model '{request.Model}' has {holdout.Count} holdout images up to watermark {request.Watermark} ({skipped} samples of another shape than {width}x{height}x{channels} skipped): error analysis needs at least 2"));
        }

        var holdoutPixels = holdout.Select(r => r.Pixels!).ToList();
        var holdoutLabels = holdout.Select(r => int.TryParse(r.Label, NumberStyles.Integer, CultureInfo.InvariantCulture, out int l) && l >= 0 ? l : -1).ToList();
        var referenceSet = new ImageReferenceSet(string.Create(CultureInfo.InvariantCulture, $"store-{request.StoreKey}@{request.Watermark}-recent"), holdoutPixels, holdoutLabels, [], width, height, channels);
        string holdoutId = referenceSet.Describe(holdoutPixels, holdoutLabels);

        var onnx = await File.ReadAllBytesAsync(request.ChampionOnnx, cancellationToken).ConfigureAwait(false);
        string sha = Convert.ToHexStringLower(SHA256.HashData(onnx));
        var range = PixelQuantizer.RangeOf(request.Family);
        int labelClasses = holdoutLabels.Max() + 1;
        var generated = Generate(onnx, range, request.Evaluation.SampleCount, request.Seed, labelClasses, width, height, channels, request.Evaluation.Threads, cancellationToken);

        var generatedFeatures = extractor.Extract(generated.Images, width, height, channels, "generated", cancellationToken);
        var holdoutFeatures = extractor.Extract(holdoutPixels, width, height, channels, "holdout", cancellationToken);
        int[]? assigned = generated.Conditional ? generated.Labels : generatedFeatures.Probabilities is { } p ? Images.Diversity.PredictedClasses(p) : null;
        int classCount = Math.Max(labelClasses, generatedFeatures.Probabilities?.Dimensions ?? 0);
        string assignment = generated.Conditional ? "requested" : assigned is null ? "none" : "argmax";
        string protocol = string.Create(CultureInfo.InvariantCulture,
            $"{extractor.Signature}|n:{generated.Images.Count}|seed:{request.Seed}|gen:{(generated.Conditional ? "conditional" : "unconditional")}|range:{range.ToString().ToLowerInvariant()}|assign:{assignment}|min_slice:{options.MinSliceSamples}");

        var overall = new List<AnalysisMetric>
        {
            new("fid", Fid.FromFeatures(generatedFeatures.Features, holdoutFeatures.Features).Value, $"{protocol}|ref:{holdoutId}"),
        };

        var drafts = ClassDrafts(generatedFeatures, holdoutFeatures.Features, holdoutLabels, assigned, generated.Conditional, classCount, options.MinSliceSamples, cancellationToken);
        var drift = Drift(extractor, windows, width, height, channels, options, cancellationToken);
        // The generation journal records an image's class as its bare label ("3"): the same slice as class=3.
        var ratings = request.Feedback.Select(f => int.TryParse(f.Slice, NumberStyles.None, CultureInfo.InvariantCulture, out int label) ? f with { Slice = SliceKeys.Class(label) } : f).ToList();
        var (slices, worst, weights, feedback) = SliceAssembly.Assemble(drafts, ratings, options);
        var strips = Strips(generated.Images, assigned, holdoutPixels, holdoutLabels, classCount, options.ExamplesPerSlice, width, height, channels);

        var report = new AnalysisReport
        {
            Model = request.Model,
            Family = request.Family,
            Modality = "image",
            CreatedUtc = DateTimeOffset.UtcNow,
            Seed = request.Seed,
            Champion = new ChampionInfo(Path.GetFullPath(request.ChampionOnnx), sha, request.ChampionVersion),
            Watermarks = new AnalysisWatermarks(request.TrainedWatermark, request.Watermark),
            Protocol = protocol,
            Holdout = new HoldoutInfo(holdoutId, holdout.Count, skipped),
            GeneratedCount = generated.Images.Count,
            Overall = overall,
            Slices = slices,
            Feedback = feedback,
            Worst = worst,
            Weights = weights,
            Weighting = WeightingReport.From(options.Weighting),
            Drift = drift,
        };
        return (report, strips);
    }

    private static List<SliceDraft> ClassDrafts(ExtractedFeatures generated, FeatureMatrix holdout, List<int> holdoutLabels, int[]? assigned, bool conditional,
        int classCount, int minSamples, CancellationToken cancellationToken)
    {
        int labelled = holdoutLabels.Count(l => l >= 0);
        int n = generated.Features.Rows;
        var fd = new double?[classCount];
        var predicted = generated.Probabilities is { } classProbabilities ? Images.Diversity.PredictedClasses(classProbabilities) : null;
        var partial = new (string Status, int HoldoutCount, int? GeneratedCount, Dictionary<string, double> Metrics, double? Coverage, bool TooFewGenerated, string? Note)[classCount];
        for (int k = 0; k < classCount; k++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var holdoutRows = Enumerable.Range(0, holdoutLabels.Count).Where(i => holdoutLabels[i] == k).ToList();
            var metrics = new Dictionary<string, double>(StringComparer.Ordinal)
            {
                ["holdout_share"] = labelled == 0 ? 0 : (double)holdoutRows.Count / labelled,
            };
            if (assigned is null)
            {
                partial[k] = (SliceStatus.NoClassAssignment, holdoutRows.Count, null, metrics, null, false,
                    "the extractor has no class output and the generator is unconditional: generated images cannot be assigned to classes");
                continue;
            }

            var generatedRows = Enumerable.Range(0, n).Where(i => assigned[i] == k).ToList();
            double generatedShare = (double)generatedRows.Count / n;
            double? coverage;
            if (conditional)
            {
                // Requested-class samples the extractor recognises as that class; the generated share is fixed by the request.
                if (predicted is not null && generatedRows.Count > 0)
                {
                    double accuracy = (double)generatedRows.Count(i => predicted[i] == k) / generatedRows.Count;
                    metrics["conditional_accuracy"] = accuracy;
                    coverage = 1 - accuracy;
                }
                else
                {
                    coverage = null;
                }
            }
            else
            {
                metrics["generated_share"] = generatedShare;
                coverage = SliceBadness.Coverage(generatedShare, metrics["holdout_share"]);
                if (metrics["holdout_share"] > 0)
                {
                    metrics["share_ratio"] = generatedShare / metrics["holdout_share"];
                }
            }

            if (holdoutRows.Count < minSamples)
            {
                partial[k] = (SliceStatus.TooFewHoldout, holdoutRows.Count, generatedRows.Count, metrics, null, false,
                    string.Create(CultureInfo.InvariantCulture, $"{holdoutRows.Count} holdout images, {minSamples} needed: not judged"));
                continue;
            }

            if (generatedRows.Count < minSamples)
            {
                partial[k] = (SliceStatus.TooFewGenerated, holdoutRows.Count, generatedRows.Count, metrics, coverage, true,
                    string.Create(CultureInfo.InvariantCulture, $"{generatedRows.Count} of {n} generated images are of this class, {minSamples} needed for a Fréchet distance"));
                continue;
            }

            fd[k] = Fid.FromFeatures(Select(generated.Features, generatedRows, $"generated class {k}"), Select(holdout, holdoutRows, $"holdout class {k}")).Value;
            metrics["frechet_distance"] = fd[k]!.Value;
            partial[k] = (SliceStatus.Ok, holdoutRows.Count, generatedRows.Count, metrics, coverage, false, null);
        }

        var computed = fd.Where(v => v is not null).Select(v => Math.Max(0, v!.Value)).ToList();
        double? bestFd = computed.Count == 0 ? null : computed.Min();
        var drafts = new List<SliceDraft>(classCount);
        for (int k = 0; k < classCount; k++)
        {
            var (status, holdoutCount, generatedCount, metrics, coverage, tooFewGenerated, note) = partial[k];
            double? badness = null;
            if (status is SliceStatus.Ok or SliceStatus.TooFewGenerated)
            {
                // A class the champion (almost) never produces is as bad as it gets on the Fréchet component.
                double? fdComponent = tooFewGenerated ? 1.0 : fd[k] is { } value && bestFd is { } best ? SliceBadness.LowerIsBetter(value, best) : null;
                badness = SliceBadness.Combine(coverage, fdComponent);
            }

            drafts.Add(new SliceDraft(SliceKeys.Class(k), SliceKind.Class, status, holdoutCount, generatedCount, metrics, badness, note));
        }

        return drafts;
    }

    private static DriftReport Drift(OnnxFeatureExtractor extractor, StoreWindows windows, int width, int height, int channels, AnalysisOptions options, CancellationToken cancellationToken)
    {
        int fresh = windows.Fresh.Count, training = windows.Training.Count;
        string signature = string.Create(CultureInfo.InvariantCulture,
            $"{extractor.Signature}|fd:fresh-vs-training-window|windows:all-splits,last-{options.MaxDriftSamples}|fresh:{fresh}|train:{training}");
        if (DriftWindows.Shortfall(fresh, training, options.MinDriftSamples) is { } status)
        {
            return new DriftReport
            {
                Metric = "frechet_distance", Status = status, FreshCount = fresh, FreshAvailable = windows.FreshAvailable, TrainingCount = training,
                MinSamples = options.MinDriftSamples, Signature = signature,
            };
        }

        var freshFeatures = extractor.Extract(windows.Fresh.Select(r => r.Pixels!).ToList(), width, height, channels, "fresh", cancellationToken).Features;
        var trainingFeatures = extractor.Extract(windows.Training.Select(r => r.Pixels!).ToList(), width, height, channels, "training window", cancellationToken).Features;
        var fd = Fid.FromFeatures(freshFeatures, trainingFeatures);
        return new DriftReport
        {
            Metric = "frechet_distance", Status = DriftStatus.Ok, Value = fd.Value, FreshCount = fresh, FreshAvailable = windows.FreshAvailable,
            TrainingCount = training, MinSamples = options.MinDriftSamples, Signature = signature,
            Details = ReportDictionary.Ordered([KeyValuePair.Create("mean_term", fd.MeanTerm), KeyValuePair.Create("trace_fresh", fd.TraceA), KeyValuePair.Create("trace_training", fd.TraceB)]),
        };
    }

    /// <summary>Per class: up to <paramref name="perClass"/> generated samples assigned to it and as many holdout samples, each as one PNG strip.</summary>
    private static List<ClassStrip> Strips(List<byte[]> generated, int[]? assigned, List<byte[]> holdout, List<int> holdoutLabels, int classCount, int perClass,
        int width, int height, int channels)
    {
        var strips = new List<ClassStrip>(classCount);
        for (int k = 0; k < classCount; k++)
        {
            var mine = assigned is null ? [] : Enumerable.Range(0, generated.Count).Where(i => assigned[i] == k).Take(perClass).Select(i => generated[i]).ToList();
            var real = Enumerable.Range(0, holdout.Count).Where(i => holdoutLabels[i] == k).Take(perClass).Select(i => holdout[i]).ToList();
            strips.Add(new ClassStrip(SliceKeys.Class(k), Strip(mine, width, height, channels), mine.Count, Strip(real, width, height, channels), real.Count));
        }

        return strips;
    }

    /// <summary>Images side by side with a 2-pixel gray border; null for none.</summary>
    internal static byte[]? Strip(IReadOnlyList<byte[]> images, int width, int height, int channels)
    {
        if (images.Count == 0)
        {
            return null;
        }

        int stripWidth = images.Count * (width + 2) + 2, stripHeight = height + 4;
        var canvas = new byte[stripWidth * stripHeight * channels];
        Array.Fill(canvas, (byte)96);
        for (int i = 0; i < images.Count; i++)
        {
            int x0 = 2 + i * (width + 2);
            for (int y = 0; y < height; y++)
            {
                Buffer.BlockCopy(images[i], y * width * channels, canvas, ((2 + y) * stripWidth + x0) * channels, width * channels);
            }
        }

        return ImagePreprocessor.EncodePng(canvas, stripWidth, stripHeight, channels);
    }

    private sealed record GeneratedImages(List<byte[]> Images, int[] Labels, bool Conditional);

    /// <summary>
    /// <paramref name="count"/> images from the generator's ONNX file through ONNX Runtime (what is served), with latents
    /// drawn as <see cref="ImageEvaluator"/> draws them (Box–Muller on .NET's seeded Random, so the same seed gives the
    /// gate's latents) and quantized to 8 bits as serving does. A class-conditioned generator gets class i mod C.
    /// </summary>
    private static GeneratedImages Generate(byte[] onnx, GeneratorRange range, int count, int seed, int classes, int width, int height, int channels, int threads,
        CancellationToken cancellationToken)
    {
        using var sessionOptions = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1 };
        using var session = new InferenceSession(onnx, sessionOptions);
        if (!session.InputMetadata.TryGetValue("latent", out var latentMeta) || latentMeta.Dimensions.Length != 2 || latentMeta.Dimensions[1] <= 0)
        {
            throw new InvalidDataException($"the champion must have a 'latent' input of shape (batch, L); it has inputs {string.Join(", ", session.InputMetadata.Keys)}");
        }

        if (!session.OutputMetadata.ContainsKey("image"))
        {
            throw new InvalidDataException($"the champion must have an 'image' output; it has {string.Join(", ", session.OutputMetadata.Keys)}");
        }

        int latent = latentMeta.Dimensions[1];
        bool conditional = session.InputMetadata.ContainsKey("label");
        if (conditional && classes < 1)
        {
            throw new InvalidDataException("the champion is class-conditioned, but no holdout image carries an integer class label to request");
        }

        var random = new Random(seed);
        var images = new List<byte[]>(count);
        var labels = new int[count];
        int pixels = width * height * channels;
        for (int start = 0; start < count; start += GenerateBatch)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int batch = Math.Min(GenerateBatch, count - start);
            var z = new float[batch * latent];
            for (int i = 0; i < z.Length; i++)
            {
                double u1 = 1.0 - random.NextDouble();
                double u2 = random.NextDouble();
                z[i] = (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
            }

            var feeds = new List<NamedOnnxValue> { NamedOnnxValue.CreateFromTensor("latent", new DenseTensor<float>(z, [batch, latent])) };
            if (conditional)
            {
                var y = new long[batch];
                for (int i = 0; i < batch; i++)
                {
                    labels[start + i] = (start + i) % classes;
                    y[i] = labels[start + i];
                }

                feeds.Add(NamedOnnxValue.CreateFromTensor("label", new DenseTensor<long>(y, [batch])));
            }
            else
            {
                Array.Fill(labels, -1, start, batch);
            }

            using var results = session.Run(feeds, ["image"]);
            var output = results[0].AsTensor<float>();
            var dims = output.Dimensions.ToArray();
            if (dims.Length != 4 || dims[0] != batch || dims[1] != channels || dims[2] != height || dims[3] != width)
            {
                throw new InvalidDataException($"the champion's image output has shape ({string.Join(", ", dims)}); the model is configured for (batch {batch}, {channels}, {height}, {width})");
            }

            var values = output.ToArray();
            for (int i = 0; i < batch; i++)
            {
                var image = new byte[pixels];
                if (!PixelQuantizer.TryToPixels(values.AsSpan(i * pixels, pixels), channels, height, width, range, image, out int bad))
                {
                    throw new InvalidDataException($"the champion produced a non-finite value ({values[i * pixels + bad]}) for sample {start + i}: the model has diverged");
                }

                images.Add(image);
            }
        }

        return new GeneratedImages(images, labels, conditional);
    }

    private static FeatureMatrix Select(FeatureMatrix m, List<int> rows, string name)
    {
        var values = new double[rows.Count * m.Dimensions];
        for (int i = 0; i < rows.Count; i++)
        {
            m.Row(rows[i]).CopyTo(values.AsSpan(i * m.Dimensions, m.Dimensions));
        }

        return new FeatureMatrix(rows.Count, m.Dimensions, values, name);
    }
}
