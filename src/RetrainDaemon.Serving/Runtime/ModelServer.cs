using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Policies;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Serving.Generation.Text;
using RetrainDaemon.Serving.Observability;

namespace RetrainDaemon.Serving.Runtime;

/// <summary>
/// Serves one registry model: follows its <c>champion</c> alias and hot-swaps versions behind the
/// requests that lease it.
/// <list type="bullet">
/// <item>Requests call <see cref="TryLease"/> (lock-free: one volatile read and an interlocked
/// increment) and run on the version they leased, whatever happens meanwhile.</item>
/// <item><see cref="RefreshAsync"/> asks the registry, lets <see cref="SwapPolicy"/> decide, and on
/// <see cref="SwapActionKind.Load"/> verifies, loads and warms the target up off the request path,
/// then swaps it in with <see cref="Interlocked.Exchange{T}(ref T, T)"/> and retires the old version
/// (its session is disposed when its last lease ends). Refreshes run one at a time (a semaphore), so
/// at most one version per model is loading and the decision never races a swap.</item>
/// <item>Any failure — verification, load, warm-up — leaves the serving version in place, is counted
/// (<c>retrain_serving_swap_failures_total{stage}</c>), logged and reported by <see cref="Status"/>.
/// A version that failed to load or warm up is remembered by identity (version + manifest hash) and
/// not tried again until its manifest changes; a verification failure is not remembered, because the
/// registry re-verifies on every refresh and a repaired file must become servable again.</item>
/// </list>
/// Thread-safe. <see cref="RunAsync"/> is the background loop (signal, debounce, poll) that the
/// hosting <see cref="ServedModels"/> runs; <see cref="Notify"/> wakes it.
/// </summary>
public sealed partial class ModelServer
{
    /// <summary>Signals closer together than this are one refresh (an alias rewrite raises several file events).</summary>
    internal static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(100);

    private const string VerifyStage = "verify";
    private const string LoadStage = "load";
    private const string WarmupStage = "warmup";
    private const string NoProvider = "none";
    private const TaskCreationOptions Dedicated = TaskCreationOptions.LongRunning | TaskCreationOptions.DenyChildAttach;

    private readonly ModelRegistry registry;
    private readonly SessionFactory sessions;
    private readonly ServingOptions options;
    private readonly ModelOptions? catalog;
    private readonly ServingMetrics metrics;
    private readonly ILogger logger;
    private readonly SemaphoreSlim refreshGate = new(1, 1);
    private readonly SemaphoreSlim wake = new(0, 1);
    private readonly ConcurrentDictionary<string, string> failures = new(StringComparer.Ordinal);
    private readonly Lock swapLock = new();
    private readonly string? nameProblem;

    private volatile ServedVersion? current;
    private volatile string? problem = "the registry has not been read yet";
    private int loading; // version being loaded, 0 = none (versions start at 1)
    private int wakePending; // 1 while a Notify's wake-up has not been taken up by the loop
    private long swaps;
    private long swapFailures;
    private string? lastVerifyRefusal; // only the refresh (under refreshGate) touches it
    private string? provider;
    private bool stopped;

    /// <summary>A server for <paramref name="model"/>; nothing is loaded until <see cref="RefreshAsync"/> or <see cref="RunAsync"/>.</summary>
    /// <param name="model">Registry model name.</param>
    /// <param name="registry">The registry the champion is read from.</param>
    /// <param name="sessions">Builds ONNX Runtime sessions.</param>
    /// <param name="options">Serving options (batch size for warm-up, poll interval).</param>
    /// <param name="catalog">The model's catalog entry (<c>Models:&lt;name&gt;</c>), if any: an image model is held to the generator contract and its image shape.</param>
    /// <param name="metrics">Serving metrics.</param>
    /// <param name="logger">Logger.</param>
    public ModelServer(string model, ModelRegistry registry, SessionFactory sessions, ServingOptions options, ModelOptions? catalog, ServingMetrics metrics, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(model);
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(sessions);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(metrics);
        Name = model;
        this.registry = registry;
        this.sessions = sessions;
        this.options = options;
        this.catalog = catalog;
        this.metrics = metrics;
        this.logger = logger ?? NullLogger.Instance;
        if (!RegistryLayout.IsValidModelName(model))
        {
            nameProblem = $"'{model}' is not a valid registry model name (1-63 chars of a-z, 0-9, '_' and '-')";
            problem = nameProblem;
        }

        metrics.Ready.WithLabels(model).Set(0);
        metrics.LoadedVersion.WithLabels(model, NoProvider).Set(0);
        metrics.Initialize(model, [VerifyStage, LoadStage, WarmupStage]);
    }

