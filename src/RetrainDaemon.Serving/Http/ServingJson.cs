using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace RetrainDaemon.Serving.Http;

/// <summary>Every error body: <c>{"error": "…"}</c> (Open Inference Protocol's error object, used by the friendly routes too).</summary>
internal sealed record ErrorBody(string Error);

/// <summary><c>GET /v2</c>: the server metadata response.</summary>
internal sealed record ServerMetadata(string Name, string Version, IReadOnlyList<string> Extensions);

/// <summary>A tensor of model metadata: OIP datatype (<c>FP32</c>, <c>INT64</c>, …) and shape with -1 for dynamic dimensions.</summary>
internal sealed record TensorMetadata(string Name, string Datatype, IReadOnlyList<long> Shape);

/// <summary>
/// <c>GET /v2/models/{m}[/versions/{v}]</c>: OIP model metadata plus what an operator wants to see
/// next to it — the execution provider the session runs on and whether the model is ready.
/// </summary>
internal sealed record ModelMetadata(
    string Name,
    IReadOnlyList<string> Versions,
    string Platform,
    IReadOnlyList<TensorMetadata> Inputs,
    IReadOnlyList<TensorMetadata> Outputs,
    string? ExecutionProvider,
    bool Ready,
    DateTimeOffset? LoadedAt);

/// <summary><c>GET /v2/models/{m}[/versions/{v}]/ready</c>: OIP model ready response, with the serving version and, when not ready, why.</summary>
internal sealed record ModelReadyResponse(string Name, bool Ready, string? Version, string? Error);

/// <summary>The inference request object of the Open Inference Protocol's REST API.</summary>
internal sealed class InferRequest
{
    /// <summary>Echoed in the response when given.</summary>
    public string? Id { get; set; }

    /// <summary>Accepted and ignored: this server defines no request parameters.</summary>
    public Dictionary<string, JsonElement>? Parameters { get; set; }

    public required List<InferInput> Inputs { get; set; }

    /// <summary>Outputs to return; all outputs when absent.</summary>
    public List<InferRequestedOutput>? Outputs { get; set; }
}

/// <summary>One input tensor: <c>data</c> in row-major order, flat or nested to any depth.</summary>
internal sealed class InferInput
{
    public required string Name { get; set; }

    public required long[] Shape { get; set; }

    public required string Datatype { get; set; }

    public Dictionary<string, JsonElement>? Parameters { get; set; }

    public required JsonElement Data { get; set; }
}

/// <summary>An output asked for by name.</summary>
internal sealed class InferRequestedOutput
{
    public required string Name { get; set; }

    public Dictionary<string, JsonElement>? Parameters { get; set; }
}

/// <summary>An inference response (documentation type for OpenAPI; the server writes it with <see cref="TensorJson"/>).</summary>
internal sealed record InferResponse(string ModelName, string ModelVersion, string? Id, IReadOnlyList<InferOutput> Outputs);

/// <summary>One output tensor of an inference response: flat row-major <c>data</c>.</summary>
internal sealed record InferOutput(string Name, string Datatype, IReadOnlyList<long> Shape, IReadOnlyList<double> Data);

/// <summary><c>POST /v1/models/{m}/generate</c> request.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed class GenerateRequest
{
    /// <summary>Samples to generate, 1 to <c>Serving:MaxSamplesPerRequest</c> (default 1).</summary>
    public int Count { get; set; } = 1;

    /// <summary>The class of every sample, for class-conditioned generators; absent: drawn per sample from the seed.</summary>
    [JsonPropertyName("class")]
    public int? Class { get; set; }

    /// <summary>0 to 2^53−1; the same seed gives the same samples from the same version. Absent: a random seed, reported back.</summary>
    public long? Seed { get; set; }

    /// <summary>ψ in (0, 1]: each latent component is redrawn until |z| ≤ 2ψ. Absent: no truncation.</summary>
    public double? Truncation { get; set; }

    /// <summary><c>json</c> (default: base64 PNGs in JSON), <c>png</c> (one image, count must be 1) or <c>grid</c> (one PNG of all samples).</summary>
    public string Format { get; set; } = GenerateFormats.Json;
}

/// <summary>The <c>format</c> values of a generate request.</summary>
internal static class GenerateFormats
{
    public const string Json = "json";
    public const string Png = "png";
    public const string Grid = "grid";
}

/// <summary><c>POST /v1/models/{m}/generate</c> response for <c>format: json</c>.</summary>
internal sealed record GenerateResponse(
    string Model,
    int Version,
    long Seed,
    double? Truncation,
    int Width,
    int Height,
    int Channels,
    IReadOnlyList<string> GenerationIds,
    IReadOnlyList<GeneratedSample> Samples);

