using System.Net.Mime;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using CloudNative.CloudEvents;
using CloudNative.CloudEvents.SystemTextJson;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Registry;

namespace RetrainDaemon.Messaging.Events;

/// <summary>A registry event encoded for <c>retrain.events</c>: a structured-mode CloudEvent (JSON) and its routing key.</summary>
/// <param name="EventId">The CloudEvent <c>id</c>, also the AMQP <c>message-id</c>.</param>
/// <param name="Type">The CloudEvent <c>type</c> (<see cref="ModelEventTypes"/>).</param>
/// <param name="RoutingKey">The routing key under <c>retrain.events</c> (<c>model.promoted</c>, <c>model.rejected</c>).</param>
/// <param name="Subject">The model.</param>
/// <param name="Version">The version the event is about.</param>
/// <param name="Body">The encoded CloudEvent.</param>
public sealed record ModelEventMessage(string EventId, string Type, string RoutingKey, string Subject, int Version, ReadOnlyMemory<byte> Body);

/// <summary>
/// Encodes and decodes the registry events of <see cref="ModelEventTypes"/> as CloudEvents 1.0 in
/// structured JSON mode (DESIGN.md §3). <c>data</c> is camelCase JSON
/// (<c>{"model":"fashion-mnist","version":3,"previous":2,"reason":"…"}</c>). Decoding is strict:
/// anything that is not exactly the expected event is refused with <see cref="InvalidDataException"/>
/// naming the problem. Pure and thread-safe.
/// </summary>
public static class ModelEventCodec
{
    /// <summary>A registry event is a few hundred bytes; anything far larger is not one and is not parsed.</summary>
    public const int MaxEventBytes = 64 * 1024;

    private static readonly JsonEventFormatter Formatter = new(new JsonSerializerOptions(), new JsonDocumentOptions { MaxDepth = 16 });

    /// <summary>
    /// <c>retrain-daemon/&lt;host&gt;</c>: the CloudEvent <c>source</c> of events this machine publishes, so an
    /// operator reading the queue sees which node or operator shell moved the alias.
    /// </summary>
    public static string DefaultSource { get; } = "retrain-daemon/" + Uri.EscapeDataString(Environment.MachineName.ToLowerInvariant());

    /// <summary>A <c>model.promoted</c> event (promotion, rollback, or a candidate that passed the gate).</summary>
    public static ModelEventMessage EncodePromoted(ModelPromotedData data, string? source = null, string? id = null, DateTimeOffset? time = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        return Encode(ModelEventTypes.Promoted, ModelEventTypes.PromotedRoutingKey, data.Model, data.Version,
            JsonSerializer.SerializeToElement(data, ModelEventJsonContext.Default.ModelPromotedData), source, id, time);
    }

    /// <summary>A <c>model.rejected</c> event (a candidate the gate refused, recorded as a rejected version).</summary>
    public static ModelEventMessage EncodeRejected(ModelRejectedData data, string? source = null, string? id = null, DateTimeOffset? time = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        return Encode(ModelEventTypes.Rejected, ModelEventTypes.RejectedRoutingKey, data.Model, data.Version,
            JsonSerializer.SerializeToElement(data, ModelEventJsonContext.Default.ModelRejectedData), source, id, time);
    }

    /// <summary>A <c>model.rolled_back</c> event (automatic rollback; the version is the one restored).</summary>
    public static ModelEventMessage EncodeRolledBack(ModelRolledBackData data, string? source = null, string? id = null, DateTimeOffset? time = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        return Encode(ModelEventTypes.RolledBack, ModelEventTypes.RolledBackRoutingKey, data.Model, data.To,
            JsonSerializer.SerializeToElement(data, ModelEventJsonContext.Default.ModelRolledBackData), source, id, time);
    }

    /// <summary>An <c>analysis.completed</c> event (the version is the champion analysed).</summary>
    public static ModelEventMessage EncodeAnalysisCompleted(AnalysisCompletedData data, string? source = null, string? id = null, DateTimeOffset? time = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        return Encode(ModelEventTypes.AnalysisCompleted, ModelEventTypes.AnalysisCompletedRoutingKey, data.Model, data.Version,
            JsonSerializer.SerializeToElement(data, ModelEventJsonContext.Default.AnalysisCompletedData), source, id, time);
    }

    /// <summary>Decodes a <c>model.promoted</c> event.</summary>
    /// <exception cref="InvalidDataException">The body is not a valid <see cref="ModelEventTypes.Promoted"/> CloudEvent.</exception>
    public static ModelPromotedData DecodePromoted(ReadOnlyMemory<byte> body, string? contentType)
    {
        var (cloudEvent, data) = DecodeEnvelope(body, contentType, ModelEventTypes.Promoted);
        var promoted = Deserialize(data, ModelEventJsonContext.Default.ModelPromotedData, cloudEvent.Id!);
        Check(cloudEvent, promoted.Model, promoted.Version, promoted.Reason);
        if (promoted.Previous is < 1)
        {
            throw new InvalidDataException($"event {cloudEvent.Id}: data.previous must be a version (>= 1) or null, not {promoted.Previous}");
        }

        return promoted;
    }

    /// <summary>Decodes a <c>model.rejected</c> event.</summary>
    /// <exception cref="InvalidDataException">The body is not a valid <see cref="ModelEventTypes.Rejected"/> CloudEvent.</exception>
    public static ModelRejectedData DecodeRejected(ReadOnlyMemory<byte> body, string? contentType)
    {
        var (cloudEvent, data) = DecodeEnvelope(body, contentType, ModelEventTypes.Rejected);
        var rejected = Deserialize(data, ModelEventJsonContext.Default.ModelRejectedData, cloudEvent.Id!);
        Check(cloudEvent, rejected.Model, rejected.Version, rejected.Reason);
        return rejected;
    }

