using Microsoft.Extensions.Logging.Abstractions;
using RabbitMQ.Client;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Messaging.Broker;

namespace RetrainDaemon.Messaging.Events;

/// <summary>
/// Connections for registry events. They do not use the client's automatic recovery: the consumer
/// re-declares its exclusive queue on every new connection itself, and the publisher makes one
/// short-lived attempt bounded by a deadline. They are also kept out of <see cref="BrokerConnector"/>'s
/// bookkeeping, whose <c>retrain_broker_connected</c> gauge and readiness describe the ingestion connection.
/// </summary>
internal static class EventConnections
{
    public static ConnectionFactory Factory(BrokerOptions options, string purpose, TimeSpan? connectTimeout = null)
    {
        // Same credentials, vhost and heartbeat as the ingestion connection; BrokerConnector owns that mapping.
        var factory = new BrokerConnector(options, NullLogger<BrokerConnector>.Instance).CreateFactory(automaticRecovery: false);
        factory.ClientProvidedName = $"{options.ClientName} {purpose}";
        if (connectTimeout is { } timeout)
        {
            factory.RequestedConnectionTimeout = timeout;
            factory.HandshakeContinuationTimeout = timeout;
            factory.ContinuationTimeout = timeout;
        }

        return factory;
    }

    public static List<AmqpTcpEndpoint> Endpoints(BrokerOptions options) =>
        options.ParsedEndpoints().Select(e => new AmqpTcpEndpoint(e.Host, e.Port)).ToList();

    /// <summary>Declares <c>retrain.events</c> (idempotent; the same arguments as <see cref="Topology.DeclareAsync"/>).</summary>
    public static Task DeclareExchangeAsync(IChannel channel, CancellationToken cancellationToken) =>
        channel.ExchangeDeclareAsync(Topology.EventsExchange, ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken);
}
