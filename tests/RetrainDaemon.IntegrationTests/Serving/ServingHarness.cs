using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Tests.Shared;

namespace RetrainDaemon.IntegrationTests.Serving;

/// <summary>
/// The real daemon (<c>retrain-daemon run</c>) with serving on, for the serving integration and fault
/// tests and bench/ServeBench: a registry folder of its own that the test publishes into (through
/// <see cref="Registry"/>, as the gate would), one served model (<see cref="Model"/>, the catalog's
/// 1×28×28 Fashion-MNIST entry, the shape of <see cref="GeneratorModels"/>), optional API and admin keys
/// (admin routes on a fixed port of their own), and an HTTP client for the serving routes.
/// </summary>
public sealed class ServingDaemon : IAsyncDisposable
{
    /// <summary>The served model: the daemon's catalog already describes it as a 1×28×28 image model.</summary>
    public const string Model = "fashion-mnist";

    /// <summary>The inference key when <see cref="ServingDaemonOptions.ApiKeys"/> is on.</summary>
    public const string ApiKey = "inference-key-0123456789abcdef";

    /// <summary>The admin key when <see cref="ServingDaemonOptions.Admin"/> is on.</summary>
    public const string AdminKey = "admin-key-fedcba9876543210xyz";

    private ServingDaemon(DaemonProcess daemon, ModelRegistry registry, int? adminPort, ServingDaemonOptions options)
    {
        Daemon = daemon;
        Registry = registry;
        AdminPort = adminPort;
        Options = options;
        BaseUri = new Uri($"http://127.0.0.1:{daemon.HttpPort}");
        Http = NewClient(BaseUri);
        AdminHttp = adminPort is int port ? NewClient(new Uri($"http://127.0.0.1:{port}")) : null;
    }

    public DaemonProcess Daemon { get; }

    /// <summary>The registry the daemon serves from (same folder); publish and promote through it.</summary>
    public ModelRegistry Registry { get; }

    public int? AdminPort { get; }

    public ServingDaemonOptions Options { get; }

    public Uri BaseUri { get; }

    /// <summary>A client on the public port, with the inference key as default header when keys are on.</summary>
    public HttpClient Http { get; }

    /// <summary>A client on the admin port (no default key), or null without an admin listener.</summary>
    public HttpClient? AdminHttp { get; }

    /// <summary>
    /// Starts the daemon on <paramref name="broker"/> with serving on and its registry at
    /// <c>&lt;directory&gt;/registry</c> (whatever is already published there is served at start).
    /// </summary>
    public static ServingDaemon Start(PrivateBroker broker, string directory, ServingDaemonOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(broker);
        options ??= new ServingDaemonOptions();
        string root = RegistryRoot(directory);
        var registry = OpenRegistry(directory);
        var settings = new Dictionary<string, string>
        {
            ["Registry:Root"] = root,
            ["Serving:Enabled"] = "true",
            ["Serving:Models:0"] = Model,
        };
        int? adminPort = null;
        if (options.ApiKeys)
        {
            settings["Serving:ApiKeys:0"] = ApiKey;
        }

        if (options.Admin)
        {
            adminPort = TestPaths.FreeTcpPort();
            settings["Serving:AdminKey"] = AdminKey;
            settings["Serving:AdminUrls"] = $"http://127.0.0.1:{adminPort}";
        }

        foreach (var (key, value) in options.Settings)
        {
            settings[key] = value;
        }

        var daemon = DaemonProcess.Start(broker, Path.Combine(directory, "retrain.db"), settings);
        return new ServingDaemon(daemon, registry, adminPort, options);
    }

    /// <summary>The registry folder of a test directory.</summary>
    public static string RegistryRoot(string directory) => Path.Combine(directory, "registry");

    /// <summary>
    /// The registry of a test directory, as the test publishes into it. Retention keeps 50 versions, so
    /// the versions a test compares against stay on disk however many candidates it publishes.
    /// </summary>
    public static ModelRegistry OpenRegistry(string directory) => new(RegistryRoot(directory), keepLast: 50);

