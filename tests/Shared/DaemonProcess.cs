using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace RetrainDaemon.Tests.Shared;

/// <summary>
/// The real daemon (<c>retrain-daemon run</c>) as a child process, configured through <c>--set</c>,
/// with its output captured, its readiness and metrics read over HTTP, and signals sent to it.
/// </summary>
public sealed partial class DaemonProcess : IAsyncDisposable
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };
    private readonly Process process;
    private readonly StringBuilder output = new();

    private DaemonProcess(Process process, int httpPort)
    {
        this.process = process;
        HttpPort = httpPort;
    }

    public int HttpPort { get; }

    public int Pid => process.Id;

    public bool HasExited => process.HasExited;

    public int ExitCode => process.ExitCode;

    public string Output
    {
        get
        {
            lock (output)
            {
                return output.ToString();
            }
        }
    }

    /// <summary>Settings every test daemon gets: its broker, its store, a free HTTP port.</summary>
    public static Dictionary<string, string> Settings(PrivateBroker broker, string storePath, int httpPort) => new()
    {
        ["Broker:Endpoints:0"] = broker.Endpoint,
        ["Broker:NetworkRecoveryInterval"] = "00:00:01",
        ["Broker:Heartbeat"] = "00:00:10",
        ["Store:Path"] = storePath,
        ["Http:Urls"] = $"http://127.0.0.1:{httpPort}",
        // Readiness requires every served model to be ready; these daemons have no champion to serve.
        // Serving tests turn it back on through `extra`.
        ["Serving:Enabled"] = "false",
        // Nor do they fine-tune: the loop's default triggers would train on the data a test publishes.
        // Loop tests turn it back on.
        ["Loop:Enabled"] = "false",
    };

    public static DaemonProcess Start(PrivateBroker broker, string storePath, IDictionary<string, string>? extra = null, string verb = "run")
    {
        int httpPort = TestPaths.FreeTcpPort();
        var settings = Settings(broker, storePath, httpPort);
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        return StartRaw(verb, settings, httpPort);
    }

    public static DaemonProcess StartRaw(string verb, IDictionary<string, string> settings, int httpPort)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        info.ArgumentList.Add(TestPaths.DaemonDll);
        foreach (var word in verb.Split(' '))
        {
            info.ArgumentList.Add(word);
        }

        foreach (var (key, value) in settings)
        {
            info.ArgumentList.Add("--set");
            info.ArgumentList.Add($"{key}={value}");
        }

        info.Environment["DOTNET_gcServer"] = "0";
        var process = new Process { StartInfo = info };
        var daemon = new DaemonProcess(process, httpPort);
        process.OutputDataReceived += (_, e) => daemon.Append(e.Data);
        process.ErrorDataReceived += (_, e) => daemon.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return daemon;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (output)
        {
            output.AppendLine(line);
        }
    }

    public async Task WaitReadyAsync(TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"the daemon exited with {process.ExitCode} before it was ready:\n{Output}");
            }

            try
            {
                using var response = await Http.GetAsync(new Uri($"http://127.0.0.1:{HttpPort}/v2/health/ready"));
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"the daemon was not ready within the timeout:\n{Output}");
    }

    public async Task<string> GetAsync(string path)
    {
        using var response = await Http.GetAsync(new Uri($"http://127.0.0.1:{HttpPort}{path}"));
        return await response.Content.ReadAsStringAsync();
    }

    public async Task<int> GetStatusAsync(string path)
    {
        using var response = await Http.GetAsync(new Uri($"http://127.0.0.1:{HttpPort}{path}"));
        return (int)response.StatusCode;
    }

    /// <summary>Sum of every sample of <paramref name="metric"/> whose labels contain all of <paramref name="labels"/>.</summary>
    public async Task<double> MetricAsync(string metric, params string[] labels)
    {
        string text = await GetAsync("/metrics");
        double sum = 0;
        foreach (Match m in MetricLine().Matches(text))
        {
            if (m.Groups["name"].Value != metric)
            {
                continue;
            }

            string labelText = m.Groups["labels"].Value;
            if (labels.All(l => labelText.Contains(l, StringComparison.Ordinal)))
            {
                sum += double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
            }
        }

        return sum;
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>\S+)$", RegexOptions.Multiline)]
    private static partial Regex MetricLine();

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    public void Signal(int signal)
    {
        if (!process.HasExited && kill(process.Id, signal) != 0)
        {
            throw new InvalidOperationException($"kill({process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public async Task KillAsync()
    {
        Signal(9);
        await process.WaitForExitAsync();
    }

    /// <summary>SIGTERM, then wait for the exit; returns how long the graceful stop took.</summary>
    public async Task<TimeSpan> TerminateAsync(TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        Signal(15);
        using var cts = new CancellationTokenSource(timeout);
        await process.WaitForExitAsync(cts.Token);
        return watch.Elapsed;
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await process.WaitForExitAsync(cts.Token);
        return process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process.Dispose();
    }
}
