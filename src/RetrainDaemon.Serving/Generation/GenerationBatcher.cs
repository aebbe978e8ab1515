using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Serving.Http;
using RetrainDaemon.Serving.Observability;

namespace RetrainDaemon.Serving.Generation;

/// <summary>One generate request as the batcher sees it (already validated for count, truncation and seed).</summary>
internal sealed record GenerationRequest(string Model, int Count, int? Class, long Seed, double? Truncation);

/// <summary>
/// A request's share of a batch: the version that produced it, the batch's whole output (the
/// request's samples are <c>[Offset, Offset + Count)</c>), the labels its samples were generated
/// with, how long it waited, and how many samples the run generated in all.
/// </summary>
internal sealed record GenerationResult(GeneratorSpec Spec, GeneratorOutput Output, int Offset, int Count, long[]? Labels, TimeSpan Queued, int BatchSamples);

/// <summary>
/// Dynamic batching for image generation (Triton's dynamic batcher, per model): concurrent requests
/// for one model wait in a bounded queue (<see cref="ServingOptions.QueueCapacity"/> requests; a
/// request that finds it full is refused at once with 429) and are merged, whole and in arrival
/// order, into runs of at most <see cref="ServingOptions.MaxBatchSize"/> samples, the first waiting
/// at most <see cref="ServingOptions.MaxQueueDelay"/> for company. A request larger than the batch
/// size runs alone. With <see cref="ServingOptions.Batching"/> off every request runs alone.
/// </summary>
/// <remarks>
/// One worker per model runs one batch at a time: on a 2-core node ONNX Runtime's intra-op threads
/// already use the cores, and a second concurrent run would only interleave with the first.
/// A batch leases the version that is current when it starts and holds it until the run ends, so
/// every request in it is answered by that version even if a swap happens meanwhile.
/// A request whose token is cancelled (client gone, request timeout) leaves its batch; the run is
/// terminated (<c>RunOptions.Terminate</c>) only when every request in the batch has gone.
/// Thread-safe. Disposing stops the workers and answers every queued request with 503.
/// </remarks>
internal sealed partial class GenerationBatcher : IAsyncDisposable, IDisposable
{
    private readonly IGeneratorBackend backend;
    private readonly ServingOptions options;
    private readonly ServingMetrics metrics;
    private readonly ILogger logger;
    private readonly ConcurrentDictionary<string, Lazy<ModelQueue>> queues = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource stopping = new();
    private int disposed;

    public GenerationBatcher(IGeneratorBackend backend, IOptions<ServingOptions> options, ServingMetrics metrics, ILogger<GenerationBatcher> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.backend = backend;
        this.options = options.Value;
        this.metrics = metrics;
        this.logger = logger;
    }

    /// <summary>
    /// Queues <paramref name="request"/> and waits for its share of a batch. Throws
    /// <see cref="ServingException"/> at once when the model's queue is full (429) or the batcher is
    /// stopping (503), later for failures of the batch (unknown model 404, not ready 503, a class
    /// the serving version cannot take 400, a failed run 500); <see cref="OperationCanceledException"/>
    /// when <paramref name="cancellationToken"/> is cancelled first.
    /// </summary>
    public Task<GenerationResult> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (Volatile.Read(ref disposed) != 0)
        {
            throw Stopping();
        }

        var queue = queues.GetOrAdd(request.Model, model => new Lazy<ModelQueue>(() => StartQueue(model))).Value;
        var pending = new Pending(request, cancellationToken, Stopwatch.GetTimestamp());
        if (!queue.Channel.Writer.TryWrite(pending))
        {
            if (Volatile.Read(ref disposed) != 0)
            {
                throw Stopping();
            }

            throw new ServingException(429, FailureReasons.QueueFull,
                string.Create(CultureInfo.InvariantCulture, $"the generation queue of model '{request.Model}' is full ({options.QueueCapacity} requests waiting); retry later"));
        }

        return pending.Completion.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Requests waiting for a batch of <paramref name="model"/> (not those already running).</summary>
    public int Waiting(string model) =>
        queues.TryGetValue(model, out var queue) && queue.IsValueCreated ? queue.Value.Channel.Reader.Count : 0;

