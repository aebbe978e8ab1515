using System.Text;
using System.Text.Json.Nodes;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Messaging.Publishing;

namespace RetrainDaemon.UnitTests;

/// <summary>Models and hand-built messages shared by the decoder tests.</summary>
internal static class TestMessages
{
    public static ModelCatalogOptions Catalog(string onMismatch = "reject")
    {
        var catalog = new ModelCatalogOptions();
        catalog.Models["fashion-mnist"] = new ModelOptions { Modality = "image", Image = new ImageShapeOptions { OnMismatch = onMismatch } };
        catalog.Models["fortunes"] = new ModelOptions { Modality = "text", Text = new TextLimitOptions { MaxChars = 100 } };
        catalog.Models["en-de"] = new ModelOptions { Modality = "text", Text = new TextLimitOptions { MaxChars = 100, Conditional = true } };
        return catalog;
    }

    public static byte[] Utf8(string json) => Encoding.UTF8.GetBytes(json);

    public static byte[] Event(string type, string subject, JsonObject data, string id = "evt-1") =>
        CloudEventEncoder.Encode(id, type, subject, "/tests", data).Body.ToArray();

    public static JsonObject Image(byte[] payload, int width = 28, int height = 28, int channels = 1, string encoding = "png") => new()
    {
        ["modality"] = "image",
        ["image"] = new JsonObject
        {
            ["width"] = width,
            ["height"] = height,
            ["channels"] = channels,
            ["encoding"] = encoding,
            ["data"] = Convert.ToBase64String(payload),
        },
        ["label"] = 3,
    };

    public static byte[] Gradient(int width, int height, int channels)
    {
        var pixels = new byte[width * height * channels];
        for (int i = 0; i < pixels.Length; i++)
        {
            pixels[i] = (byte)(i * 7 % 256);
        }

        return pixels;
    }

    public static IngestOptions Ingest => new() { MaxMessageBytes = 64 * 1024 };

    public static string Sample => EventTypes.Sample;

    public static string Feedback => EventTypes.Feedback;
}
