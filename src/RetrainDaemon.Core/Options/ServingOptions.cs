using Microsoft.Extensions.Options;

namespace RetrainDaemon.Core.Options;

/// <summary>
/// Serving (section <c>Serving</c>): which models this node serves from the registry, how ONNX
/// Runtime sessions are built, dynamic batching, limits and API keys.
/// </summary>
public sealed class ServingOptions
{
    public const string Section = "Serving";

    /// <summary>False: the node serves no models (health and metrics only).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Registry models to serve (each follows its <c>champion</c> alias); empty = every image model in <c>Models</c>.</summary>
    public List<string> Models { get; set; } = [];

    /// <summary>Append the CUDA execution provider when it can be; CPU otherwise (and always in a CPU-package build).</summary>
    public bool UseCuda { get; set; } = true;

    public int IntraOpThreads { get; set; } = 2;

    /// <summary>ONNX Runtime's CPU memory arena (faster repeated runs, memory kept between them).</summary>
    public bool CpuArena { get; set; } = true;

    /// <summary><c>disable</c>, <c>basic</c>, <c>extended</c> or <c>all</c>.</summary>
    public string GraphOptimization { get; set; } = "all";

    /// <summary>How often the registry's aliases are re-read in addition to the file watch and the <c>model.promoted</c> event.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Dynamic batching: the most samples one ONNX Runtime run generates.</summary>
    public int MaxBatchSize { get; set; } = 64;

    /// <summary>Dynamic batching: how long the first request of a batch waits for others.</summary>
    public TimeSpan MaxQueueDelay { get; set; } = TimeSpan.FromMilliseconds(2);

    /// <summary>Dynamic batching on or off (off: every request runs on its own).</summary>
    public bool Batching { get; set; } = true;

    /// <summary>Requests waiting for a batch; beyond it requests are refused with 429 at once.</summary>
    public int QueueCapacity { get; set; } = 256;

    /// <summary>Most samples one generate request may ask for.</summary>
    public int MaxSamplesPerRequest { get; set; } = 64;

    /// <summary>
    /// Text models: the largest <c>max_new_tokens</c> a generate request may ask for (the request's
    /// default is 64). Bounds the time one generation holds a decode slot and its version's lease.
    /// </summary>
    public int MaxNewTokens { get; set; } = 400;

    /// <summary>Largest request body accepted (413 beyond).</summary>
    public long MaxRequestBodyBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>A request still running after this is cancelled (ONNX Runtime run terminated) and answered 503.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// On SIGTERM, how long the server keeps answering (with <c>Connection: close</c>, readiness 503)
    /// before the listener closes, so keep-alive clients move off instead of being cut mid-request.
    /// </summary>
    public TimeSpan DrainDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Bearer keys for inference routes; empty list and no file = inference needs no key.</summary>
    public List<string> ApiKeys { get; set; } = [];

    /// <summary>A file with one API key per line (e.g. systemd <c>LoadCredential=</c>); joins <see cref="ApiKeys"/>.</summary>
    public string ApiKeysFile { get; set; } = "";

    /// <summary>Bearer key for admin routes (promote, rollback); empty and no file = admin routes are off.</summary>
    public string AdminKey { get; set; } = "";

    public string AdminKeyFile { get; set; } = "";

    /// <summary>Where admin routes listen (e.g. <c>http://127.0.0.1:9465</c>); empty = on the main URLs.</summary>
    public string AdminUrls { get; set; } = "";
}

public sealed class ServingOptionsValidator : IValidateOptions<ServingOptions>
{
    private static readonly string[] Optimizations = ["disable", "basic", "extended", "all"];

    public ValidateOptionsResult Validate(string? name, ServingOptions options)
    {
        var f = new Failures(ServingOptions.Section);
        f.Range(nameof(options.IntraOpThreads), options.IntraOpThreads, 1, 256);
        if (!Optimizations.Contains(options.GraphOptimization, StringComparer.OrdinalIgnoreCase))
        {
            f.Add(nameof(options.GraphOptimization), options.GraphOptimization, $"expected one of {string.Join(", ", Optimizations)}");
        }

        f.Positive(nameof(options.PollInterval), options.PollInterval);
        f.Range(nameof(options.MaxBatchSize), options.MaxBatchSize, 1, 4096);
        if (options.MaxQueueDelay < TimeSpan.Zero || options.MaxQueueDelay > TimeSpan.FromSeconds(1))
        {
            f.Add(nameof(options.MaxQueueDelay), options.MaxQueueDelay, "must be between 0 and 1 s");
        }

        f.Range(nameof(options.QueueCapacity), options.QueueCapacity, 1, 1_000_000);
        f.Range(nameof(options.MaxSamplesPerRequest), options.MaxSamplesPerRequest, 1, 4096);
        f.Range(nameof(options.MaxNewTokens), options.MaxNewTokens, 1, 100_000);
        f.Range(nameof(options.MaxRequestBodyBytes), options.MaxRequestBodyBytes, 1024, 1L << 30);
        f.Positive(nameof(options.RequestTimeout), options.RequestTimeout);
        if (options.DrainDelay < TimeSpan.Zero || options.DrainDelay > TimeSpan.FromSeconds(20))
        {
            f.Add(nameof(options.DrainDelay), options.DrainDelay, "must be between 0 and 20 s (the host's shutdown budget is 30 s)");
        }
        for (int i = 0; i < options.Models.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(options.Models[i]))
            {
                f.Add($"{nameof(options.Models)}:{i}", options.Models[i], "must name a model");
            }
        }

        for (int i = 0; i < options.ApiKeys.Count; i++)
        {
            if (options.ApiKeys[i].Length < 16)
            {
                f.Secret($"{nameof(options.ApiKeys)}:{i}", "an API key must have at least 16 characters");
            }
        }

        foreach (var (key, file) in new[] { (nameof(options.ApiKeysFile), options.ApiKeysFile), (nameof(options.AdminKeyFile), options.AdminKeyFile) })
        {
            if (file.Length > 0 && !File.Exists(file))
            {
                f.Add(key, file, "no such file");
            }
        }

        if (options.AdminKey.Length is > 0 and < 16)
        {
            f.Secret(nameof(options.AdminKey), "the admin key must have at least 16 characters");
        }

        if (options.AdminKey.Length > 0 && options.ApiKeys.Contains(options.AdminKey, StringComparer.Ordinal))
        {
            f.Secret(nameof(options.AdminKey), "must differ from every inference API key");
        }

        if (options.AdminUrls.Length > 0 && !options.AdminUrls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .All(u => Uri.TryCreate(u, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"))
        {
            f.Add(nameof(options.AdminUrls), options.AdminUrls, "expected ;-separated http(s) URLs");
        }

        return f.Result();
    }
}
