using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Evaluation.Extractors;
using RetrainDaemon.Evaluation.Images;

namespace RetrainDaemon.UnitTests.Evaluation.Images;

/// <summary>The pinned extractor as shipped, and any ONNX extractor configured by path, outputs, size and normalization (real ONNX Runtime).</summary>
public sealed class ExtractorTests
{
    private static readonly IReadOnlyList<FashionMnistImage> Test = FashionMnist.Read("t10k", take: 500);

    [Fact]
    public void Pinned_extractor_verifies_and_classifies_t10k_as_recorded()
    {
        var record = PinnedExtractor.Verify();
        Assert.True(record.T10kAccuracy >= PinnedExtractor.MinimumAccuracy);

        using var extractor = new OnnxFeatureExtractor(new FeatureExtractorOptions());
        var extracted = extractor.Extract(Test.Select(i => i.Pixels).ToList(), 28, 28, 1);
        var predicted = Diversity.PredictedClasses(extracted.Probabilities!);
        double accuracy = (double)predicted.Where((p, i) => p == Test[i].Label).Count() / Test.Count;

        Assert.Equal(128, extracted.Features.Dimensions);
        Assert.InRange(accuracy, 0.85, 1.0); // 500 images of a 91.6 % classifier
        Assert.StartsWith($"extractor:fashion-classifier@{record.Sha256[..12]}|layer:features|input:28x28x1|norm:0/1", extractor.Signature, StringComparison.Ordinal);
    }

    [Fact]
    public void A_configured_extractor_resizes_larger_images_to_its_input()
    {
        var options = new FeatureExtractorOptions { Path = PinnedExtractor.OnnxPath, Sha256 = PinnedExtractor.Load().Sha256, Name = "classifier-by-path" };
        using var extractor = new OnnxFeatureExtractor(options);
        var native = extractor.Extract(Test.Take(20).Select(i => i.Pixels).ToList(), 28, 28, 1);
        // 2x nearest-neighbour upsampling; bilinear (half-pixel centres) back to 28x28 recovers the pixels exactly.
        var doubled = Test.Take(20).Select(i =>
        {
            var big = new byte[56 * 56];
            for (int y = 0; y < 56; y++)
            {
                for (int x = 0; x < 56; x++)
                {
                    big[y * 56 + x] = i.Pixels[(y / 2) * 28 + x / 2];
                }
            }

            return big;
        }).ToList();

        var resized = extractor.Extract(doubled, 56, 56, 1);

        Assert.Equal(native.Features.Values.ToArray(), resized.Features.Values.ToArray());
        Assert.Contains("classifier-by-path@", extractor.Signature, StringComparison.Ordinal);
    }

    [Fact]
    public void Wrong_hash_missing_file_and_unknown_output_are_refused_by_name()
    {
        var wrongHash = Assert.Throws<InvalidDataException>(() => new OnnxFeatureExtractor(new FeatureExtractorOptions { Path = PinnedExtractor.OnnxPath, Sha256 = new string('0', 64) }));
        Assert.Contains("expected 0000", wrongHash.Message, StringComparison.Ordinal);

        var missing = Assert.Throws<FileNotFoundException>(() => new OnnxFeatureExtractor(new FeatureExtractorOptions { Path = "/nonexistent/inception.onnx" }));
        Assert.Contains("/nonexistent/inception.onnx", missing.Message, StringComparison.Ordinal);

        var output = Assert.Throws<ArgumentException>(() => new OnnxFeatureExtractor(new FeatureExtractorOptions { FeatureOutput = "pool3" }));
        Assert.Contains("no output named 'pool3'", output.Message, StringComparison.Ordinal);
        Assert.Contains("features", output.Message, StringComparison.Ordinal);

        using var extractor = new OnnxFeatureExtractor(new FeatureExtractorOptions());
        var size = Assert.Throws<ArgumentException>(() => extractor.Extract([new byte[10]], 28, 28, 1, "generated"));
        Assert.Contains("generated: image 0 has 10 bytes", size.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluation_options_validation_names_every_bad_key()
    {
        var result = new EvaluationOptionsValidator().Validate(null, new EvaluationOptions
        {
            SampleCount = 1,
            Extractor = new FeatureExtractorOptions { Path = "/nonexistent.onnx", Sha256 = "xyz", Channels = 2, Std = 0, LogitOutput = "logits" },
        });

        Assert.True(result.Failed);
        string all = string.Join("\n", result.Failures);
        foreach (var key in new[] { "Evaluation:SampleCount", "Evaluation:Extractor:Path", "Evaluation:Extractor:Sha256", "Evaluation:Extractor:Channels", "Evaluation:Extractor:Std", "Evaluation:Extractor:LogitOutput" })
        {
            Assert.Contains(key, all, StringComparison.Ordinal);
        }
    }
}
