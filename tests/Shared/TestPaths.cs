using System.Reflection;

namespace RetrainDaemon.Tests.Shared;

/// <summary>Where the repository, the daemon binary and the broker script are, seen from a test assembly.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string BrokerScript => Path.Combine(RepoRoot, "deploy", "rabbitmq", "local-broker.sh");

    /// <summary>The daemon built in the same configuration as the tests (the solution build builds it first).</summary>
    public static string DaemonDll
    {
        get
        {
            string configuration = typeof(TestPaths).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
            var path = Path.Combine(RepoRoot, "src", "RetrainDaemon", "bin", configuration, "net10.0", "linux-x64", "retrain-daemon.dll");
            return File.Exists(path) ? path : throw new FileNotFoundException($"the daemon is not built at {path}; build the solution first", path);
        }
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "RetrainDaemon.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("RetrainDaemon.sln not found above " + AppContext.BaseDirectory);
    }

    public static string NewTempDirectory(string prefix)
    {
        var path = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        return path;
    }

    public static int FreeTcpPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