/// <summary>One generated image: its id for feedback, its class (conditional generators), and the PNG in base64.</summary>
internal sealed record GeneratedSample(string GenerationId, int? Class, string Png);

/// <summary>
/// <c>POST /v1/models/{m}/generate</c> request for a text model. lm models take <c>prompt</c> (absent or
/// empty: unconditional), conditional models take <c>source</c>; every other field is optional.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed class TextGenerateRequest
{
    /// <summary>lm models: the text to continue (the answer holds only the continuation).</summary>
    public string? Prompt { get; set; }

    /// <summary>Conditional models: the source text the target is generated from.</summary>
    public string? Source { get; set; }

    /// <summary>1 to <c>Serving:MaxNewTokens</c>; default 64.</summary>
    public int? MaxNewTokens { get; set; }

    /// <summary>0 to 100; 0 is greedy; default 1.</summary>
    public double? Temperature { get; set; }

    /// <summary>0 (off) to the vocabulary size; default off.</summary>
    public int? TopK { get; set; }

    /// <summary>(0, 1]; 1 is off (default).</summary>
    public double? TopP { get; set; }

    /// <summary>0 to 2^53−1; the same seed, request and version give the same text. Absent: a random seed, reported back.</summary>
    public long? Seed { get; set; }

    /// <summary>Up to 4 stop sequences of 1 to 64 characters; the text ends before the first one reached (not included).</summary>
    public List<string>? Stop { get; set; }

    /// <summary>True: server-sent events (<c>token</c> events, then <c>done</c> with the response object).</summary>
    public bool? Stream { get; set; }
}

/// <summary>
/// A text generation's answer (the JSON body, or the <c>done</c> event of a stream). <c>finish_reason</c>:
/// <c>eos</c> (the model ended), <c>stop</c> (a stop sequence), <c>length</c> (<c>max_new_tokens</c>),
/// <c>context</c> (the model's context is full).
/// </summary>
internal sealed record TextGenerateResponse(
    string Model,
    int Version,
    string GenerationId,
    string Text,
    string FinishReason,
    int PromptTokens,
    int CompletionTokens,
    long Seed);

/// <summary>A streamed <c>token</c> event: text released by generated token <c>index</c> (0-based); tokens that release nothing send no event.</summary>
internal sealed record TextTokenEvent(string Text, int Index);

/// <summary><c>POST /admin/models/{m}/promote</c> request.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed class PromoteRequest
{
    public required int Version { get; set; }

    public required string Reason { get; set; }
}

/// <summary><c>POST /admin/models/{m}/rollback</c> request.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed class RollbackRequest
{
    public required string Reason { get; set; }
}

/// <summary>An admin route's answer: the registry's aliases after the change. The server swaps asynchronously; watch <c>/v2/models/{m}/ready</c> and <c>X-Model-Version</c>.</summary>
internal sealed record AdminResponse(string Model, string Action, int? Champion, int? Previous, int? Challenger, string Reason, bool ServingNotified);

/// <summary>Source-generated (de)serialization of the serving API's JSON, snake_case as the Open Inference Protocol spells it.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    RespectNullableAnnotations = true,
    RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(ServerMetadata))]
[JsonSerializable(typeof(ModelMetadata))]
[JsonSerializable(typeof(ModelReadyResponse))]
[JsonSerializable(typeof(InferRequest))]
[JsonSerializable(typeof(InferResponse))]
[JsonSerializable(typeof(GenerateRequest))]
[JsonSerializable(typeof(GenerateResponse))]
[JsonSerializable(typeof(TextGenerateRequest))]
[JsonSerializable(typeof(TextGenerateResponse))]
[JsonSerializable(typeof(TextTokenEvent))]
[JsonSerializable(typeof(PromoteRequest))]
[JsonSerializable(typeof(RollbackRequest))]
[JsonSerializable(typeof(AdminResponse))]
internal sealed partial class ServingJsonContext : JsonSerializerContext;

/// <summary>The serializer options every serving answer is written with.</summary>
internal static class ServingJson
{
    // Relaxed escaping keeps ' < > & readable in error messages ("no model 'x'"): the bodies are
    // application/json and never embedded in HTML. Quotes and control characters are still escaped.
    private static readonly JavaScriptEncoder Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;

    /// <summary>The source-generated context with the same settings as <see cref="ServingJsonContext.Default"/>, plus relaxed escaping.</summary>
    public static readonly ServingJsonContext Context = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
        Encoder = Encoder,
    });

    /// <summary>For answers written with a <see cref="Utf8JsonWriter"/> (inference responses).</summary>
    public static readonly JsonWriterOptions Writer = new() { Encoder = Encoder };
}
