using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using RabbitMQ.Client;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Data.Store;

namespace RetrainDaemon.Tests.Shared;

/// <summary>
/// A daemon with the continuous loop on (Quartz, triggers, rollback) and serving on, its store,
/// registry, run directories and scheduler store in one test directory, and the trigger check every
/// second. Tiny training budgets keep a fine-tune to seconds; the gate is the model's configured one
/// unless a test loosens it.
/// </summary>
public sealed class LoopDaemon : IAsyncDisposable
{
    private LoopDaemon(DaemonProcess daemon, string directory)
    {
        Daemon = daemon;
        Directory = directory;
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{daemon.HttpPort}"), Timeout = TimeSpan.FromSeconds(30) };
    }

    public DaemonProcess Daemon { get; }

    public string Directory { get; }

    public HttpClient Http { get; }

    public string StorePath => Path.Combine(Directory, "retrain.db");

    /// <summary>The store this daemon uses: its SQLite file, or the PostgreSQL database its settings name.</summary>
    public Core.Options.StoreOptions StoreOptions { get; private init; } = new();

    public ModelRegistry Registry => new(Path.Combine(Directory, "registry"), keepLast: 50);

    public static Dictionary<string, string> Settings(string directory) => new()
    {
        ["Loop:Enabled"] = "true",
        ["Loop:CheckInterval"] = "00:00:01",
        ["Loop:RunsDirectory"] = Path.Combine(directory, "runs"),
        ["Loop:AnalysisDirectory"] = Path.Combine(directory, "analysis"),
        ["Loop:SchedulerStore"] = Path.Combine(directory, "scheduler.db"),
        ["Registry:Root"] = Path.Combine(directory, "registry"),
        ["Serving:Enabled"] = "true",
        ["Evaluation:SampleCount"] = "500",
        ["Evaluation:StatisticsCache"] = Path.Combine(directory, "reference-stats"),
        // Only the model under test trains.
        ["Models:fashion-mnist:Retrain"] = "false",
        ["Models:fashion-vae:Retrain"] = "false",
        ["Models:fortunes:Retrain"] = "false",
        ["Models:en-de:Retrain"] = "false",
    };

    public static LoopDaemon Start(PrivateBroker broker, string directory, IDictionary<string, string> settings)
    {
        var all = Settings(directory);
        foreach (var (key, value) in settings)
        {
            all[key] = value;
        }

        var store = new Core.Options.StoreOptions { Path = Path.Combine(directory, "retrain.db") };
        if (all.TryGetValue("Store:Provider", out var provider))
        {
            store.Provider = provider;
            store.ConnectionString = all.GetValueOrDefault("Store:ConnectionString");
        }

        return new LoopDaemon(DaemonProcess.Start(broker, store.Path, all), directory) { StoreOptions = store };
    }

    /// <summary>Waits until ingestion consumes (readiness as a whole needs a champion, which comes later).</summary>
    public async Task WaitConsumingAsync()
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (Daemon.HasExited)
            {
                throw new InvalidOperationException($"the daemon exited with {Daemon.ExitCode}:\n{Daemon.Output}");
            }

            try
            {
                // 503 until a champion is served; the body still says whether ingestion consumes.
                using var response = await Http.GetAsync(new Uri("/v2/health/ready", UriKind.Relative));
                if ((await response.Content.ReadAsStringAsync()).Contains("\"ingestion\":\"consuming\"", StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"ingestion did not start:\n{Daemon.Output}");
    }

    /// <summary>The ledger's fine-tune runs of a model, newest first.</summary>
    public async Task<IReadOnlyList<RunRecord>> RunsAsync(string model)
    {
        await using var store = SampleStores.Open(StoreOptions);
        return await store.ListRunsAsync(model, RunKinds.FineTune, 100, CancellationToken.None);
    }

    /// <summary>Waits for the <paramref name="count"/>-th finished fine-tune of the model and returns it.</summary>
    public async Task<RunRecord> WaitForFinishedRunAsync(string model, int count, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var finished = (await RunsAsync(model)).Where(r => r.Status != RunStatuses.Running).ToList();
            if (finished.Count >= count)
            {
                return finished[finished.Count - count];
            }

            if (Daemon.HasExited)
            {
                throw new InvalidOperationException($"the daemon exited with {Daemon.ExitCode}:\n{Daemon.Output}");
            }

            await Task.Delay(500);
        }

        throw new TimeoutException($"no fine-tune #{count} of {model} finished within {timeout}; runs: {JsonSerializer.Serialize(await RunsAsync(model))}\n{Tail()}");
    }

    /// <summary>Waits until the champion answers generate requests and returns the answer's version and generation ids.</summary>
    public async Task<(int Version, IReadOnlyList<string> GenerationIds)> GenerateAsync(string model, string body, int expectedVersion, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        string last = "";
        while (clock.Elapsed < timeout)
        {
            using var content = new StringContent(body, Encoding.UTF8, new MediaTypeHeaderValue("application/json"));
            using var response = await Http.PostAsync(new Uri($"/v1/models/{model}/generate", UriKind.Relative), content);
            last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
            if (response.IsSuccessStatusCode && response.Headers.TryGetValues("X-Model-Version", out var values) && int.Parse(values.First(), System.Globalization.CultureInfo.InvariantCulture) == expectedVersion)
            {
                using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                var ids = json.RootElement.TryGetProperty("samples", out var samples)
                    ? samples.EnumerateArray().Select(s => s.GetProperty("generation_id").GetString()!).ToList()
                    : [json.RootElement.GetProperty("generation_id").GetString()!];
                return (expectedVersion, ids);
            }

            await Task.Delay(250);
        }

        throw new TimeoutException($"{model} was not served at v{expectedVersion} within {timeout}; last answer: {last}\n{Tail()}");
    }

    /// <summary>A durable queue bound to <c>retrain.events</c> for every event (drained by <see cref="BrokerProbe"/>).</summary>
    public static async Task<string> BindEventQueueAsync(PrivateBroker broker)
    {
        string queue = $"test.loop.events.{Guid.NewGuid():N}";
        await using var connection = await broker.ConnectAsync();
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        await channel.QueueBindAsync(queue, "retrain.events", "#");
        return queue;
    }

    public string Tail() => Daemon.Output[^Math.Min(Daemon.Output.Length, 6000)..];

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Daemon.DisposeAsync();
    }
}
