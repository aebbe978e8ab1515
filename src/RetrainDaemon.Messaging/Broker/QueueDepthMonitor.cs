using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace RetrainDaemon.Messaging.Broker;

/// <summary>
/// <c>retrain_broker_queue_messages{queue}</c>: messages ready in <c>retrain.samples</c>,
/// <c>retrain.feedback</c> and <c>retrain.dead</c>, read over AMQP by a passive declare every
/// <see cref="Interval"/> (<c>rabbitmqctl list_queues</c> lags ~5 s for quorum queues, PLATFORM.md; a
/// passive declare never creates or changes a queue). It runs on a connection of its own, which does not
/// drive readiness or <c>retrain_broker_connected</c>; while the broker is unreachable or a queue is
/// missing, that queue's series is removed rather than left at a stale value.
/// </summary>
public sealed partial class QueueDepthMonitor(BrokerConnector connector, ILogger<QueueDepthMonitor> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    public static readonly IReadOnlyList<string> Queues = [Topology.SamplesQueue, Topology.FeedbackQueue, Topology.DeadLetterQueue];

    private static readonly Gauge Depth = Metrics.CreateGauge("retrain_broker_queue_messages",
        "Messages ready in the daemon's queues (retrain.samples, retrain.feedback, retrain.dead), read by a passive declare.",
        new GaugeConfiguration { LabelNames = ["queue"] });

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        IConnection? connection = null;
        IChannel? channel = null;
        try
        {
            using var timer = new PeriodicTimer(Interval);
            do
            {
                try
                {
                    connection ??= await connector.ConnectAsync(stoppingToken).ConfigureAwait(false);
                    foreach (string queue in Queues)
                    {
                        if (channel is null || channel.IsClosed)
                        {
                            channel?.Dispose();
                            channel = await connection.CreateChannelAsync(cancellationToken: stoppingToken).ConfigureAwait(false);
                        }

                        try
                        {
                            var ok = await channel.QueueDeclarePassiveAsync(queue, stoppingToken).ConfigureAwait(false);
                            Depth.WithLabels(queue).Set(ok.MessageCount);
                        }
                        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
                        {
                            // The broker closed the channel (404): the next queue gets a new one.
                            Depth.RemoveLabelled(queue);
                            LogQueueMissing(logger, queue);
                        }
                    }
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested && ex is not OperationCanceledException
                    && ex is OperationInterruptedException or AlreadyClosedException or BrokerUnreachableException or IOException or InvalidOperationException)
                {
                    // Unreachable or recovering: no numbers rather than stale ones; automatic recovery (or the next
                    // connect) brings them back.
                    foreach (string queue in Queues)
                    {
                        Depth.RemoveLabelled(queue);
                    }

                    LogReadFailed(logger, ex.Message);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            if (channel is not null)
            {
                await channel.DisposeAsync().ConfigureAwait(false);
            }

            if (connection is not null)
            {
                await connection.DisposeAsync().ConfigureAwait(false); // closes it (with the client's timeout) unless already closed
            }
        }
    }

    [LoggerMessage(EventId = 140, Level = LogLevel.Warning, Message = "Queue {Queue} does not exist; its depth is not exported until it does")]
    private static partial void LogQueueMissing(ILogger logger, string queue);

    [LoggerMessage(EventId = 141, Level = LogLevel.Debug, Message = "Queue depths unavailable: {Reason}")]
    private static partial void LogReadFailed(ILogger logger, string reason);
}
