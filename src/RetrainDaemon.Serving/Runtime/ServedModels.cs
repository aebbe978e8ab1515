using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Policies;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Serving.Observability;

namespace RetrainDaemon.Serving.Runtime;

/// <summary>
/// The models this node serves — <c>Serving:Models</c>, or when that is empty every image model of the
/// catalog (<c>Models:&lt;name&gt;</c> with <c>Modality</c> image) — one <see cref="ModelServer"/> each.
/// Each follows its registry champion by whichever comes first: a file watch on the model's
/// <c>aliases.json</c> (the registry replaces it atomically on promote and rollback), the
/// <c>model.promoted</c> event and admin routes (<see cref="Notify"/>), or the
/// <see cref="ServingOptions.PollInterval"/> poll, which also covers a watch that failed or missed an
/// event. Bursts coalesce (<see cref="ModelServer.Debounce"/>). The registry root is created when
/// missing and watched for model folders that appear later.
/// <para>
/// Stopping: <see cref="BackgroundService.StopAsync"/> ends the refresh loops and the watches (a load in
/// progress is cancelled). The served versions are retired on <see cref="Dispose"/>, i.e. when the host
/// disposes its services — after Kestrel, which the host stops after this service (reverse
/// registration order), has drained its requests: requests that arrive during the drain still find
/// a version, and in-flight ones finish on the version they leased either way.
/// </para>
/// Thread-safe.
/// </summary>
public sealed partial class ServedModels : BackgroundService, IServedModels, IModelChangeNotifier
{
    private readonly ModelRegistry registry;
    private readonly ServingOptions options;
    private readonly ILogger logger;
    private readonly Dictionary<string, ModelServer> servers;
    private readonly Lock watchLock = new();
    private readonly Dictionary<string, FileSystemWatcher> watchers = new(StringComparer.Ordinal);
    private FileSystemWatcher? rootWatcher;
    private bool watchingStopped;
    private int disposed;