    /// <summary>The model's registry name.</summary>
    public string Name { get; }

    /// <summary>The version serving now, or null. Take a <see cref="Lease"/> (<see cref="TryLease"/>) before using its session.</summary>
    public ServedVersion? Current => current;

    /// <summary>The version being verified, loaded or warmed up now, or null.</summary>
    public int? Loading => Volatile.Read(ref loading) is int v and > 0 ? v : null;

    /// <summary>Why nothing serves, or what went wrong with the champion while an older version serves; null when the champion serves.</summary>
    public string? Problem => problem;

    /// <summary>Versions swapped in since start (the first load included).</summary>
    public long Swaps => Interlocked.Read(ref swaps);

    /// <summary>Versions refused by verification, loading or warm-up since start.</summary>
    public long SwapFailures => Interlocked.Read(ref swapFailures);

    /// <summary>Identities (<c>version:manifestSha256</c>) that failed to load or warm up, with the reason; not retried.</summary>
    public IReadOnlyDictionary<string, string> FailedIdentities => new Dictionary<string, string>(failures, StringComparer.Ordinal);

    /// <summary>Leases the serving version, or says why there is none ("v3 is loading", the registry's refusal, "no champion …").</summary>
    public bool TryLease(out Lease lease, out string? reason)
    {
        while (true)
        {
            var version = current;
            if (version is null)
            {
                lease = default;
                reason = NotReadyReason();
                return false;
            }

            if (version.TryAcquire(out lease))
            {
                reason = null;
                return true;
            }

            // Its last reference went between the read and the acquire: it was swapped out (the field
            // already names its successor) or the server stopped (the field is null).
            if (ReferenceEquals(current, version))
            {
                reason = "the server is stopping";
                return false;
            }
        }
    }

    /// <summary>What <see cref="IServedModels.Status"/> reports for this model.</summary>
    public ModelStatus Status()
    {
        var version = current;
        return new ModelStatus(Name, version?.Version, version is not null, version is null ? NotReadyReason() : problem,
            version?.Provider, version?.LoadedAt, version?.Manifest, Swaps, SwapFailures);
    }

    /// <summary>Asks the background loop to look at the registry again (coalesced; never blocks).</summary>
    public void Notify()
    {
        // One outstanding wake-up at most: a burst of file events and promoted messages is one refresh.
        if (Interlocked.Exchange(ref wakePending, 1) == 0)
        {
            wake.Release();
        }
    }