    /// <summary>Why the serving version cannot take <paramref name="request"/>, or null when it can.</summary>
    internal static string? Validate(GeneratorSpec spec, GenerationRequest request)
    {
        string name = string.Create(CultureInfo.InvariantCulture, $"model '{spec.Model}' v{spec.Version}");
        if (request.Class is int c)
        {
            if (!spec.Conditional)
            {
                return $"{name} is not class-conditioned (it has no '{OnnxGeneratorBackend.LabelInput}' input); leave out 'class'";
            }

            if (c < 0 || (spec.Classes is int n && c >= n))
            {
                return spec.Classes is int classes
                    ? string.Create(CultureInfo.InvariantCulture, $"class {c} is out of range for {name}: expected 0..{classes - 1}")
                    : string.Create(CultureInfo.InvariantCulture, $"class {c} is out of range for {name}: expected a non-negative class");
            }
        }
        else if (spec.Conditional && spec.Classes is null)
        {
            return $"{name} is class-conditioned and its manifest records no class count to draw from: give 'class'";
        }

        return null;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        foreach (var queue in queues.Values.Where(q => q.IsValueCreated).Select(q => q.Value))
        {
            queue.Channel.Writer.TryComplete();
        }

        await stopping.CancelAsync().ConfigureAwait(false);
        foreach (var queue in queues.Values.Where(q => q.IsValueCreated).Select(q => q.Value))
        {
            await queue.Worker.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        stopping.Dispose();
    }

    /// <summary>For containers disposed synchronously (a host built without <c>await using</c>).</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private static ServingException Stopping() => new(503, FailureReasons.NotReady, "the server is shutting down");

    private ModelQueue StartQueue(string model)
    {
        var channel = Channel.CreateBounded<Pending>(new BoundedChannelOptions(options.QueueCapacity)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite returns false when full: the caller answers 429.
        });
        var queue = new ModelQueue(model, channel);
        queue.Worker = Task.Run(() => PumpAsync(queue));
        return queue;
    }

    private async Task PumpAsync(ModelQueue queue)
    {
        var reader = queue.Channel.Reader;
        var batch = new List<Pending>();
        long delayTicks = (long)(options.MaxQueueDelay.TotalSeconds * Stopwatch.Frequency);
        try
        {
            while (await reader.WaitToReadAsync(stopping.Token).ConfigureAwait(false))
            {
                batch.Clear();
                if (!reader.TryRead(out var first) || first.Abandoned)
                {
                    continue;
                }

                batch.Add(first);
                int samples = first.Request.Count;
                long deadline = Stopwatch.GetTimestamp() + delayTicks;
                while (options.Batching && samples < options.MaxBatchSize)
                {
                    if (reader.TryPeek(out var next))
                    {
                        if (next.Abandoned)
                        {
                            reader.TryRead(out _);
                            continue;
                        }

                        if (samples + next.Request.Count > options.MaxBatchSize)
                        {
                            break; // it starts the next batch: requests are never split, never overtaken
                        }

                        reader.TryRead(out _);
                        batch.Add(next);
                        samples += next.Request.Count;
                        continue;
                    }

                    long remaining = deadline - Stopwatch.GetTimestamp();
                    if (remaining <= 0 || !await WaitForMoreAsync(reader, Stopwatch.GetElapsedTime(0, remaining)).ConfigureAwait(false))
                    {
                        break;
                    }
                }

                Execute(queue.Model, batch);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Disposal: the queued requests are answered below.
        }
        catch (Exception ex)
        {
            // A bug here must not leave requests hanging: answer them and say so in the log.
            LogWorkerFailed(logger, ex, queue.Model);
            foreach (var pending in batch)
            {
                pending.Fail(new ServingException("the generation worker failed", ex));
            }
        }
        finally
        {
            while (reader.TryRead(out var left))
            {
                left.Fail(Stopping());
            }
        }
    }

    private async Task<bool> WaitForMoreAsync(ChannelReader<Pending> reader, TimeSpan wait)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
        timeout.CancelAfter(wait);
        // No exception for the common outcome (the delay expired): await without throwing, then look.
        Task waiting = reader.WaitToReadAsync(timeout.Token).AsTask();
        await waiting.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        stopping.Token.ThrowIfCancellationRequested();
        return waiting.IsCompletedSuccessfully && ((Task<bool>)waiting).Result;
    }

    private void Execute(string model, List<Pending> batch)
    {
        if (!backend.TryLease(model, out var lease, out var failure))
        {
            foreach (var pending in batch)
            {
                pending.Fail(failure);
            }

            return;
        }

        using (lease)
        {
            var spec = lease.Spec;
            var runnable = new List<Pending>(batch.Count);
            foreach (var pending in batch)
            {
                if (pending.Abandoned)
                {
                    continue;
                }

                if (Validate(spec, pending.Request) is { } problem)
                {
                    pending.Fail(ServingException.BadRequest(problem, spec.Version));
                    continue;
                }

                runnable.Add(pending);
            }

            if (runnable.Count > 0)
            {
                Run(lease, runnable);
            }
        }
    }

