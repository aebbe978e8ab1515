using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Messaging.Broker;

namespace RetrainDaemon.Messaging.Ingestion;

/// <summary>
/// Consumes <c>retrain.samples</c> and <c>retrain.feedback</c>, validates and preprocesses each
/// message, commits valid ones to the store in batches (one transaction, one fsync), and only then
/// acks them. Invalid messages are dead-lettered with their reason; a failing store pauses the
/// consumer with backoff (the deliveries stay unacked, prefetch stops the flow) instead of
/// requeueing. On stop: cancel the subscriptions, commit and ack what is buffered within
/// <see cref="IngestOptions.DrainTimeout"/>, and close the channel, which returns anything left.
/// Feedback the store refuses because it contradicts what it holds (a generation never recorded, or
/// recorded for another model or version) is dead-lettered with the store's reason, alone: the
/// batch's other messages are stored and acked as usual.
/// </summary>
public sealed partial class IngestionConsumer(
    BrokerConnector connector,
    ISampleStore store,
    MessageDecoder decoder,
    IOptions<IngestOptions> ingestOptions,
    IngestMetrics metrics,
    IngestionHealth health,
    ILogger<IngestionConsumer> logger,
    IGenerationJournal? journal = null) : BackgroundService
{
    private readonly IngestOptions options = ingestOptions.Value;

    // Highest delivery tag settled so far; only the settle stage touches it.
    private ulong lastSettledTag;

    /// <summary>A delivery copied out of the client's buffers (they are reused after the handler returns).</summary>
    internal sealed record Delivery(ulong Tag, string Queue, string RoutingKey, bool Redelivered, byte[]? Body, int BodyLength, IReadOnlyBasicProperties Properties);

    internal sealed record Decoded(Delivery Delivery, IngestItem? Item, IngestRejection? Rejection);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await ConsumeAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!(ex is OperationCanceledException && stoppingToken.IsCancellationRequested))
        {
            // The host stops on this (StopHost); a non-zero exit lets systemd's Restart=on-failure act.
            LogFailed(logger, ex);
            Environment.ExitCode = 1;
            throw;
        }
    }

    /// <summary>
    /// Migrates (first use) and reads the counts, waiting with backoff while the store is unavailable: a shared
    /// PostgreSQL that restarts while nodes start must not stop them (nothing is consumed meanwhile, readiness says why).
    /// </summary>
    private async Task OpenStoreAsync(CancellationToken stoppingToken)
    {
        var delay = options.StoreRetryInitial;
        while (true)
        {
            try
            {
                await store.InitializeAsync(stoppingToken).ConfigureAwait(false);
                metrics.Seed(await store.GetStatsAsync(stoppingToken).ConfigureAwait(false));
                if (!health.StoreUp)
                {
                    health.StoreRecovered();
                    LogStoreRecovered(logger);
                }

                return;
            }
            catch (StoreUnavailableException ex)
            {
                health.StoreFailed(ex.Message);
                LogStoreUnavailableAtStart(logger, delay.TotalSeconds, ex.Message);
                await Task.Delay(delay, stoppingToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.StoreRetryMax.Ticks));
            }
        }
    }

    private async Task ConsumeAsync(CancellationToken stoppingToken)
    {
        await OpenStoreAsync(stoppingToken).ConfigureAwait(false);

        await using var connection = await connector.ConnectAsync(stoppingToken).ConfigureAwait(false);
        // Confirms on: a message we dead-letter ourselves is acked only after the broker has the copy.
        await using var channel = await connection.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true, outstandingPublisherConfirmationsRateLimiter: null),
            stoppingToken).ConfigureAwait(false);
        await Topology.DeclareAsync(channel, options, stoppingToken).ConfigureAwait(false);
        await channel.BasicQosAsync(0, (ushort)options.Prefetch, global: false, stoppingToken).ConfigureAwait(false);

        // Never full: the broker sends at most Prefetch unacked deliveries per consumer.
        var inbox = Channel.CreateBounded<Delivery>(new BoundedChannelOptions(options.Prefetch * 2 + 16) { SingleReader = true });
        var tags = new List<string>();
        foreach (var queue in new[] { Topology.SamplesQueue, Topology.FeedbackQueue })
        {
            var consumer = new AsyncEventingBasicConsumer(channel);
            consumer.ReceivedAsync += (_, ea) => Receive(inbox.Writer, queue, ea);
            tags.Add(await channel.BasicConsumeAsync(queue, autoAck: false, consumer, stoppingToken).ConfigureAwait(false));
        }

        health.Consuming = true;
        LogConsuming(logger, options.Prefetch, options.BatchSize);

        // Two stages so that decoding batch n+1 overlaps the commit (fsync) and acks of batch n. All
        // broker calls that settle deliveries happen in the settle stage, in delivery order, which is
        // what makes one multiple-ack per batch correct.
        var decodedBatches = Channel.CreateBounded<Decoded[]>(new BoundedChannelOptions(2) { SingleReader = true, SingleWriter = true });
        using var drainDeadline = new CancellationTokenSource();
        using var onStop = stoppingToken.Register(() => drainDeadline.CancelAfter(options.DrainTimeout));
        var settling = SettleLoopAsync(channel, decodedBatches.Reader, drainDeadline.Token);
        // If the settle stage dies (an unexpected error), stage A must not wait for it forever.
        using var settleFailed = new CancellationTokenSource();
        _ = settling.ContinueWith(
            _ =>
            {
                try
                {
                    settleFailed.Cancel();
                    drainDeadline.Cancel();
                }
                catch (ObjectDisposedException)
                {
                }
            },
            CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, settleFailed.Token);
        int drained = 0;
        try
        {
            while (!reading.IsCancellationRequested)
            {
                var batch = await ReadBatchAsync(inbox.Reader, reading.Token).ConfigureAwait(false);
                // Once read, a batch must reach the settle stage even if we are stopping: a delivery that is
                // skipped would be covered by the next batch's multiple-ack without ever being stored.
                await decodedBatches.Writer.WriteAsync(DecodeAll(batch), drainDeadline.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (reading.IsCancellationRequested || drainDeadline.IsCancellationRequested)
        {
        }
        finally
        {
            health.Consuming = false;
            drained = await CancelAndDrainInboxAsync(channel, tags, inbox.Reader, decodedBatches.Writer, drainDeadline.Token).ConfigureAwait(false);
            decodedBatches.Writer.TryComplete();
            await FinishAsync(channel, settling, drained).ConfigureAwait(false);
        }
    }

    private async Task Receive(ChannelWriter<Delivery> writer, string queue, BasicDeliverEventArgs ea)
    {
        // An oversized body is not copied: it is dead-lettered by the broker (reject), so memory stays bounded.
        byte[]? body = ea.Body.Length > options.MaxMessageBytes ? null : ea.Body.ToArray();
        var delivery = new Delivery(ea.DeliveryTag, queue, ea.RoutingKey, ea.Redelivered, body, ea.Body.Length, ea.BasicProperties);
        await writer.WriteAsync(delivery, ea.CancellationToken).ConfigureAwait(false);
    }

    private async Task<List<Delivery>> ReadBatchAsync(ChannelReader<Delivery> reader, CancellationToken cancellationToken)
    {
        var batch = new List<Delivery>(options.BatchSize);
        var first = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        batch.Add(first);
        long deadline = Stopwatch.GetTimestamp() + (long)(options.BatchDelay.TotalSeconds * Stopwatch.Frequency);
        while (batch.Count < options.BatchSize)
        {
            if (reader.TryRead(out var next))
            {
                batch.Add(next);
                continue;
            }

            var remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (remaining <= TimeSpan.Zero)
            {
                break;
            }

            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            wait.CancelAfter(remaining);
            try
            {
                if (!await reader.WaitToReadAsync(wait.Token).ConfigureAwait(false))
                {
                    break;
                }
            }
            catch (OperationCanceledException)
            {
                break; // the batch delay elapsed, or we are stopping: either way hand over what we hold
            }
        }

        return batch;
    }

    private Decoded Decode(Delivery delivery)
    {
        if (delivery.Body is null)
        {
            return new Decoded(delivery, null, new IngestRejection(RejectReasons.TooLarge,
                $"message of {delivery.BodyLength} bytes exceeds Ingest:MaxMessageBytes ({options.MaxMessageBytes})"));
        }

        try
        {
            return new Decoded(delivery, decoder.Decode(delivery.Body, delivery.Properties.ContentType), null);
        }
        catch (IngestRejection rejection)
        {
            return new Decoded(delivery, null, rejection);
        }
    }

    /// <summary>True when the batch's tags are exactly lastSettled+1, lastSettled+2, … in order.</summary>
    internal static bool IsContiguousFrom(ulong lastSettled, IReadOnlyList<Decoded> batch)
    {
        ulong expected = lastSettled + 1;
        foreach (var d in batch)
        {
            if (d.Delivery.Tag != expected++)
            {
                return false;
            }
        }

        return true;
    }

    private Decoded[] DecodeAll(List<Delivery> batch)
    {
        var decoded = new Decoded[batch.Count];
        if (batch.Count >= 16 && options.DecodeParallelism > 1)
        {
            Parallel.For(0, batch.Count, new ParallelOptions { MaxDegreeOfParallelism = options.DecodeParallelism }, i => decoded[i] = Decode(batch[i]));
        }
        else
        {
            for (int i = 0; i < batch.Count; i++)
            {
                decoded[i] = Decode(batch[i]);
            }
        }

        return decoded;
    }

    private async Task SettleLoopAsync(IChannel channel, ChannelReader<Decoded[]> batches, CancellationToken drainDeadline)
    {
        await foreach (var batch in batches.ReadAllAsync(drainDeadline).ConfigureAwait(false))
        {
            await SettleBatchAsync(channel, batch, drainDeadline).ConfigureAwait(false);
        }
    }

    /// <summary>Dead-letters the rejects, commits the rest in one transaction, then acks them with one multiple-ack.</summary>
    private async Task SettleBatchAsync(IChannel channel, Decoded[] decoded, CancellationToken cancellationToken)
    {
        var valid = new List<Decoded>(decoded.Length);
        var rejected = new List<Decoded>();
        foreach (var d in decoded)
        {
            (d.Item is null ? rejected : valid).Add(d);
        }

        if (rejected.Count > 0)
        {
            await DeadLetterAsync(channel, rejected, cancellationToken).ConfigureAwait(false);
        }

        if (valid.Count == 0)
        {
            lastSettledTag = Math.Max(lastSettledTag, decoded.Max(d => d.Delivery.Tag));
            return;
        }

        var items = valid.Select(d => d.Item!.Value).ToList();
        var outcomes = await CommitWithRetryAsync(items, cancellationToken).ConfigureAwait(false);
        await RetryUnknownGenerationsAsync(items, outcomes, cancellationToken).ConfigureAwait(false);
        var refused = new List<Decoded>();
        for (int i = 0; i < valid.Count; i++)
        {
            var item = valid[i].Item!.Value;
            if (outcomes[i].Error is { } error)
            {
                var rejection = new IngestRejection(RejectReasons.StoreError, $"event {item.EventId}: the store refused it: {error}") { Model = item.Model };
                refused.Add(valid[i] with { Item = null, Rejection = rejection });
                continue;
            }

            if (outcomes[i].Outcome is { IsRejected: true } contradicted)
            {
                var rejection = new IngestRejection(contradicted.RejectReason!, contradicted.RejectDetail ?? $"event {item.EventId}: refused by the store") { Model = item.Model };
                refused.Add(valid[i] with { Item = null, Rejection = rejection });
                continue;
            }

            string type = item.Sample is null ? "feedback" : "sample";
            if (outcomes[i].Outcome.Status == CommitStatus.Stored)
            {
                metrics.Stored(item.Model, type);
                if (item.Sample is { } sample)
                {
                    metrics.SampleAdded(sample.Model, sample.Split);
                }
                else
                {
                    metrics.FeedbackAdded(item.Model);
                    if (outcomes[i].Outcome.AddedCorrectionSample)
                    {
                        metrics.SampleAdded(item.Model, Splits.Train);
                    }
                }
            }
            else
            {
                metrics.Duplicate(item.Model, type);
            }
        }

        if (refused.Count > 0)
        {
            await DeadLetterAsync(channel, refused, cancellationToken).ConfigureAwait(false);
        }

        // Deliveries are settled strictly in order and every lower tag of this batch is already
        // settled (rejects above, earlier batches before), so one multiple-ack covers exactly this batch.
        var toAck = valid.Where(v => !refused.Any(r => r.Delivery.Tag == v.Delivery.Tag)).ToList();
        if (toAck.Count > 0)
        {
            if (IsContiguousFrom(lastSettledTag, decoded))
            {
                await SettleAsync(channel, toAck[^1].Delivery, ack: true, multiple: true).ConfigureAwait(false);
            }
            else
            {
                // A gap (first batch after a connection recovery, say): a multiple-ack could cover a
                // delivery we never saw, so ack one by one.
                foreach (var d in toAck)
                {
                    await SettleAsync(channel, d.Delivery, ack: true, multiple: false).ConfigureAwait(false);
                }
            }
        }

        lastSettledTag = Math.Max(lastSettledTag, decoded.Max(d => d.Delivery.Tag));
    }

    /// <summary>
    /// Feedback refused as citing an unknown generation may only have outrun the generation journal, which
    /// writes served generations in the background every few tens of milliseconds: a client can publish
    /// feedback within that time of its answer. So, when this process has a journal, flush it and commit
    /// those items once more before dead-lettering them. Only the refused items are retried, after the
    /// batch's own transaction, so they cannot hold up or fail the rest.
    /// </summary>
    private async Task RetryUnknownGenerationsAsync(List<IngestItem> items, (CommitOutcome Outcome, string? Error)[] outcomes, CancellationToken cancellationToken)
    {
        if (journal is null)
        {
            return;
        }

        var unknown = Enumerable.Range(0, items.Count)
            .Where(i => outcomes[i].Error is null && outcomes[i].Outcome.RejectReason == RejectReasons.UnknownGeneration)
            .ToList();
        if (unknown.Count == 0)
        {
            return;
        }

        try
        {
            await journal.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The commit below still sees whatever the journal did write; the rest is dead-lettered as unknown.
            LogJournalFlushFailed(logger, unknown.Count, ex.Message);
        }

        var again = await CommitWithRetryAsync(unknown.Select(i => items[i]).ToList(), cancellationToken).ConfigureAwait(false);
        for (int k = 0; k < unknown.Count; k++)
        {
            outcomes[unknown[k]] = again[k];
        }
    }

    /// <summary>
    /// Commits the batch, retrying with capped exponential backoff while the store is unavailable.
    /// A batch the store refuses outright (not a transient error) is retried item by item, so one bad
    /// row is dead-lettered with <see cref="RejectReasons.StoreError"/> instead of crash-looping the
    /// daemon — which, with a large prefetch, would dead-letter innocent messages too.
    /// </summary>
    private async Task<(CommitOutcome Outcome, string? Error)[]> CommitWithRetryAsync(List<IngestItem> items, CancellationToken cancellationToken)
    {
        var delay = options.StoreRetryInitial;
        while (true)
        {
            long start = Stopwatch.GetTimestamp();
            try
            {
                var outcomes = await store.CommitAsync(items, cancellationToken).ConfigureAwait(false);
                metrics.Commit(Stopwatch.GetElapsedTime(start), items.Count);
                if (!health.StoreUp)
                {
                    LogStoreRecovered(logger);
                    health.StoreRecovered();
                }

                return outcomes.Select(o => (o, (string?)null)).ToArray();
            }
            catch (StoreUnavailableException ex)
            {
                health.StoreFailed(ex.Message);
                metrics.StoreRetry();
                LogStoreUnavailable(logger, items.Count, delay.TotalSeconds, ex.Message);
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.StoreRetryMax.Ticks));
            }
            catch (Exception ex) when (ex is not OperationCanceledException && items.Count > 1)
            {
                LogBatchRefused(logger, items.Count, ex.Message);
                var results = new (CommitOutcome, string?)[items.Count];
                for (int i = 0; i < items.Count; i++)
                {
                    results[i] = (await CommitWithRetryAsync([items[i]], cancellationToken).ConfigureAwait(false))[0];
                }

                return results;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                return [(CommitOutcome.Duplicate, ex.Message)];
            }
        }
    }

    /// <summary>
    /// RabbitMQ cannot attach a reason to a reject, so the daemon publishes the message itself to
    /// the dead-letter exchange with the reason in headers, waits for the broker's confirm, then acks
    /// the original. If that publish fails, the original is rejected without requeue and the queue's
    /// own dead-lettering keeps it (with <c>x-death</c>, without our reason).
    /// </summary>
    private async Task DeadLetterAsync(IChannel channel, List<Decoded> rejected, CancellationToken cancellationToken)
    {
        string now = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture);
        var copies = new List<(Decoded Decoded, Task? Confirm)>(rejected.Count);
        foreach (var d in rejected)
        {
            var rejection = d.Rejection!;
            string model = rejection.Model ?? "unknown";
            string type = d.Delivery.Queue == Topology.FeedbackQueue ? "feedback" : "sample";
            metrics.Rejected(model, type, rejection.Reason);
            LogRejected(logger, d.Delivery.Properties.MessageId ?? "(no message id)", d.Delivery.Queue, rejection.Reason, rejection.Message);
            if (d.Delivery.Body is null)
            {
                copies.Add((d, null));
                continue;
            }

            var properties = new BasicProperties(d.Delivery.Properties)
            {
                Persistent = true,
                Headers = new Dictionary<string, object?>(d.Delivery.Properties.Headers ?? new Dictionary<string, object?>())
                {
                    [Topology.RejectReasonHeader] = rejection.Reason,
                    [Topology.RejectDetailHeader] = rejection.Message.Length <= 1024 ? rejection.Message : rejection.Message[..1024],
                    [Topology.OriginalQueueHeader] = d.Delivery.Queue,
                    [Topology.RejectedAtHeader] = now,
                },
            };
            try
            {
                copies.Add((d, channel.BasicPublishAsync(Topology.DeadLetterExchange, d.Delivery.RoutingKey, mandatory: true, properties, d.Delivery.Body, cancellationToken).AsTask()));
            }
            catch (Exception ex) when (ex is AlreadyClosedException or PublishException)
            {
                copies.Add((d, Task.FromException(ex)));
            }
        }

        foreach (var (d, confirm) in copies)
        {
            bool copied = false;
            if (confirm is not null)
            {
                try
                {
                    await confirm.ConfigureAwait(false);
                    copied = true;
                }
                catch (Exception ex) when (ex is AlreadyClosedException or PublishException or OperationInterruptedException)
                {
                    LogDeadLetterCopyFailed(logger, d.Delivery.Tag, ex.Message);
                }
            }

            await SettleAsync(channel, d.Delivery, ack: copied, multiple: false).ConfigureAwait(false);
        }
    }

    /// <summary>Ack, or reject without requeue. A closed channel means the broker will redeliver; the store dedupes.</summary>
    private async Task SettleAsync(IChannel channel, Delivery delivery, bool ack, bool multiple)
    {
        try
        {
            if (ack)
            {
                await channel.BasicAckAsync(delivery.Tag, multiple).ConfigureAwait(false);
            }
            else
            {
                await channel.BasicRejectAsync(delivery.Tag, requeue: false).ConfigureAwait(false);
            }
        }
        catch (AlreadyClosedException ex)
        {
            LogSettleOnClosedChannel(logger, delivery.Tag, ex.Message);
        }
    }

    /// <summary>Stops the subscriptions and hands everything already received to the settle stage.</summary>
    private async Task<int> CancelAndDrainInboxAsync(IChannel channel, List<string> consumerTags, ChannelReader<Delivery> inbox, ChannelWriter<Decoded[]> batches, CancellationToken drainDeadline)
    {
        int drained = 0;
        try
        {
            foreach (var tag in consumerTags)
            {
                if (channel.IsOpen)
                {
                    await channel.BasicCancelAsync(tag, noWait: false, drainDeadline).ConfigureAwait(false);
                }
            }

            var batch = new List<Delivery>(options.BatchSize);
            while (true)
            {
                bool more = inbox.TryRead(out var delivery);
                if (more)
                {
                    batch.Add(delivery!);
                }

                if (batch.Count == options.BatchSize || (!more && batch.Count > 0))
                {
                    await batches.WriteAsync(DecodeAll(batch), drainDeadline).ConfigureAwait(false);
                    drained += batch.Count;
                    batch = new List<Delivery>(options.BatchSize);
                }

                if (!more)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or AlreadyClosedException or OperationInterruptedException or ChannelClosedException)
        {
            LogDrainIncomplete(logger, ex.Message);
        }

        return drained;
    }

    /// <summary>Waits for the settle stage (bounded by the drain deadline), then closes the channel, returning whatever is unacked.</summary>
    private async Task FinishAsync(IChannel channel, Task settling, int drained)
    {
        try
        {
            await settling.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or AlreadyClosedException or OperationInterruptedException)
        {
            // Whatever is still unacked goes back to the queue when the channel closes; the store dedupes redeliveries.
            LogDrainIncomplete(logger, ex.Message);
        }

        try
        {
            if (channel.IsOpen)
            {
                using var closeTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await channel.CloseAsync(closeTimeout.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or AlreadyClosedException or OperationInterruptedException)
        {
            LogDrainIncomplete(logger, ex.Message);
        }

        LogStopped(logger, drained);
    }

    [LoggerMessage(EventId = 208, Level = LogLevel.Error, Message = "The store refused a batch of {Count} ({Error}); committing one by one to isolate the bad message")]
    private static partial void LogBatchRefused(ILogger logger, int count, string error);

    [LoggerMessage(EventId = 210, Level = LogLevel.Warning, Message = "Could not flush the generation journal before re-checking {Count} feedback events that cite unknown generations: {Error}")]
    private static partial void LogJournalFlushFailed(ILogger logger, int count, string error);

    [LoggerMessage(EventId = 209, Level = LogLevel.Critical, Message = "Ingestion failed; the daemon stops")]
    private static partial void LogFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Consuming retrain.samples and retrain.feedback (prefetch {Prefetch}, batch {BatchSize})")]
    private static partial void LogConsuming(ILogger logger, int prefetch, int batchSize);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "Rejected event {EventId} from {Queue}: {Reason}: {Detail}")]
    private static partial void LogRejected(ILogger logger, string eventId, string queue, string reason, string detail);

    [LoggerMessage(EventId = 202, Level = LogLevel.Warning, Message = "Store unavailable; {Count} deliveries stay unacked, retrying in {DelaySeconds:0.00} s: {Error}")]
    private static partial void LogStoreUnavailable(ILogger logger, int count, double delaySeconds, string error);

    [LoggerMessage(EventId = 203, Level = LogLevel.Information, Message = "Store available again; ingestion resumes")]
    private static partial void LogStoreRecovered(ILogger logger);

    [LoggerMessage(EventId = 211, Level = LogLevel.Warning, Message = "Store unavailable at start; not consuming yet, retrying in {DelaySeconds:0.00} s: {Error}")]
    private static partial void LogStoreUnavailableAtStart(ILogger logger, double delaySeconds, string error);

    [LoggerMessage(EventId = 204, Level = LogLevel.Warning, Message = "Could not copy delivery {Tag} to the dead-letter exchange ({Error}); rejecting it so the queue dead-letters it")]
    private static partial void LogDeadLetterCopyFailed(ILogger logger, ulong tag, string error);

    [LoggerMessage(EventId = 205, Level = LogLevel.Debug, Message = "Delivery {Tag} not settled, channel closed ({Error}); the broker redelivers it")]
    private static partial void LogSettleOnClosedChannel(ILogger logger, ulong tag, string error);

    [LoggerMessage(EventId = 206, Level = LogLevel.Warning, Message = "Shutdown drain incomplete ({Error}); unacked deliveries return to the queue")]
    private static partial void LogDrainIncomplete(ILogger logger, string error);

    [LoggerMessage(EventId = 207, Level = LogLevel.Information, Message = "Ingestion stopped; {Drained} buffered deliveries handled during shutdown")]
    private static partial void LogStopped(ILogger logger, int drained);
}
