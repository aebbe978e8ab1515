using RabbitMQ.Client;
using RetrainDaemon.Messaging.Ingestion;

namespace RetrainDaemon.UnitTests;

/// <summary>
/// When one multiple-ack may settle a batch: only if the batch's delivery tags continue exactly
/// from the last settled tag. Anything else could acknowledge a delivery that was never stored.
/// </summary>
public class AckPolicyTests
{
    private static IngestionConsumer.Decoded[] Batch(params ulong[] tags) =>
        tags.Select(t => new IngestionConsumer.Decoded(
            new IngestionConsumer.Delivery(t, "retrain.samples", "sample.x", false, [], 0, new BasicProperties()), null, null)).ToArray();

    [Theory]
    [InlineData(0UL, new ulong[] { 1, 2, 3 }, true)] // first batch on a channel
    [InlineData(256UL, new ulong[] { 257, 258 }, true)] // continues the previous batch
    [InlineData(256UL, new ulong[] { 258, 259 }, false)] // 257 was skipped: it must not be acked by accident
    [InlineData(256UL, new ulong[] { 257, 259 }, false)] // a hole inside the batch
    [InlineData(256UL, new ulong[] { 258, 257 }, false)] // out of order
    [InlineData(256UL, new ulong[] { 256, 257 }, false)] // a tag settled before (redelivery bookkeeping gone wrong)
    [InlineData(100UL, new ulong[] { 1000 }, false)] // after a connection recovery the numbering jumped
    public void MultipleAck_OnlyOverContiguousTags(ulong lastSettled, ulong[] tags, bool expected)
    {
        Assert.Equal(expected, IngestionConsumer.IsContiguousFrom(lastSettled, Batch(tags)));
    }
}
