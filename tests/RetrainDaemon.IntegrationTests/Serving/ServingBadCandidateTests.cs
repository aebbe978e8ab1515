using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.IntegrationTests.Serving;

/// <summary>
/// reliability.md S2 against the real daemon: while clients generate and infer, every kind of bad
/// candidate <see cref="GeneratorModels"/> makes is published as the champion, one after the other.
/// Each is refused with its reason (in <c>/v2/health/ready</c> and the log) and counted in
/// <c>retrain_serving_swap_failures_total{stage}</c>; no request fails, and every one is answered by
/// the version that served before. A good champion afterwards is served and clears the reason.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class ServingBadCandidateTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-serving-bad")
{
    private static readonly TimeSpan RejectBound = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task BadCandidates_AreRefusedWithTheirReasons_WhileTheOldVersionServesEveryRequest()
    {
        var generators = GeneratorModels.Shared;
        var kinds = Enum.GetValues<BadCandidate>();
        foreach (var kind in kinds)
        {
            _ = kind switch
            {
                BadCandidate.NaNWeights => generators.NaNWeights(),
                BadCandidate.WrongInputName => generators.WrongInputName(),
                BadCandidate.WrongLatentType => generators.WrongLatentType(),
                BadCandidate.WrongImageSize => generators.WrongImageSize(),
                _ => generators.Onnx(1),
            }; // every export happens before the clock starts
        }

        generators.Onnx(2);
        var registry = ServingDaemon.OpenRegistry(Directory);
        var v1 = generators.PublishChampion(registry, ServingDaemon.Model, seed: 1);
        // Only the aliases.json watch (and the admin routes) trigger a refresh: a poll landing between a
        // publish and the tampering that follows it would see the good bytes for an instant.
        await using var serving = ServingDaemon.Start(Fixture.Broker, Directory, new ServingDaemonOptions
        {
            Settings = { ["Serving:PollInterval"] = "00:01:00" },
        });
        await serving.Daemon.WaitReadyAsync();

        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();
        var load = LoadRunner.RunAsync(serving.Http, workers: 4, ratePerSecond: 100, clock, (w, i) => w % 2 == 0
            ? ("generate", ServingDaemon.Generate(count: 1, seed: i))
            : ("infer", ServingDaemon.Infer(batch: 1, seed: i)), stop.Token);
        await Task.Delay(500);

        var results = new List<(BadCandidate Kind, int Version, string Stage, double RejectMs, string Reason)>();
        foreach (var kind in kinds)
        {
            var expected = GeneratorModels.Expect(kind);
            string[] labels = [$"model=\"{ServingDaemon.Model}\"", $"stage=\"{expected.Stage}\""];
            double before = await serving.Daemon.MetricAsync("retrain_serving_swap_failures_total", labels);
            double publishedAt = clock.Elapsed.TotalMilliseconds;
            var bad = generators.PublishBadChampion(serving.Registry, ServingDaemon.Model, kind);
            double doneAt = clock.Elapsed.TotalMilliseconds;

            // Refused: counted under its stage, and the health body says why while v1 stays ready.
            double rejectMs;
            while (true)
            {
                if (await serving.Daemon.MetricAsync("retrain_serving_swap_failures_total", labels) > before)
                {
                    rejectMs = clock.Elapsed.TotalMilliseconds - doneAt;
                    break;
                }

                Assert.True(clock.Elapsed.TotalMilliseconds - publishedAt < RejectBound.TotalMilliseconds,
                    $"{kind} (v{bad.Version}) not refused at {expected.Stage} within {RejectBound}:\n{ServingDaemon.Tail(serving.Daemon.Output)}");
                await Task.Delay(10);
            }

            var (ready, version, reason) = await HealthAsync(serving);
            results.Add((kind, bad.Version, expected.Stage, rejectMs, reason ?? ""));
            Assert.True(ready, reason);
            Assert.Equal(v1.Version, version);
            Assert.Contains(expected.ReasonFragment, reason, StringComparison.Ordinal);
            Assert.Contains($"v{bad.Version}", reason, StringComparison.Ordinal);
            Assert.EndsWith($"v{v1.Version} keeps serving", reason, StringComparison.Ordinal);
            var readiness = await serving.ReadyAsync();
            Assert.Equal((200, v1.Version), (readiness.Status, readiness.Version));
        }

        await Task.Delay(500);
        await stop.CancelAsync();
        var samples = await load;

        foreach (var r in results)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r.Kind,-28} v{r.Version,-2} refused at {r.Stage,-6} {r.RejectMs,6:0} ms after the publish: {r.Reason}"));
        }

        var failed = samples.Where(s => !s.Ok).ToList();
        var versions = samples.Where(s => s.Ok).GroupBy(s => s.Version).ToDictionary(g => g.Key ?? 0, g => g.Count());
        output.WriteLine($"meanwhile: {samples.Count} requests over {samples[^1].EndMs / 1000:0.0} s, {failed.Count} failed; answered by {string.Join(", ", versions.Select(v => $"v{v.Key}: {v.Value}"))}");
        output.WriteLine($"generate {Percentiles.Describe(samples.Where(s => s.Route == "generate").ToList())}; infer {Percentiles.Describe(samples.Where(s => s.Route == "infer").ToList())}");
        Assert.Empty(failed.Select(f => $"{f.Route} {f.Status} {f.Failure} {f.Detail}").Take(5));
        Assert.All(samples, s => Assert.Equal(v1.Version, s.Version));
        Assert.All(samples, s => Assert.Equal(v1.Version, s.BodyVersion));
        Assert.Equal(kinds.Length, await serving.Daemon.MetricAsync("retrain_serving_swap_failures_total", $"model=\"{ServingDaemon.Model}\""));
        Assert.Contains("keeps serving", serving.Daemon.Output, StringComparison.Ordinal);

        // A good champion after them is served, and the reason goes.
        var good = generators.PublishChampion(serving.Registry, ServingDaemon.Model, seed: 2);
        await serving.WaitServingAsync(good.Version, RejectBound);
        var after = await HealthAsync(serving);
        Assert.Equal((true, good.Version, (string?)null), after);
    }

    /// <summary>The served model's entry of <c>/v2/health/ready</c>.</summary>
    private static async Task<(bool Ready, int? Version, string? Reason)> HealthAsync(ServingDaemon serving)
    {
        using var json = JsonDocument.Parse(await serving.Daemon.GetAsync("/v2/health/ready"));
        var model = json.RootElement.GetProperty("models").EnumerateArray().Single();
        return (model.GetProperty("ready").GetBoolean(),
            model.TryGetProperty("version", out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null,
            model.TryGetProperty("reason", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null);
    }
}
