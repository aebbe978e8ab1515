using System.Collections.Concurrent;

namespace RetrainDaemon.Core.Contracts;

/// <summary>Requests one model version answered, and how many of them failed on the server's side.</summary>
public readonly record struct ServingOutcomeCounts(long Requests, long Failed);

/// <summary>
/// Per model version request outcomes, counted by the serving HTTP layer and read by the automatic
/// rollback watch. In Core so the loop can read what Serving counts without referencing it.
/// A failure is the server's (internal error, timeout); a client's mistake or an overload refusal is not
/// the model's fault and would roll back a good version.
/// </summary>
public sealed class ServingOutcomes
{
    private readonly ConcurrentDictionary<(string Model, int Version), Counter> counts = new();

    public void Record(string model, int version, bool failed)
    {
        var counter = counts.GetOrAdd((model, version), static _ => new Counter());
        Interlocked.Increment(ref counter.Requests);
        if (failed)
        {
            Interlocked.Increment(ref counter.Failed);
        }
    }

    public ServingOutcomeCounts Count(string model, int version) =>
        counts.TryGetValue((model, version), out var c) ? new(Interlocked.Read(ref c.Requests), Interlocked.Read(ref c.Failed)) : default;

    private sealed class Counter
    {
        public long Requests;
        public long Failed;
    }
}
