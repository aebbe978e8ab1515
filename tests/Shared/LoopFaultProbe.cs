using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Messaging.Publishing;

namespace RetrainDaemon.Tests.Shared;

/// <summary>
/// What the loop's fault tests read from outside the daemon: a store filled before the loop starts
/// (so the first firing already sees the whole snapshot), the checkpoints and loss log of a run
/// directory, cron slots and the overlap of ledger runs.
/// </summary>
public static class LoopFaultProbe
{
    /// <summary>
    /// Publishes <paramref name="count"/> real Fashion-MNIST training images through the broker and lets a
    /// daemon with the loop off ingest them into <paramref name="storePath"/>, then stops it (SIGTERM).
    /// </summary>
    public static async Task PrefillAsync(BrokerFixture fixture, string storePath, int offset, int count)
    {
        var images = FashionMnist.Read("train", offset, count);
        var published = await fixture.PublishAsync(images.Select(i => CloudEventEncoder.FashionMnist(i, "train", "fashion-mnist", "png", null)), images.Count);
        if (published.Confirmed != count || published.Failed != 0)
        {
            throw new InvalidOperationException($"published {published.Confirmed} of {count} ({published.Failed} failed)");
        }

        await using var ingest = DaemonProcess.Start(fixture.Broker, storePath);
        await StoreProbe.WaitForSamplesAsync(storePath, count, TimeSpan.FromSeconds(90));
        await ingest.TerminateAsync(TimeSpan.FromSeconds(40));
        if (StoreProbe.Samples(storePath) != count)
        {
            throw new InvalidOperationException($"the store holds {StoreProbe.Samples(storePath)} samples, expected {count}:\n{ingest.Output}");
        }
    }

    /// <summary>The verifying-looking checkpoints of a run directory (a step folder with its manifest), oldest first.</summary>
    public static IReadOnlyList<(long Step, DateTimeOffset CreatedAt)> Checkpoints(string runDirectory)
    {
        string root = Path.Combine(runDirectory, "checkpoints");
        if (!Directory.Exists(root))
        {
            return [];
        }

        var found = new List<(long, DateTimeOffset)>();
        foreach (var dir in Directory.GetDirectories(root))
        {
            string manifest = Path.Combine(dir, "manifest.json");
            if (!long.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out _) || !File.Exists(manifest))
            {
                continue;
            }

            try
            {
                using var json = JsonDocument.Parse(File.ReadAllText(manifest));
                found.Add((json.RootElement.GetProperty("Step").GetInt64(), json.RootElement.GetProperty("CreatedAt").GetDateTimeOffset()));
            }
            catch (IOException)
            {
                // Pruned (keep-last) between the listing and the read.
            }
        }

        return [.. found.OrderBy(c => c.Item1)];
    }

    /// <summary>Optimizer steps the run's last training attempt logged (<c>loss.csv</c>: one row per step of that attempt).</summary>
    public static int LossRows(string runDirectory) =>
        File.ReadAllLines(Path.Combine(runDirectory, "loss.csv")).Skip(1).Count(l => l.Length > 0);

    /// <summary>The first slot of a cron that fires every <paramref name="interval"/> (a divisor of a minute) at or after <paramref name="t"/>.</summary>
    public static DateTimeOffset SlotAtOrAfter(DateTimeOffset t, TimeSpan interval)
    {
        long ticks = t.UtcTicks;
        long rest = ticks % interval.Ticks;
        return new DateTimeOffset(rest == 0 ? ticks : ticks - rest + interval.Ticks, TimeSpan.Zero);
    }

    /// <summary>The most runs that were in progress at one instant (a run still running ends at <paramref name="now"/>).</summary>
    public static int MaxConcurrent(IEnumerable<RunRecord> runs, DateTimeOffset now)
    {
        var edges = runs.SelectMany(r => new[] { (At: r.StartedAt, Delta: 1), (At: r.FinishedAt ?? now, Delta: -1) })
            .OrderBy(e => e.At).ThenBy(e => e.Delta) // an end and a start at the same instant do not overlap
            .ToList();
        int current = 0, max = 0;
        foreach (var (_, delta) in edges)
        {
            current += delta;
            max = Math.Max(max, current);
        }

        return max;
    }

    /// <summary>Polls <paramref name="probe"/> until it returns a value, failing with <paramref name="describe"/> after <paramref name="timeout"/>.</summary>
    public static async Task<T> PollAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, Func<string> describe, TimeSpan? every = null)
        where T : class
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (await probe() is { } value)
            {
                return value;
            }

            await Task.Delay(every ?? TimeSpan.FromMilliseconds(250));
        }

        throw new TimeoutException($"not within {timeout}: {describe()}");
    }
}