    /// <summary>Publishes generator <paramref name="seed"/> as a passed version that no alias names (to be promoted later).</summary>
    public static PublishResult PublishCandidate(ModelRegistry registry, GeneratorModels generators, int seed)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(generators);
        return registry.Publish(new PublishRequest
        {
            Model = Model,
            Status = VersionStatus.Passed,
            Files = new Dictionary<string, string> { ["model.onnx"] = generators.File(seed) },
            Hyperparameters = new Dictionary<string, string> { ["family"] = GeneratorModels.Family, ["classes"] = "0" },
            Alias = PublishAlias.None,
            MaxBatchSize = 64,
            Reason = $"test: candidate seed {seed}",
        });
    }

    /// <summary>Waits until the daemon answers <c>/v2/health/live</c> (it may not be ready).</summary>
    public async Task WaitLiveAsync(TimeSpan? timeout = null)
    {
        var deadline = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(60);
        while (deadline.Elapsed < limit)
        {
            if (Daemon.HasExited)
            {
                throw new InvalidOperationException($"the daemon exited with {Daemon.ExitCode}:\n{Daemon.Output}");
            }

            try
            {
                using var response = await Http.GetAsync(new Uri("/v2/health/live", UriKind.Relative));
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"the daemon was not live within {limit}:\n{Daemon.Output}");
    }

    /// <summary><c>GET /v2/models/{m}/ready</c>: status, serving version and error (when not ready).</summary>
    public async Task<ModelReadiness> ReadyAsync()
    {
        using var response = await Http.GetAsync(new Uri($"/v2/models/{Model}/ready", UriKind.Relative));
        string body = await response.Content.ReadAsStringAsync();
        using var json = JsonDocument.Parse(body);
        var root = json.RootElement;
        int? version = root.TryGetProperty("version", out var v) && v.ValueKind == JsonValueKind.String ? int.Parse(v.GetString()!, CultureInfo.InvariantCulture) : null;
        string? error = root.TryGetProperty("error", out var e) ? e.GetString() : null;
        return new ModelReadiness((int)response.StatusCode, version, error);
    }

    /// <summary>Polls the model's readiness until it serves <paramref name="version"/>; returns when that was first seen.</summary>
    public async Task<TimeSpan> WaitServingAsync(int version, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        ModelReadiness last = new(0, null, null);
        while (watch.Elapsed < timeout)
        {
            last = await ReadyAsync();
            if (last.Status == 200 && last.Version == version)
            {
                return watch.Elapsed;
            }

            await Task.Delay(10);
        }

        throw new TimeoutException($"v{version} was not serving within {timeout} (last: {last}):\n{Tail(Daemon.Output)}");
    }

    /// <summary><c>GET /v2/models/{m}</c> as JSON.</summary>
    public async Task<JsonElement> MetadataAsync()
    {
        using var response = await Http.GetAsync(new Uri($"/v2/models/{Model}", UriKind.Relative));
        response.EnsureSuccessStatusCode();
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.Clone();
    }

    /// <summary>When the serving version was swapped in, by the server's clock (<c>loaded_at</c> of the model metadata).</summary>
    public async Task<(int Version, DateTimeOffset LoadedAt)> LoadedAtAsync()
    {
        var metadata = await MetadataAsync();
        return (int.Parse(metadata.GetProperty("versions")[0].GetString()!, CultureInfo.InvariantCulture), metadata.GetProperty("loaded_at").GetDateTimeOffset());
    }

    /// <summary><c>POST /v1/models/{m}/generate</c>.</summary>
    public static HttpRequestMessage Generate(int count = 1, string format = "json", long? seed = null)
    {
        var body = new StringBuilder();
        body.Append(CultureInfo.InvariantCulture, $"{{\"count\":{count},\"format\":\"{format}\"");
        if (seed is long s)
        {
            body.Append(CultureInfo.InvariantCulture, $",\"seed\":{s}");
        }

        body.Append('}');
        return new HttpRequestMessage(HttpMethod.Post, $"/v1/models/{Model}/generate") { Content = Json(body.ToString()) };
    }

    /// <summary><c>POST /v2/models/{m}/infer</c> with a <c>latent</c> of shape [batch, 64] drawn from <paramref name="seed"/>.</summary>
    public static HttpRequestMessage Infer(int batch, int seed) =>
        new(HttpMethod.Post, $"/v2/models/{Model}/infer") { Content = Json(InferBody(batch, seed)) };

    /// <summary>An OIP v2 JSON inference body for the generator: one FP32 input <c>latent</c> [batch, 64].</summary>
    public static string InferBody(int batch, int seed, string? id = null)
    {
        var latent = Latent(batch, seed);
        var body = new StringBuilder();
        body.Append(id is null ? "{" : $"{{\"id\":\"{id}\",");
        body.Append(CultureInfo.InvariantCulture, $"\"inputs\":[{{\"name\":\"latent\",\"shape\":[{batch},{GeneratorModels.Config.Latent}],\"datatype\":\"FP32\",\"data\":[");
        body.AppendJoin(',', latent.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
        body.Append("]}]}");
        return body.ToString();
    }

    /// <summary>Standard-normal latents for <paramref name="batch"/> samples, deterministic in <paramref name="seed"/>.</summary>
    public static float[] Latent(int batch, int seed)
    {
        var random = new Random(seed);
        var z = new float[batch * GeneratorModels.Config.Latent];
        for (int i = 0; i < z.Length; i++)
        {
            // Box-Muller: the generator was trained on normal latents.
            double u = 1.0 - random.NextDouble(), v = random.NextDouble();
            z[i] = (float)(Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * v));
        }

        return z;
    }

    public static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    /// <summary>The <c>X-Model-Version</c> of a response, or null.</summary>
    public static int? VersionOf(HttpResponseMessage response)
    {
        ArgumentNullException.ThrowIfNull(response);
        return response.Headers.TryGetValues("X-Model-Version", out var values)
            && int.TryParse(values.FirstOrDefault(), NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v : null;
    }

    /// <summary>Resident set size of the daemon (<c>VmRSS</c> of <c>/proc/&lt;pid&gt;/status</c>), in bytes.</summary>
    public long RssBytes()
    {
        foreach (string line in File.ReadLines($"/proc/{Daemon.Pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException("no VmRSS line");
    }

    /// <summary>Threads of the daemon (<c>Threads</c> of <c>/proc/&lt;pid&gt;/status</c>).</summary>
    public int ThreadCount()
    {
        string line = File.ReadLines($"/proc/{Daemon.Pid}/status").First(l => l.StartsWith("Threads:", StringComparison.Ordinal));
        return int.Parse(line["Threads:".Length..].Trim(), CultureInfo.InvariantCulture);
    }

    /// <summary>The last <paramref name="chars"/> characters of the daemon's log.</summary>
    public static string Tail(string log, int chars = 4000) => log.Length <= chars ? log : log[^chars..];

    /// <summary>A client for the serving routes: connections pooled without limit, generous timeout (tests bound their own waits).</summary>
    public HttpClient NewClient(Uri baseUri, bool withKey = true)
    {
        var client = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = int.MaxValue,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
            ConnectTimeout = TimeSpan.FromSeconds(10),
        })
        {
            BaseAddress = baseUri,
            Timeout = TimeSpan.FromSeconds(60),
        };
        if (withKey && Options.ApiKeys)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
        }

        return client;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        AdminHttp?.Dispose();
        await Daemon.DisposeAsync();
    }
}

