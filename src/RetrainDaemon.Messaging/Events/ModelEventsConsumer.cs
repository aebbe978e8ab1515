using System.Diagnostics;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Messaging.Broker;

namespace RetrainDaemon.Messaging.Events;

/// <summary>
/// Follows <c>model.promoted</c> on <c>retrain.events</c> and tells every registered
/// <see cref="IModelChangeNotifier"/> to look at the registry again for that model — the fast path
/// of "the server follows the champion alias" (issue 5).
/// <para>
/// Each serving node declares its own server-named, exclusive, auto-delete classic queue bound with
/// <c>model.promoted</c>, so every node gets every event and no queue outlives its node. A node that
/// is down (or whose broker is) misses the events of that time, by design: the event is only a hint.
/// The registry files are the truth, and the server's file watch and periodic poll pick up every
/// alias change whether or not its event arrived, so a durable queue per node would buy nothing but
/// queues to clean up after decommissioned nodes.
/// </para>
/// <para>
/// Connection loss: an exclusive queue dies with its connection, so rather than the client's
/// automatic recovery this consumer runs sessions — connect, declare exchange and queue, bind,
/// consume — and starts a new session (new queue) every <see cref="BrokerOptions.NetworkRecoveryInterval"/>
/// until the broker is back. Malformed events and notifier failures are acked, logged and counted in
/// <c>retrain_model_events_total</c>, never requeued. Cancellation stops consuming, closes the channel
/// and the connection within a few seconds. Without a registered notifier the consumer does not start.
/// <see cref="IModelChangeNotifier.Notify"/> is called on the client's dispatch loop, one event at a
/// time, so it must only signal (the reload happens elsewhere) and return.
/// </para>
/// </summary>
public sealed partial class ModelEventsConsumer : BackgroundService
{
    /// <summary>Events are rare and handled inline; a small window is plenty.</summary>
    private const ushort Prefetch = 16;

    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(2);

    private readonly BrokerOptions options;
    private readonly IModelChangeNotifier[] notifiers;
    private readonly ModelEventMetrics metrics;
    private readonly ILogger<ModelEventsConsumer> logger;
    private volatile string? queueName;
    private volatile bool consuming;
    private int sessions;

    /// <summary>Creates the consumer; nothing connects before the host starts it.</summary>
    /// <param name="options">Broker endpoints and credentials (the <c>Broker</c> section).</param>
    /// <param name="notifiers">Every registered notifier; none means the consumer does not run.</param>
    /// <param name="metrics">The <c>retrain_model_events_total</c> counter.</param>
    /// <param name="logger">Its logger.</param>
    public ModelEventsConsumer(IOptions<BrokerOptions> options, IEnumerable<IModelChangeNotifier> notifiers, ModelEventMetrics metrics, ILogger<ModelEventsConsumer> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.options = options.Value;
        this.notifiers = notifiers.ToArray();
        this.metrics = metrics;
        this.logger = logger;
    }

    /// <summary>True while subscribed to the current session's queue.</summary>
    public bool IsConsuming => consuming;

    /// <summary>The current session's server-named queue, or null before the first session.</summary>
    public string? QueueName => queueName;

    /// <summary>Sessions started so far (1 after the first connect, +1 after each broker restart).</summary>
    public int Sessions => Volatile.Read(ref sessions);

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (notifiers.Length == 0)
        {
            LogNoNotifier(logger);
            return;
        }

