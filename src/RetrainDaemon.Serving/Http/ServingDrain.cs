using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Options;

namespace RetrainDaemon.Serving.Http;

/// <summary>
/// Lame-duck period on shutdown (reliability.md S6). Stopping hooks of lifecycle services run before
/// any hosted service stops, and Kestrel (the web host's hosted service) stops last: for
/// <see cref="ServingOptions.DrainDelay"/> the server keeps answering, every answer carries
/// <c>Connection: close</c> and readiness is 503, so keep-alive clients and load balancers move off
/// before the listener closes. Without it, a request sent on a keep-alive connection in the
/// tens of milliseconds between SIGTERM and Kestrel's stop was cut off (0–18 of ~50 in the drain test).
/// </summary>
internal sealed partial class ServingDrain(IOptions<ServingOptions> options, ILogger<ServingDrain> logger) : IHostedLifecycleService
{
    private volatile bool draining;

    /// <summary>True from the start of shutdown.</summary>
    public bool Draining => draining;

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        draining = true;
        var delay = options.Value.DrainDelay;
        if (delay <= TimeSpan.Zero)
        {
            return;
        }

        LogDraining(delay.TotalMilliseconds);
        try
        {
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The shutdown budget ran out: stop now.
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 730, Level = LogLevel.Information, Message = "draining: answering with Connection: close for {DelayMs} ms before the listener closes")]
    private partial void LogDraining(double delayMs);
}