    private void Run(IGeneratorLease lease, List<Pending> batch)
    {
        var spec = lease.Spec;
        int total = batch.Sum(p => p.Request.Count);
        var latents = new float[total * spec.LatentSize];
        var labels = spec.Conditional ? new long[total] : null;
        var offsets = new int[batch.Count];
        int offset = 0;
        long started = Stopwatch.GetTimestamp();
        for (int i = 0; i < batch.Count; i++)
        {
            var r = batch[i].Request;
            offsets[i] = offset;
            LatentSampler.Sample(r.Seed, r.Count, spec.LatentSize, r.Truncation, r.Class, spec.Classes,
                latents.AsSpan(offset * spec.LatentSize, r.Count * spec.LatentSize), labels is null ? default : labels.AsSpan(offset, r.Count));
            offset += r.Count;
            metrics.QueueSeconds.WithLabels(spec.Model).Observe(Stopwatch.GetElapsedTime(batch[i].Enqueued, started).TotalSeconds);
        }

        // The run is terminated only when every request of the batch has gone (or the batcher stops).
        using var abandon = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
        int live = batch.Count;
        var registrations = new CancellationTokenRegistration[batch.Count];
        try
        {
            for (int i = 0; i < batch.Count; i++)
            {
                registrations[i] = batch[i].Token.UnsafeRegister(_ =>
                {
                    if (Interlocked.Decrement(ref live) == 0)
                    {
                        abandon.Cancel();
                    }
                }, null);
            }

            string version = spec.Version.ToString(CultureInfo.InvariantCulture);
            long runStart = Stopwatch.GetTimestamp();
            var output = lease.Run(latents, labels, total, abandon.Token);
            metrics.ComputeSeconds.WithLabels(spec.Model, version).Observe(Stopwatch.GetElapsedTime(runStart).TotalSeconds);
            metrics.BatchSize.WithLabels(spec.Model).Observe(total);
            for (int i = 0; i < batch.Count; i++)
            {
                var r = batch[i].Request;
                batch[i].Complete(new GenerationResult(spec, output, offsets[i], r.Count, labels?[offsets[i]..(offsets[i] + r.Count)],
                    Stopwatch.GetElapsedTime(batch[i].Enqueued, started), total));
            }
        }
        catch (OperationCanceledException)
        {
            foreach (var pending in batch)
            {
                if (stopping.IsCancellationRequested)
                {
                    pending.Fail(Stopping());
                }
                else
                {
                    pending.Cancel();
                }
            }
        }
        catch (ServingException ex)
        {
            foreach (var pending in batch)
            {
                pending.Fail(ex);
            }
        }
        catch (OnnxRuntimeException ex)
        {
            LogRunFailed(logger, ex, spec.Model, spec.Version, total);
            var failure = new ServingException(500, FailureReasons.Internal,
                string.Create(CultureInfo.InvariantCulture, $"model '{spec.Model}' v{spec.Version} failed to generate: {ex.Message}"), spec.Version);
            foreach (var pending in batch)
            {
                pending.Fail(failure);
            }
        }
        finally
        {
            foreach (var registration in registrations)
            {
                registration.Dispose();
            }
        }
    }

    [LoggerMessage(EventId = 720, Level = LogLevel.Error, Message = "Generation run of {Model} v{Version} ({Samples} samples) failed")]
    private static partial void LogRunFailed(ILogger logger, Exception exception, string model, int version, int samples);

    [LoggerMessage(EventId = 721, Level = LogLevel.Critical, Message = "The generation worker of {Model} failed; its queued requests were answered with 500")]
    private static partial void LogWorkerFailed(ILogger logger, Exception exception, string model);

    private sealed class ModelQueue(string model, Channel<Pending> channel)
    {
        public string Model => model;

        public Channel<Pending> Channel => channel;

        public Task Worker { get; set; } = Task.CompletedTask;
    }

    private sealed class Pending(GenerationRequest request, CancellationToken token, long enqueued)
    {
        public GenerationRequest Request => request;

        public CancellationToken Token => token;

        public long Enqueued => enqueued;

        // Continuations run elsewhere: the worker must not run request code (PNG encoding) inline.
        public TaskCompletionSource<GenerationResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The request's own caller has gone (timeout, client abort): nothing to compute for it.</summary>
        public bool Abandoned => token.IsCancellationRequested || Completion.Task.IsCompleted;

        public void Complete(GenerationResult result) => Completion.TrySetResult(result);

        public void Fail(Exception exception) => Completion.TrySetException(exception);

        public void Cancel() => Completion.TrySetCanceled(token.IsCancellationRequested ? token : CancellationToken.None);
    }
}
