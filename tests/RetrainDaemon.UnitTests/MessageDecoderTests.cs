using System.Text;
using System.Text.Json.Nodes;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Data.Preprocessing;
using RetrainDaemon.Messaging.Ingestion;
using static RetrainDaemon.UnitTests.TestMessages;

namespace RetrainDaemon.UnitTests;

public class MessageDecoderTests
{
    private readonly MessageDecoder decoder = new(Catalog(), Ingest);

    private string RejectionOf(byte[] body, string? contentType = EventTypes.StructuredJsonContentType) =>
        Assert.Throws<IngestRejection>(() => decoder.Decode(body, contentType)).Reason;

    [Fact]
    public void Png_IsDecodedToCanonicalPixels()
    {
        var pixels = Gradient(28, 28, 1);
        var item = decoder.Decode(Event(Sample, "fashion-mnist", Image(ImagePreprocessor.EncodePng(pixels, 28, 28, 1))), EventTypes.StructuredJsonContentType);
        Assert.NotNull(item.Sample);
        Assert.Equal(pixels, item.Sample.Pixels);
        Assert.Equal("3", item.Sample.Label);
        Assert.Equal(Modality.Image, item.Sample.Modality);
    }

    [Fact]
    public void RawU8_IsStoredAsIs()
    {
        var pixels = Gradient(28, 28, 1);
        var item = decoder.Decode(Event(Sample, "fashion-mnist", Image(pixels, encoding: "raw-u8")), null);
        Assert.Equal(pixels, item.Sample!.Pixels);
    }

    [Fact]
    public void WrongSize_IsResized_WhenThePolicyAllowsIt()
    {
        var resizing = new MessageDecoder(Catalog("resize"), Ingest);
        var png = ImagePreprocessor.EncodePng(Gradient(56, 56, 3), 56, 56, 3);
        var item = resizing.Decode(Event(Sample, "fashion-mnist", Image(png, 56, 56, 3)), null);
        Assert.Equal(28 * 28, item.Sample!.Pixels!.Length);
    }

    [Fact]
    public void Text_IsNormalized_AndSplitAssigned()
    {
        var item = decoder.Decode(Event(Sample, "fortunes", new JsonObject { ["modality"] = "text", ["text"] = "B\bBold\r\n", ["split"] = "holdout" }), null);
        Assert.Equal("Bold", item.Sample!.Text);
        Assert.Equal(Splits.Holdout, item.Sample.Split);
    }

    [Fact]
    public void Feedback_IsDecoded()
    {
        var data = new JsonObject { ["generation_id"] = "g-1", ["model"] = "fortunes", ["version"] = 3, ["rating"] = 5, ["correction"] = "better text", ["rater"] = "ann" };
        var item = decoder.Decode(Event(Feedback, "fortunes", data), null);
        Assert.Equal(5, item.Feedback!.Rating);
        Assert.Equal("3", item.Feedback.Version);
        Assert.Equal("better text", item.Feedback.CorrectionText);
    }

