using RabbitMQ.Client;

namespace RetrainDaemon.Tests.Shared;

/// <summary>What is in a queue, read over AMQP (rabbitmqctl's counts lag ~5 s for quorum queues).</summary>
public static class BrokerProbe
{
    public static async Task<uint> DepthAsync(PrivateBroker broker, string queue)
    {
        await using var connection = await broker.ConnectAsync();
        await using var channel = await connection.CreateChannelAsync();
        var ok = await channel.QueueDeclarePassiveAsync(queue);
        return ok.MessageCount;
    }

    public static async Task PurgeAsync(PrivateBroker broker, params string[] queues)
    {
        await using var connection = await broker.ConnectAsync();
        await using var channel = await connection.CreateChannelAsync();
        foreach (var queue in queues)
        {
            try
            {
                await channel.QueuePurgeAsync(queue);
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                return; // not declared yet
            }
        }
    }

    /// <summary>Takes every message from <paramref name="queue"/> (acking them) with its headers as strings.</summary>
    public static async Task<List<(string? MessageId, Dictionary<string, string> Headers, byte[] Body)>> DrainAsync(PrivateBroker broker, string queue)
    {
        await using var connection = await broker.ConnectAsync();
        await using var channel = await connection.CreateChannelAsync();
        var messages = new List<(string?, Dictionary<string, string>, byte[])>();
        while (await channel.BasicGetAsync(queue, autoAck: true) is { } result)
        {
            var headers = new Dictionary<string, string>();
            foreach (var (key, value) in result.BasicProperties.Headers ?? new Dictionary<string, object?>())
            {
                headers[key] = value switch
                {
                    byte[] bytes => System.Text.Encoding.UTF8.GetString(bytes),
                    null => "",
                    _ => value.ToString() ?? "",
                };
            }

            messages.Add((result.BasicProperties.MessageId, headers, result.Body.ToArray()));
        }

        return messages;
    }

    public static async Task WaitForDepthAsync(PrivateBroker broker, string queue, uint expected, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (await DepthAsync(broker, queue) == expected)
            {
                return;
            }

            await Task.Delay(200);
        }
    }
}
