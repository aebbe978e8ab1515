using System.Diagnostics;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Messaging.Broker;

namespace RetrainDaemon.Messaging.Events;

/// <summary>How one registry event publish ended.</summary>
/// <param name="Message">The event.</param>
/// <param name="Published">True when the broker confirmed it (persistent, on <c>retrain.events</c>).</param>
/// <param name="Attempts">Connection attempts made.</param>
/// <param name="Elapsed">Time spent, deadline included when it was not published.</param>
/// <param name="Problem">Why it was not published (the last failure), else null.</param>
public sealed record ModelEventPublishResult(ModelEventMessage Message, bool Published, int Attempts, TimeSpan Elapsed, string? Problem);

/// <summary>
/// Publishes registry events (<c>model.promoted</c>, <c>model.rejected</c>) to <c>retrain.events</c>:
/// persistent, with publisher confirms, not mandatory (no serving node bound is not an error), and
/// bounded by <see cref="Deadline"/>. It never throws for a broker problem: the registry change it
/// announces already stands, and servers also watch the registry files, so an unpublished event
/// costs only latency. The caller reports <see cref="ModelEventPublishResult.Problem"/> as a warning.
/// <para>
/// Each publish opens its own short-lived connection (without automatic recovery: a publish awaiting
/// its confirm across a broker restart can hang in RabbitMQ.Client 7.2, rabbitmq-dotnet-client#1928),
/// retrying within the deadline so that a broker restarting at that moment is ridden out.
/// Thread-safe; events are rare, so no connection is kept.
/// </para>
/// </summary>
public sealed partial class ModelEventPublisher(BrokerOptions options, ILogger<ModelEventPublisher> logger)
{
    /// <summary>The default bound on one publish, connection included.</summary>
    public static readonly TimeSpan DefaultDeadline = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(1);

    /// <summary>How long one publish may take in all, connection and retries included.</summary>
    public TimeSpan Deadline { get; init; } = DefaultDeadline;

    /// <summary>The CloudEvent <c>source</c> of the events (default <c>retrain-daemon/&lt;host&gt;</c>).</summary>
    public string Source { get; init; } = ModelEventCodec.DefaultSource;

    /// <summary>Announces a champion change (promotion, rollback, or a candidate that passed the gate).</summary>
    public Task<ModelEventPublishResult> PublishPromotedAsync(ModelPromotedData data, CancellationToken cancellationToken = default) =>
        PublishAsync(ModelEventCodec.EncodePromoted(data, Source), cancellationToken);

    /// <summary>Announces a candidate the gate rejected.</summary>
    public Task<ModelEventPublishResult> PublishRejectedAsync(ModelRejectedData data, CancellationToken cancellationToken = default) =>
        PublishAsync(ModelEventCodec.EncodeRejected(data, Source), cancellationToken);

    /// <summary>Publishes an encoded event within <see cref="Deadline"/>.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (not the deadline).</exception>
    public async Task<ModelEventPublishResult> PublishAsync(ModelEventMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        var watch = Stopwatch.StartNew();
        var endpoints = EventConnections.Endpoints(options);
        string? problem = null;
        int attempts = 0;
        var delay = FirstRetryDelay;
        while (true)
        {
            var remaining = Deadline - watch.Elapsed;
            if (remaining <= TimeSpan.Zero)
            {
                break;
            }

            attempts++;
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(remaining);
            try
            {
                // WaitAsync as well as the token: a client call caught in a broken connection can ignore
                // its token (ConfirmedPublisher saw it); the abandoned attempt dies with its connection.
                await PublishOnceAsync(message, endpoints, remaining, deadline.Token).WaitAsync(remaining, cancellationToken).ConfigureAwait(false);
                LogPublished(logger, message.RoutingKey, message.Subject, message.Version, message.EventId, attempts, watch.Elapsed.TotalMilliseconds);
                return new ModelEventPublishResult(message, true, attempts, watch.Elapsed, null);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                // Everything is "not published" here: unreachable, refused, nacked, timed out, a bad
                // password file. The registry change must stand whatever the broker does.
                problem = Describe(ex);
                LogAttemptFailed(logger, message.RoutingKey, message.Subject, attempts, problem);
            }

            if (Deadline - watch.Elapsed <= delay)
            {
                break;
            }

            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRetryDelay.Ticks));
        }

        problem ??= $"no attempt within the {Deadline.TotalSeconds:0.#} s deadline";
        LogNotPublished(logger, message.RoutingKey, message.Subject, message.Version, attempts, watch.Elapsed.TotalSeconds, problem);
        return new ModelEventPublishResult(message, false, attempts, watch.Elapsed, problem);
    }

    private async Task PublishOnceAsync(ModelEventMessage message, List<AmqpTcpEndpoint> endpoints, TimeSpan remaining, CancellationToken cancellationToken)
    {
        var factory = EventConnections.Factory(options, "model-event-publisher", remaining);
        await using var connection = await factory.CreateConnectionAsync(endpoints, factory.ClientProvidedName, cancellationToken).ConfigureAwait(false);
        await using var channel = await connection.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken).ConfigureAwait(false);
        // Declared here too, so the first event on a fresh broker is not a channel error (404).
        await EventConnections.DeclareExchangeAsync(channel, cancellationToken).ConfigureAwait(false);
        var properties = new BasicProperties
        {
            Persistent = true,
            ContentType = EventTypes.StructuredJsonContentType,
            MessageId = message.EventId,
            Type = message.Type,
            AppId = "retrain-daemon",
            Timestamp = new AmqpTimestamp(DateTimeOffset.UtcNow.ToUnixTimeSeconds()),
        };
        // Not mandatory: with no serving node running nothing is bound, and that is not a failure.
        // With confirm tracking on, this completes when the broker has confirmed (PublishException on a nack).
        await channel.BasicPublishAsync(Topology.EventsExchange, message.RoutingKey, mandatory: false, properties, message.Body, cancellationToken).ConfigureAwait(false);
        await channel.CloseAsync(cancellationToken).ConfigureAwait(false);
        await connection.CloseAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The innermost useful message (BrokerUnreachableException wraps the socket error).</summary>
    private static string Describe(Exception ex)
    {
        if (ex is TimeoutException or OperationCanceledException)
        {
            return "no confirm within the deadline";
        }

        var inner = ex;
        while (inner.InnerException is not null && inner is RabbitMQ.Client.Exceptions.BrokerUnreachableException or AggregateException)
        {
            inner = inner.InnerException;
        }

        return inner == ex ? ex.Message : $"{ex.Message}: {inner.Message}";
    }

    [LoggerMessage(EventId = 420, Level = LogLevel.Information, Message = "Published {RoutingKey} for {Model} v{Version} (event {EventId}, attempt {Attempt}, {Milliseconds:0} ms)")]
    private static partial void LogPublished(ILogger logger, string routingKey, string model, int version, string eventId, int attempt, double milliseconds);

    [LoggerMessage(EventId = 421, Level = LogLevel.Debug, Message = "Publishing {RoutingKey} for {Model}: attempt {Attempt} failed: {Problem}")]
    private static partial void LogAttemptFailed(ILogger logger, string routingKey, string model, int attempt, string problem);

    [LoggerMessage(EventId = 422, Level = LogLevel.Warning, Message = "{RoutingKey} for {Model} v{Version} not published after {Attempts} attempts in {Seconds:0.0} s: {Problem}; servers still see the change through the registry files")]
    private static partial void LogNotPublished(ILogger logger, string routingKey, string model, int version, int attempts, double seconds, string problem);
}
