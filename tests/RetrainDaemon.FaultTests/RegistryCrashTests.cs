using System.Diagnostics;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.FaultTests;

/// <summary>
/// The registry under real crashes (reliability.md §4 applied to DESIGN.md §3): a worker process
/// publishing multi-megabyte versions, promoting and rolling back in a loop is SIGKILLed at random
/// moments, at least 50 times; after every kill a fresh registry finds every numbered version folder
/// verifying (never a loadable-but-unverified one), aliases.json whole and pointing at verifying
/// versions, and no number reused. Plus two processes publishing the same model at once.
/// </summary>
public sealed partial class RegistryCrashTests(ITestOutputHelper output) : IDisposable
{
    private const string Model = "fashion-mnist";
    private readonly string directory = TestPaths.NewTempDirectory("rd-registry-crash");

    private string Root => Path.Combine(directory, "repo");

    private string ModelFolder => Path.Combine(Root, Model);

    public void Dispose()
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task SigkillWhilePublishing_FiftyPlusTimes_EveryNumberedVersionVerifies_AliasesNeverTorn()
    {
        const int targetKills = 60, requiredKills = 50;
        var budget = TimeSpan.FromSeconds(50);
        int seed = Environment.TickCount;
        var random = new Random(seed);
        var watch = Stopwatch.StartNew();
        var manifests = new Dictionary<int, string>(); // version → manifest sha256: a reused number would differ
        int kills = 0, leftovers = 0, staleConfigs = 0, versionsChecked = 0, aliasesChecked = 0, changesSeen = 0;
        var problems = new List<string>();

        while (kills < targetKills && watch.Elapsed < budget)
        {
            using var worker = Worker.Start(directory, Root, $"--seed {seed + kills} --payload-bytes {3 << 20} --keep 3");
            await worker.WaitForLineAsync("ready", TimeSpan.FromSeconds(30));
            // Random instants across the first few publishes: most land inside a copy, an fsync, a
            // rename, an alias replace or a retention delete, since that is all the worker does.
            await Task.Delay(random.Next(5, 300));
            Assert.False(worker.HasExited, $"the worker exited on its own (code {worker.ExitCodeOrNull}) before kill {kills}:\n{worker.Output}");
            worker.Kill();
            kills++;
            changesSeen += worker.Lines.Count(l => l.StartsWith("published", StringComparison.Ordinal) || l.StartsWith("promoted", StringComparison.Ordinal) || l.StartsWith("rolled-back", StringComparison.Ordinal));

            // What a fresh process (the daemon starting up, a loader) finds, before any recovery.
            if (Directory.Exists(ModelFolder))
            {
                leftovers += Directory.GetFileSystemEntries(ModelFolder, ".tmp-*").Length + Directory.GetFileSystemEntries(ModelFolder, ".trash-*").Length;
            }

            var registry = new ModelRegistry(Root, keepLast: 3);
            var check = Check(registry, manifests, $"kill {kills}");
            problems.AddRange(check.Problems);
            versionsChecked += check.Versions;
            aliasesChecked += check.Aliases;
            staleConfigs += check.StaleConfig ? 1 : 0;

            if (Directory.Exists(ModelFolder))
            {
                var report = registry.Recover(Model);
                Assert.Empty(Directory.GetFileSystemEntries(ModelFolder, ".tmp-*"));
                Assert.Empty(Directory.GetFileSystemEntries(ModelFolder, ".trash-*"));
                Assert.Empty(report.Unverified);
                if (registry.ReadAliases(Model)?.Champion is int champion)
                {
                    Assert.Contains($"versions: [ {champion} ]", File.ReadAllText(Path.Combine(ModelFolder, "config.pbtxt")), StringComparison.Ordinal);
                }
            }
        }

        var final = new ModelRegistry(Root, keepLast: 3).List(Model);
        output.WriteLine($"seed {seed}: {kills} SIGKILLs mid-run in {watch.Elapsed.TotalSeconds:0.0} s; {changesSeen} registry changes reported before the kills; " +
            $"highest version {final.Versions.Max(v => v.Version)}; {versionsChecked} version folders and {aliasesChecked} aliases verified after kills; " +
            $"torn or unverified versions: {problems.Count}; leftovers of interrupted writes found (and removed by recovery): {leftovers}; " +
            $"config.pbtxt behind the aliases after a kill (rewritten by recovery): {staleConfigs}; distinct manifests seen: {manifests.Count}, reused numbers: 0");
        Assert.Empty(problems);
        Assert.True(kills >= requiredKills, $"only {kills} kills in {budget.TotalSeconds} s");
        Assert.True(leftovers > 0, "no kill landed inside a write (no .tmp-/.trash- leftovers ever found); the test is not exercising crashes mid-write");
        Assert.True(final.Versions.Max(v => v.Version) > kills, "the workers should make progress between kills");
    }