/// <summary>What a serving test daemon gets besides the defaults.</summary>
public sealed class ServingDaemonOptions
{
    /// <summary>Require <see cref="ServingDaemon.ApiKey"/> on inference routes.</summary>
    public bool ApiKeys { get; init; }

    /// <summary>Admin routes with <see cref="ServingDaemon.AdminKey"/>, on a fixed port of their own.</summary>
    public bool Admin { get; init; }

    /// <summary>Extra <c>--set</c> settings (e.g. <c>Serving:QueueCapacity</c>).</summary>
    public Dictionary<string, string> Settings { get; init; } = [];
}

/// <summary>A model ready answer: HTTP status, serving version, error text.</summary>
public sealed record ModelReadiness(int Status, int? Version, string? Error);

/// <summary>
/// One request of a load run: route, start and end (ms on the run's clock), HTTP status (0 when no
/// answer came), the version that answered (<c>X-Model-Version</c>), the version the body names (JSON
/// generate and infer answers), and for requests without an answer how they failed.
/// </summary>
public sealed record LoadSample(string Route, double StartMs, double EndMs, int Status, int? Version, int? BodyVersion, LoadFailure Failure, string? Detail)
{
    public double LatencyMs => EndMs - StartMs;

    public bool Ok => Status == 200 && Failure == LoadFailure.None;
}

/// <summary>How a request without an HTTP answer failed.</summary>
public enum LoadFailure
{
    None,

    /// <summary>The connection was refused: the request never reached a listener (after it closed).</summary>
    Refused,

    /// <summary>The connection broke with the request sent (reset, premature end of the response): a dropped request.</summary>
    Reset,

    /// <summary>No answer within the client's timeout.</summary>
    Timeout,
}

