using System.Text.Json.Nodes;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Data.Preprocessing;
using RetrainDaemon.Messaging.Ingestion;
using static RetrainDaemon.UnitTests.TestMessages;

namespace RetrainDaemon.UnitTests;

/// <summary>A correction image leaves the decoder canonical and with its shape, which the store needs to make a sample of it.</summary>
public class FeedbackCorrectionDecodingTests
{
    private readonly MessageDecoder decoder = new(Catalog("resize"), Ingest);

    private static JsonObject Data(JsonNode correction) =>
        new() { ["generation_id"] = "fashion-mnist/2/abc", ["model"] = "fashion-mnist", ["version"] = 2, ["correction"] = correction };

    [Fact]
    public void An_image_correction_carries_the_models_canonical_shape()
    {
        var png = ImagePreprocessor.EncodePng(Gradient(56, 56, 3), 56, 56, 3);
        var correction = Image(png, 56, 56, 3)["image"]!.DeepClone();

        var feedback = decoder.Decode(Event(Feedback, "fashion-mnist", Data(correction)), null).Feedback!;

        Assert.Equal((28, 28, 1), feedback.CorrectionShape);
        Assert.Equal(28 * 28, feedback.CorrectionImage!.Length);
    }

    [Fact]
    public void A_text_correction_has_no_image_shape()
    {
        var feedback = decoder.Decode(Event(Feedback, "fashion-mnist", Data(JsonValue.Create("a sandal, not a sneaker"))), null).Feedback!;

        Assert.Equal((0, 0, 0), feedback.CorrectionShape);
        Assert.Null(feedback.CorrectionImage);
    }
}
