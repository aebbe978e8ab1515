using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Options;

namespace RetrainDaemon.Serving.Http;

/// <summary>
/// Admission for <c>/infer</c>, which runs a request as it comes (no batching): at most
/// <see cref="ServingOptions.QueueCapacity"/> requests per model may be admitted and waiting, beyond
/// that a request is refused at once with 429; admitted requests run at most one per core at a time,
/// waiting asynchronously for a slot (no thread blocked), so a burst cannot starve Kestrel's threads
/// with blocking ONNX Runtime runs. Thread-safe.
/// </summary>
internal sealed class InferenceAdmission(IOptions<ServingOptions> options)
{
    private readonly ConcurrentDictionary<string, StrongBox<int>> admitted = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim running = new(Math.Max(1, Environment.ProcessorCount));

    /// <summary>
    /// Admits a request at once — before its body is read, so that a burst is refused in
    /// microseconds instead of after parsing — or throws 429. Dispose the ticket when the request is over.
    /// </summary>
    /// <exception cref="ServingException">429 when the model already has its capacity of requests admitted.</exception>
    public Ticket Admit(string model)
    {
        var count = admitted.GetOrAdd(model, _ => new StrongBox<int>());
        int capacity = options.Value.QueueCapacity;
        if (Interlocked.Increment(ref count.Value) > capacity)
        {
            Interlocked.Decrement(ref count.Value);
            throw new ServingException(429, FailureReasons.QueueFull,
                string.Create(CultureInfo.InvariantCulture, $"model '{model}' already has {capacity} inference requests waiting; retry later"));
        }

        return new Ticket(this, count);
    }

    /// <summary>An admitted request: it may wait for a run slot; disposing it frees both.</summary>
    internal sealed class Ticket(InferenceAdmission owner, StrongBox<int> count) : IDisposable
    {
        private int released;
        private int running;

        /// <summary>Waits (asynchronously) until fewer runs than cores are in progress.</summary>
        public async Task WaitForRunAsync(CancellationToken cancellationToken)
        {
            await owner.running.WaitAsync(cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref running, 1);
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref released, 1) == 0)
            {
                if (Volatile.Read(ref running) == 1)
                {
                    owner.running.Release();
                }

                Interlocked.Decrement(ref count.Value);
            }
        }
    }
}
