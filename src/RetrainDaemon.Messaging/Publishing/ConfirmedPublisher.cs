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
public sealed record PublishSummary(long Confirmed, long Failed, long Retried, long Reconnects, IReadOnlyList<string> FailedIds, TimeSpan Elapsed)
{
    public double MessagesPerSecond => Elapsed.TotalSeconds > 0 ? Confirmed / Elapsed.TotalSeconds : 0;
}

/// <summary>
/// Publishes persistent, mandatory messages to <c>retrain.ingest</c> with publisher confirms,
/// pipelined: up to <c>window</c> publishes await their confirm at once (awaiting each in turn
/// gives ~1k msg/s, pipelining tens of thousands — PLATFORM.md). A message counts as confirmed only
/// when the broker acked it into a queue; a return (unroutable) fails it at once.
/// <para>
/// Connection loss: RabbitMQ.Client 7.2 with confirm tracking can leave publishes awaiting their
/// confirm forever after a broker restart, even once automatic recovery reconnects
/// (rabbitmq-dotnet-client#1928/#1930; reproduced here). So every publish has a deadline, and on a
/// connection-level failure the publisher drops its connection and opens a new one itself; the
/// failed publishes are retried there, up to <c>maxAttempts</c>. A retry may duplicate a message the
/// broker had already taken — harmless, the store is idempotent by event id.
/// </para>
/// </summary>
public sealed partial class ConfirmedPublisher : IAsyncDisposable
{
    private static readonly TimeSpan PublishDeadline = TimeSpan.FromSeconds(15);

    private readonly BrokerConnector connector;
    private readonly IngestOptions ingest;
    private readonly ILogger logger;
    private readonly int window;
    private readonly int maxAttempts;
    private readonly SemaphoreSlim reconnectLock = new(1, 1);
    private (IConnection Connection, IChannel Channel, int Generation) current;
    private long reconnects;

    private ConfirmedPublisher(BrokerConnector connector, IngestOptions ingest, ILogger logger, int window, int maxAttempts, IConnection connection, IChannel channel)
    {
        this.connector = connector;
        this.ingest = ingest;
        this.logger = logger;
        this.window = window;
        this.maxAttempts = maxAttempts;
        current = (connection, channel, 0);
    }

    public static async Task<ConfirmedPublisher> ConnectAsync(BrokerConnector connector, IngestOptions ingest, ILogger logger, int window = 1000, int maxAttempts = 20, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        var (connection, channel) = await OpenAsync(connector, ingest, cancellationToken).ConfigureAwait(false);
        return new ConfirmedPublisher(connector, ingest, logger, window, maxAttempts, connection, channel);
    }

    private static async Task<(IConnection, IChannel)> OpenAsync(BrokerConnector connector, IngestOptions ingest, CancellationToken cancellationToken)
    {
        var connection = await connector.ConnectAsync(cancellationToken, automaticRecovery: false).ConfigureAwait(false);
        try
        {
            var channel = await connection.CreateChannelAsync(
                new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true, outstandingPublisherConfirmationsRateLimiter: null),
                cancellationToken).ConfigureAwait(false);
            // Declaring here too means samples published before the daemon ever ran are queued, not dropped.
            await Topology.DeclareAsync(channel, ingest, cancellationToken).ConfigureAwait(false);
            return (connection, channel);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Replaces the connection of <paramref name="failedGeneration"/>, once, however many publishes saw it fail.</summary>
    private async Task ReconnectAsync(int failedGeneration, CancellationToken cancellationToken)
    {
        await reconnectLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (current.Generation != failedGeneration)
            {
                return;
            }

            var old = current;
            LogReconnecting(logger, failedGeneration);
            _ = DropAsync(old.Connection, old.Channel); // may hang inside the client; never wait for it
            var (connection, channel) = await OpenAsync(connector, ingest, cancellationToken).ConfigureAwait(false);
            current = (connection, channel, failedGeneration + 1);
            Interlocked.Increment(ref reconnects);
        }
        finally
        {
            reconnectLock.Release();
        }
    }

    private static async Task DropAsync(IConnection connection, IChannel channel)
    {
        try
        {
            await connection.AbortAsync(TimeSpan.FromSeconds(2)).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or AlreadyClosedException or OperationInterruptedException or IOException)
        {
        }

        channel.Dispose();
        connection.Dispose();
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
                    var (_, channel, generation) = current;
                    using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    deadline.CancelAfter(PublishDeadline);
                    try
                    {
                        var properties = new BasicProperties
                        {
                            Persistent = true,
                            ContentType = EventTypes.StructuredJsonContentType,
                            MessageId = message.EventId,
                        };
                        // WaitAsync as well as the token: a publish caught in the client's broken state can ignore
                        // its token and never finish; abandoning it after the deadline keeps the run moving.
                        await channel.BasicPublishAsync(Topology.IngestExchange, message.RoutingKey, mandatory: true, properties, message.Body, deadline.Token)
                            .AsTask().WaitAsync(PublishDeadline + TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
                        Interlocked.Increment(ref confirmed);
                        return;
                    }
                    catch (PublishException ex) when (ex.IsReturn)
                    {
                        Fail(message, $"unroutable (routing key '{message.RoutingKey}')");
                        return;
                    }
                    catch (Exception ex) when (!cancellationToken.IsCancellationRequested && IsRetryable(ex))
                    {
                        if (attempt >= maxAttempts)
                        {
                            Fail(message, ex.Message);
                            return;
                        }

                        Interlocked.Increment(ref retried);
                        if (ex is not PublishException and not ObjectDisposedException)
                        {
                            // The connection is gone or wedged (no confirm within the deadline): replace it.
                            await ReconnectAsync(generation, cancellationToken).ConfigureAwait(false);
                        }
                        else
                        {
                            await Task.Delay(TimeSpan.FromMilliseconds(100 * attempt), cancellationToken).ConfigureAwait(false);
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or InvalidOperationException)
            {
                // Cancelled, or a reconnect gave up (BrokerConnector names the endpoint and the attempts).
                Fail(message, ex.Message);
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
        var summary = new PublishSummary(confirmed, failed, retried, Interlocked.Read(ref reconnects), failedIds, started.Elapsed);
        progress?.Report(new PublishProgress(attempted, confirmed, failed, total, started.Elapsed));
        return summary;
    }

    /// <summary>
    /// Worth another attempt: a nack, a closed or dropped connection, a missed deadline, or the old
    /// channel disposed under us by a reconnect (ObjectDisposedException).
    /// </summary>
    private static bool IsRetryable(Exception ex) =>
        ex is PublishException or AlreadyClosedException or OperationInterruptedException or OperationCanceledException or IOException or ObjectDisposedException or TimeoutException;

    public async ValueTask DisposeAsync()
    {
        var (connection, channel, _) = current;
        try
        {
            await channel.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            await connection.CloseAsync(TimeSpan.FromSeconds(5)).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or AlreadyClosedException or OperationInterruptedException or IOException)
        {
        }

        channel.Dispose();
        connection.Dispose();
        reconnectLock.Dispose();
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "Publishing cancelled after {Attempted} messages; waiting for outstanding confirms")]
    private static partial void LogCancelled(ILogger logger, long attempted);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Publisher connection {Generation} failed or stalled; opening a new one and retrying unconfirmed messages")]
    private static partial void LogReconnecting(ILogger logger, int generation);
}
