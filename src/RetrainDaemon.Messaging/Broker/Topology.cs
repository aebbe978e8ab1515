using RabbitMQ.Client;
using RetrainDaemon.Core.Options;

namespace RetrainDaemon.Messaging.Broker;

/// <summary>
/// The broker objects of DESIGN.md §3, declared idempotently by every process that touches them
/// (daemon and producers), and mirrored in <c>deploy/rabbitmq/definitions.json</c>.
/// RabbitMQ 3.10 has no default delivery limit, so every argument is explicit.
/// </summary>
public static class Topology
{
    public const string IngestExchange = "retrain.ingest";
    public const string DeadLetterExchange = "retrain.dlx";
    public const string EventsExchange = "retrain.events";
    public const string SamplesQueue = "retrain.samples";
    public const string FeedbackQueue = "retrain.feedback";
    public const string DeadLetterQueue = "retrain.dead";

    /// <summary>Headers the daemon adds to a message it dead-letters itself.</summary>
    public const string RejectReasonHeader = "x-retrain-reject-reason";
    public const string RejectDetailHeader = "x-retrain-reject-detail";
    public const string OriginalQueueHeader = "x-retrain-original-queue";
    public const string RejectedAtHeader = "x-retrain-rejected-at";

    public static Dictionary<string, object?> IngestQueueArguments(IngestOptions options) => new()
    {
        ["x-queue-type"] = "quorum",
        ["x-delivery-limit"] = options.DeliveryLimit,
        ["x-dead-letter-exchange"] = DeadLetterExchange,
        // at-least-once dead-lettering needs reject-publish overflow (quorum-queue docs).
        ["x-dead-letter-strategy"] = "at-least-once",
        ["x-overflow"] = "reject-publish",
        ["x-max-length"] = options.QueueMaxLength,
    };

    public static async Task DeclareAsync(IChannel channel, IngestOptions options, CancellationToken cancellationToken)
    {
        await channel.ExchangeDeclareAsync(IngestExchange, ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken).ConfigureAwait(false);
        await channel.ExchangeDeclareAsync(DeadLetterExchange, ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken).ConfigureAwait(false);
        await channel.ExchangeDeclareAsync(EventsExchange, ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken).ConfigureAwait(false);

        await channel.QueueDeclareAsync(DeadLetterQueue, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-queue-type"] = "quorum" }, cancellationToken: cancellationToken).ConfigureAwait(false);
        await channel.QueueBindAsync(DeadLetterQueue, DeadLetterExchange, "#", cancellationToken: cancellationToken).ConfigureAwait(false);

        foreach (var (queue, pattern) in new[] { (SamplesQueue, "sample.#"), (FeedbackQueue, "feedback.#") })
        {
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false,
                arguments: IngestQueueArguments(options), cancellationToken: cancellationToken).ConfigureAwait(false);
            await channel.QueueBindAsync(queue, IngestExchange, pattern, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
    }
}