        var endpoints = EventConnections.Endpoints(options);
        int failures = 0;
        long? lostAt = null;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunSessionAsync(endpoints, () =>
                {
                    if (lostAt is { } since)
                    {
                        LogResumed(logger, failures, Stopwatch.GetElapsedTime(since).TotalSeconds);
                    }

                    failures = 0;
                    lostAt = null;
                }, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (IsBrokerFailure(ex, stoppingToken))
            {
                if (failures++ == 0)
                {
                    LogUnavailable(logger, string.Join(", ", options.Endpoints), options.NetworkRecoveryInterval.TotalSeconds, ex.Message);
                }
                else
                {
                    LogStillUnavailable(logger, failures, ex.Message);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // A bug, not an outage: stop the host (StopHost) so that systemd restarts us visibly.
                LogFailed(logger, ex);
                Environment.ExitCode = 1;
                throw;
            }

            lostAt ??= Stopwatch.GetTimestamp();
            try
            {
                // The same cadence as the ingestion connection's automatic recovery, so both resume together.
                await Task.Delay(options.NetworkRecoveryInterval, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        LogStopped(logger, Sessions);
    }

    /// <summary>One connection's life: returns when the connection or channel is lost; throws on a failed connect or declare.</summary>
    private async Task RunSessionAsync(List<AmqpTcpEndpoint> endpoints, Action onConsuming, CancellationToken stoppingToken)
    {
        var factory = EventConnections.Factory(options, "model-events");
        var connection = await factory.CreateConnectionAsync(endpoints, factory.ClientProvidedName, stoppingToken).ConfigureAwait(false);
        IChannel? channel = null;
        string? tag = null;
        var lost = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            connection.ConnectionShutdownAsync += (_, args) =>
            {
                lost.TrySetResult("connection closed: " + args.ReplyText);
                return Task.CompletedTask;
            };
            channel = await connection.CreateChannelAsync(cancellationToken: stoppingToken).ConfigureAwait(false);
            channel.ChannelShutdownAsync += (_, args) =>
            {
                lost.TrySetResult("channel closed: " + args.ReplyText);
                return Task.CompletedTask;
            };

            await EventConnections.DeclareExchangeAsync(channel, stoppingToken).ConfigureAwait(false);
            // Classic explicitly: a quorum default (3.13+ default-queue-type, or a policy) cannot be exclusive.
            var declared = await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true,
                arguments: new Dictionary<string, object?> { ["x-queue-type"] = "classic" }, cancellationToken: stoppingToken).ConfigureAwait(false);
            await channel.QueueBindAsync(declared.QueueName, Topology.EventsExchange, ModelEventTypes.PromotedRoutingKey, cancellationToken: stoppingToken).ConfigureAwait(false);
            await channel.BasicQosAsync(0, Prefetch, global: false, stoppingToken).ConfigureAwait(false);

            var consumer = new AsyncEventingBasicConsumer(channel);
            var current = channel;
            consumer.ReceivedAsync += (_, ea) => HandleAsync(current, ea);
            consumer.UnregisteredAsync += (_, _) =>
            {
                // Fired for our own cancel at shutdown too; otherwise the broker cancelled us (queue deleted).
                if (!stoppingToken.IsCancellationRequested)
                {
                    lost.TrySetResult("the broker cancelled the subscription");
                }

                return Task.CompletedTask;
            };
            tag = await channel.BasicConsumeAsync(declared.QueueName, autoAck: false, consumer, stoppingToken).ConfigureAwait(false);

            queueName = declared.QueueName;
            consuming = true;
            int session = Interlocked.Increment(ref sessions);
            onConsuming();
            LogConsuming(logger, declared.QueueName, session);

            string reason = await lost.Task.WaitAsync(stoppingToken).ConfigureAwait(false);
            LogSessionLost(logger, declared.QueueName, reason);
        }
        finally
        {
            consuming = false;
            await CloseAsync(connection, channel, tag).ConfigureAwait(false);
        }
    }

    /// <summary>Decodes one delivery, notifies, and always acks: redelivering a bad event would only fail again.</summary>
    private async Task HandleAsync(IChannel channel, BasicDeliverEventArgs ea)
    {
        string type = ModelEventTypes.PromotedRoutingKey;
        string result;
        try
        {
            var data = ModelEventCodec.DecodePromoted(ea.Body, ea.BasicProperties.ContentType);
            result = Notify(data);
        }
        catch (InvalidDataException ex)
        {
            type = ModelEventCodec.TypeLabel(ModelEventCodec.PeekType(ea.Body));
            result = ModelEventResults.Malformed;
            LogMalformed(logger, ea.BasicProperties.MessageId ?? "(no message id)", ea.RoutingKey, ex.Message);
        }

        metrics.Count(type, result);
        try
        {
            await channel.BasicAckAsync(ea.DeliveryTag, multiple: false, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or ObjectDisposedException)
        {
            // The exclusive queue goes with the channel's connection; nothing will be redelivered.
            LogAckOnClosedChannel(logger, ea.DeliveryTag, ex.Message);
        }
    }

    private string Notify(ModelPromotedData data)
    {
        string result = ModelEventResults.Notified;
        foreach (var notifier in notifiers)
        {
            try
            {
                notifier.Notify(data.Model);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The serving side's file watch and poll still see the alias change; one failing
                // notifier must not stop the others or the consumer.
                result = ModelEventResults.Failed;
                LogNotifyFailed(logger, data.Model, data.Version, ex);
            }
        }

        if (result == ModelEventResults.Notified)
        {
            LogNotified(logger, data.Model, data.Version, data.Previous?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-", data.Reason);
        }

        return result;
    }

    /// <summary>Cancels the subscription and closes channel and connection, each bounded (a dead broker must not hold up shutdown).</summary>
    private async Task CloseAsync(IConnection connection, IChannel? channel, string? tag)
    {
        try
        {
            if (channel is { IsOpen: true })
            {
                using var timeout = new CancellationTokenSource(CloseTimeout);
                if (tag is not null)
                {
                    await channel.BasicCancelAsync(tag, noWait: false, timeout.Token).ConfigureAwait(false);
                }

                await channel.CloseAsync(timeout.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (IsBrokerFailure(ex, CancellationToken.None) || ex is OperationCanceledException)
        {
            LogCloseIncomplete(logger, ex.Message);
        }

        try
        {
            if (connection.IsOpen)
            {
                await connection.CloseAsync(CloseTimeout).WaitAsync(CloseTimeout + CloseTimeout).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (IsBrokerFailure(ex, CancellationToken.None) || ex is OperationCanceledException)
        {
            LogCloseIncomplete(logger, ex.Message);
        }

        channel?.Dispose();
        connection.Dispose();
    }

    /// <summary>An outage or a broker-side refusal, worth a new session later (not a bug in this process).</summary>
    private static bool IsBrokerFailure(Exception ex, CancellationToken stoppingToken) =>
        ex is BrokerUnreachableException or OperationInterruptedException or AlreadyClosedException or IOException
            or SocketException or TimeoutException or ObjectDisposedException
        || (ex is OperationCanceledException && !stoppingToken.IsCancellationRequested);

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "No model-change notifier is registered; model.promoted events are not consumed")]
    private static partial void LogNoNotifier(ILogger logger);

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "Following model.promoted on retrain.events through queue {Queue} (session {Session})")]
    private static partial void LogConsuming(ILogger logger, string queue, int session);

    [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "Model events: queue {Queue} lost ({Reason}); a new session re-declares it once the broker is back")]
    private static partial void LogSessionLost(ILogger logger, string queue, string reason);

    [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "Model events: broker at {Endpoints} unavailable ({Reason}); retrying every {IntervalSeconds:0.0} s, the registry file watch covers the gap")]
    private static partial void LogUnavailable(ILogger logger, string endpoints, double intervalSeconds, string reason);

    [LoggerMessage(EventId = 404, Level = LogLevel.Debug, Message = "Model events: attempt {Attempt} failed: {Reason}")]
    private static partial void LogStillUnavailable(ILogger logger, int attempt, string reason);

    [LoggerMessage(EventId = 405, Level = LogLevel.Information, Message = "Model events: consuming again {Seconds:0.0} s after the last session ended ({Attempts} failed attempts)")]
    private static partial void LogResumed(ILogger logger, int attempts, double seconds);

    [LoggerMessage(EventId = 406, Level = LogLevel.Warning, Message = "Dropped malformed model event {EventId} (routing key {RoutingKey}): {Problem}")]
    private static partial void LogMalformed(ILogger logger, string eventId, string routingKey, string problem);

    [LoggerMessage(EventId = 407, Level = LogLevel.Information, Message = "model.promoted: {Model} v{Version} (previous {Previous}): {Reason}; notified the server")]
    private static partial void LogNotified(ILogger logger, string model, int version, string previous, string reason);

    [LoggerMessage(EventId = 408, Level = LogLevel.Error, Message = "The model-change notifier failed for {Model} v{Version}; the registry watch still picks the change up")]
    private static partial void LogNotifyFailed(ILogger logger, string model, int version, Exception exception);

    [LoggerMessage(EventId = 409, Level = LogLevel.Debug, Message = "Model event {Tag} not acked, channel closed ({Reason})")]
    private static partial void LogAckOnClosedChannel(ILogger logger, ulong tag, string reason);

    [LoggerMessage(EventId = 410, Level = LogLevel.Debug, Message = "Model events: close incomplete ({Reason})")]
    private static partial void LogCloseIncomplete(ILogger logger, string reason);

    [LoggerMessage(EventId = 411, Level = LogLevel.Critical, Message = "The model-events consumer failed; the daemon stops")]
    private static partial void LogFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 412, Level = LogLevel.Information, Message = "Model events: stopped after {Sessions} sessions")]
    private static partial void LogStopped(ILogger logger, int sessions);
}