    [Fact]
    public async Task TwoProcesses_PublishingTheSameModel_GetDistinctNumbers_AndAllVerify()
    {
        const int each = 25;
        string go = Path.Combine(directory, "go");
        using var a = Worker.Start(directory, Root, $"--count {each} --mode champion --payload-bytes {1 << 20} --keep 100 --seed 1 --go {go} --pause-ms 10");
        using var b = Worker.Start(directory, Root, $"--count {each} --mode champion --payload-bytes {1 << 20} --keep 100 --seed 2 --go {go} --pause-ms 10");
        await a.WaitForLineAsync("ready", TimeSpan.FromSeconds(30));
        await b.WaitForLineAsync("ready", TimeSpan.FromSeconds(30));
        await File.WriteAllTextAsync(go, "go"); // both start publishing now
        Assert.Equal(0, await a.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(0, await b.WaitForExitAsync(TimeSpan.FromSeconds(60)));

        var numbers = a.Published().Concat(b.Published()).ToList();
        output.WriteLine($"process A got {string.Join(",", a.Published())}; process B got {string.Join(",", b.Published())}");
        Assert.Equal(2 * each, numbers.Count);
        Assert.Equal(Enumerable.Range(1, 2 * each), numbers.Order());
        var registry = new ModelRegistry(Root, keepLast: 100);
        var check = Check(registry, [], "after both");
        Assert.Empty(check.Problems);
        Assert.Equal(2 * each, check.Versions);
        var aliases = registry.ReadAliases(Model)!;
        Assert.Equal(2 * each, aliases.History.Count);
        Assert.Contains(aliases.Champion!.Value, numbers);
        // Interleaved, not one after the other: each process got numbers inside the other's range.
        Assert.True(a.Published().Max() > b.Published().Min() && b.Published().Max() > a.Published().Min(), "the two workers did not overlap");
    }

    private sealed record CheckResult(List<string> Problems, int Versions, int Aliases, bool StaleConfig);

    /// <summary>Everything a loader could look at, checked the way it would look.</summary>
    private static CheckResult Check(ModelRegistry registry, Dictionary<int, string> manifests, string when)
    {
        var problems = new List<string>();
        int versions = 0, aliasCount = 0;
        bool staleConfig = false;
        string modelFolder = Path.Combine(registry.Root, Model);
        if (!Directory.Exists(modelFolder))
        {
            return new CheckResult(problems, 0, 0, false);
        }

        // Every name Triton or our loader would take for a version: a positive integer without leading zeros.
        foreach (var folder in Directory.GetDirectories(modelFolder))
        {
            if (!RegistryLayout.TryParseVersion(Path.GetFileName(folder), out int version))
            {
                continue;
            }

            versions++;
            var info = registry.Inspect(Model, version);
            bool loadable = registry.TryVerify(Model, version, out var verified, out var problem);
            if (info is null || info.Verified != loadable || info.Servable != loadable)
            {
                problems.Add($"{when}: v{version}: Inspect and Verify disagree ({info?.Verified}, {loadable}: {problem})");
            }

            if (!loadable)
            {
                // Reported unverified, so never loaded — but SIGKILL alone must not produce such a folder.
                problems.Add($"{when}: v{version} does not verify: {problem}");
                continue;
            }

            if (manifests.TryGetValue(version, out var sha) && sha != verified!.ManifestSha256)
            {
                problems.Add($"{when}: v{version} was reused (manifest changed)");
            }

            manifests[version] = verified!.ManifestSha256;
        }

        string rejectedFolder = Path.Combine(modelFolder, RegistryLayout.RejectedFolder);
        foreach (var folder in Directory.Exists(rejectedFolder) ? Directory.GetDirectories(rejectedFolder) : [])
        {
            if (RegistryLayout.TryParseVersion(Path.GetFileName(folder), out int version))
            {
                var info = registry.Inspect(Model, version);
                if (info is not { Verified: true, Servable: false })
                {
                    problems.Add($"{when}: rejected v{version}: {info?.Problem ?? "missing"}");
                }
            }
        }

        // aliases.json: whole, and every alias verifying.
        ModelAliases? aliases;
        try
        {
            aliases = registry.ReadAliases(Model);
        }
        catch (RegistryException ex)
        {
            problems.Add($"{when}: torn aliases: {ex.Message}");
            return new CheckResult(problems, versions, 0, false);
        }

        foreach (var alias in new[] { AliasNames.Champion, AliasNames.Previous, AliasNames.Challenger })
        {
            if (aliases?.Get(alias) is null)
            {
                continue;
            }

            aliasCount++;
            var resolution = registry.Resolve(Model, alias);
            if (!resolution.IsServable)
            {
                problems.Add($"{when}: {alias} does not resolve: {resolution.Problem}");
            }
        }

        if (aliases?.Champion is int champion)
        {
            string config = Path.Combine(modelFolder, RegistryLayout.ConfigName);
            staleConfig = !File.Exists(config) || !File.ReadAllText(config).Contains($"versions: [ {champion} ]", StringComparison.Ordinal);
        }

        return new CheckResult(problems, versions, aliasCount, staleConfig);
    }

    /// <summary>The RegistryWorker as a child process, with its output captured line by line.</summary>
    private sealed partial class Worker : IDisposable
    {
        private readonly Process process;
        private readonly List<string> lines = [];
        private readonly StringBuilder all = new();

        private Worker(Process process) => this.process = process;

        public static Worker Start(string scratch, string root, string arguments)
        {
            var info = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                WorkingDirectory = scratch,
            };
            info.ArgumentList.Add(WorkerDll);
            foreach (var word in $"--root {root} --scratch {scratch} {arguments}".Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                info.ArgumentList.Add(word);
            }

            info.Environment["DOTNET_gcServer"] = "0";
            info.Environment["DOTNET_TieredPGO"] = "0";
            var process = new Process { StartInfo = info };
            var worker = new Worker(process);
            process.OutputDataReceived += (_, e) => worker.Append(e.Data, stdout: true);
            process.ErrorDataReceived += (_, e) => worker.Append(e.Data, stdout: false);
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return worker;
        }

        private static string WorkerDll
        {
            get
            {
                string configuration = typeof(RegistryCrashTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
                string path = Path.Combine(TestPaths.RepoRoot, "tests", "RetrainDaemon.RegistryWorker", "bin", configuration, "net10.0", "linux-x64", "RetrainDaemon.RegistryWorker.dll");
                return File.Exists(path) ? path : throw new FileNotFoundException($"the registry worker is not built at {path}; build the fault tests first", path);
            }
        }

        public bool HasExited => process.HasExited;

        public int? ExitCodeOrNull => process.HasExited ? process.ExitCode : null;

        public IReadOnlyList<string> Lines
        {
            get
            {
                lock (all)
                {
                    return lines.ToList();
                }
            }
        }

        public string Output
        {
            get
            {
                lock (all)
                {
                    return all.ToString();
                }
            }
        }

        public IEnumerable<int> Published() =>
            Lines.Select(l => PublishedLine().Match(l)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));

        [GeneratedRegex(@"^published (\d+) ")]
        private static partial Regex PublishedLine();

        private void Append(string? line, bool stdout)
        {
            if (line is null)
            {
                return;
            }

            lock (all)
            {
                if (stdout)
                {
                    lines.Add(line);
                }

                all.AppendLine(line);
            }
        }

        public async Task WaitForLineAsync(string line, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (!Lines.Contains(line))
            {
                if (process.HasExited || DateTime.UtcNow > deadline)
                {
                    throw new InvalidOperationException($"the worker did not print '{line}' (exited: {process.HasExited}):\n{Output}");
                }

                await Task.Delay(5);
            }
        }

        /// <summary>SIGKILL (Process.Kill on Linux): no finally block, no flush, no lock release but the kernel's.</summary>
        public void Kill()
        {
            process.Kill();
            process.WaitForExit();
        }

        public async Task<int> WaitForExitAsync(TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            await process.WaitForExitAsync(cts.Token);
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"the worker exited with {process.ExitCode}:\n{Output}");
            }

            return process.ExitCode;
        }

        public void Dispose()
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
            }

            process.Dispose();
        }
    }
}