    public static TheoryData<string, byte[], string?> BadInputs()
    {
        var good = ImagePreprocessor.EncodePng(Gradient(28, 28, 1), 28, 28, 1);
        var text = new JsonObject { ["modality"] = "text", ["text"] = "hello" };
        return new()
        {
            { RejectReasons.MalformedJson, Utf8("{\"specversion\":\"1.0\",\"id\":"), EventTypes.StructuredJsonContentType },
            { RejectReasons.NotCloudEvent, Utf8("{\"hello\":\"world\"}"), EventTypes.StructuredJsonContentType },
            { RejectReasons.NotCloudEvent, Utf8("""{"specversion":"1.0","type":"retrain.sample.v1","source":"/x","subject":"fortunes","data":{"modality":"text","text":"a"}}"""), null },
            { RejectReasons.NotCloudEvent, Utf8("[1,2,3]"), null },
            { RejectReasons.UnknownType, Event("retrain.other.v1", "fortunes", text), null },
            { RejectReasons.MissingSubject, Utf8("""{"specversion":"1.0","id":"a","type":"retrain.sample.v1","source":"/x","data":{"modality":"text","text":"a"}}"""), null },
            { RejectReasons.UnknownModel, Event(Sample, "no-such-model", text), null },
            { RejectReasons.ContentType, Event(Sample, "fortunes", text), "text/plain" },
            { RejectReasons.SchemaViolation, Event(Sample, "fortunes", new JsonObject { ["modality"] = "text" }), null },
            { RejectReasons.SchemaViolation, Event(Sample, "fortunes", new JsonObject { ["modality"] = "text", ["text"] = "x", ["extra"] = 1 }), null },
            { RejectReasons.SchemaViolation, Event(Sample, "en-de", text), null },
            { RejectReasons.ModalityMismatch, Event(Sample, "fortunes", Image(good)), null },
            { RejectReasons.BadBase64, Event(Sample, "fashion-mnist", BadBase64()), null },
            { RejectReasons.UndecodableImage, Event(Sample, "fashion-mnist", Image(Encoding.ASCII.GetBytes("definitely not a png"))), null },
            { RejectReasons.UndecodableImage, Event(Sample, "fashion-mnist", Image(good[..(good.Length * 2 / 3)])), null },
            { RejectReasons.ImageShape, Event(Sample, "fashion-mnist", Image(ImagePreprocessor.EncodePng(Gradient(32, 32, 1), 32, 32, 1), 32, 32)), null },
            { RejectReasons.ImageShape, Event(Sample, "fashion-mnist", Image(ImagePreprocessor.EncodePng(Gradient(28, 28, 3), 28, 28, 3), 28, 28, 3)), null },
            { RejectReasons.ImageShape, Event(Sample, "fashion-mnist", Image(good, 28, 28, 3)), null },
            { RejectReasons.ImageShape, Event(Sample, "fashion-mnist", Image(new byte[100], encoding: "raw-u8")), null },
            { RejectReasons.TextEmpty, Event(Sample, "fortunes", new JsonObject { ["modality"] = "text", ["text"] = " \b\u0007 " }), null },
            { RejectReasons.TextTooLong, Event(Sample, "fortunes", new JsonObject { ["modality"] = "text", ["text"] = new string('x', 101) }), null },
            { RejectReasons.TooLarge, Event(Sample, "fortunes", new JsonObject { ["modality"] = "text", ["text"] = new string('x', 70_000) }), null },
            { RejectReasons.SchemaViolation, Event(Feedback, "fortunes", new JsonObject { ["generation_id"] = "g", ["model"] = "fortunes", ["version"] = 1, ["rating"] = 9 }), null },
            { RejectReasons.SchemaViolation, Event(Feedback, "fortunes", new JsonObject { ["generation_id"] = "g", ["model"] = "fortunes", ["version"] = 1 }), null },
            { RejectReasons.SchemaViolation, Event(Feedback, "fortunes", new JsonObject { ["generation_id"] = "g", ["model"] = "fashion-mnist", ["version"] = 1, ["rating"] = 2 }), null },
            { RejectReasons.MalformedJson, Utf8(new string('[', 5000) + new string(']', 5000)), null },
        };
    }

    private static JsonObject BadBase64()
    {
        var data = Image([1, 2, 3]);
        data["image"]!["data"] = "@@@ not base64 @@@";
        return data;
    }

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void BadInput_IsRejected_WithItsReason(string reason, byte[] body, string? contentType)
    {
        Assert.Equal(reason, RejectionOf(body, contentType));
    }

    [Fact]
    public void Rejection_NamesTheModel_WhenItIsConfigured()
    {
        var body = Event(Sample, "fortunes", new JsonObject { ["modality"] = "text", ["text"] = new string('x', 101) });
        var rejection = Assert.Throws<IngestRejection>(() => decoder.Decode(body, null));
        Assert.Equal("fortunes", rejection.Model);
        Assert.Contains("101 characters", rejection.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RandomBytes_AreRejected_NeverThrowOtherwise()
    {
        var random = new Random(1234);
        for (int i = 0; i < 2000; i++)
        {
            var body = new byte[random.Next(0, 300)];
            random.NextBytes(body);
            Assert.Throws<IngestRejection>(() => decoder.Decode(body, null));
        }
    }
}