    /// <summary>The served models and their servers; nothing is read or loaded until the service starts.</summary>
    public ServedModels(
        ModelRegistry registry,
        SessionFactory sessions,
        IOptions<ServingOptions> options,
        IOptions<ModelCatalogOptions> catalog,
        ServingMetrics metrics,
        ILoggerFactory loggers)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(loggers);
        this.registry = registry;
        this.options = options.Value;
        logger = loggers.CreateLogger<ServedModels>();
        var catalogOptions = catalog.Value;
        var serverLogger = loggers.CreateLogger<ModelServer>();
        IEnumerable<string> names = !this.options.Enabled
            ? []
            : this.options.Models.Count > 0
                ? this.options.Models.Distinct(StringComparer.Ordinal)
                : catalogOptions.Models.Where(m => m.Value.ParsedModality == Modality.Image)
                    .Select(m => m.Key).Order(StringComparer.Ordinal);
        servers = names.ToDictionary(
            n => n,
            n => new ModelServer(n, registry, sessions, this.options, catalogOptions.TryGet(n, out var entry) ? entry : null, metrics, serverLogger),
            StringComparer.Ordinal);
        Names = [.. servers.Keys];
    }

    /// <inheritdoc />
    public IReadOnlyList<string> Names { get; }

    /// <summary>The server of <paramref name="model"/>, or null when it is not served here.</summary>
    public ModelServer? Server(string model) => servers.GetValueOrDefault(model);

    /// <inheritdoc />
    public bool TryLease(string model, out Lease lease, out string? reason, out bool unknownModel)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!servers.TryGetValue(model, out var server))
        {
            lease = default;
            unknownModel = true;
            reason = Names.Count == 0 ? $"model '{model}' is not served here (this node serves no models)" : $"model '{model}' is not served here (served: {string.Join(", ", Names)})";
            return false;
        }

        unknownModel = false;
        return server.TryLease(out lease, out reason);
    }

    /// <inheritdoc />
    public ModelStatus? Status(string model) => servers.GetValueOrDefault(model)?.Status();

    /// <inheritdoc />
    public IReadOnlyList<ModelStatus> Statuses() => servers.Values.Select(s => s.Status()).ToList();

    /// <summary>Re-reads the registry for <paramref name="model"/> soon (coalesced with other signals); ignored for models not served here.</summary>
    public void Notify(string model)
    {
        if (model is not null && servers.TryGetValue(model, out var server))
        {
            server.Notify();
        }
    }

    /// <summary>Refreshes <paramref name="model"/> now and returns the decision (admin routes and tests; the background loop does this on its own).</summary>
    /// <exception cref="KeyNotFoundException">The model is not served here.</exception>
    public Task<SwapAction> RefreshAsync(string model, CancellationToken cancellationToken = default) =>
        servers.TryGetValue(model, out var server)
            ? server.RefreshAsync(cancellationToken)
            : throw new KeyNotFoundException($"model '{model}' is not served here");

    /// <summary>Retires every served version (their sessions go with their last leases) and stops the watches.</summary>
    public override void Dispose()
    {
        // The container disposes this instance once per registration it was resolved through (the
        // class, IServedModels, IModelChangeNotifier, IHostedService): once is enough.
        if (Interlocked.Exchange(ref disposed, 1) == 1)
        {
            return;
        }

        StopWatching();
        foreach (var server in servers.Values)
        {
            server.Stop();
        }

        base.Dispose();
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (servers.Count == 0)
        {
            LogNothingToServe(logger, options.Enabled);
            return;
        }

        LogServing(logger, string.Join(", ", Names), registry.Root, options.PollInterval.TotalSeconds);
        StartWatching();
        try
        {
            await Task.WhenAll(servers.Values.Select(s => s.RunAsync(stoppingToken))).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopped before a loop started.
        }
        finally
        {
            StopWatching();
        }
    }

    private void StartWatching()
    {
        try
        {
            Directory.CreateDirectory(registry.Root);
            var root = new FileSystemWatcher(registry.Root) { NotifyFilter = NotifyFilters.DirectoryName, IncludeSubdirectories = false };
            root.Created += OnRootEntry;
            root.Renamed += OnRootEntry;
            root.Error += (_, e) => OnWatchError(registry.Root, e, null);
            root.EnableRaisingEvents = true;
            lock (watchLock)
            {
                if (watchingStopped)
                {
                    root.Dispose();
                    return;
                }

                rootWatcher = root;
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or PlatformNotSupportedException)
        {
            LogWatchFailed(logger, registry.Root, ex.Message, options.PollInterval.TotalSeconds);
        }

        // After the root watch: a model folder created in between is seen by one or the other.
        foreach (var model in servers.Keys)
        {
            WatchModel(model);
        }
    }

    private void WatchModel(string model)
    {
        string folder = Path.Combine(registry.Root, model);
        if (!Directory.Exists(folder))
        {
            return; // the root watch attaches it when it appears
        }

        var server = servers[model];
        lock (watchLock)
        {
            if (watchingStopped)
            {
                return;
            }

            if (watchers.Remove(model, out var stale))
            {
                stale.Dispose(); // the folder was replaced: the old watch points at a deleted inode
            }

            try
            {
                var watcher = new FileSystemWatcher(folder, RegistryLayout.AliasesName)
                {
                    NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size,
                    IncludeSubdirectories = false,
                };
                FileSystemEventHandler changed = (_, _) => server.Notify();
                watcher.Created += changed;
                watcher.Changed += changed;
                watcher.Deleted += changed;
                watcher.Renamed += (_, _) => server.Notify();
                watcher.Error += (_, e) => OnWatchError(folder, e, server);
                watcher.EnableRaisingEvents = true;
                watchers[model] = watcher;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or PlatformNotSupportedException)
            {
                // inotify limits (max_user_watches / max_user_instances) end here: the poll still follows the registry.
                LogWatchFailed(logger, folder, ex.Message, options.PollInterval.TotalSeconds);
            }
        }
    }

    private void OnRootEntry(object? sender, FileSystemEventArgs e)
    {
        if (e.Name is { } name && servers.TryGetValue(name, out var server))
        {
            WatchModel(name);
            server.Notify();
        }
    }

    private void OnWatchError(string path, ErrorEventArgs e, ModelServer? server)
    {
        // An overflowed event queue loses events: look at the registry instead of trusting the watch.
        LogWatchError(logger, path, e.GetException().Message);
        if (server is not null)
        {
            server.Notify();
        }
        else
        {
            foreach (var s in servers.Values)
            {
                s.Notify();
            }
        }
    }

    private void StopWatching()
    {
        lock (watchLock)
        {
            watchingStopped = true;
            rootWatcher?.Dispose();
            rootWatcher = null;
            foreach (var watcher in watchers.Values)
            {
                watcher.Dispose();
            }

            watchers.Clear();
        }
    }

    [LoggerMessage(EventId = 620, Level = LogLevel.Information, Message = "Serving {Models} from the registry at {Root} (file watch, model.promoted events, poll every {PollSeconds} s)")]
    private static partial void LogServing(ILogger logger, string models, string root, double pollSeconds);

    [LoggerMessage(EventId = 621, Level = LogLevel.Information, Message = "No models to serve (Serving:Enabled = {Enabled}; Serving:Models empty and no image model in Models)")]
    private static partial void LogNothingToServe(ILogger logger, bool enabled);

    [LoggerMessage(EventId = 622, Level = LogLevel.Warning, Message = "Cannot watch {Path} ({Error}); the registry is still polled every {PollSeconds} s")]
    private static partial void LogWatchFailed(ILogger logger, string path, string error, double pollSeconds);

    [LoggerMessage(EventId = 623, Level = LogLevel.Warning, Message = "The file watch on {Path} reported an error ({Error}); re-reading the registry")]
    private static partial void LogWatchError(ILogger logger, string path, string error);
}
