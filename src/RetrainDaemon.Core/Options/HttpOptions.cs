namespace RetrainDaemon.Core.Options;

/// <summary>The daemon's HTTP listener (section <c>Http</c>): <c>/metrics</c> and the health routes.</summary>
public sealed class HttpOptions
{
    public const string Section = "Http";

    /// <summary>Semicolon-separated Kestrel URLs. Loopback by default: metrics are not public.</summary>
    public string Urls { get; set; } = "http://127.0.0.1:9464";
}
