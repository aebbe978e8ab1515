using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Serving.Observability;
using RetrainDaemon.Serving.Runtime;

namespace RetrainDaemon.Serving.Http;

/// <summary>The <c>route</c> label of a serving endpoint, attached as endpoint metadata.</summary>
internal sealed record ServingRoute(string Name)
{
    public const string ServerMetadata = "server_metadata";
    public const string ModelMetadata = "model_metadata";
    public const string ModelReady = "model_ready";
    public const string Infer = "infer";
    public const string Generate = "generate";
    public const string Promote = "promote";
    public const string Rollback = "rollback";
    public const string Retrain = "retrain";
    public const string ReviewPage = "review_page";
    public const string ReviewFile = "review_file";
    public const string ReviewAnalysis = "review_analysis";
    public const string ReviewRating = "review_rating";
}

/// <summary>One request in flight: its cancellation (client abort or <c>Serving:RequestTimeout</c>) and the version that answers it.</summary>
internal sealed class ServingCall(HttpContext http, CancellationToken token)
{
    public const string VersionHeader = "X-Model-Version";

    public HttpContext Http => http;

    /// <summary>Cancelled when the client goes or the request timeout expires; pass it to every wait and every ONNX Runtime run.</summary>
    public CancellationToken Token => token;

    public int? Version { get; private set; }

    /// <summary>Set by a route that answers a failure without throwing (a 503 readiness answer): the metric's <c>reason</c>.</summary>
    public string? FailureReason { get; set; }

    public string VersionLabel => Version?.ToString(CultureInfo.InvariantCulture) ?? "none";

    /// <summary>Records the version that produced the answer and names it in <c>X-Model-Version</c>.</summary>
    public void Served(int version)
    {
        Version = version;
        http.Response.Headers[VersionHeader] = version.ToString(CultureInfo.InvariantCulture);
    }
}

/// <summary>
/// What every serving route does around its own work: a request timeout linked to the client's
/// abort, the mapping of failures to <c>{"error": …}</c> bodies with their status, and the request
/// metrics (<c>retrain_serving_requests_total</c>, <c>retrain_serving_request_seconds</c>) with
/// bounded labels — a model name that is not served is counted as <c>unknown</c>.
/// Singleton; thread-safe.
/// </summary>
internal sealed partial class ServingHttp(IServedModels served, ServingMetrics metrics, IOptions<ServingOptions> options, ILogger<ServingHttp> logger, Core.Contracts.ServingOutcomes? outcomes = null)
{
    public const string UnknownModel = "unknown";

    public ServingOptions Options => options.Value;

    public ServingMetrics Metrics => metrics;

    public IServedModels Served => served;

    /// <summary>The metric label of a model name from a URL: itself when served, <see cref="UnknownModel"/> when not, empty for server-wide routes.</summary>
    public string ModelLabel(string? model) =>
        model is null ? "" : served.Names.Contains(model, StringComparer.Ordinal) ? model : UnknownModel;

