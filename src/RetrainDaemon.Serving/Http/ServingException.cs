namespace RetrainDaemon.Serving.Http;

/// <summary>The fixed set of failure reasons of <c>retrain_serving_requests_total{reason}</c>.</summary>
internal static class FailureReasons
{
    public const string BadRequest = "bad_request";
    public const string Unauthorized = "unauthorized";
    public const string Forbidden = "forbidden";
    public const string NotFound = "not_found";
    public const string NotReady = "not_ready";
    public const string QueueFull = "queue_full";
    public const string Timeout = "timeout";
    public const string TooLarge = "too_large";
    public const string Conflict = "conflict";

    /// <summary>The client went away before the answer (its response is never seen).</summary>
    public const string Cancelled = "cancelled";

    public const string Internal = "internal";
}

/// <summary>
/// A request that ends with an HTTP error: the status, a reason from <see cref="FailureReasons"/>
/// for the metrics, and a message for the <c>{"error": …}</c> body. The message is shown to the
/// client, so it names what was wrong and what was expected, and never carries a key.
/// </summary>
internal sealed class ServingException : Exception
{
    public ServingException()
        : this(500, FailureReasons.Internal, "internal error")
    {
    }

    public ServingException(string message)
        : this(500, FailureReasons.Internal, message)
    {
    }

    public ServingException(string message, Exception innerException)
        : base(message, innerException)
    {
        Status = 500;
        Reason = FailureReasons.Internal;
    }

    public ServingException(int status, string reason, string message, int? version = null)
        : base(message)
    {
        Status = status;
        Reason = reason;
        Version = version;
    }

    public int Status { get; }

    public string Reason { get; }

    /// <summary>The model version the failure happened on, when one was leased (named in <c>X-Model-Version</c>).</summary>
    public int? Version { get; }

    public static ServingException BadRequest(string message, int? version = null) => new(400, FailureReasons.BadRequest, message, version);

    public static ServingException NotFound(string message) => new(404, FailureReasons.NotFound, message);

    public static ServingException NotReady(string message) => new(503, FailureReasons.NotReady, message);
}
