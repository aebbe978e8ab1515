using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Policies;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Serving.Observability;
using RetrainDaemon.Serving.Runtime;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.IntegrationTests.Serving;

/// <summary>
/// The serving runtime against real registry folders and the real ONNX Runtime, with DCGAN generators
/// exported by the project's exporter: first load, promotion and rollback, the S2 bad candidates, leases
/// across a swap, an empty registry at start, the CUDA fallback, and RSS over ten swaps.
/// </summary>
public sealed class RuntimeTests : IClassFixture<GeneratorModels>, IDisposable
{
    private static readonly TimeSpan SwapBound = TimeSpan.FromSeconds(10);

    private readonly GeneratorModels generators;
    private readonly ITestOutputHelper output;
    private readonly string root = TestPaths.NewTempDirectory("rd-serving");
    private readonly ModelRegistry registry;
    private readonly string model = $"gen-{Guid.NewGuid():N}"[..20]; // metrics are process-wide: one label value per test
    private readonly ServingMetrics metrics = new();
    private readonly ILoggerFactory loggers;

    public RuntimeTests(GeneratorModels generators, ITestOutputHelper output)
    {
        this.generators = generators;
        this.output = output;
        registry = new ModelRegistry(root, keepLast: 3);
        loggers = LoggerFactory.Create(b => b.AddProvider(new TestOutputLoggerProvider(output)).SetMinimumLevel(LogLevel.Information));
    }

    public void Dispose()
    {
        loggers.Dispose();
        Directory.Delete(root, recursive: true);
    }

    [Fact]
    public async Task FirstLoad_VerifiesLoadsAndWarmsUp_ThenServes()
    {
        var server = Server();
        Assert.False(server.TryLease(out _, out var before));
        output.WriteLine($"before any refresh: {before}");

        generators.PublishChampion(registry, model, seed: 1);
        var watch = Stopwatch.StartNew();
        var action = await server.RefreshAsync();
        watch.Stop();

        Assert.Equal(SwapActionKind.Load, action.Kind);
        var status = server.Status();
        Assert.True(status.Ready, status.Problem);
        Assert.Equal(1, status.Version);
        Assert.Null(status.Problem);
        Assert.Equal(SessionFactory.CpuProvider, status.Provider);
        Assert.Equal(1, status.Swaps);
        Assert.True(server.TryLease(out var lease, out _));
        using (lease)
        {
            var (shape, values) = Generate(lease.Version!, batch: 3, seed: 7);
            Assert.Equal(new long[] { 3, 1, 28, 28 }, shape);
            Assert.All(values, v => Assert.InRange(v, -1f, 1f));
        }

        var v1 = server.Current!;
        output.WriteLine($"first load of v1: {watch.Elapsed.TotalMilliseconds:0} ms in all (load {v1.LoadTime.TotalMilliseconds:0.0} ms, warm-up at batch 1 and 64 {v1.WarmupTime.TotalMilliseconds:0.0} ms)");
        Assert.Equal(1, metrics.Ready.WithLabels(model).Value);
        Assert.Equal(1, metrics.LoadedVersion.WithLabels(model, SessionFactory.CpuProvider).Value);
        Assert.Equal(1, metrics.ExecutionProvider.WithLabels(model, SessionFactory.CpuProvider).Value);
        Assert.Equal(1, metrics.Swaps.WithLabels(model).Value);

        // Nothing changed: the next refresh keeps v1 without re-reading its folder.
        Assert.Equal(SwapActionKind.Keep, (await server.RefreshAsync()).Kind);
        Assert.Same(v1, server.Current);
    }