    /// <summary>Runs a route's body with a timeout, maps its failures to error answers, and counts it.</summary>
    public async Task<IResult> RunAsync(HttpContext http, string route, string? model, Func<ServingCall, Task<IResult>> body)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(body);
        long start = Stopwatch.GetTimestamp();
        string label = ModelLabel(model);
        var timeout = options.Value.RequestTimeout;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        deadline.CancelAfter(timeout);
        var call = new ServingCall(http, deadline.Token);
        string reason = "";
        try
        {
            var result = await body(call).ConfigureAwait(false);
            reason = call.FailureReason ?? "";
            return result;
        }
        catch (ServingException ex)
        {
            reason = ex.Reason;
            if (ex.Version is int version)
            {
                call.Served(version);
            }

            if (ex.Status >= 500 && ex.Status != 503)
            {
                LogServerError(logger, route, label, call.VersionLabel, ex.Message);
            }

            return Error(ex.Status, ex.Message);
        }
        catch (BadHttpRequestException ex)
        {
            // Kestrel's body limit (Serving:MaxRequestBodyBytes) surfaces here as 413 while the body is read.
            reason = ex.StatusCode == StatusCodes.Status413PayloadTooLarge ? FailureReasons.TooLarge : FailureReasons.BadRequest;
            return Error(ex.StatusCode, ex.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? string.Create(CultureInfo.InvariantCulture, $"the request body is larger than the limit of {options.Value.MaxRequestBodyBytes} bytes")
                : $"the request could not be read: {ex.Message}");
        }
        catch (JsonException ex)
        {
            reason = FailureReasons.BadRequest;
            return Error(StatusCodes.Status400BadRequest, JsonProblem(ex));
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // Nobody reads this answer; it is counted so that aborted requests are visible.
            reason = FailureReasons.Cancelled;
            return Results.Empty;
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            reason = FailureReasons.Timeout;
            return Error(StatusCodes.Status503ServiceUnavailable, string.Create(CultureInfo.InvariantCulture, $"timed out after {timeout.TotalSeconds:0.###} s"));
        }
        catch (Exception ex)
        {
            reason = FailureReasons.Internal;
            LogUnexpected(logger, ex, route, label);
            return Error(StatusCodes.Status500InternalServerError, "internal error; the server's log has the details");
        }
        finally
        {
            metrics.Requests.WithLabels(label, call.VersionLabel, route, reason.Length == 0 ? "ok" : "error", reason).Inc();
            if (call.Version is int version && outcomes is not null)
            {
                outcomes.Record(label, version, reason is FailureReasons.Internal or FailureReasons.Timeout);
            }

            metrics.RequestSeconds.WithLabels(label, route).Observe(Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
    }

    /// <summary>Answers a request refused before its route ran (authentication) and counts it.</summary>
    public IResult Refuse(HttpContext http, ServingException failure)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(failure);
        string route = http.GetEndpoint()?.Metadata.GetMetadata<ServingRoute>()?.Name ?? "other";
        string label = ModelLabel(http.Request.RouteValues.TryGetValue("model", out object? m) ? m as string : null);
        metrics.Requests.WithLabels(label, "none", route, "error", failure.Reason).Inc();
        return Error(failure.Status, failure.Message);
    }

    /// <summary>Reads a JSON body; an empty body gives <paramref name="whenEmpty"/> when allowed.</summary>
    /// <exception cref="ServingException">413 for a declared length over the limit, 400 for a JSON <c>null</c> body.</exception>
    /// <exception cref="JsonException">Malformed JSON, a missing required member, or an unknown one where they are refused.</exception>
    public async Task<T> ReadJsonAsync<T>(HttpContext http, JsonTypeInfo<T> type, CancellationToken cancellationToken, Func<T>? whenEmpty = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        long? length = http.Request.ContentLength;
        if (length > options.Value.MaxRequestBodyBytes)
        {
            throw new ServingException(StatusCodes.Status413PayloadTooLarge, FailureReasons.TooLarge,
                string.Create(CultureInfo.InvariantCulture, $"the request body ({length} bytes) is larger than the limit of {options.Value.MaxRequestBodyBytes} bytes"));
        }

        // No body at all (Content-Length: 0, or a POST without length or chunking) is the defaults where allowed.
        if (whenEmpty is not null && (length == 0 || http.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == false))
        {
            return whenEmpty();
        }

        var value = await JsonSerializer.DeserializeAsync(http.Request.Body, type, cancellationToken).ConfigureAwait(false);
        return value ?? throw ServingException.BadRequest("the body must be a JSON object, not null");
    }

    /// <summary>
    /// A JSON failure as the client should read it: the serializer's message (it names the path,
    /// line and position) without the server's .NET type names.
    /// </summary>
    internal static string JsonProblem(JsonException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        string message = TypeName().Replace(exception.Message, "");
        message = message.Replace("could not be mapped to any .NET member", "is not a field of this request", StringComparison.Ordinal);
        return $"malformed JSON: {message}";
    }

    [GeneratedRegex(@"\s*(?:contained in|for|on) type '[^']*'")]
    private static partial Regex TypeName();

    /// <summary>An <c>{"error": …}</c> answer.</summary>
    public static IResult Error(int status, string message) =>
        TypedResults.Json(new ErrorBody(message), ServingJson.Context.ErrorBody, statusCode: status);

    /// <summary>Logs a failure that could only be reported inside an already started answer (a server-sent event stream).</summary>
    public void LogStreamFailure(string route, string model, Exception exception) => LogUnexpected(logger, exception, route, model);

    [LoggerMessage(EventId = 700, Level = LogLevel.Error, Message = "Serving route {Route} for model {Model} failed unexpectedly")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string route, string model);

    [LoggerMessage(EventId = 701, Level = LogLevel.Warning, Message = "Serving route {Route} for model {Model} v{Version} answered with a server error: {Problem}")]
    private static partial void LogServerError(ILogger logger, string route, string model, string version, string problem);
}
