using System.Text.Json.Nodes;
using CloudNative.CloudEvents;
using CloudNative.CloudEvents.SystemTextJson;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Preprocessing;

namespace RetrainDaemon.Messaging.Publishing;

/// <summary>A message ready to publish to <c>retrain.ingest</c>.</summary>
public sealed record OutgoingMessage(string EventId, string RoutingKey, ReadOnlyMemory<byte> Body);

/// <summary>
/// Builds structured-mode CloudEvents (JSON) for the three datasets and for feedback. Event ids
/// are derived from where the data came from, so publishing the same data twice yields the same
/// ids and the store keeps one copy.
/// </summary>
public static class CloudEventEncoder
{
    private static readonly JsonEventFormatter Formatter = new();

    public static OutgoingMessage Encode(string id, string type, string subject, string source, JsonObject data, DateTimeOffset? time = null)
    {
        var cloudEvent = new CloudEvent(CloudEventsSpecVersion.V1_0)
        {
            Id = id,
            Type = type,
            Source = new Uri(source, UriKind.RelativeOrAbsolute),
            Subject = subject,
            Time = time ?? DateTimeOffset.UtcNow,
            DataContentType = "application/json",
            Data = data,
        };
        var body = Formatter.EncodeStructuredModeMessage(cloudEvent, out _);
        // Anything that is not feedback routes to the samples queue, where the daemon judges it.
        string routingKey = EventTypes.RoutingKey(type == EventTypes.Feedback ? EventTypes.Feedback : EventTypes.Sample, subject);
        return new OutgoingMessage(id, routingKey, body);
    }

    public static JsonObject ImageObject(ReadOnlySpan<byte> pixels, int width, int height, int channels, string encoding)
    {
        byte[] payload = encoding switch
        {
            "png" => ImagePreprocessor.EncodePng(pixels, width, height, channels),
            "raw-u8" => pixels.ToArray(),
            _ => throw new ArgumentException($"encoding must be png or raw-u8, not '{encoding}'", nameof(encoding)),
        };
        return new JsonObject
        {
            ["width"] = width,
            ["height"] = height,
            ["channels"] = channels,
            ["encoding"] = encoding,
            ["data"] = Convert.ToBase64String(payload),
        };
    }

    public static OutgoingMessage FashionMnist(FashionMnistImage image, string subset, string model, string encoding, string? split)
    {
        var data = new JsonObject
        {
            ["modality"] = "image",
            ["image"] = ImageObject(image.Pixels, Data.Datasets.FashionMnist.Side, Data.Datasets.FashionMnist.Side, 1, encoding),
            ["label"] = image.Label,
        };
        if (split is not null)
        {
            data["split"] = split;
        }

        return Encode($"fashion-mnist/{subset}/{image.Index:D5}", EventTypes.Sample, model, "/retrain-daemon/publish/fashion-mnist", data);
    }

    public static OutgoingMessage Fortune(Fortune fortune, string model, string? split)
    {
        var data = new JsonObject { ["modality"] = "text", ["text"] = fortune.Text, ["label"] = fortune.File };
        if (split is not null)
        {
            data["split"] = split;
        }

        return Encode($"fortunes/{fortune.File}/{fortune.Index:D5}", EventTypes.Sample, model, "/retrain-daemon/publish/fortunes", data);
    }

    public static OutgoingMessage Translation(TranslationPair pair, string language, string model, string? split)
    {
        var data = new JsonObject
        {
            ["modality"] = "text",
            ["source_text"] = pair.Source,
            ["text"] = pair.Target,
            ["label"] = pair.Catalog,
        };
        if (split is not null)
        {
            data["split"] = split;
        }

        return Encode($"gettext/{language}/{pair.Catalog}/{pair.Index:D6}", EventTypes.Sample, model, "/retrain-daemon/publish/gettext", data);
    }
}