    /// <summary>
    /// Looks at the registry now and acts on <see cref="SwapPolicy.Decide"/>: keep, refuse (with the
    /// reason), or verify → load → warm up → swap. Waits for a refresh already running. The work runs
    /// on a dedicated thread, never on the caller's thread nor on the thread pool.
    /// </summary>
    /// <returns>The decision taken (after a failed load, still <see cref="SwapActionKind.Load"/>; see <see cref="Problem"/>).</returns>
    public async Task<SwapAction> RefreshAsync(CancellationToken cancellationToken = default)
    {
        await refreshGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await Task.Factory.StartNew(() => Refresh(cancellationToken), cancellationToken, Dedicated, TaskScheduler.Default).ConfigureAwait(false);
        }
        finally
        {
            refreshGate.Release();
        }
    }

    /// <summary>
    /// The background loop, on a thread of its own: a refresh at once, then one per signal
    /// (<see cref="Notify"/>; signals within <see cref="Debounce"/> of the first coalesce) or per
    /// <see cref="ServingOptions.PollInterval"/>, whichever comes first. Unexpected errors are logged and
    /// reported, never fatal: the serving version stays. Completes when <paramref name="cancellationToken"/>
    /// is cancelled (a load in progress is cancelled with it).
    /// </summary>
    /// <remarks>
    /// Not on the thread pool: loading and warming up a large model is seconds of synchronous work, and
    /// the pool is what requests and Kestrel run on; conversely a pool starved by requests must not delay
    /// a swap. (On this 2-core machine the pool starts with 2 threads and adds about two per second when
    /// starved; the debounce timer of an async loop was seen waiting 0.6–1 s for a pool thread.)
    /// </remarks>
    public Task RunAsync(CancellationToken cancellationToken) =>
        Task.Factory.StartNew(() => Loop(cancellationToken), cancellationToken, Dedicated, TaskScheduler.Default);

    /// <summary>Stops serving: the current version is retired (in-flight leases finish on it) and no version is swapped in afterwards.</summary>
    public void Stop()
    {
        ServedVersion? old;
        lock (swapLock)
        {
            stopped = true;
            old = Interlocked.Exchange(ref current, null);
        }

        old?.Retire();
        problem = "the server is stopping";
        metrics.Ready.WithLabels(Name).Set(0);
        metrics.LoadedVersion.WithLabels(Name, provider ?? NoProvider).Set(0);
    }

    // SemaphoreSlim.Wait takes at most int.MaxValue ms (24.8 days); a longer poll is as good as none.
    private int PollMilliseconds => (int)Math.Min(options.PollInterval.TotalMilliseconds, int.MaxValue - 1);

    private void Loop(CancellationToken cancellationToken)
    {
        try
        {
            SafeRefresh(cancellationToken);
            while (!cancellationToken.IsCancellationRequested)
            {
                if (wake.Wait(PollMilliseconds, cancellationToken))
                {
                    // Let the burst finish (an alias rewrite raises several file events), then accept new
                    // signals: one arriving after this point gets a refresh of its own.
                    if (cancellationToken.WaitHandle.WaitOne(Debounce))
                    {
                        break;
                    }

                    Volatile.Write(ref wakePending, 0);
                }

                SafeRefresh(cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    private void SafeRefresh(CancellationToken cancellationToken)
    {
        refreshGate.Wait(cancellationToken);
        try
        {
            Refresh(cancellationToken);
        }
        catch (Exception ex) when (!(ex is OperationCanceledException && cancellationToken.IsCancellationRequested))
        {
            // The registry unreadable (permissions, a disk error) or a bug: whatever serves keeps serving.
            problem = $"the registry could not be read: {ex.Message}" + KeepsServing(current);
            LogRefreshFailed(logger, Name, ex);
        }
        finally
        {
            refreshGate.Release();
        }
    }

    private SwapAction Refresh(CancellationToken cancellationToken)
    {
        if (nameProblem is not null)
        {
            return new SwapAction(SwapActionKind.Refuse, null, nameProblem);
        }

        var serving = current;
        var failed = failures.Keys.ToHashSet(StringComparer.Ordinal);
        SwapSituation situation;
        VerifiedVersion? verified = null;
        if (serving is not null && ChampionNow() == serving.Version)
        {
            // The champion is what serves, and its bytes are in memory: hashing its folder again on
            // every poll would cost CPU for nothing (version numbers are never reused).
            situation = new SwapSituation(serving.Version, Loading, serving.Version, null, failed, serving.Identity);
        }
        else
        {
            var resolution = registry.ResolveServable(Name);
            verified = resolution.Verified;
            situation = resolution.Absent
                ? new SwapSituation(serving?.Version, Loading, null, null, failed, null)
                : new SwapSituation(serving?.Version, Loading, resolution.Version, resolution.Problem, failed, verified is null ? null : Identity(verified));
        }

        var action = SwapPolicy.Decide(situation);
        LogDecision(logger, Name, action.Kind, action.Reason);
        switch (action.Kind)
        {
            case SwapActionKind.Keep:
                problem = serving is not null && serving.Version == action.Version ? null : action.Reason;
                if (situation.Target is null)
                {
                    lastVerifyRefusal = null;
                }

                break;
            case SwapActionKind.Refuse when situation.TargetProblem is { } targetProblem:
                problem = action.Reason;
                string key = $"{situation.Target}|{targetProblem}";
                if (key != lastVerifyRefusal)
                {
                    // Counted and logged once per distinct refusal, not on every poll that sees it again.
                    lastVerifyRefusal = key;
                    CountFailure(VerifyStage);
                    LogRegistryRefused(logger, Name, targetProblem, KeepsServing(serving).TrimStart(';', ' '));
                }

                break;
            case SwapActionKind.Refuse:
                problem = situation.TargetIdentity is { } identity && failures.TryGetValue(identity, out var why)
                    ? $"{action.Reason} (v{situation.Target} was refused at {why})"
                    : action.Reason;
                break;
            case SwapActionKind.Load:
                lastVerifyRefusal = null;
                LoadAndSwap(verified!, serving, cancellationToken);
                break;
        }

        return action;
    }

    private void LoadAndSwap(VerifiedVersion verified, ServedVersion? serving, CancellationToken cancellationToken)
    {
        int version = verified.Version;
        string identity = Identity(verified);
        Volatile.Write(ref loading, version);
        var watch = Stopwatch.StartNew();
        LoadedSession? loaded = null;
        string stage = VerifyStage;
        try
        {
            LogLoading(logger, Name, version, serving is null ? "nothing" : $"v{serving.Version}");
            // The bytes handed to ONNX Runtime are the bytes whose hash was checked just now. A model
            // with external data cannot be loaded from memory (ORT would resolve the data files against
            // the working directory), so it is loaded by path: the registry has checked that every
            // location is a listed file inside the folder, but a file swapped between that check and
            // ORT's read would not be caught (the folder is only writable by the registry's owner).
            byte[]? bytes = verified.Manifest.ExternalData.Count == 0 ? verified.ReadVerifiedBytes(RegistryLayout.ModelFileName) : null;
            stage = LoadStage;
            loaded = bytes is not null ? sessions.Create(bytes, cancellationToken) : sessions.CreateFromFile(verified.ModelPath, cancellationToken);
            var loadTime = watch.Elapsed;

            // A text (gpt) model is read from its own metadata and must be consistent before it warms up.
            TextModel? text = null;
            GptRunner? runner = null;
            if (TextModels.IsText(loaded.Session.ModelMetadata.CustomMetadataMap, loaded.Session.InputMetadata.Keys, verified.Manifest, catalog))
            {
                try
                {
                    text = TextModels.Read(Name, version, loaded.Session);
                }
                catch (InvalidDataException ex)
                {
                    Refused(serving, version, identity, LoadStage, ex.Message, remember: true, watch.Elapsed);
                    return;
                }

                runner = new GptRunner(loaded.Session, text);
            }

            stage = WarmupStage;
            bool batchInvariant = true;
            var warm = text is not null
                ? TextWarmup.Run(runner!, text, options.MaxBatchSize, out batchInvariant, cancellationToken)
                : Warmup.Run(loaded.Session, ContractFor(verified.Manifest), WarmupBatch(verified.Manifest), cancellationToken);
            if (!warm.Passed)
            {
                Refused(serving, version, identity, WarmupStage, warm.Problem!, remember: true, watch.Elapsed);
                return;
            }

            if (!batchInvariant)
            {
                LogNotBatchInvariant(logger, Name, version, loaded.Provider);
            }

            if (serving is not null && ChampionNow() is int champion && champion != version)
            {
                // The champion moved while this version loaded (a rollback, a newer promotion): swapping it
                // in would serve a version nobody asks for; the next refresh loads the right one.
                LogDiscarded(logger, Name, version, champion);
                Notify();
                return;
            }

            var next = new ServedVersion(Name, version, loaded.Session, loaded.Provider, verified.Manifest, verified.ManifestSha256, loadTime, warm.Duration)
            {
                Text = text is null ? null : new TextEngine(text, runner!, options, metrics, logger),
            };
            ServedVersion? old;
            lock (swapLock)
            {
                if (stopped)
                {
                    return; // the finally disposes the session
                }

                // Counted and cleared before the new version becomes visible, so that whoever sees it also
                // sees the swap counted and no stale problem.
                Interlocked.Increment(ref swaps);
                problem = null;
                old = Interlocked.Exchange(ref current, next);
                loaded = null; // owned by the served version now
            }

            old?.Retire();
            UpdateGauges(next);
            metrics.Swaps.WithLabels(Name).Inc();
            LogSwapped(logger, Name, version, next.Provider, loadTime.TotalMilliseconds, warm.Duration.TotalMilliseconds, watch.Elapsed.TotalMilliseconds,
                old is null ? "the first version served" : $"v{old.Version} retired (its session goes with its last request)");
        }
        catch (RegistryVerificationException ex)
        {
            Refused(serving, version, identity, VerifyStage, ex.Reason, remember: false, watch.Elapsed);
        }
        catch (Exception ex) when ((ex is IOException or UnauthorizedAccessException) && stage == VerifyStage)
        {
            Refused(serving, version, identity, VerifyStage, $"cannot read {RegistryLayout.ModelFileName}: {ex.Message}", remember: false, watch.Elapsed);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Whatever ONNX Runtime throws for a bad graph (OnnxRuntimeException, or a managed exception
            // from a malformed one) refuses this version; it never takes serving down.
            Refused(serving, version, identity, stage, FirstLine(ex.Message), remember: true, watch.Elapsed);
        }
        finally
        {
            loaded?.Session.Dispose();
            Volatile.Write(ref loading, 0);
        }
    }

    private void Refused(ServedVersion? serving, int version, string identity, string stage, string reason, bool remember, TimeSpan elapsed)
    {
        if (remember)
        {
            failures[identity] = $"{stage}: {reason}";
        }

        CountFailure(stage);
        problem = $"v{version} was refused at {stage}: {reason}" + KeepsServing(serving);
        LogRefused(logger, Name, version, stage, reason, elapsed.TotalMilliseconds, KeepsServing(serving).TrimStart(';', ' '));
    }

    private void CountFailure(string stage)
    {
        Interlocked.Increment(ref swapFailures);
        metrics.SwapFailures.WithLabels(Name, stage).Inc();
    }

    private void UpdateGauges(ServedVersion next)
    {
        string previous = provider ?? NoProvider;
        if (previous != next.Provider)
        {
            metrics.LoadedVersion.RemoveLabelled(Name, previous);
            if (provider is not null)
            {
                metrics.ExecutionProvider.RemoveLabelled(Name, provider);
            }

            provider = next.Provider;
        }

        metrics.LoadedVersion.WithLabels(Name, next.Provider).Set(next.Version);
        metrics.ExecutionProvider.WithLabels(Name, next.Provider).Set(1);
        metrics.Ready.WithLabels(Name).Set(1);
    }

    /// <summary>
    /// The generator contract when this is an image generator: the catalog says image, or the manifest
    /// names an image family or a <c>latent</c> input. A renamed input must not turn a generator into
    /// a "generic" model that passes warm-up, hence the catalog and family come first.
    /// </summary>
    private GeneratorContract? ContractFor(VersionManifest manifest)
    {
        string? family = manifest.Hyperparameters.GetValueOrDefault("family");
        bool image = catalog is not null
            ? catalog.ParsedModality == Core.Contracts.Modality.Image
            : family is "dcgan" or "vae" || manifest.Inputs.Any(i => i.Name == GeneratorContract.LatentInput);
        if (!image)
        {
            return null;
        }

        int classes = int.TryParse(manifest.Hyperparameters.GetValueOrDefault("classes"), NumberStyles.Integer, CultureInfo.InvariantCulture, out int c) ? c : 0;
        return catalog is null
            ? new GeneratorContract(classes)
            : new GeneratorContract(classes, catalog.Image.Channels, catalog.Image.Height, catalog.Image.Width);
    }

    /// <summary>The largest batch serving forms: <c>Serving:MaxBatchSize</c>, capped by the manifest's <c>max_batch_size</c> when it has one.</summary>
    private int WarmupBatch(VersionManifest manifest) =>
        manifest.MaxBatchSize > 0 ? Math.Min(options.MaxBatchSize, manifest.MaxBatchSize) : options.MaxBatchSize;

    /// <summary>The champion as <c>aliases.json</c> names it now, or null when it cannot be read.</summary>
    private int? ChampionNow()
    {
        try
        {
            return registry.ReadAliases(Name)?.Champion;
        }
        catch (Exception ex) when (ex is RegistryException or IOException or UnauthorizedAccessException)
        {
            return null; // the full resolution reports the problem
        }
    }

    private string NotReadyReason()
    {
        if (Loading is int v)
        {
            return $"v{v} is loading";
        }

        return problem ?? "no version is ready";
    }

    private static string KeepsServing(ServedVersion? serving) =>
        serving is null ? "; nothing to serve" : $"; v{serving.Version} keeps serving";

    private static string Identity(VerifiedVersion verified) => $"{verified.Version}:{verified.ManifestSha256}";

    private static string FirstLine(string message)
    {
        int newline = message.IndexOfAny(['\r', '\n']);
        return newline < 0 ? message : message[..newline];
    }

    [LoggerMessage(EventId = 600, Level = LogLevel.Information, Message = "{Model}: verifying, loading and warming up v{Version} (serving now: {Serving})")]
    private static partial void LogLoading(ILogger logger, string model, int version, string serving);

    [LoggerMessage(EventId = 601, Level = LogLevel.Information, Message = "{Model}: v{Version} swapped in on {Provider} (load {LoadMs:0.0} ms, warm-up {WarmupMs:0.0} ms, total {TotalMs:0.0} ms); {Previous}")]
    private static partial void LogSwapped(ILogger logger, string model, int version, string provider, double loadMs, double warmupMs, double totalMs, string previous);

    [LoggerMessage(EventId = 602, Level = LogLevel.Warning, Message = "{Model}: v{Version} refused at {Stage} after {ElapsedMs:0.0} ms: {Reason}; {Fallback}")]
    private static partial void LogRefused(ILogger logger, string model, int version, string stage, string reason, double elapsedMs, string fallback);

    [LoggerMessage(EventId = 603, Level = LogLevel.Warning, Message = "{Model}: the registry refuses the champion: {Reason}; {Fallback}")]
    private static partial void LogRegistryRefused(ILogger logger, string model, string reason, string fallback);

    [LoggerMessage(EventId = 604, Level = LogLevel.Information, Message = "{Model}: v{Version} loaded, but the champion is now v{Champion}; discarded")]
    private static partial void LogDiscarded(ILogger logger, string model, int version, int champion);

    [LoggerMessage(EventId = 605, Level = LogLevel.Error, Message = "{Model}: refresh failed; the serving version (if any) keeps serving")]
    private static partial void LogRefreshFailed(ILogger logger, string model, Exception exception);

    [LoggerMessage(EventId = 607, Level = LogLevel.Warning, Message = "{Model}: v{Version} on {Provider} gives a decode row different logits alone and in a batch; seeded text generation may differ while other requests run")]
    private static partial void LogNotBatchInvariant(ILogger logger, string model, int version, string provider);

    [LoggerMessage(EventId = 606, Level = LogLevel.Debug, Message = "{Model}: {Decision} ({Reason})")]
    private static partial void LogDecision(ILogger logger, string model, SwapActionKind decision, string reason);
}
