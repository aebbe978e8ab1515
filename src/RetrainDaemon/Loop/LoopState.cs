using System.Collections.Concurrent;

namespace RetrainDaemon.Loop;

/// <summary>
/// What the watch remembers between its firings (Quartz makes a new job instance each time): when it
/// last asked for a fine-tune of each model, so the cooldown holds even before the run's first ledger row.
/// </summary>
public sealed class LoopState
{
    private readonly ConcurrentDictionary<string, DateTimeOffset> requested = new(StringComparer.Ordinal);

    /// <summary>
    /// One CPU-heavy run (training, scoring) at a time in this process: two models sharing a dataset fire
    /// together, and two trainings on a 2-core box would each take more than twice as long.
    /// </summary>
    public SemaphoreSlim HeavyWork { get; } = new(1, 1);

    public void Requested(string model, DateTimeOffset at) => requested[model] = at;

    public DateTimeOffset? LastRequested(string model) => requested.TryGetValue(model, out var at) ? at : null;
}
