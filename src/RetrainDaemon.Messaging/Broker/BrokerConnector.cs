using Microsoft.Extensions.Logging;
using Prometheus;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;
using RetrainDaemon.Core.Observability;
using RetrainDaemon.Core.Options;

namespace RetrainDaemon.Messaging.Broker;

/// <summary>
/// Opens the broker connection. Automatic recovery only covers a connection that once
/// succeeded ("If initial client connection to a RabbitMQ node fails, automatic connection
/// recovery won't kick in"), so the first connect is retried here with capped exponential backoff.
/// Tracks whether the connection is open, for readiness and the <c>retrain_broker_connected</c> gauge.
/// </summary>
public sealed partial class BrokerConnector(BrokerOptions options, ILogger<BrokerConnector> logger)
{
    private static readonly Gauge Connected = Metrics.CreateGauge(MetricNames.BrokerConnected, "1 while the broker connection is open, else 0.");
    private static readonly Counter Recoveries = Metrics.CreateCounter(MetricNames.BrokerRecoveries, "Automatic connection recoveries that succeeded.");

    private volatile bool isOpen;

    /// <summary>True while the connection is open (false before connecting and during recovery).</summary>
    public bool IsOpen => isOpen;

    /// <summary>
    /// Whether connections opened here drive <see cref="IsOpen"/> and the <c>retrain_broker_connected</c>
    /// gauge (default true). A side connection of the daemon (the review page's feedback publisher) turns it
    /// off: its own connect and close say nothing about the ingestion connection that readiness describes.
    /// </summary>
    public bool TracksHealth { get; init; } = true;

    public ConnectionFactory CreateFactory(bool automaticRecovery = true) => new()
    {
        UserName = options.UserName,
        Password = options.ResolvePassword(),
        VirtualHost = options.VirtualHost,
        AutomaticRecoveryEnabled = automaticRecovery,
        TopologyRecoveryEnabled = automaticRecovery,
        NetworkRecoveryInterval = options.NetworkRecoveryInterval,
        RequestedHeartbeat = options.Heartbeat,
        ClientProvidedName = options.ClientName,
    };

    /// <param name="automaticRecovery">
    /// Off for publishers: with confirm tracking, RabbitMQ.Client 7.2 can leave a publish awaiting its
    /// confirm forever across a broker restart (rabbitmq-dotnet-client#1928, #1930), so the publisher
    /// replaces its connection itself.
    /// </param>
    public async Task<IConnection> ConnectAsync(CancellationToken cancellationToken, bool automaticRecovery = true)
    {
        var factory = CreateFactory(automaticRecovery);
        var endpoints = options.ParsedEndpoints().Select(e => new AmqpTcpEndpoint(e.Host, e.Port)).ToList();
        string where = string.Join(", ", options.Endpoints);
        var delay = options.ConnectRetryInitial;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                var connection = await factory.CreateConnectionAsync(endpoints, options.ClientName, cancellationToken).ConfigureAwait(false);
                if (TracksHealth)
                {
                    Watch(connection);
                }

                LogConnected(logger, where, attempt);
                return connection;
            }
            catch (BrokerUnreachableException ex) when (!cancellationToken.IsCancellationRequested)
            {
                if (ex.InnerException is AuthenticationFailureException auth)
                {
                    // Retrying a wrong password only fills the broker's log.
                    throw new InvalidOperationException($"The broker at {where} refused user '{options.UserName}': {auth.Message}", auth);
                }

                if (options.ConnectAttempts > 0 && attempt >= options.ConnectAttempts)
                {
                    throw new InvalidOperationException($"Could not connect to the broker at {where} after {attempt} attempts: {ex.InnerException?.Message ?? ex.Message}", ex);
                }

                LogConnectRetry(logger, where, attempt, delay.TotalSeconds, ex.InnerException?.Message ?? ex.Message);
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.ConnectRetryMax.Ticks));
            }
        }
    }

    private void Watch(IConnection connection)
    {
        SetOpen(true);
        connection.ConnectionShutdownAsync += (_, args) =>
        {
            SetOpen(false);
            if (args.Initiator != ShutdownInitiator.Application)
            {
                LogConnectionLost(logger, args.ReplyText);
            }

            return Task.CompletedTask;
        };
        connection.RecoverySucceededAsync += (_, _) =>
        {
            SetOpen(true);
            Recoveries.Inc();
            LogRecovered(logger);
            return Task.CompletedTask;
        };
        connection.ConnectionRecoveryErrorAsync += (_, args) =>
        {
            LogRecoveryFailed(logger, args.Exception.Message);
            return Task.CompletedTask;
        };
    }

    private void SetOpen(bool open)
    {
        isOpen = open;
        Connected.Set(open ? 1 : 0);
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Connected to the broker at {Endpoints} (attempt {Attempt})")]
    private static partial void LogConnected(ILogger logger, string endpoints, int attempt);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "Broker at {Endpoints} unreachable (attempt {Attempt}); retrying in {DelaySeconds:0.0} s: {Reason}")]
    private static partial void LogConnectRetry(ILogger logger, string endpoints, int attempt, double delaySeconds, string reason);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "Broker connection lost: {Reason}; automatic recovery is on")]
    private static partial void LogConnectionLost(ILogger logger, string reason);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "Broker connection recovered")]
    private static partial void LogRecovered(ILogger logger);

    [LoggerMessage(EventId = 104, Level = LogLevel.Warning, Message = "Broker connection recovery attempt failed: {Reason}")]
    private static partial void LogRecoveryFailed(ILogger logger, string reason);
}