    /// <summary>The label value for an event type: the routing key of a known type, else <c>unknown</c> (bounded metric cardinality).</summary>
    public static string TypeLabel(string? type) => type switch
    {
        ModelEventTypes.Promoted => ModelEventTypes.PromotedRoutingKey,
        ModelEventTypes.Rejected => ModelEventTypes.RejectedRoutingKey,
        ModelEventTypes.RolledBack => ModelEventTypes.RolledBackRoutingKey,
        ModelEventTypes.AnalysisCompleted => ModelEventTypes.AnalysisCompletedRoutingKey,
        _ => "unknown",
    };

    /// <summary>Reads the CloudEvent <c>type</c> of a body without validating the rest (for metric labels); null if unreadable.</summary>
    public static string? PeekType(ReadOnlyMemory<byte> body)
    {
        if (body.Length > MaxEventBytes)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 16 });
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String
                ? type.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static ModelEventMessage Encode(string type, string routingKey, string model, int version, JsonElement data, string? source, string? id, DateTimeOffset? time)
    {
        if (!RegistryLayout.IsValidModelName(model))
        {
            throw new ArgumentException($"'{model}' is not a model name", nameof(model));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(version, 1);
        // Unique per publish, readable in a queue listing; consumers do not dedupe (a repeated
        // notification only makes a server look at the registry once more).
        string eventId = id ?? $"{routingKey}/{model}/v{version}/{Guid.NewGuid():N}";
        var cloudEvent = new CloudEvent(CloudEventsSpecVersion.V1_0)
        {
            Id = eventId,
            Type = type,
            Source = new Uri(source ?? DefaultSource, UriKind.RelativeOrAbsolute),
            Subject = model,
            Time = time ?? DateTimeOffset.UtcNow,
            DataContentType = "application/json",
            Data = data,
        };
        var body = Formatter.EncodeStructuredModeMessage(cloudEvent, out _);
        return new ModelEventMessage(eventId, type, routingKey, model, version, body);
    }

    private static (CloudEvent CloudEvent, JsonElement Data) DecodeEnvelope(ReadOnlyMemory<byte> body, string? contentType, string expectedType)
    {
        if (body.Length > MaxEventBytes)
        {
            throw new InvalidDataException($"message of {body.Length} bytes is larger than a registry event can be ({MaxEventBytes})");
        }

        if (!string.IsNullOrEmpty(contentType) && !IsJsonContentType(contentType))
        {
            throw new InvalidDataException($"content type '{contentType}' is not {EventTypes.StructuredJsonContentType}");
        }

        CloudEvent cloudEvent;
        try
        {
            // The formatter needs a content type to pick structured mode; ours is always JSON.
            cloudEvent = Formatter.DecodeStructuredModeMessage(body, new ContentType(EventTypes.StructuredJsonContentType), extensionAttributes: null);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or FormatException or JsonException)
        {
            throw new InvalidDataException($"body is not a CloudEvents 1.0 structured JSON event: {ex.Message}", ex);
        }

        if (cloudEvent.Type != expectedType)
        {
            throw new InvalidDataException($"event {cloudEvent.Id}: type '{Truncate(cloudEvent.Type)}' is not {expectedType}");
        }

        if (cloudEvent.Data is not JsonElement { ValueKind: JsonValueKind.Object } data)
        {
            throw new InvalidDataException($"event {cloudEvent.Id}: data must be a JSON object");
        }

        return (cloudEvent, data);
    }

    private static T Deserialize<T>(JsonElement data, JsonTypeInfo<T> contract, string id)
        where T : class
    {
        try
        {
            return data.Deserialize(contract) ?? throw new InvalidDataException($"event {id}: data is null");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"event {id}: data does not match the contract: {ex.Message}", ex);
        }
    }

    private static void Check(CloudEvent cloudEvent, string? model, int version, string? reason)
    {
        string id = cloudEvent.Id!;
        // A missing property leaves the record's default, which nullable annotations do not catch.
        if (model is null || reason is null)
        {
            throw new InvalidDataException($"event {id}: data.model and data.reason are required");
        }

        if (!RegistryLayout.IsValidModelName(model))
        {
            throw new InvalidDataException($"event {id}: data.model '{Truncate(model)}' is not a model name");
        }

        if (cloudEvent.Subject != model)
        {
            throw new InvalidDataException($"event {id}: subject '{Truncate(cloudEvent.Subject)}' differs from data.model '{model}'");
        }

        if (version < 1)
        {
            throw new InvalidDataException($"event {id}: data.version must be >= 1, not {version}");
        }
    }

    private static bool IsJsonContentType(string contentType)
    {
        var mediaType = contentType.Split(';', 2)[0].Trim();
        return mediaType.Equals(EventTypes.StructuredJsonContentType, StringComparison.OrdinalIgnoreCase)
            || mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase);
    }

    private static string Truncate(string? text) => text is null ? "(none)" : text.Length <= 80 ? text : text[..80] + "…";
}

/// <summary>Source-generated contracts of the event data: camelCase names, explicit nulls, JSON null refused for non-nullable members.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    RespectNullableAnnotations = true)]
[JsonSerializable(typeof(ModelPromotedData))]
[JsonSerializable(typeof(ModelRejectedData))]
[JsonSerializable(typeof(ModelRolledBackData))]
[JsonSerializable(typeof(AnalysisCompletedData))]
internal sealed partial class ModelEventJsonContext : JsonSerializerContext;
