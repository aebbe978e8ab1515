using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Npgsql;

namespace RetrainDaemon.Tests.Shared;

/// <summary>
/// A private PostgreSQL cluster on loopback: <c>initdb</c> in a temp directory, <c>pg_ctl start</c> on a free
/// port with its socket in that directory, trust authentication for loopback, <c>fsync</c> on (the tests
/// measure durability). Run as the <c>postgres</c> user when the tests run as root (the server refuses root),
/// directly otherwise. Stop/StartAgain keep the data, so tests can take the server away mid-stream.
/// The binaries: <c>RETRAIN_TEST_POSTGRES_BIN</c>, else the newest <c>/usr/lib/postgresql/*/bin</c> (Debian's packages).
/// </summary>
public sealed partial class PrivatePostgres : IAsyncDisposable
{
    public const string BinEnvironmentVariable = "RETRAIN_TEST_POSTGRES_BIN";
    private const string SuperUser = "postgres";

    private readonly string bin;
    private readonly bool asPostgresUser;

    private PrivatePostgres(string bin, string directory, int port, bool asPostgresUser)
    {
        this.bin = bin;
        this.asPostgresUser = asPostgresUser;
        Directory = directory;
        Port = port;
    }

    /// <summary>The temp directory: <c>data/</c>, <c>server.log</c> and the Unix socket.</summary>
    public string Directory { get; }

    public string DataDirectory => Path.Combine(Directory, "data");

    public string LogFile => Path.Combine(Directory, "server.log");

    public int Port { get; }

    /// <summary>A database created for this instance (<c>retrain</c>).</summary>
    public string ConnectionString { get; private set; } = "";

    /// <summary>Initializes and starts a cluster, and creates the database <see cref="ConnectionString"/> names.</summary>
    public static async Task<PrivatePostgres> StartAsync()
    {
        string bin = FindBinaries();
        // Environment.UserName is the effective user's name on Linux.
        bool root = Environment.UserName == "root";
        var server = new PrivatePostgres(bin, TestPaths.NewTempDirectory("rd-postgres"), TestPaths.FreeTcpPort(), root);
        try
        {
            if (root)
            {
                // The server will not run as root: the cluster belongs to the postgres user.
                await RunAsync("chown", [SuperUser, server.Directory], TimeSpan.FromSeconds(10));
            }

            await server.RunToolAsync("initdb", ["-D", server.DataDirectory, "-U", SuperUser, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-instructions"], TimeSpan.FromSeconds(120));
            await server.StartAgainAsync();
            server.ConnectionString = await server.CreateDatabaseAsync("retrain");
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Creates an empty database (a name of lower-case letters, digits and '_') and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string name)
    {
        if (!DatabaseName().IsMatch(name))
        {
            throw new ArgumentException($"database name '{name}': use 1-63 lower-case letters, digits or '_', starting with a letter", nameof(name));
        }

        await using (var connection = new NpgsqlConnection(ConnectionStringFor("postgres") + ";Pooling=false"))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\";", connection);
            await command.ExecuteNonQueryAsync();
        }

        return ConnectionStringFor(name);
    }

    public string ConnectionStringFor(string database) =>
        string.Create(CultureInfo.InvariantCulture, $"Host=127.0.0.1;Port={Port};Username={SuperUser};Database={database}");

    /// <summary>Starts the server (again), on the same port and data.</summary>
    public Task StartAgainAsync() => RunToolAsync("pg_ctl",
    [
        "-D", DataDirectory, "-l", LogFile, "-w", "-t", "90",
        // fsync stays on (the default, said out loud): a commit the store reported is on disk. Commit timestamps let the
        // concurrency tests check that sequence order is commit order.
        "-o", string.Create(CultureInfo.InvariantCulture, $"-p {Port} -k {Directory} -c listen_addresses=127.0.0.1 -c fsync=on -c track_commit_timestamp=on"),
        "start",
    ], TimeSpan.FromSeconds(120));

    /// <summary>Stops the server (fast: sessions are cut, data kept).</summary>
    public Task StopAsync() => RunToolAsync("pg_ctl", ["-D", DataDirectory, "-m", "fast", "-w", "-t", "60", "stop"], TimeSpan.FromSeconds(90));

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
            {
                await RunToolAsync("pg_ctl", ["-D", DataDirectory, "-m", "immediate", "-w", "-t", "60", "stop"], TimeSpan.FromSeconds(90));
            }
        }
        catch (InvalidOperationException)
        {
            // Best effort: a test that failed midway may have left it stopped.
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private Task<string> RunToolAsync(string tool, string[] args, TimeSpan timeout)
    {
        string path = Path.Combine(bin, tool);
        return asPostgresUser ? RunAsync("runuser", ["-u", SuperUser, "--", path, .. args], timeout) : RunAsync(path, args, timeout);
    }

    private static async Task<string> RunAsync(string file, string[] args, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} did not finish within {timeout.TotalSeconds:0} s");
        }

