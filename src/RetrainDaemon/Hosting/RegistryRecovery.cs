using RetrainDaemon.Core.Registry;

namespace RetrainDaemon.Hosting;

/// <summary>
/// At start, before anything reads the registry: removes what a crash left behind (temp and trash
/// folders), rewrites a <c>config.pbtxt</c> that lags the champion, and reports every version
/// folder that does not verify (never loadable, whatever it holds).
/// </summary>
internal sealed partial class RegistryRecovery(ModelRegistry registry, ILogger<RegistryRecovery> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(registry.Root);
        foreach (var report in registry.RecoverAll())
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (var leftover in report.RemovedLeftovers)
            {
                LogLeftover(report.Model, leftover);
            }

            foreach (var version in report.Unverified)
            {
                LogUnverified(version.Model, version.Version, version.Problem ?? "unknown");
            }

            if (report.ConfigRewritten)
            {
                LogConfigRewritten(report.Model);
            }
        }

        LogReady(registry.Root, registry.Models().Count);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information, Message = "registry {Root}: {Models} models")]
    private partial void LogReady(string root, int models);

    [LoggerMessage(Level = LogLevel.Warning, Message = "registry {Model}: removed the leftover {Leftover} of an interrupted write")]
    private partial void LogLeftover(string model, string leftover);

    [LoggerMessage(Level = LogLevel.Warning, Message = "registry {Model} v{Version} does not verify and will never be loaded: {Problem}")]
    private partial void LogUnverified(string model, int version, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "registry {Model}: config.pbtxt lagged the champion and was rewritten")]
    private partial void LogConfigRewritten(string model);
}