/// <summary>
/// A closed-loop load generator: <c>workers</c> clients, each sending its next request when the
/// previous one has been answered and its pacing slot has come (<c>workers / rate</c> seconds apart), so
/// the offered rate is at most <c>rate</c> and drops when the server slows down (never a pile-up).
/// </summary>
public static class LoadRunner
{
    /// <summary>
    /// Runs until <paramref name="stop"/> is cancelled; returns every request, ordered by start.
    /// <paramref name="request"/> builds the i-th request of a worker: (worker, i) → (route label, request).
    /// </summary>
    public static async Task<List<LoadSample>> RunAsync(HttpClient client, int workers, double ratePerSecond, Stopwatch clock,
        Func<int, int, (string Route, HttpRequestMessage Request)> request, CancellationToken stop, bool stopOnRefused = false)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(clock);
        ArgumentNullException.ThrowIfNull(request);
        double interval = ratePerSecond > 0 ? workers * 1000.0 / ratePerSecond : 0;
        var tasks = Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            var samples = new List<LoadSample>();
            // Workers start spread over one interval so that their slots interleave.
            double next = clock.Elapsed.TotalMilliseconds + interval * w / workers;
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                double wait = next - clock.Elapsed.TotalMilliseconds;
                if (wait > 1)
                {
                    try
                    {
                        await Task.Delay(TimeSpan.FromMilliseconds(wait), stop);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }

                next = Math.Max(next + interval, clock.Elapsed.TotalMilliseconds);
                var (route, message) = request(w, i);
                var sample = await SendAsync(client, route, message, clock);
                samples.Add(sample);
                if (stopOnRefused && sample.Failure == LoadFailure.Refused)
                {
                    break;
                }
            }

            return samples;
        })).ToList();
        var all = (await Task.WhenAll(tasks)).SelectMany(s => s).ToList();
        all.Sort((a, b) => a.StartMs.CompareTo(b.StartMs));
        return all;
    }

    /// <summary>Sends one request and records its outcome; never throws for a transport failure.</summary>
    public static async Task<LoadSample> SendAsync(HttpClient client, string route, HttpRequestMessage message, Stopwatch clock)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(clock);
        double start = clock.Elapsed.TotalMilliseconds;
        try
        {
            using (message)
            using (var response = await client.SendAsync(message, HttpCompletionOption.ResponseContentRead))
            {
                byte[] body = await response.Content.ReadAsByteArrayAsync();
                double end = clock.Elapsed.TotalMilliseconds;
                int? bodyVersion = null;
                string? detail = null;
                if (response.Content.Headers.ContentType?.MediaType == "application/json")
                {
                    (bodyVersion, detail) = ReadJson(body);
                }

                return new LoadSample(route, start, end, (int)response.StatusCode, ServingDaemon.VersionOf(response), bodyVersion, LoadFailure.None,
                    response.IsSuccessStatusCode ? null : detail);
            }
        }
        catch (HttpRequestException ex)
        {
            var failure = ex.HttpRequestError == HttpRequestError.ConnectionError && ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused }
                ? LoadFailure.Refused
                : LoadFailure.Reset;
            return new LoadSample(route, start, clock.Elapsed.TotalMilliseconds, 0, null, null, failure, $"{ex.HttpRequestError}: {ex.Message} ({ex.InnerException?.Message})");
        }
        catch (IOException ex)
        {
            return new LoadSample(route, start, clock.Elapsed.TotalMilliseconds, 0, null, null, LoadFailure.Reset, ex.Message);
        }
        catch (TaskCanceledException ex)
        {
            return new LoadSample(route, start, clock.Elapsed.TotalMilliseconds, 0, null, null, LoadFailure.Timeout, ex.Message);
        }
    }

    /// <summary>The version a JSON answer names (<c>version</c> of generate, <c>model_version</c> of infer) and its error, if any.</summary>
    private static (int? Version, string? Error) ReadJson(byte[] body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return (null, null);
            }

            if (root.TryGetProperty("error", out var error))
            {
                return (null, error.GetString());
            }

            if (root.TryGetProperty("version", out var v) && v.ValueKind == JsonValueKind.Number)
            {
                return (v.GetInt32(), null);
            }

            if (root.TryGetProperty("model_version", out var mv) && mv.ValueKind == JsonValueKind.String)
            {
                return (int.Parse(mv.GetString()!, CultureInfo.InvariantCulture), null);
            }

            return (null, null);
        }
        catch (JsonException ex)
        {
            return (null, $"unreadable JSON: {ex.Message}");
        }
    }
}

/// <summary>Latency percentiles.</summary>
public static class Percentiles
{
    /// <summary>The <paramref name="p"/>-th percentile (nearest rank) of <paramref name="values"/>; NaN when empty.</summary>
    public static double Of(IEnumerable<double> values, double p)
    {
        var sorted = values.ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        Array.Sort(sorted);
        int rank = (int)Math.Ceiling(p / 100.0 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    /// <summary>"n=…, p50 … ms, p99 … ms" of the samples' latencies.</summary>
    public static string Describe(IReadOnlyCollection<LoadSample> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        var latencies = samples.Select(s => s.LatencyMs).ToList();
        return string.Create(CultureInfo.InvariantCulture, $"n={samples.Count,5}, p50 {Of(latencies, 50),6:0.00} ms, p99 {Of(latencies, 99),7:0.00} ms, max {(latencies.Count == 0 ? double.NaN : latencies.Max()),7:0.0} ms");
    }
}
