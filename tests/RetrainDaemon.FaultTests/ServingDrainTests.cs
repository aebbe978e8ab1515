using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using RetrainDaemon.IntegrationTests.Serving;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.FaultTests;

/// <summary>
/// reliability.md S6, drain on SIGTERM, against the real daemon: 32 clients keep the generation queue
/// and the infer slots full (64-image grids, batch-64 infers) when SIGTERM arrives, and keep sending
/// until the listener refuses them. Every request in flight at the signal is answered — 200, or 503
/// while the daemon stops — none is cut off (no reset, no premature end, no timeout); the daemon exits 0
/// within its shutdown budget. Requests sent after the signal are counted by outcome (answered,
/// refused by the closed listener, cut off) but not asserted: Kestrel keeps accepting until the host
/// stops it (about 100 ms after SIGTERM here) and then closes connections whose request it has not
/// started reading, so a few of those are cut off (reported with the serving issue).
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class ServingDrainTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-serving-drain")
{
    private const int Clients = 32;

    [Fact]
    public async Task Sigterm_WithRequestsInFlight_AnswersEveryOne_NoResets_ExitsZero()
    {
        var registry = ServingDaemon.OpenRegistry(Directory);
        GeneratorModels.Shared.PublishChampion(registry, ServingDaemon.Model, seed: 1);
        await using var serving = ServingDaemon.Start(Fixture.Broker, Directory);
        await serving.Daemon.WaitReadyAsync();

        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60)); // a backstop: clients stop when refused
        var load = LoadRunner.RunAsync(serving.Http, Clients, ratePerSecond: 0, clock, (w, i) => w % 2 == 0
            ? ("generate", ServingDaemon.Generate(count: 64, format: "grid", seed: i))
            : ("infer", ServingDaemon.Infer(batch: 64, seed: i)), stop.Token, stopOnRefused: true);
        await Task.Delay(TimeSpan.FromSeconds(3));

        // A raw TCP connect every 5 ms from the signal on: when the listener closes.
        double listenerClosedMs = double.NaN;
        var prober = Task.Run(async () =>
        {
            while (clock.Elapsed < TimeSpan.FromSeconds(50))
            {
                using var tcp = new TcpClient();
                double at = clock.Elapsed.TotalMilliseconds;
                try
                {
                    await tcp.ConnectAsync(IPAddress.Loopback, serving.Daemon.HttpPort);
                }
                catch (SocketException)
                {
                    listenerClosedMs = at;
                    return;
                }

                await Task.Delay(5);
            }
        });
        double signalMs = clock.Elapsed.TotalMilliseconds;
        var stopTime = await serving.Daemon.TerminateAsync(TimeSpan.FromSeconds(45));
        double exitMs = clock.Elapsed.TotalMilliseconds;
        var samples = await load;
        await prober;

        var inFlight = samples.Where(s => s.StartMs < signalMs && s.EndMs > signalMs).ToList();
        var afterSignal = samples.Where(s => s.StartMs >= signalMs).ToList();
        var cutOff = samples.Where(s => s.Failure is LoadFailure.Reset or LoadFailure.Timeout).ToList();
        var inFlightCutOff = inFlight.Where(s => s.Failure is LoadFailure.Reset or LoadFailure.Timeout).ToList();
        var wrongStatus = samples.Where(s => s.Failure == LoadFailure.None && s.Status is not (200 or 503)).ToList();
        string Count(IEnumerable<LoadSample> set, Func<LoadSample, bool> which) => set.Count(which).ToString(CultureInfo.InvariantCulture);
        output.WriteLine($"{samples.Count} requests from {Clients} clients; SIGTERM at {signalMs / 1000:0.000} s, listener closed {listenerClosedMs - signalMs:0} ms later, exit {serving.Daemon.ExitCode} after {stopTime.TotalMilliseconds:0} ms");
        output.WriteLine($"in flight at SIGTERM: {inFlight.Count} — completed 200: {Count(inFlight, s => s.Status == 200)}, 503: {Count(inFlight, s => s.Status == 503)}, cut off: {Count(inFlight, s => s.Failure is LoadFailure.Reset or LoadFailure.Timeout)}; slowest finished {inFlight.Select(s => s.EndMs - signalMs).DefaultIfEmpty().Max():0} ms after the signal");
        output.WriteLine($"sent after SIGTERM: {afterSignal.Count} — 200: {Count(afterSignal, s => s.Status == 200)}, 503: {Count(afterSignal, s => s.Status == 503)}, refused by a closed listener: {Count(afterSignal, s => s.Failure == LoadFailure.Refused)}, cut off: {Count(afterSignal, s => s.Failure is LoadFailure.Reset or LoadFailure.Timeout)}");
        foreach (var s in cutOff)
        {
            output.WriteLine($"  cut off: {s.Route} [{s.StartMs - signalMs:0}, {s.EndMs - signalMs:0}] ms after the signal: {s.Failure} {s.Detail}");
        }

        foreach (var s in samples.Where(s => s.Status == 503).Take(3))
        {
            output.WriteLine($"  a 503 says: {s.Detail}");
        }

        string log = serving.Daemon.Output;
        output.WriteLine(ServingDaemon.Tail(log, 1500));

        Assert.Equal(0, serving.Daemon.ExitCode);
        Assert.True(inFlight.Count >= Clients / 2, $"only {inFlight.Count} requests were in flight at the signal");
        // The requests in flight when the signal came are all answered: none reset, none left hanging.
        Assert.Empty(inFlightCutOff.Select(s => $"{s.Route} [{s.StartMs:0}, {s.EndMs:0}] ms: {s.Failure} {s.Detail}"));
        Assert.Empty(wrongStatus.Select(s => $"{s.Route}: {s.Status} {s.Detail}"));
        Assert.All(inFlight.Where(s => s.Status == 200), s => Assert.NotNull(s.Version));
        Assert.True(inFlight.Count(s => s.Status == 200) > 0, "no request in flight completed");
        Assert.True(samples.Count(s => s.Failure == LoadFailure.Refused) > 0, "the clients never saw the listener close");
        Assert.True(exitMs - signalMs < 30_000, "the stop took longer than the host's shutdown budget");
        Assert.DoesNotContain("crit:", log, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", log, StringComparison.Ordinal);
    }
}
