using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using RetrainDaemon.IntegrationTests.Serving;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.FaultTests;

/// <summary>
/// reliability.md S1, hot swap under load, against the real daemon on loopback: a closed-loop client at
/// about 200 requests/s for 60 s (single-image generate and batch-1 infer, half each) while 10 new
/// champions are promoted, every 4 s from t = 10 s — half published as the champion into the
/// registry the daemon watches, half published as candidates and promoted through the admin route.
/// Zero failed requests; every answer names its version, and that version was the champion (or the
/// one still serving while its successor loaded) while the request ran; the daemon's RSS after the
/// tenth swap is within 10% of its RSS after the first. Prints p50/p99 before, during and after the
/// swaps, swap durations, how many requests the old version answered after the alias moved, and RSS.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class ServingHotSwapTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-serving-swap")
{
    private const double Rate = 200;
    private const int Workers = 16;
    private const int Promotions = 10;
    private static readonly TimeSpan Duration = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan FirstPromotion = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan PromotionEvery = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan SwapBound = TimeSpan.FromSeconds(10);

    // The server stamps loaded_at just before it swaps the version in; a request starting this soon
    // after may still have leased the old one. Also absorbs the wall-clock/stopwatch mapping.
    private const double ClockSlackMs = 5;

    [Fact]
    public async Task TenPromotionsUnder200RequestsPerSecond_NoRequestFails_EveryAnswerTaggedWithAServingVersion_NoLeak()
    {
        var generators = GeneratorModels.Shared;
        int[] seeds = [.. Enumerable.Range(1, Promotions + 1)];
        foreach (int seed in seeds)
        {
            generators.Onnx(seed); // exported before anything is measured
        }

        var registry = ServingDaemon.OpenRegistry(Directory);
        var v1 = generators.PublishChampion(registry, ServingDaemon.Model, seeds[0]);
        await using var serving = ServingDaemon.Start(Fixture.Broker, Directory, new ServingDaemonOptions { Admin = true });
        await serving.Daemon.WaitReadyAsync();
        using var admin = serving.NewClient(new Uri($"http://127.0.0.1:{serving.AdminPort}"), withKey: false);
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ServingDaemon.AdminKey);

        var clock = Stopwatch.StartNew();
        var wallBase = DateTimeOffset.UtcNow;
        using var stop = new CancellationTokenSource();
        var load = LoadRunner.RunAsync(serving.Http, Workers, Rate, clock, (w, i) => w % 2 == 0
            ? ("generate", ServingDaemon.Generate(count: 1, seed: (w * 100_000) + i))
            : ("infer", ServingDaemon.Infer(batch: 1, seed: (w * 100_000) + i)), stop.Token);
        var rss = new List<(double AtMs, long Bytes, int Threads)>();
        var rssSampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                rss.Add((clock.Elapsed.TotalMilliseconds, serving.RssBytes(), serving.ThreadCount()));
                await Task.Delay(100);
            }
        });

        // The promotions, on the client's clock: when the alias change started and ended, and when the
        // server swapped the version in (its loaded_at, mapped onto the same clock).
        var swaps = new List<Swap>();
        for (int p = 0; p < Promotions; p++)
        {
            await DelayUntil(clock, FirstPromotion + (PromotionEvery * p));
            int seed = seeds[p + 1];
            bool viaAdmin = p % 2 == 1;
            int version;
            double startMs, endMs;
            if (viaAdmin)
            {
                version = ServingDaemon.PublishCandidate(serving.Registry, generators, seed).Version;
                startMs = clock.Elapsed.TotalMilliseconds;
                using var response = await admin.PostAsync(new Uri($"/admin/models/{ServingDaemon.Model}/promote", UriKind.Relative),
                    ServingDaemon.Json($"{{\"version\":{version},\"reason\":\"S1 promotion {p + 1}\"}}"));
                endMs = clock.Elapsed.TotalMilliseconds;
                Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            }
            else
            {
                startMs = clock.Elapsed.TotalMilliseconds;
                version = generators.PublishChampion(serving.Registry, ServingDaemon.Model, seed, reason: $"S1 promotion {p + 1}").Version;
                endMs = clock.Elapsed.TotalMilliseconds;
            }

            await serving.WaitServingAsync(version, SwapBound);
            var (served, loadedAt) = await serving.LoadedAtAsync();
            Assert.Equal(version, served);
            swaps.Add(new Swap(version, viaAdmin, startMs, endMs, (loadedAt - wallBase).TotalMilliseconds));
        }

        await DelayUntil(clock, Duration);
        await stop.CancelAsync();
        var samples = await load;
        await rssSampler;

        // ── figures ──
        double lastSwapMs = swaps[^1].LoadedMs;
        bool During(LoadSample s) => swaps.Any(w => s.StartMs >= w.StartMs && s.StartMs <= w.LoadedMs + 500);
        var phases = new (string Name, List<LoadSample> Samples)[]
        {
            ("before swaps", samples.Where(s => s.StartMs < swaps[0].StartMs).ToList()),
            ("during swaps", samples.Where(During).ToList()),
            ("between swaps", samples.Where(s => s.StartMs >= swaps[0].StartMs && s.StartMs <= lastSwapMs + 500 && !During(s)).ToList()),
            ("after swaps", samples.Where(s => s.StartMs > lastSwapMs + 500).ToList()),
        };
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{samples.Count} requests in {Duration.TotalSeconds:0} s ({samples.Count / Duration.TotalSeconds:0.0}/s offered by {Workers} closed-loop clients at {Rate:0}/s), {samples.Count(s => !s.Ok)} failed"));
        foreach (var (name, phase) in phases)
        {
            output.WriteLine($"  {name,-14} all {Percentiles.Describe(phase)} | generate {Percentiles.Describe(phase.Where(s => s.Route == "generate").ToList())} | infer {Percentiles.Describe(phase.Where(s => s.Route == "infer").ToList())}");
        }

        var versions = new List<(int Version, double From, double Until)> { (v1.Version, double.NegativeInfinity, swaps[0].LoadedMs) };
        for (int i = 0; i < swaps.Count; i++)
        {
            versions.Add((swaps[i].Version, swaps[i].StartMs, i + 1 < swaps.Count ? swaps[i + 1].LoadedMs : double.PositiveInfinity));
        }

        int oldAfterAliasMoved = 0;
        for (int i = 0; i < swaps.Count; i++)
        {
            int old = i == 0 ? v1.Version : swaps[i - 1].Version;
            int count = samples.Count(s => s.Version == old && s.StartMs > swaps[i].EndMs);
            oldAfterAliasMoved += count;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  swap {i + 1,2}: v{old} -> v{swaps[i].Version} via {(swaps[i].ViaAdmin ? "admin route  " : "registry watch")} alias moved at {swaps[i].EndMs / 1000,6:0.000} s, swapped in {swaps[i].LoadedMs - swaps[i].EndMs,5:0} ms later; {count} requests started after the alias moved were answered by v{old}"));
        }

        double rssAfterFirst = Median(rss.Where(r => r.AtMs > swaps[0].LoadedMs + 1000 && r.AtMs < swaps[0].LoadedMs + 3000).Select(r => (double)r.Bytes));
        double rssAfterFifth = Median(rss.Where(r => r.AtMs > swaps[4].LoadedMs + 1000 && r.AtMs < swaps[4].LoadedMs + 3000).Select(r => (double)r.Bytes));
        double rssAfterTenth = Median(rss.Where(r => r.AtMs > swaps[^1].LoadedMs + 1000 && r.AtMs < swaps[^1].LoadedMs + 3000).Select(r => (double)r.Bytes));
        // Each live ONNX Runtime session owns an intra-op pool (Serving:IntraOpThreads = 2: one thread of its
        // own), so a session that is never disposed shows as one more thread per swap.
        double threadsAfterFirst = Median(rss.Where(r => r.AtMs > swaps[0].LoadedMs + 1000 && r.AtMs < swaps[0].LoadedMs + 3000).Select(r => (double)r.Threads));
        double threadsAfterTenth = Median(rss.Where(r => r.AtMs > swaps[^1].LoadedMs + 1000 && r.AtMs < swaps[^1].LoadedMs + 3000).Select(r => (double)r.Threads));
        double rssBefore = Median(rss.Where(r => r.AtMs < swaps[0].StartMs && r.AtMs > swaps[0].StartMs - 2000).Select(r => (double)r.Bytes));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"max swap duration (alias moved -> swapped in, verify + load + warm-up + 100 ms debounce): {swaps.Max(s => s.LoadedMs - s.EndMs):0} ms; requests answered by the old version after its successor's alias moved: {oldAfterAliasMoved}"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"daemon VmRSS (median over 2 s): before swaps {rssBefore / 1048576:0.0} MB, after swap 1 {rssAfterFirst / 1048576:0.0} MB, after swap 5 {rssAfterFifth / 1048576:0.0} MB, after swap 10 {rssAfterTenth / 1048576:0.0} MB ({(rssAfterTenth - rssAfterFirst) * 100 / rssAfterFirst:+0.0;-0.0} %), peak {rss.Max(r => r.Bytes) / 1048576.0:0.0} MB; threads after swap 1 {threadsAfterFirst}, after swap 10 {threadsAfterTenth}"));

        // ── conditions ──
        Assert.Empty(samples.Where(s => !s.Ok).Select(s => $"{s.Route} at {s.StartMs:0} ms: {s.Status} {s.Failure} {s.Detail}").Take(10));
        Assert.True(samples.Count >= 0.8 * Rate * Duration.TotalSeconds, $"only {samples.Count} requests: the load was not what S1 asks for");
        foreach (var s in samples)
        {
            Assert.True(s.Version is int, $"{s.Route} at {s.StartMs:0} ms has no X-Model-Version");
            Assert.Equal(s.Version, s.BodyVersion);
            var (_, from, until) = versions.Single(v => v.Version == s.Version);
            Assert.True(s.EndMs >= from - ClockSlackMs && s.StartMs <= until + ClockSlackMs,
                $"{s.Route} [{s.StartMs:0.0}, {s.EndMs:0.0}] ms answered by v{s.Version}, which served only from the alias change at {from:0.0} to its successor's swap at {until:0.0} ms");
        }

        Assert.All(swaps, s => Assert.InRange(s.LoadedMs - s.EndMs, 0, SwapBound.TotalMilliseconds));
        Assert.Equal(Promotions + 1, await serving.Daemon.MetricAsync("retrain_serving_swaps_total", $"model=\"{ServingDaemon.Model}\""));
        Assert.Equal(0, await serving.Daemon.MetricAsync("retrain_serving_swap_failures_total", $"model=\"{ServingDaemon.Model}\""));
        Assert.True(threadsAfterTenth <= threadsAfterFirst + 4, $"{threadsAfterFirst} threads after the first swap, {threadsAfterTenth} after the tenth: retired sessions keep their thread pools");
        Assert.True(rssAfterTenth <= rssAfterFirst * 1.10,
            $"RSS after 10 swaps {rssAfterTenth / 1048576:0.0} MB is more than 10% over {rssAfterFirst / 1048576:0.0} MB after the first: a retired session leaks");
    }

    private static async Task DelayUntil(Stopwatch clock, TimeSpan at)
    {
        var wait = at - clock.Elapsed;
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait);
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
    }

    /// <summary>One promotion on the client's clock: the alias change [start, end] and the server's swap.</summary>
    private sealed record Swap(int Version, bool ViaAdmin, double StartMs, double EndMs, double LoadedMs);
}
