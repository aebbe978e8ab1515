using System.Diagnostics;
using RabbitMQ.Client;

namespace RetrainDaemon.Tests.Shared;

/// <summary>
/// A private RabbitMQ node on loopback, started with <c>deploy/rabbitmq/local-broker.sh</c> on free
/// ports in a temp directory. Stop/Start keep its data, so tests can restart the broker mid-stream.
/// </summary>
public sealed class PrivateBroker : IAsyncDisposable
{
    private readonly Dictionary<string, string> environment;

    private PrivateBroker(string directory, int port)
    {
        Directory = directory;
        Port = port;
        environment = new()
        {
            ["RETRAIN_BROKER_DIR"] = directory,
            ["RETRAIN_BROKER_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["RETRAIN_BROKER_DIST_PORT"] = TestPaths.FreeTcpPort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["RETRAIN_BROKER_EPMD_PORT"] = TestPaths.FreeTcpPort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["RETRAIN_BROKER_NODENAME"] = $"retrain-test-{port}@localhost",
        };
    }

    public string Directory { get; }

    public int Port { get; }

    public string Endpoint => $"localhost:{Port}";

    public static async Task<PrivateBroker> StartAsync()
    {
        var broker = CreateStopped();
        await broker.RunScriptAsync("start");
        return broker;
    }

    /// <summary>A node with its ports and directory chosen but not started (for "broker comes up later" tests).</summary>
    public static PrivateBroker CreateStopped() => new(TestPaths.NewTempDirectory("rd-broker"), TestPaths.FreeTcpPort());

    public Task StartAgainAsync() => RunScriptAsync("start");

    public Task StopAsync() => RunScriptAsync("stop");

    public async Task<string> CtlAsync(params string[] args) => await RunScriptAsync(["ctl", .. args]);

    private Task<string> RunScriptAsync(string command) => RunScriptAsync([command]);

    private async Task<string> RunScriptAsync(string[] args)
    {
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(TestPaths.BrokerScript);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"local-broker.sh {string.Join(' ', args)} exited {process.ExitCode}: {await stdout}{await stderr}");
        }

        return await stdout + await stderr;
    }

    public async Task<IConnection> ConnectAsync()
    {
        var factory = new ConnectionFactory { HostName = "localhost", Port = Port, AutomaticRecoveryEnabled = false };
        return await factory.CreateConnectionAsync();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await RunScriptAsync("reset");
        }
        catch (InvalidOperationException)
        {
            // Best effort: a test that failed midway may have left it stopped.
        }
    }
}
