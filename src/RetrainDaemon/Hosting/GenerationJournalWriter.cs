using System.Threading.Channels;
using Prometheus;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Observability;
using RetrainDaemon.Data.Store;

namespace RetrainDaemon.Hosting;

/// <summary>
/// The serving API's <see cref="IGenerationJournal"/>: generations go into a bounded buffer and a
/// background loop writes them to the store in batches (<see cref="BatchSize"/> records, or whatever
/// arrived within <see cref="FlushInterval"/>), one transaction each — a request never waits for SQLite.
/// When the buffer is full (the store is down or slower than serving) a generation is dropped and
/// counted in <c>retrain_generation_journal_dropped_total</c>: feedback citing it will then be refused
/// as <c>unknown_generation</c>, which is better than stalling inference. On stop, what is buffered is
/// written within <see cref="ShutdownBudget"/>.
/// </summary>
internal sealed partial class GenerationJournalWriter : BackgroundService, IGenerationJournal
{
    /// <summary>~2.5 s of generations at the fastest serving rate measured here (~6k images/s).</summary>
    public const int DefaultCapacity = 16_384;

    public const int BatchSize = 256;

    public static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(50);

    public static readonly TimeSpan ShutdownBudget = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);

    private const long DropLogIntervalMs = 10_000;

    private static readonly Counter Dropped = Metrics.CreateCounter(
        MetricNames.GenerationJournalDropped,
        "Served generations not recorded (journal buffer full, or the store refused them); feedback citing them is dead-lettered as unknown_generation.",
        new CounterConfiguration { LabelNames = ["model"] });

    private readonly ISampleStore store;
    private readonly ILogger<GenerationJournalWriter> logger;
    private readonly int capacity;
    private readonly Channel<GenerationRecord> buffer;

    // The loop and FlushAsync both write; one at a time, so a flush that returns has seen every earlier batch written.
    private readonly SemaphoreSlim writing = new(1, 1);

    // Taken from the buffer but not yet written (kept across a failed write, so a store outage loses nothing it held).
    private readonly List<GenerationRecord> pending = new(BatchSize);

    private TaskCompletionSource batchReady = NewSignal();
    private long lastDropLog = -DropLogIntervalMs;
    private long droppedSinceLog;

    public GenerationJournalWriter(ISampleStore store, ILogger<GenerationJournalWriter> logger, int capacity = DefaultCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        this.store = store;
        this.logger = logger;
        this.capacity = capacity;
        buffer = Channel.CreateBounded<GenerationRecord>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails instead of silently dropping: we count drops ourselves
            SingleReader = false,
            SingleWriter = false,
        });
    }

    public void Record(GenerationRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (buffer.Writer.TryWrite(record))
        {
            if (buffer.Reader.Count >= BatchSize)
            {
                Volatile.Read(ref batchReady).TrySetResult();
            }

            return;
        }

        Dropped.WithLabels(record.Model).Inc();
        Interlocked.Increment(ref droppedSinceLog);
        long now = Environment.TickCount64;
        long last = Interlocked.Read(ref lastDropLog);
        // One warning per interval, with the count since the last one: a full buffer must not also flood the log.
        if (now - last >= DropLogIntervalMs && Interlocked.CompareExchange(ref lastDropLog, now, last) == last)
        {
            LogDropped(logger, Interlocked.Exchange(ref droppedSinceLog, 0), capacity, record.Model);
        }
    }

    public Task FlushAsync(CancellationToken cancellationToken) =>
        // Bounded by what is queued now, so a steady stream of new generations cannot keep a flush going forever.
        WriteQueuedAsync(buffer.Reader.Count, cancellationToken);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (await buffer.Reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
            {
                var signal = Volatile.Read(ref batchReady);
                if (buffer.Reader.Count < BatchSize)
                {
                    await Task.WhenAny(signal.Task, Task.Delay(FlushInterval, stoppingToken)).ConfigureAwait(false);
                }

                Interlocked.Exchange(ref batchReady, NewSignal());
                try
                {
                    await WriteQueuedAsync(int.MaxValue, stoppingToken).ConfigureAwait(false);
                }
                catch (StoreUnavailableException ex)
                {
                    LogStoreUnavailable(logger, pending.Count + buffer.Reader.Count, RetryDelay.TotalSeconds, ex.Message);
                    await Task.Delay(RetryDelay, stoppingToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // StopAsync writes what is left.
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        budget.CancelAfter(ShutdownBudget);
        try
        {
            await WriteQueuedAsync(int.MaxValue, budget.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or StoreUnavailableException)
        {
            LogLostOnStop(logger, pending.Count + buffer.Reader.Count, ex.Message);
        }
    }

    /// <summary>Writes the pending batch and then up to <paramref name="limit"/> buffered records, <see cref="BatchSize"/> per transaction.</summary>
    private async Task WriteQueuedAsync(int limit, CancellationToken cancellationToken)
    {
        await writing.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            int taken = 0;
            while (true)
            {
                while (pending.Count < BatchSize && taken < limit && buffer.Reader.TryRead(out var record))
                {
                    pending.Add(record);
                    taken++;
                }

                if (pending.Count == 0)
                {
                    return;
                }

                try
                {
                    await store.RecordGenerationsAsync(pending, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not (OperationCanceledException or StoreUnavailableException))
                {
                    // Refused for good (not "not now"): retrying would block every later generation behind these.
                    foreach (var refused in pending)
                    {
                        Dropped.WithLabels(refused.Model).Inc();
                    }

                    LogRefused(logger, pending.Count, ex.Message);
                }

                pending.Clear();
            }
        }
        finally
        {
            writing.Release();
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    public override void Dispose()
    {
        writing.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = 230, Level = LogLevel.Warning, Message = "Generation journal full ({Capacity} buffered): {Count} generations dropped (latest of model {Model}); feedback citing them will be dead-lettered as unknown_generation")]
    private static partial void LogDropped(ILogger logger, long count, int capacity, string model);

    [LoggerMessage(EventId = 231, Level = LogLevel.Warning, Message = "Store unavailable; {Count} served generations wait in the journal, retrying in {DelaySeconds:0.0} s: {Error}")]
    private static partial void LogStoreUnavailable(ILogger logger, int count, double delaySeconds, string error);

    [LoggerMessage(EventId = 232, Level = LogLevel.Error, Message = "The store refused a batch of {Count} served generations; they are dropped: {Error}")]
    private static partial void LogRefused(ILogger logger, int count, string error);

    [LoggerMessage(EventId = 233, Level = LogLevel.Warning, Message = "Stopping: {Count} served generations could not be written ({Error}); feedback citing them will be dead-lettered as unknown_generation")]
    private static partial void LogLostOnStop(ILogger logger, int count, string error);
}

/// <summary>Registration of the journal: one instance serving both roles.</summary>
internal static class GenerationJournalRegistration
{
    /// <summary>The journal as <see cref="IGenerationJournal"/> (for serving and ingestion) and as a hosted service (its writer loop).</summary>
    public static IServiceCollection AddGenerationJournal(this IServiceCollection services)
    {
        services.AddSingleton(sp => new GenerationJournalWriter(sp.GetRequiredService<ISampleStore>(), sp.GetRequiredService<ILogger<GenerationJournalWriter>>()));
        services.AddSingleton<IGenerationJournal>(sp => sp.GetRequiredService<GenerationJournalWriter>());
        services.AddHostedService(sp => sp.GetRequiredService<GenerationJournalWriter>());
        return services;
    }
}