        string output = await stdout + await stderr;
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {process.ExitCode}: {output}{ServerLogTail(args)}");
        }

        return output;
    }

    /// <summary>pg_ctl's own output rarely says why the server did not start; its log does.</summary>
    private static string ServerLogTail(string[] args)
    {
        int i = Array.IndexOf(args, "-l");
        if (i < 0 || i + 1 >= args.Length || !File.Exists(args[i + 1]))
        {
            return "";
        }

        var lines = File.ReadAllLines(args[i + 1]);
        return "\nserver log (tail):\n" + string.Join('\n', lines.Skip(Math.Max(0, lines.Length - 20)));
    }

    private static string FindBinaries()
    {
        if (Environment.GetEnvironmentVariable(BinEnvironmentVariable) is { Length: > 0 } configured)
        {
            return File.Exists(Path.Combine(configured, "pg_ctl"))
                ? configured
                : throw new InvalidOperationException($"{BinEnvironmentVariable}={configured} has no pg_ctl; point it at a PostgreSQL bin directory");
        }

        const string root = "/usr/lib/postgresql";
        var newest = System.IO.Directory.Exists(root)
            ? System.IO.Directory.GetDirectories(root)
                .Select(d => (Dir: d, Version: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v : -1))
                .Where(d => d.Version >= 0 && File.Exists(Path.Combine(d.Dir, "bin", "pg_ctl")))
                .OrderByDescending(d => d.Version)
                .Select(d => Path.Combine(d.Dir, "bin"))
                .FirstOrDefault()
            : null;
        return newest ?? throw new InvalidOperationException(
            $"no PostgreSQL server binaries under {root}/*/bin: install postgresql-15 (deploy/local/setup.sh --tests) or set {BinEnvironmentVariable}");
    }

    [GeneratedRegex("^[a-z][a-z0-9_]{0,62}$")]
    private static partial Regex DatabaseName();
}

/// <summary>Reads a daemon's PostgreSQL store directly, the way <see cref="StoreProbe"/> reads a SQLite file.</summary>
public static class PostgresProbe
{
    /// <summary>One number; 0 while the daemon has not created the table yet.</summary>
    public static long Scalar(string connectionString, string sql)
    {
        // No pool: a probe must not keep sessions open against a server the test stops or a database it drops.
        using var connection = new NpgsqlConnection(connectionString + ";Pooling=false");
        connection.Open();
        using var command = new NpgsqlCommand(sql, connection);
        try
        {
            return Convert.ToInt64(command.ExecuteScalar() ?? 0L, CultureInfo.InvariantCulture);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return 0;
        }
    }

    public static long Samples(string connectionString) => Scalar(connectionString, "SELECT COUNT(*) FROM samples;");

    public static long Watermark(string connectionString) => Scalar(connectionString, "SELECT COALESCE(MAX(seq), 0) FROM samples;");

    public static long Feedback(string connectionString) => Scalar(connectionString, "SELECT COUNT(*) FROM feedback;");

    public static HashSet<string> SampleIds(string connectionString)
    {
        using var connection = new NpgsqlConnection(connectionString + ";Pooling=false");
        connection.Open();
        using var command = new NpgsqlCommand("SELECT event_id FROM samples;", connection);
        using var reader = command.ExecuteReader();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read())
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }
}