    [Fact]
    public async Task Promotion_IsFollowedByTheAliasWatch_AndSwapsWithinTheBound()
    {
        generators.PublishChampion(registry, model, seed: 1);

        using var served = Served(new ServingOptions { Models = [model], PollInterval = TimeSpan.FromMinutes(10) });
        await served.StartAsync(CancellationToken.None);
        try
        {
            await WaitUntil(() => served.Status(model)!.Ready, SwapBound, "v1 ready");

            // Measured by the server's clock (the swapped-in version's LoadedAt), not by this test's polling.
            // Occasional ~0.6-1 s outliers are thread-pool starvation in the test host (a pool probe saw
            // work items wait that long; DOTNET_ThreadPool_ForceMinWorkerThreads=16 removed them): the
            // debounce timer's callback waits for a pool thread like everything else.
            var times = new List<double>();
            for (int seed = 2; seed <= 4; seed++)
            {
                generators.Onnx(seed); // exported before the clock starts
                var published = generators.PublishChampion(registry, model, seed);
                var publishedAt = DateTimeOffset.UtcNow;
                await WaitUntil(() => served.Status(model)!.Version == published.Version, SwapBound, $"v{published.Version} swapped in by the file watch");
                times.Add((served.Status(model)!.LoadedAt!.Value - publishedAt).TotalMilliseconds);
            }

            output.WriteLine($"promotion published → swapped in (aliases.json watch, 100 ms debounce, verify + load + warm-up): {string.Join(", ", times.Select(t => $"{t:0} ms"))}");
            Assert.All(times, t => Assert.InRange(t, 0, SwapBound.TotalMilliseconds));
            Assert.Equal(4, served.Status(model)!.Swaps);
        }
        finally
        {
            await served.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task Notify_WakesTheLoop_WithoutWaitingForThePoll()
    {
        var server = Server(new ServingOptions { PollInterval = TimeSpan.FromMinutes(10) });
        generators.PublishChampion(registry, model, seed: 1);
        using var stop = new CancellationTokenSource();
        var loop = server.RunAsync(stop.Token);
        var times = new List<double>();
        try
        {
            await WaitUntil(() => server.Status().Ready, SwapBound, "first load by the loop");
            for (int seed = 2; seed <= 4; seed++)
            {
                generators.Onnx(seed);
                var published = generators.PublishChampion(registry, model, seed);
                var notifiedAt = DateTimeOffset.UtcNow;
                server.Notify();
                server.Notify(); // a burst is one refresh
                await WaitUntil(() => server.Status().Version == published.Version, SwapBound, "swap after Notify");
                times.Add((server.Status().LoadedAt!.Value - notifiedAt).TotalMilliseconds);
            }
        }
        finally
        {
            await stop.CancelAsync();
            await loop;
        }

        output.WriteLine($"Notify → swapped in (100 ms debounce, verify + load + warm-up): {string.Join(", ", times.Select(t => $"{t:0} ms"))}");
        Assert.Equal(4, server.Swaps);
        Assert.All(times, t => Assert.InRange(t, 0, SwapBound.TotalMilliseconds));
    }

    [Fact]
    public async Task Rollback_ToALowerVersion_LoadsIt()
    {
        var server = Server();
        generators.PublishChampion(registry, model, seed: 1);
        await server.RefreshAsync();
        generators.PublishChampion(registry, model, seed: 2);
        await server.RefreshAsync();
        var v2 = server.Current!;
        Assert.Equal(2, v2.Version);

        registry.Rollback(model, "test: v2 misbehaves");
        var action = await server.RefreshAsync();

        Assert.Equal(SwapActionKind.Load, action.Kind);
        Assert.Contains("champion moved from v2 to v1", action.Reason, StringComparison.Ordinal);
        Assert.Equal(1, server.Status().Version);
        Assert.True(v2.IsRetired);
        Assert.True(v2.IsReleased);
        Assert.Equal(3, server.Swaps);
    }

    public static TheoryData<BadCandidate> BadCandidates() => [.. Enum.GetValues<BadCandidate>()];

    [Theory]
    [MemberData(nameof(BadCandidates))]
    public async Task BadCandidate_IsRefusedWithItsReason_WhileThePreviousVersionKeepsServing(BadCandidate kind)
    {
        var expected = GeneratorModels.Expect(kind);
        var server = Server();
        generators.PublishChampion(registry, model, seed: 1);
        await server.RefreshAsync();
        var v1 = server.Current!;

        var bad = generators.PublishBadChampion(registry, model, kind);
        SwapAction action;
        TimeSpan elapsed;
        LeaseCounts counts;
        await using (var hammer = new LeaseHammer(server))
        {
            await hammer.WaitForRequests(5);
            var watch = Stopwatch.StartNew();
            action = await server.RefreshAsync();
            elapsed = watch.Elapsed;
            await hammer.WaitForRequests(5);
            counts = await hammer.StopAsync();
        }

        var status = server.Status();
        output.WriteLine($"{kind}: refused at {expected.Stage} in {elapsed.TotalMilliseconds:0.0} ms; {counts.Ok} requests served meanwhile (all by v{string.Join("/v", counts.Versions)}), {counts.Failed} failed; problem: {status.Problem}");
        Assert.Equal(expected.Stage == "verify" ? SwapActionKind.Refuse : SwapActionKind.Load, action.Kind);
        Assert.Same(v1, server.Current);
        Assert.True(status.Ready);
        Assert.Equal(1, status.Version);
        Assert.Contains(expected.ReasonFragment, status.Problem, StringComparison.Ordinal);
        Assert.EndsWith("v1 keeps serving", status.Problem, StringComparison.Ordinal);
        Assert.Equal(0, counts.Failed);
        Assert.Equal(new[] { 1 }, counts.Versions);
        Assert.Equal(1, status.SwapFailures);
        Assert.Equal(1, metrics.SwapFailures.WithLabels(model, expected.Stage).Value);
        if (expected.Stage != "verify")
        {
            Assert.Contains(server.FailedIdentities.Keys, k => k.StartsWith($"{bad.Version}:", StringComparison.Ordinal));
            Assert.Contains($"at {expected.Stage}", status.Problem, StringComparison.Ordinal);
        }

        // Looking again neither retries nor recounts it, and the reason stays visible.
        var again = await server.RefreshAsync();
        Assert.Equal(SwapActionKind.Refuse, again.Kind);
        Assert.Equal(1, server.Status().SwapFailures);
        Assert.Contains(expected.ReasonFragment, server.Status().Problem, StringComparison.Ordinal);
        Assert.Same(v1, server.Current);

        // A good promotion after the bad one is served as usual.
        var good = generators.PublishChampion(registry, model, seed: 3);
        await server.RefreshAsync();
        Assert.Equal(good.Version, server.Status().Version);
        Assert.Null(server.Status().Problem);
    }

    [Fact]
    public async Task BadFirstCandidate_LeavesTheModelNotReady_WithTheReason()
    {
        var server = Server();
        generators.PublishBadChampion(registry, model, BadCandidate.NaNWeights);
        await server.RefreshAsync();

        Assert.False(server.TryLease(out _, out var reason));
        Assert.Contains("non-finite value", reason, StringComparison.Ordinal);
        Assert.EndsWith("nothing to serve", reason, StringComparison.Ordinal);
        Assert.False(server.Status().Ready);
        Assert.Equal(0, metrics.Ready.WithLabels(model).Value);
    }

    [Fact]
    public async Task LeaseHeldAcrossASwap_KeepsItsSessionUsable_UntilDisposed()
    {
        var server = Server();
        generators.PublishChampion(registry, model, seed: 1);
        await server.RefreshAsync();
        Assert.True(server.TryLease(out var held, out _));
        var v1 = held.Version!;

        generators.PublishChampion(registry, model, seed: 2);
        await server.RefreshAsync();

        Assert.Equal(2, server.Status().Version);
        Assert.True(v1.IsRetired);
        Assert.False(v1.IsReleased);
        var (shape, _) = Generate(v1, batch: 2, seed: 3); // the old session still runs for the lease holder
        Assert.Equal(new long[] { 2, 1, 28, 28 }, shape);
        Assert.True(server.TryLease(out var fresh, out _));
        using (fresh)
        {
            Assert.Equal(2, fresh.Version!.Version); // new requests get the new version
        }

        held.Dispose();
        Assert.True(v1.IsReleased);
        Assert.False(v1.TryAcquire(out _));
    }

    [Fact]
    public async Task EmptyRegistry_NotReadyWithAReason_ThenReadyWhenAChampionIsPublished()
    {
        string missingRoot = Path.Combine(root, "not-yet");
        var lateRegistry = new ModelRegistry(missingRoot);
        using var served = Served(new ServingOptions { Models = [model], PollInterval = TimeSpan.FromMinutes(10) }, lateRegistry);
        await served.StartAsync(CancellationToken.None);
        try
        {
            await WaitUntil(() => served.Status(model)!.Problem == "no champion in the registry yet", SwapBound, "first look at the empty registry");
            Assert.True(Directory.Exists(missingRoot)); // created, so that it can be watched
            Assert.False(served.TryLease(model, out _, out var reason, out bool unknown));
            Assert.False(unknown);
            Assert.Equal("no champion in the registry yet", reason);
            Assert.False(served.Status(model)!.Ready);

            Assert.False(served.TryLease("no-such-model", out _, out var unknownReason, out unknown));
            Assert.True(unknown);
            Assert.Contains("not served here", unknownReason, StringComparison.Ordinal);

            generators.Onnx(1);
            var publishing = DateTimeOffset.UtcNow;
            generators.PublishChampion(lateRegistry, model, seed: 1); // creates the model folder, then aliases.json
            await WaitUntil(() => served.Status(model)!.Ready, SwapBound, "ready after the first publish");
            output.WriteLine($"empty registry → first champion publish started → ready: {(served.Status(model)!.LoadedAt!.Value - publishing).TotalMilliseconds:0} ms (root watch, then the model folder's watch)");
            Assert.True(served.TryLease(model, out var lease, out _, out _));
            lease.Dispose();
        }
        finally
        {
            await served.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task CudaRequested_FallsBackToCpu_AndInferenceWorks()
    {
        var factory = new SessionFactory(new ServingOptions { UseCuda = true }, loggers.CreateLogger<SessionFactory>());
        var loaded = factory.Create(generators.Onnx(1));
        using (loaded.Session)
        {
            Assert.Equal(SessionFactory.CpuProvider, loaded.Provider);
            output.WriteLine($"CUDA fallback reason: {factory.CudaProblem}");
            Assert.NotNull(factory.CudaProblem);
            var warm = Warmup.Run(loaded.Session, new GeneratorContract(0, 1, 28, 28), 64);
            Assert.True(warm.Passed, warm.Problem);
        }

        // Through the whole runtime, too: the model serves on CPU and says so.
        var server = Server(new ServingOptions { UseCuda = true });
        generators.PublishChampion(registry, model, seed: 1);
        await server.RefreshAsync();
        Assert.Equal(SessionFactory.CpuProvider, server.Status().Provider);
        Assert.True(server.TryLease(out var lease, out _));
        using (lease)
        {
            Assert.Equal(new long[] { 1, 1, 28, 28 }, Generate(lease.Version!, 1, 1).Shape);
        }
    }

    [Fact]
    public async Task GenericModel_IsWarmedUpFromItsMetadata()
    {
        // No catalog entry, no image family: the exported classifier (image → logits) is warmed up as a generic model.
        byte[] classifier = ClassifierOnnx();
        var server = new ModelServer(model, registry, new SessionFactory(new ServingOptions()), new ServingOptions(), null, metrics, loggers.CreateLogger<ModelServer>());
        generators.PublishChampion(registry, model, classifier, "test: generic model", hyperparameters: new Dictionary<string, string> { ["family"] = "classifier" });
        await server.RefreshAsync();

        Assert.True(server.Status().Ready, server.Status().Problem);
        output.WriteLine($"generic warm-up of the classifier: {server.Current!.WarmupTime.TotalMilliseconds:0.0} ms");
    }

    [Fact]
    public async Task TenSwaps_RssStaysWithinTenPercentOfTheFirst_AndEveryRetiredSessionIsDisposed()
    {
        // Swaps through the background loop (Notify), as in production: one loader thread for the
        // model's lifetime. (RefreshAsync starts a thread per call; each new thread may get a fresh glibc
        // malloc arena, which showed as a few MB of extra RSS per swap that levels off after ~16 threads.)
        var server = Server(new ServingOptions { PollInterval = TimeSpan.FromMinutes(10) });
        var seeds = Enumerable.Range(100, 11).ToList();
        foreach (int seed in seeds)
        {
            generators.Onnx(seed); // exports before anything is measured
        }

        var retired = new List<ServedVersion>();
        var swapTimes = new List<double>();
        var rss = new List<long>();
        using var stop = new CancellationTokenSource();
        var loop = server.RunAsync(stop.Token);
        try
        {
            for (int i = 0; i < seeds.Count; i++)
            {
                var previous = server.Current;
                var published = generators.PublishChampion(registry, model, seeds[i]);
                server.Notify();
                await WaitUntil(() => server.Current?.Version == published.Version, SwapBound, $"v{published.Version} swapped in");
                var now = server.Current!;
                swapTimes.Add((now.LoadTime + now.WarmupTime).TotalMilliseconds);
                if (previous is not null)
                {
                    retired.Add(previous);
                }

                for (int r = 0; r < 20; r++)
                {
                    Assert.True(server.TryLease(out var lease, out _));
                    using (lease)
                    {
                        Generate(lease.Version!, batch: r % 2 == 0 ? 1 : 64, seed: r);
                    }
                }

                // Settled after every swap, not only at the two compared: the allocator returns memory
                // when trimmed regularly, and a single late reading carried up to 9 % of noise.
                rss.Add(SettledRss());
            }
        }
        finally
        {
            await stop.CancelAsync();
            await loop;
        }

        output.WriteLine($"load + warm-up per swap, ms: {string.Join(", ", swapTimes.Select(t => t.ToString("0", System.Globalization.CultureInfo.InvariantCulture)))}");
        long rssAfterFirst = rss[1], rssAfterTenth = rss[10];
        output.WriteLine($"settled RSS after the first load and each swap, MB: {string.Join(", ", rss.Select(r => r >> 20))}");
        output.WriteLine($"settled RSS after swap 1: {rssAfterFirst >> 20} MB, after swap 10: {rssAfterTenth >> 20} MB ({(rssAfterTenth - rssAfterFirst) * 100.0 / rssAfterFirst:+0.0;-0.0} %)");
        Assert.Equal(11, server.Swaps);
        Assert.All(retired, v => Assert.True(v.IsReleased, $"v{v.Version} was retired but its session is alive"));
        Assert.InRange(rssAfterTenth, 0, rssAfterFirst * 11 / 10);
    }

    // ───────────────────────────── helpers ─────────────────────────────

    private ModelServer Server(ServingOptions? options = null)
    {
        options ??= new ServingOptions();
        return new ModelServer(model, registry, new SessionFactory(options, loggers.CreateLogger<SessionFactory>()), options, GeneratorModels.CatalogEntry(), metrics, loggers.CreateLogger<ModelServer>());
    }

    private ServedModels Served(ServingOptions options, ModelRegistry? at = null) =>
        new(at ?? registry, new SessionFactory(options), Options.Create(options), Options.Create(GeneratorModels.Catalog(model)), metrics, loggers);

    /// <summary>One generation through the version's session: seeded latents in, the image tensor's shape and values out.</summary>
    internal static (long[] Shape, float[] Values) Generate(ServedVersion version, int batch, int seed)
    {
        var random = new Random(seed);
        int latent = GeneratorModels.Config.Latent;
        var z = new float[batch * latent];
        for (int i = 0; i < z.Length; i++)
        {
            z[i] = (float)(random.NextDouble() * 2 - 1);
        }

        using var input = OrtValue.CreateTensorValueFromMemory(z, [batch, latent]);
        using var runOptions = new RunOptions();
        using var results = version.Session.Run(runOptions, ["latent"], [input], ["image"]);
        return (results[0].GetTensorTypeAndShape().Shape, results[0].GetTensorDataAsSpan<float>().ToArray());
    }

    private static async Task<TimeSpan> WaitUntil(Func<bool> condition, TimeSpan timeout, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed > timeout)
            {
                throw new TimeoutException($"not within {timeout.TotalSeconds} s: {what}");
            }

            await Task.Delay(5);
        }

        return watch.Elapsed;
    }

    private static byte[] ClassifierOnnx()
    {
        TorchSharp.torch.manual_seed(5);
        using var classifier = new RetrainDaemon.Training.Models.FashionClassifier(new RetrainDaemon.Training.Models.ClassifierConfig());
        return RetrainDaemon.Export.Exporters.ModelExporter.Export(classifier, casesPerBatchSize: 2).Onnx;
    }

    /// <summary>RSS after a full blocking collection and glibc's malloc_trim, so that GC phase and allocator caches do not decide the comparison.</summary>
    private static long SettledRss()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        MallocTrim(0);
        using var process = Process.GetCurrentProcess();
        return process.WorkingSet64;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);

    private sealed record LeaseCounts(int Ok, int Failed, IReadOnlyList<int> Versions);

    /// <summary>Requests in a loop (about 200/s) while a test changes the registry: every one must get a lease and an image.</summary>
    private sealed class LeaseHammer : IAsyncDisposable
    {
        private readonly ModelServer server;
        private readonly CancellationTokenSource stop = new();
        private readonly Task loop;
        private readonly SortedSet<int> versions = [];
        private int ok;
        private int failed;

        public LeaseHammer(ModelServer server)
        {
            this.server = server;
            loop = Task.Run(Run);
        }

        public async Task WaitForRequests(int count)
        {
            int target = Volatile.Read(ref ok) + count;
            await WaitUntil(() => Volatile.Read(ref ok) >= target || Volatile.Read(ref failed) > 0, TimeSpan.FromSeconds(10), $"{count} requests");
        }

        public async Task<LeaseCounts> StopAsync()
        {
            await stop.CancelAsync();
            await loop;
            lock (versions)
            {
                return new LeaseCounts(ok, failed, versions.ToList());
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (!stop.IsCancellationRequested)
            {
                await StopAsync();
            }

            stop.Dispose();
        }

        private async Task Run()
        {
            int i = 0;
            while (!stop.IsCancellationRequested)
            {
                if (server.TryLease(out var lease, out _))
                {
                    using (lease)
                    {
                        var (shape, _) = Generate(lease.Version!, 1, i++);
                        if (shape[0] == 1)
                        {
                            Interlocked.Increment(ref ok);
                            lock (versions)
                            {
                                versions.Add(lease.Version!.Version);
                            }
                        }
                    }
                }
                else
                {
                    Interlocked.Increment(ref failed);
                }

                try
                {
                    await Task.Delay(5, stop.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
    }
}

/// <summary>Routes log lines to xUnit's test output (dropped once the test has finished).</summary>
internal sealed class TestOutputLoggerProvider(ITestOutputHelper output) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new TestOutputLogger(output, categoryName[(categoryName.LastIndexOf('.') + 1)..]);

    public void Dispose()
    {
    }

    private sealed class TestOutputLogger(ITestOutputHelper output, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            try
            {
                output.WriteLine($"  {DateTime.Now:HH:mm:ss.fff} [{logLevel} {category}] {formatter(state, exception)}{(exception is null ? "" : $" ({exception.GetType().Name}: {exception.Message})")}");
            }
            catch (InvalidOperationException)
            {
                // The test is over.
            }
        }
    }
}
