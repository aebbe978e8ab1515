using System.Text.Json;
using CloudNative.CloudEvents;
using CloudNative.CloudEvents.SystemTextJson;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Policies;
using RetrainDaemon.Data.Preprocessing;

namespace RetrainDaemon.Messaging.Ingestion;

/// <summary>
/// Turns a message body into a validated, preprocessed <see cref="IngestItem"/>, or throws
/// <see cref="IngestRejection"/> naming what was wrong. Pure with respect to the broker and the
/// store, so it is unit-tested directly and fuzzed cheaply. Thread-safe.
/// </summary>
public sealed class MessageDecoder(ModelCatalogOptions models, IngestOptions ingest)
{
    // MaxDepth bounds hostile nesting (the default is 64; our messages need 4).
    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 32 };

    private readonly JsonEventFormatter formatter = new();

    public IngestItem Decode(ReadOnlyMemory<byte> body, string? contentType)
    {
        if (body.Length > ingest.MaxMessageBytes)
        {
            throw new IngestRejection(RejectReasons.TooLarge, $"message of {body.Length} bytes exceeds Ingest:MaxMessageBytes ({ingest.MaxMessageBytes})");
        }

        if (!string.IsNullOrEmpty(contentType) && !IsJsonContentType(contentType))
        {
            throw new IngestRejection(RejectReasons.ContentType, $"content type '{contentType}' is not {EventTypes.StructuredJsonContentType}");
        }

        // Parse once from the body's memory (the SDK's own decode goes through a stream copy), then let the
        // SDK turn the element into a CloudEvent, which validates the envelope attributes.
        using var document = ParseJson(body);
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw new IngestRejection(RejectReasons.NotCloudEvent, $"body is a JSON {document.RootElement.ValueKind.ToString().ToLowerInvariant()}, not a CloudEvent object");
        }

        CloudEvent cloudEvent;
        try
        {
            cloudEvent = formatter.ConvertFromJsonElement(document.RootElement, extensionAttributes: null);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or FormatException or JsonException)
        {
            throw new IngestRejection(RejectReasons.NotCloudEvent, $"body is not a CloudEvents 1.0 structured JSON event: {ex.Message}");
        }

        if (cloudEvent.Type is not (EventTypes.Sample or EventTypes.Feedback))
        {
            throw new IngestRejection(RejectReasons.UnknownType, $"event type '{cloudEvent.Type}' is not {EventTypes.Sample} or {EventTypes.Feedback}");
        }

        string id = cloudEvent.Id!;
        if (string.IsNullOrWhiteSpace(id) || id.Length > 256)
        {
            throw new IngestRejection(RejectReasons.NotCloudEvent, "event id must be 1-256 characters");
        }

        if (string.IsNullOrWhiteSpace(cloudEvent.Subject))
        {
            throw new IngestRejection(RejectReasons.MissingSubject, $"event {id} has no subject; the subject names the model");
        }

        string modelName = cloudEvent.Subject;
        if (!models.TryGet(modelName, out var model))
        {
            throw new IngestRejection(RejectReasons.UnknownModel, $"event {id} is for model '{Truncate(modelName)}', which is not configured (Models: {string.Join(", ", models.Models.Keys)})");
        }

        if (cloudEvent.Data is not JsonElement { ValueKind: JsonValueKind.Object } data)
        {
            throw new IngestRejection(RejectReasons.SchemaViolation, $"event {id} must carry a JSON object as data");
        }

        string source = cloudEvent.Source?.ToString() ?? "";
        try
        {
            return cloudEvent.Type == EventTypes.Sample
                ? IngestItem.Of(DecodeSample(id, source, cloudEvent.Time, modelName, model, data))
                : IngestItem.Of(DecodeFeedback(id, source, cloudEvent.Time, modelName, model, data));
        }
        catch (IngestRejection ex)
        {
            ex.Model = modelName;
            throw;
        }
    }

    private static JsonDocument ParseJson(ReadOnlyMemory<byte> body)
    {
        try
        {
            return JsonDocument.Parse(body, DocumentOptions);
        }
        catch (JsonException ex)
        {
            throw new IngestRejection(RejectReasons.MalformedJson, $"body is not valid JSON: {ex.Message}");
        }
    }

    private static bool IsJsonContentType(string contentType)
    {
        var mediaType = contentType.Split(';', 2)[0].Trim();
        return mediaType.Equals(EventTypes.StructuredJsonContentType, StringComparison.OrdinalIgnoreCase)
            || mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase);
    }

    private static SampleRecord DecodeSample(string id, string source, DateTimeOffset? time, string modelName, ModelOptions model, JsonElement data)
    {
        if (DataSchemas.Check(DataSchemas.Sample, data) is { } problem)
        {
            throw new IngestRejection(RejectReasons.SchemaViolation, $"event {id}: {problem}");
        }

        var modality = data.GetProperty("modality").GetString() == "image" ? Modality.Image : Modality.Text;
        if (modality != model.ParsedModality)
        {
            throw new IngestRejection(RejectReasons.ModalityMismatch, $"event {id} carries {modality.ToString().ToLowerInvariant()} but model '{modelName}' takes {model.Modality}");
        }

        string? label = data.TryGetProperty("label", out var labelElement)
            ? labelElement.ValueKind == JsonValueKind.Number ? labelElement.GetRawText() : labelElement.GetString()
            : null;
        string? explicitSplit = data.TryGetProperty("split", out var splitElement) ? splitElement.GetString() : null;
        string split = SplitPolicy.Assign(id, model.HoldoutFraction, explicitSplit);

        if (modality == Modality.Image)
        {
            var image = data.GetProperty("image");
            byte[] pixels = DecodeImage(id, image, model.Image);
            return new SampleRecord(id, modelName, source, time, modality, split, label, model.Image.Width, model.Image.Height, model.Image.Channels, pixels, null, null);
        }

        string text = NormalizeText(id, "text", data.GetProperty("text").GetString()!, model.Text.MaxChars);
        string? sourceText = null;
        if (data.TryGetProperty("source_text", out var sourceElement))
        {
            sourceText = NormalizeText(id, "source_text", sourceElement.GetString()!, model.Text.MaxSourceChars);
        }
        else if (model.Text.Conditional)
        {
            throw new IngestRejection(RejectReasons.SchemaViolation, $"event {id}: model '{modelName}' is conditional (source ⇒ text) and needs source_text");
        }

        return new SampleRecord(id, modelName, source, time, modality, split, label, 0, 0, 0, null, text, sourceText);
    }

    private static FeedbackRecord DecodeFeedback(string id, string source, DateTimeOffset? time, string modelName, ModelOptions model, JsonElement data)
    {
        if (DataSchemas.Check(DataSchemas.Feedback, data) is { } problem)
        {
            throw new IngestRejection(RejectReasons.SchemaViolation, $"event {id}: {problem}");
        }

        string dataModel = data.GetProperty("model").GetString()!;
        if (dataModel != modelName)
        {
            throw new IngestRejection(RejectReasons.SchemaViolation, $"event {id}: data.model '{Truncate(dataModel)}' differs from the subject '{modelName}'");
        }

        var versionElement = data.GetProperty("version");
        string version = versionElement.ValueKind == JsonValueKind.Number ? versionElement.GetRawText() : versionElement.GetString()!;
        int? rating = data.TryGetProperty("rating", out var r) ? r.GetInt32() : null;
        bool? accepted = data.TryGetProperty("accepted", out var a) ? a.GetBoolean() : null;
        string? rater = data.TryGetProperty("rater", out var who) ? who.GetString() : null;
        string? correctionText = null;
        byte[]? correctionImage = null;
        if (data.TryGetProperty("correction", out var correction))
        {
            if (correction.ValueKind == JsonValueKind.String)
            {
                int limit = model.ParsedModality == Modality.Text ? model.Text.MaxChars : 2048;
                correctionText = NormalizeText(id, "correction", correction.GetString()!, limit);
            }
            else if (model.ParsedModality == Modality.Image)
            {
                correctionImage = DecodeImage(id, correction, model.Image);
            }
            else
            {
                throw new IngestRejection(RejectReasons.ModalityMismatch, $"event {id}: an image correction for text model '{modelName}'");
            }
        }

        return new FeedbackRecord(id, modelName, source, time, data.GetProperty("generation_id").GetString()!, version, rating, accepted, correctionText, correctionImage, rater)
        {
            // DecodeImage made the correction canonical at the model's shape; the store needs it to make a sample of it.
            CorrectionShape = correctionImage is null ? default : (model.Image.Width, model.Image.Height, model.Image.Channels),
        };
    }

    private static byte[] DecodeImage(string id, JsonElement image, ImageShapeOptions shape)
    {
        int width = image.GetProperty("width").GetInt32();
        int height = image.GetProperty("height").GetInt32();
        int channels = image.GetProperty("channels").GetInt32();
        string encoding = image.GetProperty("encoding").GetString()!;
        if (!image.GetProperty("data").TryGetBytesFromBase64(out var bytes))
        {
            throw new IngestRejection(RejectReasons.BadBase64, $"event {id}: image.data is not valid base64");
        }

        try
        {
            return ImagePreprocessor.ToCanonical(encoding, bytes, width, height, channels, shape);
        }
        catch (IngestRejection ex)
        {
            throw new IngestRejection(ex.Reason, $"event {id}: {ex.Message}");
        }
    }

    private static string NormalizeText(string id, string field, string raw, int maxChars)
    {
        // Refuse absurd inputs before spending time on them; the exact limit applies after normalization.
        if (raw.Length > maxChars * 4L + 1024)
        {
            throw new IngestRejection(RejectReasons.TextTooLong, $"event {id}: {field} has {raw.Length} characters, the limit is {maxChars}");
        }

        string text = TextNormalizer.Normalize(raw);
        if (text.Length == 0)
        {
            throw new IngestRejection(RejectReasons.TextEmpty, $"event {id}: {field} is empty after normalization");
        }

        if (text.Length > maxChars)
        {
            throw new IngestRejection(RejectReasons.TextTooLong, $"event {id}: {field} has {text.Length} characters after normalization, the limit is {maxChars}");
        }

        return text;
    }

    private static string Truncate(string s) => s.Length <= 80 ? s : s[..80] + "…";
}
