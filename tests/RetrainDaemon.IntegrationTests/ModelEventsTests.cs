using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Events;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.IntegrationTests;

/// <summary>
/// Registry events over the private broker (issue 5): <c>model.promoted</c> reaches a serving node's
/// notifier, bad events are dropped once, the consumer re-declares its exclusive queue after a
/// broker restart, and the <c>models</c> verbs announce champion changes without ever failing on the broker.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class ModelEventsTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-events")
{
    private static readonly TimeSpan DeliveryBound = TimeSpan.FromSeconds(5);

    private static string PinnedExtractor => Path.Combine(Path.GetDirectoryName(TestPaths.DaemonDll)!, "extractor", "fashion-classifier.onnx");

    [Fact]
    public async Task PublishedPromotion_ReachesTheNotifier_WithinTheBound()
    {
        var notifier = new RecordingNotifier();
        await using var running = await StartConsumerAsync(notifier);
        var publisher = new ModelEventPublisher(Fixture.BrokerOptions, new ListLogger<ModelEventPublisher>());

        var latencies = new List<double>();
        for (int version = 1; version <= 5; version++)
        {
            var watch = Stopwatch.StartNew();
            var result = await publisher.PublishPromotedAsync(new ModelPromotedData("fashion-mnist", version, version - 1 is 0 ? null : version - 1, "test"));
            Assert.True(result.Published, result.Problem);
            var seen = await notifier.WaitAsync(version, DeliveryBound);
            Assert.Equal("fashion-mnist", seen);
            latencies.Add(watch.Elapsed.TotalMilliseconds);
            Assert.True(watch.Elapsed < DeliveryBound, $"took {watch.Elapsed}");
        }

        Assert.Equal(5, running.Metrics.Value(ModelEventTypes.PromotedRoutingKey, ModelEventResults.Notified) - running.NotifiedBefore);
        output.WriteLine($"publish (connect + confirm) to notify: first {latencies[0]:0} ms, then median {latencies.Skip(1).Order().ElementAt(1):0} ms, max {latencies.Max():0} ms; bound {DeliveryBound.TotalSeconds} s");
    }

    [Fact]
    public async Task MalformedEvents_AreAckedCountedAndNotRedelivered()
    {
        var notifier = new RecordingNotifier();
        await using var running = await StartConsumerAsync(notifier);
        double malformedBefore = running.MalformedTotal();

        var good = ModelEventCodec.EncodePromoted(new ModelPromotedData("fortunes", 3, 2, "after the bad ones"));
        string goodJson = Encoding.UTF8.GetString(good.Body.Span);
        var bad = new List<(string What, byte[] Body)>
        {
            ("not JSON", "promote fortunes please"u8.ToArray()),
            ("JSON, not a CloudEvent", """{"model":"fortunes","version":3}"""u8.ToArray()),
            ("a model.rejected event on the promoted key", ModelEventCodec.EncodeRejected(new ModelRejectedData("fortunes", 4, 3, "GATE FAILED")).Body.ToArray()),
            ("data without a version", Encoding.UTF8.GetBytes(goodJson.Replace("\"version\":3,", "", StringComparison.Ordinal))),
            ("subject differs from data.model", Encoding.UTF8.GetBytes(goodJson.Replace("\"subject\":\"fortunes\"", "\"subject\":\"en-de\"", StringComparison.Ordinal))),
            ("a hostile model name", Encoding.UTF8.GetBytes(goodJson.Replace("fortunes", "../etc", StringComparison.Ordinal))),
        };
        Assert.DoesNotContain(bad, b => b.Body.AsSpan().SequenceEqual(good.Body.Span)); // each edit really changed the body

        await using (var connection = await Fixture.Broker.ConnectAsync())
        await using (var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true)))
        {
            foreach (var (what, body) in bad)
            {
                await channel.BasicPublishAsync(Topology.EventsExchange, ModelEventTypes.PromotedRoutingKey, mandatory: true,
                    new BasicProperties { MessageId = what, ContentType = EventTypes.StructuredJsonContentType }, body);
            }

            await channel.BasicPublishAsync(Topology.EventsExchange, ModelEventTypes.PromotedRoutingKey, mandatory: true,
                new BasicProperties { MessageId = good.EventId, ContentType = EventTypes.StructuredJsonContentType }, good.Body);
        }

        // One queue, in order: once the good event is through, every bad one before it was handled.
        Assert.Equal("fortunes", await notifier.WaitAsync(1, DeliveryBound));
        Assert.Equal(bad.Count, running.MalformedTotal() - malformedBefore);
        // Labelled by the type the event claimed: two without a readable type, one model.rejected, three model.promoted.
        Assert.Equal(2, running.MalformedDelta("unknown"));
        Assert.Equal(1, running.MalformedDelta(ModelEventTypes.RejectedRoutingKey));
        Assert.Equal(3, running.MalformedDelta(ModelEventTypes.PromotedRoutingKey));
        Assert.Equal(bad.Count, running.Logger.Count(e => e.Level == LogLevel.Warning && e.Message.StartsWith("Dropped malformed model event", StringComparison.Ordinal)));

        // Acked, not requeued: nothing comes back, and the queue holds nothing ready or unacked.
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Equal(bad.Count, running.MalformedTotal() - malformedBefore);
        Assert.Single(notifier.Models);
        string queues = await Fixture.Broker.CtlAsync("list_queues", "--quiet", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged");
        var line = queues.Split('\n').Single(l => l.StartsWith(running.Consumer.QueueName!, StringComparison.Ordinal));
        Assert.Equal([running.Consumer.QueueName!, "0", "0"], line.Split('\t', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
        output.WriteLine($"{bad.Count} malformed events dropped and counted once each; queue {line.Trim()}");
    }

    [Fact]
    public async Task Consumer_RedeclaresItsQueue_AndKeepsWorking_AfterABrokerRestart()
    {
        var notifier = new RecordingNotifier();
        await using var running = await StartConsumerAsync(notifier);
        var publisher = new ModelEventPublisher(Fixture.BrokerOptions, new ListLogger<ModelEventPublisher>());
        Assert.True((await publisher.PublishPromotedAsync(new ModelPromotedData("fashion-mnist", 1, null, "before"))).Published);
        await notifier.WaitAsync(1, DeliveryBound);
        string firstQueue = running.Consumer.QueueName!;

        await Fixture.Broker.StopAsync();
        await WaitUntilAsync(() => !running.Consumer.IsConsuming, TimeSpan.FromSeconds(30), "the consumer noticed the broker going away");
        // With no broker, the publisher gives up within its deadline and says why.
        var down = await publisher.PublishPromotedAsync(new ModelPromotedData("fashion-mnist", 2, 1, "while down"));
        Assert.False(down.Published);
        Assert.NotNull(down.Problem);

        await Fixture.Broker.StartAgainAsync();
        var restarted = Stopwatch.StartNew();
        await WaitUntilAsync(() => running.Consumer.IsConsuming, TimeSpan.FromSeconds(60), "the consumer came back");
        var resumed = restarted.Elapsed;
        Assert.NotEqual(firstQueue, running.Consumer.QueueName);
        Assert.Equal(2, running.Consumer.Sessions);

        var watch = Stopwatch.StartNew();
        Assert.True((await publisher.PublishPromotedAsync(new ModelPromotedData("fashion-mnist", 3, 1, "after"))).Published);
        Assert.Equal("fashion-mnist", await notifier.WaitAsync(2, DeliveryBound));
        output.WriteLine($"publisher gave up after {down.Attempts} attempts in {down.Elapsed.TotalSeconds:0.0} s ({down.Problem}); " +
            $"consumer re-declared its queue ({firstQueue} -> {running.Consumer.QueueName}) {resumed.TotalSeconds:0.0} s after the broker was back; next event notified in {watch.Elapsed.TotalMilliseconds:0} ms");
        Assert.Contains(running.Logger.Entries, e => e.Message.Contains("a new session re-declares it", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ModelsPromoteAndRollback_PublishModelPromoted()
    {
        string root = Path.Combine(Directory, "registry");
        SeedRegistry(root);
        await using var connection = await Fixture.Broker.ConnectAsync();
        await using var channel = await connection.CreateChannelAsync();
        await channel.ExchangeDeclareAsync(Topology.EventsExchange, ExchangeType.Topic, durable: true, autoDelete: false);
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(queue, Topology.EventsExchange, "model.#");

        var (exit, text, took) = await RunCliAsync($"models promote --model fashion-mnist --version 2 --reason canary-ok --registry {root}", Fixture.Broker.Endpoint);
        Assert.True(exit == 0, text);
        Assert.Contains("fashion-mnist: champion v2, previous v1", text, StringComparison.Ordinal);
        Assert.Contains("published model.promoted for fashion-mnist v2", text, StringComparison.Ordinal);
        var promoted = await GetAsync(channel, queue);
        var data = ModelEventCodec.DecodePromoted(promoted.Body, promoted.BasicProperties.ContentType);
        Assert.Equal(new ModelPromotedData("fashion-mnist", 2, 1, "canary-ok"), data);
        AssertEnvelope(promoted, "fashion-mnist");
        output.WriteLine($"models promote with the event: {took.TotalMilliseconds:0} ms (process start included)");

        (exit, text, _) = await RunCliAsync($"models rollback --model fashion-mnist --reason bad-canary --registry {root}", Fixture.Broker.Endpoint);
        Assert.True(exit == 0, text);
        Assert.Contains("published model.promoted for fashion-mnist v1", text, StringComparison.Ordinal);
        var rolledBack = await GetAsync(channel, queue);
        Assert.Equal(new ModelPromotedData("fashion-mnist", 1, 2, "bad-canary"), ModelEventCodec.DecodePromoted(rolledBack.Body, rolledBack.BasicProperties.ContentType));
        Assert.NotEqual(promoted.BasicProperties.MessageId, rolledBack.BasicProperties.MessageId);

        // A refused change announces nothing.
        (exit, text, _) = await RunCliAsync($"models promote --model fashion-mnist --version 1 --reason again --registry {root}", Fixture.Broker.Endpoint);
        Assert.Equal(1, exit);
        Assert.DoesNotContain("published model.promoted", text, StringComparison.Ordinal);
        await Task.Delay(500);
        Assert.Null(await channel.BasicGetAsync(queue, autoAck: true));
    }

    [Fact]
    public async Task ModelsPromote_WithNoBroker_StillPromotes_AndWarns()
    {
        string root = Path.Combine(Directory, "registry");
        SeedRegistry(root);
        int closedPort = TestPaths.FreeTcpPort(); // nothing listens there

        var (exit, text, took) = await RunCliAsync($"models promote --model fashion-mnist --version 2 --reason broker-down --registry {root}", $"localhost:{closedPort}");

        Assert.True(exit == 0, text);
        Assert.Contains("fashion-mnist: champion v2, previous v1", text, StringComparison.Ordinal);
        Assert.Contains("warning: model.promoted for fashion-mnist v2 was not published", text, StringComparison.Ordinal);
        Assert.Contains("the registry change stands", text, StringComparison.Ordinal);
        Assert.Equal(2, new ModelRegistry(root).ReadAliases("fashion-mnist")!.Champion);
        Assert.True(took < ModelEventPublisher.DefaultDeadline + TimeSpan.FromSeconds(15), $"took {took}");
        output.WriteLine($"promote with the broker down: exit 0 in {took.TotalSeconds:0.0} s (deadline {ModelEventPublisher.DefaultDeadline.TotalSeconds} s, process start included); {text.Trim().Split('\n')[^1]}");
    }

    [Fact]
    public async Task AddModelEvents_RegistersOneConsumer_ThatFindsTheNotifier()
    {
        var notifier = new RecordingNotifier();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(Options.Create(Fixture.BrokerOptions));
        services.AddSingleton<IModelChangeNotifier>(notifier);
        services.AddModelEvents();
        services.AddModelEvents(); // idempotent
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });

        var consumer = Assert.IsType<ModelEventsConsumer>(Assert.Single(provider.GetServices<IHostedService>()));
        await consumer.StartAsync(CancellationToken.None);
        try
        {
            await WaitUntilAsync(() => consumer.IsConsuming, TimeSpan.FromSeconds(30), "the consumer subscribed");
            var publisher = new ModelEventPublisher(Fixture.BrokerOptions, new ListLogger<ModelEventPublisher>());
            Assert.True((await publisher.PublishPromotedAsync(new ModelPromotedData("en-de", 7, 6, "di"))).Published);
            Assert.Equal("en-de", await notifier.WaitAsync(1, DeliveryBound));
        }
        finally
        {
            await consumer.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task ConsumerWithoutNotifier_DoesNotConnect()
    {
        var logger = new ListLogger<ModelEventsConsumer>();
        using var consumer = new ModelEventsConsumer(Options.Create(Fixture.BrokerOptions), [], new ModelEventMetrics(), logger);
        await consumer.StartAsync(CancellationToken.None);
        await consumer.ExecuteTask!.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(0, consumer.Sessions);
        Assert.Contains(logger.Entries, e => e.Message.Contains("No model-change notifier", StringComparison.Ordinal));
        await consumer.StopAsync(CancellationToken.None);
    }

    private void SeedRegistry(string root)
    {
        var registry = new ModelRegistry(root);
        foreach (var alias in new[] { PublishAlias.Champion, PublishAlias.None })
        {
            registry.Publish(new PublishRequest
            {
                Model = "fashion-mnist",
                Status = VersionStatus.Passed,
                Files = new Dictionary<string, string> { ["model.onnx"] = PinnedExtractor },
                Alias = alias,
                Reason = "seed",
            });
        }
    }

    private static void AssertEnvelope(BasicGetResult message, string model)
    {
        Assert.Equal(EventTypes.StructuredJsonContentType, message.BasicProperties.ContentType);
        Assert.True(message.BasicProperties.Persistent);
        using var json = JsonDocument.Parse(message.Body);
        var root = json.RootElement;
        Assert.Equal("1.0", root.GetProperty("specversion").GetString());
        Assert.Equal(ModelEventTypes.Promoted, root.GetProperty("type").GetString());
        Assert.Equal(model, root.GetProperty("subject").GetString());
        Assert.Equal(message.BasicProperties.MessageId, root.GetProperty("id").GetString());
        Assert.StartsWith("retrain-daemon/", root.GetProperty("source").GetString(), StringComparison.Ordinal);
        Assert.Equal(ModelEventTypes.PromotedRoutingKey, message.RoutingKey);
    }

    private static async Task<BasicGetResult> GetAsync(IChannel channel, string queue)
    {
        var deadline = DateTime.UtcNow + DeliveryBound;
        while (DateTime.UtcNow < deadline)
        {
            if (await channel.BasicGetAsync(queue, autoAck: true) is { } message)
            {
                return message;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"no event in {queue} within {DeliveryBound}");
    }

    private static async Task<(int Exit, string Output, TimeSpan Took)> RunCliAsync(string verb, string brokerEndpoint)
    {
        var watch = Stopwatch.StartNew();
        await using var process = DaemonProcess.StartRaw(verb, new Dictionary<string, string> { ["Broker:Endpoints:0"] = brokerEndpoint }, 0);
        int exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));
        return (exit, process.Output, watch.Elapsed);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"not within {timeout}: {what}");
            }

            await Task.Delay(50);
        }
    }

    private async Task<RunningConsumer> StartConsumerAsync(IModelChangeNotifier notifier)
    {
        var metrics = new ModelEventMetrics();
        var logger = new ListLogger<ModelEventsConsumer>();
        var consumer = new ModelEventsConsumer(Options.Create(Fixture.BrokerOptions), [notifier], metrics, logger);
        var running = new RunningConsumer(consumer, metrics, logger);
        await consumer.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => consumer.IsConsuming, TimeSpan.FromSeconds(30), "the consumer subscribed");
        return running;
    }

    /// <summary>A started consumer and the counter values when it started (the Prometheus registry is process-wide).</summary>
    private sealed class RunningConsumer(ModelEventsConsumer consumer, ModelEventMetrics metrics, ListLogger<ModelEventsConsumer> logger) : IAsyncDisposable
    {
        private static readonly string[] Types = [ModelEventTypes.PromotedRoutingKey, ModelEventTypes.RejectedRoutingKey, "unknown"];

        public ModelEventsConsumer Consumer { get; } = consumer;

        public ModelEventMetrics Metrics { get; } = metrics;

        public ListLogger<ModelEventsConsumer> Logger { get; } = logger;

        public double NotifiedBefore { get; } = metrics.Value(ModelEventTypes.PromotedRoutingKey, ModelEventResults.Notified);

        private readonly Dictionary<string, double> malformedBefore = Types.ToDictionary(t => t, t => metrics.Value(t, ModelEventResults.Malformed));

        public double MalformedTotal() => Types.Sum(t => Metrics.Value(t, ModelEventResults.Malformed));

        public double MalformedDelta(string type) => Metrics.Value(type, ModelEventResults.Malformed) - malformedBefore[type];

        public async ValueTask DisposeAsync()
        {
            var watch = Stopwatch.StartNew();
            await Consumer.StopAsync(CancellationToken.None);
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"stop took {watch.Elapsed}");
            Assert.True(Consumer.ExecuteTask!.IsCompletedSuccessfully, Consumer.ExecuteTask.Exception?.ToString());
            Consumer.Dispose();
        }
    }

    /// <summary>Records every model it is told about and lets a test wait for the n-th.</summary>
    private sealed class RecordingNotifier : IModelChangeNotifier
    {
        private readonly ConcurrentQueue<string> models = new();
        private readonly SemaphoreSlim arrived = new(0);

        public IReadOnlyCollection<string> Models => models;

        public void Notify(string model)
        {
            models.Enqueue(model);
            arrived.Release();
        }

        /// <summary>Waits until at least <paramref name="count"/> notifications arrived; returns the last model.</summary>
        public async Task<string> WaitAsync(int count, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (models.Count < count)
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero || !await arrived.WaitAsync(left))
                {
                    throw new TimeoutException($"{models.Count} of {count} notifications within {timeout}");
                }
            }

            return models.Last();
        }
    }

    /// <summary>A logger that keeps what was logged, to assert on it.</summary>
    private sealed class ListLogger<T> : ILogger<T>
    {
        private readonly ConcurrentQueue<(LogLevel Level, string Message)> entries = new();

        public IReadOnlyCollection<(LogLevel Level, string Message)> Entries => entries;

        public int Count(Func<(LogLevel Level, string Message), bool> predicate) => entries.Count(predicate);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            entries.Enqueue((logLevel, formatter(state, exception)));
    }
}
