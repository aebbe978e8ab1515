using System.Diagnostics;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Messaging.Broker;

namespace RetrainDaemon.Messaging.Publishing;

/// <summary>Progress of a publish run.</summary>
public readonly record struct PublishProgress(long Attempted, long Confirmed, long Failed, long Total, TimeSpan Elapsed);

/// <summary>How a publish run ended. <see cref="FailedIds"/> holds the first few losses.</summary>
public sealed record PublishSummary(long Confirmed, long Failed, long Retried, IReadOnlyList<string> FailedIds, TimeSpan Elapsed)
{
    public double MessagesPerSecond => Elapsed.TotalSeconds > 0 ? Confirmed / Elapsed.TotalSeconds : 0;
}

/// <summary>
/// Publishes persistent, mandatory messages to <c>retrain.ingest</c> with publisher confirms,
/// pipelined: up to <c>window</c> publishes await their confirm at once (awaiting each in turn
/// gives ~1k msg/s, pipelining tens of thousands — PLATFORM.md). A message counts as confirmed only
/// when the broker acked it into a queue; returns (unroutable) fail at once, nacks and publishes
/// during a connection outage are retried after recovery, up to <c>maxAttempts</c>.
/// </summary>
public sealed partial class ConfirmedPublisher : IAsyncDisposable
{
    private readonly IConnection connection;
    private readonly IChannel channel;
    private readonly ILogger logger;
    private readonly int window;
    private readonly int maxAttempts;

    private ConfirmedPublisher(IConnection connection, IChannel channel, ILogger logger, int window, int maxAttempts)
    {
        this.connection = connection;
        this.channel = channel;
        this.logger = logger;
        this.window = window;
        this.maxAttempts = maxAttempts;
    }

    public static async Task<ConfirmedPublisher> ConnectAsync(BrokerConnector connector, IngestOptions ingest, ILogger logger, int window = 1000, int maxAttempts = 20, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        var connection = await connector.ConnectAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var channel = await connection.CreateChannelAsync(
                new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true, outstandingPublisherConfirmationsRateLimiter: null),
                cancellationToken).ConfigureAwait(false);
            // Declaring here too means samples published before the daemon ever ran are queued, not dropped.
            await Topology.DeclareAsync(channel, ingest, cancellationToken).ConfigureAwait(false);
            return new ConfirmedPublisher(connection, channel, logger, window, maxAttempts);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async Task<PublishSummary> PublishAsync(IEnumerable<OutgoingMessage> messages, long total, IProgress<PublishProgress>? progress, CancellationToken cancellationToken)
    {
        var started = Stopwatch.StartNew();
        using var slots = new SemaphoreSlim(window, window);
        var inFlight = new List<Task>();
        long attempted = 0, confirmed = 0, failed = 0, retried = 0;
        var failedIds = new List<string>();
        var lastReport = TimeSpan.Zero;

        async Task PublishOneAsync(OutgoingMessage message)
        {
            try
            {
                for (int attempt = 1; ; attempt++)
                {
                    try
                    {
                        var properties = new BasicProperties
                        {
                            Persistent = true,
                            ContentType = EventTypes.StructuredJsonContentType,
                            MessageId = message.EventId,
                        };
                        await channel.BasicPublishAsync(Topology.IngestExchange, message.RoutingKey, mandatory: true, properties, message.Body, cancellationToken).ConfigureAwait(false);
                        Interlocked.Increment(ref confirmed);
                        return;
                    }
                    catch (PublishException ex) when (ex.IsReturn)
                    {
                        Fail(message, $"unroutable (routing key '{message.RoutingKey}')");
                        return;
                    }
                    catch (Exception ex) when (ex is PublishException or AlreadyClosedException or OperationInterruptedException && !cancellationToken.IsCancellationRequested)
                    {
                        if (attempt >= maxAttempts)
                        {
                            Fail(message, ex.Message);
                            return;
                        }

                        // Nacked, or the connection is down: automatic recovery reopens it; try again.
                        Interlocked.Increment(ref retried);
                        await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(5000, 100 * (1 << Math.Min(attempt, 6)))), cancellationToken).ConfigureAwait(false);
                    }
                }
            }
            catch (OperationCanceledException)
            {
                Fail(message, "cancelled");
            }
            finally
            {
                slots.Release();
            }
        }

        void Fail(OutgoingMessage message, string reason)
        {
            Interlocked.Increment(ref failed);
            lock (failedIds)
            {
                if (failedIds.Count < 20)
                {
                    failedIds.Add($"{message.EventId}: {reason}");
                }
            }
        }

        try
        {
            foreach (var message in messages)
            {
                await slots.WaitAsync(cancellationToken).ConfigureAwait(false);
                attempted++;
                inFlight.Add(PublishOneAsync(message));
                if (inFlight.Count >= 4 * window)
                {
                    inFlight.RemoveAll(t => t.IsCompleted);
                }

                if (progress is not null && started.Elapsed - lastReport >= TimeSpan.FromSeconds(1))
                {
                    lastReport = started.Elapsed;
                    progress.Report(new PublishProgress(attempted, Interlocked.Read(ref confirmed), Interlocked.Read(ref failed), total, started.Elapsed));
                }
            }
        }
        catch (OperationCanceledException)
        {
            LogCancelled(logger, attempted);
        }

        await Task.WhenAll(inFlight).ConfigureAwait(false);
        var summary = new PublishSummary(confirmed, failed, retried, failedIds, started.Elapsed);
        progress?.Report(new PublishProgress(attempted, confirmed, failed, total, started.Elapsed));
        return summary;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await channel.CloseAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException)
        {
        }

        await channel.DisposeAsync().ConfigureAwait(false);
        await connection.DisposeAsync().ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "Publishing cancelled after {Attempted} messages; waiting for outstanding confirms")]
    private static partial void LogCancelled(ILogger logger, long attempted);
}
