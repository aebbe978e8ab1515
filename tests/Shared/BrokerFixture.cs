using Microsoft.Extensions.Logging.Abstractions;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Publishing;

namespace RetrainDaemon.Tests.Shared;

/// <summary>One private RabbitMQ node for the whole assembly (started by <c>deploy/rabbitmq/local-broker.sh</c>).</summary>
public sealed class BrokerFixture : IAsyncLifetime
{
    public PrivateBroker Broker { get; private set; } = null!;

    public async Task InitializeAsync() => Broker = await PrivateBroker.StartAsync();

    public async Task DisposeAsync() => await Broker.DisposeAsync();

    public BrokerOptions BrokerOptions => new()
    {
        Endpoints = [Broker.Endpoint],
        NetworkRecoveryInterval = TimeSpan.FromSeconds(1),
        // Long enough to ride out a broker restart (stop ~3 s + start ~5 s here) when reconnecting.
        ConnectRetryMax = TimeSpan.FromSeconds(2),
        ConnectAttempts = 40,
    };

    public async Task<PublishSummary> PublishAsync(IEnumerable<OutgoingMessage> messages, long total, int maxAttempts = 20)
    {
        var connector = new BrokerConnector(BrokerOptions, NullLogger<BrokerConnector>.Instance);
        await using var publisher = await ConfirmedPublisher.ConnectAsync(connector, new IngestOptions(), NullLogger.Instance, window: 1000, maxAttempts: maxAttempts);
        return await publisher.PublishAsync(messages, total, progress: null, CancellationToken.None);
    }

    /// <summary>Publishes raw bytes (possibly not a CloudEvent at all) straight to <c>retrain.ingest</c>.</summary>
    public async Task PublishRawAsync(string routingKey, byte[] body, string messageId, string? contentType = "application/cloudevents+json")
    {
        await using var connection = await Broker.ConnectAsync();
        await using var channel = await connection.CreateChannelAsync(new RabbitMQ.Client.CreateChannelOptions(true, true));
        var properties = new RabbitMQ.Client.BasicProperties { Persistent = true, MessageId = messageId, ContentType = contentType };
        await channel.BasicPublishAsync(Topology.IngestExchange, routingKey, mandatory: true, properties, body);
    }
}

/// <summary>Every test that needs the broker joins this collection: one node, tests run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class BrokerCollection : ICollectionFixture<BrokerFixture>
{
    public const string Name = "broker";
}

/// <summary>A test against the shared broker: empty queues and a fresh temp directory for its store.</summary>
public abstract class BrokerTest(BrokerFixture fixture, string name) : IAsyncLifetime
{
    protected BrokerFixture Fixture { get; } = fixture;

    protected string Directory { get; } = TestPaths.NewTempDirectory(name);

    protected string StorePath => Path.Combine(Directory, "retrain.db");

    public virtual Task InitializeAsync() =>
        BrokerProbe.PurgeAsync(Fixture.Broker, Topology.SamplesQueue, Topology.FeedbackQueue, Topology.DeadLetterQueue);

    public virtual Task DisposeAsync()
    {
        System.IO.Directory.Delete(Directory, recursive: true);
        return Task.CompletedTask;
    }
}
