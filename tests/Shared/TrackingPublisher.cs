using System.Collections.Concurrent;
using System.Diagnostics;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Publishing;

namespace RetrainDaemon.Tests.Shared;

/// <summary>
/// A test producer that keeps Jepsen's books: which ids the broker confirmed, and which were attempted
/// but never confirmed. It talks to RabbitMQ.Client directly — one connection over every endpoint of a
/// cluster with automatic recovery on, one channel with publisher confirms and confirm tracking,
/// mandatory persistent publishes — so that what is under test is the broker and the client, not the
/// project's own <see cref="ConfirmedPublisher"/> (which replaces its connection itself).
/// <para>
/// A publish counts as confirmed only when <c>BasicPublishAsync</c> completed, i.e. the broker acked it
/// into the queue's quorum. Anything else — a nack or return (<see cref="PublishException"/>), a closed
/// channel (<see cref="AlreadyClosedException"/>), <see cref="OperationInterruptedException"/>, or no
/// confirm within the attempt deadline — leaves its outcome unknown (the broker may hold a copy), and the
/// same message with the SAME id is published again until it is confirmed or the run gives up. The
/// deadline matters: with confirm tracking, 7.2 can leave a publish awaiting its confirm forever across a
/// connection loss (rabbitmq-dotnet-client#1928/#1930), so each attempt carries a token and a WaitAsync.
/// </para>
/// Named apart from <see cref="ConfirmedPublisher"/> on purpose: tests/Shared files sit in the namespace
/// that would otherwise shadow the project's class for <see cref="BrokerFixture"/>.
/// </summary>
public sealed class TrackingPublisher : IAsyncDisposable
{
    private readonly IConnection connection;
    private readonly IChannel channel;
    private readonly Stopwatch clock;
    private readonly ConcurrentDictionary<string, TimeSpan> confirmed = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> uncertain = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(TimeSpan At, string What)> connectionEvents = new();
    private long retries, nacks, returns, closed, interrupted, timeouts, otherErrors;

    private TrackingPublisher(IConnection connection, IChannel channel, Stopwatch clock)
    {
        this.connection = connection;
        this.channel = channel;
        this.clock = clock;
        connection.ConnectionShutdownAsync += (_, e) => Note($"connection lost ({e.Initiator}: {e.ReplyCode} {e.ReplyText})");
        connection.RecoverySucceededAsync += (_, _) => Note($"connection recovered to {Describe(connection)}");
        connection.ConnectionRecoveryErrorAsync += (_, e) => Note($"recovery attempt failed: {e.Exception.Message}");
    }

    /// <summary>Time since the publisher connected; <see cref="ConfirmedAt"/> and the event log use this clock.</summary>
    public TimeSpan Elapsed => clock.Elapsed;

    public int ConfirmedCount => confirmed.Count;

    /// <summary>Where the connection is now (<c>host:port</c>).</summary>
    public string CurrentEndpoint => Describe(connection);

    public IReadOnlyList<(TimeSpan At, string What)> ConnectionEvents => connectionEvents.ToList();

    private static string Describe(IConnection connection) => $"{connection.Endpoint.HostName}:{connection.Endpoint.Port}";

    private Task Note(string what)
    {
        connectionEvents.Enqueue((clock.Elapsed, what));
        return Task.CompletedTask;
    }

    /// <summary>
    /// Connects to the endpoints in the order given — first the first, the next only if it does not answer,
    /// and the same on every recovery — where the client's default resolver would shuffle them: a test can
    /// put the publisher on the node it is about to take down. The first connection is not covered by
    /// automatic recovery, so it is retried here until <paramref name="timeout"/>.
    /// </summary>
    public static async Task<TrackingPublisher> ConnectAsync(IReadOnlyList<string> endpoints, string clientName, TimeSpan timeout)
    {
        var factory = new ConnectionFactory
        {
            AutomaticRecoveryEnabled = true,
            TopologyRecoveryEnabled = true,
            // Short, so the outage the tests cause is what the figures show, not the client's default 5 s wait.
            NetworkRecoveryInterval = TimeSpan.FromSeconds(1),
            RequestedHeartbeat = TimeSpan.FromSeconds(10),
            ClientProvidedName = clientName,
        };
        var amqp = endpoints.Select(e => BrokerEndpoint(e)).ToList();
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                var clock = Stopwatch.StartNew();
                var connection = await factory.CreateConnectionAsync(new InOrder(amqp), clientName);
                // Our own semaphore bounds what is in flight; the client's throttling limiter slows publishing
                // 15–30× once half its permits are taken (PLATFORM.md), so none here.
                var channel = await connection.CreateChannelAsync(new CreateChannelOptions(
                    publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true, outstandingPublisherConfirmationsRateLimiter: null));
                return new TrackingPublisher(connection, channel, clock);
            }
            catch (BrokerUnreachableException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(250);
            }
        }
    }

    private sealed class InOrder(IReadOnlyList<AmqpTcpEndpoint> endpoints) : IEndpointResolver
    {
        public IEnumerable<AmqpTcpEndpoint> All() => endpoints;
    }

    private static AmqpTcpEndpoint BrokerEndpoint(string endpoint) =>
        Core.Options.BrokerOptions.TryParseEndpoint(endpoint, out var host, out int port)
            ? new AmqpTcpEndpoint(host, port)
            : throw new ArgumentException($"not a host:port endpoint: {endpoint}", nameof(endpoint));

    /// <summary>
    /// Publishes every message, at most <paramref name="maxInFlight"/> at a time, each retried with its own id
    /// until confirmed. Stops retrying once <paramref name="giveUpAfter"/> has passed since the call: what is
    /// unconfirmed then is reported, not thrown. <paramref name="messagesPerSecond"/> (0 = as fast as confirms
    /// allow) paces first attempts, so that a fault a test injects lands mid-stream: unpaced, 10,000 publishes
    /// are confirmed in under 2 s here, faster than a node stops.
    /// </summary>
    public async Task<TrackingReport> PublishAsync(IReadOnlyList<OutgoingMessage> messages, int maxInFlight, TimeSpan attemptTimeout, TimeSpan giveUpAfter, int messagesPerSecond = 0, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInFlight, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(messagesPerSecond);
        using var giveUp = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        giveUp.CancelAfter(giveUpAfter);
        var started = clock.Elapsed;
        using var slots = new SemaphoreSlim(maxInFlight, maxInFlight);
        var attempted = new ConcurrentDictionary<string, byte>(StringComparer.Ordinal);
        var running = new List<Task>(messages.Count);

        async Task PublishOneAsync(OutgoingMessage message)
        {
            try
            {
                var properties = new BasicProperties
                {
                    Persistent = true,
                    ContentType = EventTypes.StructuredJsonContentType,
                    MessageId = message.EventId,
                };
                for (int attempt = 0; !giveUp.IsCancellationRequested; attempt++)
                {
                    if (attempt > 0)
                    {
                        Interlocked.Increment(ref retries);
                        // Back off a little, and while automatic recovery is still reconnecting do not spin on
                        // AlreadyClosedException: wait for the connection (bounded by the run's deadline).
                        await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 50 << Math.Min(attempt - 1, 5)) + Random.Shared.Next(50)), giveUp.Token);
                        while (!channel.IsOpen)
                        {
                            await Task.Delay(100, giveUp.Token);
                        }
                    }

                    attempted.TryAdd(message.EventId, 0);
                    using var deadline = CancellationTokenSource.CreateLinkedTokenSource(giveUp.Token);
                    deadline.CancelAfter(attemptTimeout);
                    try
                    {
                        await channel.BasicPublishAsync(Topology.IngestExchange, message.RoutingKey, mandatory: true, properties, message.Body, deadline.Token)
                            .AsTask().WaitAsync(attemptTimeout + TimeSpan.FromSeconds(1), giveUp.Token);
                        confirmed.TryAdd(message.EventId, clock.Elapsed);
                        return;
                    }
                    catch (PublishException ex)
                    {
                        if (ex.IsReturn)
                        {
                            Interlocked.Increment(ref returns);
                        }
                        else
                        {
                            Interlocked.Increment(ref nacks);
                        }
                    }
                    catch (AlreadyClosedException)
                    {
                        Interlocked.Increment(ref closed);
                    }
                    catch (OperationInterruptedException)
                    {
                        Interlocked.Increment(ref interrupted);
                    }
                    catch (Exception ex) when (ex is OperationCanceledException or TimeoutException && !giveUp.IsCancellationRequested)
                    {
                        Interlocked.Increment(ref timeouts);
                    }
                    catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
                    {
                        // Anything else the client throws mid-recovery: still an unknown outcome, still retried.
                        Interlocked.Increment(ref otherErrors);
                    }

                    // The broker may have enqueued this attempt: if the id turns up stored without a confirm,
                    // it is "recovered" in Jepsen's terms.
                    uncertain.TryAdd(message.EventId, 0);
                }
            }
            catch (OperationCanceledException) when (giveUp.IsCancellationRequested)
            {
                // Gave up: the id stays attempted-but-unconfirmed.
            }
            finally
            {
                slots.Release();
            }
        }

        try
        {
            for (int i = 0; i < messages.Count; i++)
            {
                if (messagesPerSecond > 0)
                {
                    var due = started + TimeSpan.FromSeconds((double)i / messagesPerSecond);
                    if (due - clock.Elapsed is { Ticks: > 0 } wait)
                    {
                        await Task.Delay(wait, giveUp.Token);
                    }
                }

                await slots.WaitAsync(giveUp.Token);
                running.Add(PublishOneAsync(messages[i]));
            }
        }
        catch (OperationCanceledException) when (giveUp.IsCancellationRequested)
        {
        }

        await Task.WhenAll(running);
        var elapsed = clock.Elapsed - started;
        var confirmedIds = confirmed.Keys.ToHashSet(StringComparer.Ordinal);
        return new TrackingReport(
            confirmedIds,
            attempted.Keys.Where(id => !confirmedIds.Contains(id)).ToHashSet(StringComparer.Ordinal),
            uncertain.Keys.ToHashSet(StringComparer.Ordinal),
            confirmed.Values.Order().ToList(),
            Interlocked.Read(ref retries),
            Interlocked.Read(ref nacks),
            Interlocked.Read(ref returns),
            Interlocked.Read(ref closed),
            Interlocked.Read(ref interrupted),
            Interlocked.Read(ref timeouts),
            Interlocked.Read(ref otherErrors),
            elapsed);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await channel.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10));
            await connection.CloseAsync(TimeSpan.FromSeconds(5)).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception ex) when (ex is TimeoutException or AlreadyClosedException or OperationInterruptedException or IOException)
        {
        }

        channel.Dispose();
        connection.Dispose();
    }
}

/// <summary>
/// A publish run in Jepsen's terms. <see cref="Confirmed"/>: acked by the broker. <see cref="Unconfirmed"/>:
/// attempted, never confirmed (outcome unknown). <see cref="Uncertain"/>: ids with at least one attempt of
/// unknown outcome, confirmed later or not — the ones a redelivery or a duplicate publish can come from.
/// <see cref="ConfirmTimes"/>: every confirm, on the publisher's clock, ascending.
/// </summary>
public sealed record TrackingReport(
    IReadOnlySet<string> Confirmed,
    IReadOnlySet<string> Unconfirmed,
    IReadOnlySet<string> Uncertain,
    IReadOnlyList<TimeSpan> ConfirmTimes,
    long Retries,
    long Nacks,
    long Returns,
    long ClosedChannel,
    long Interrupted,
    long Timeouts,
    long OtherErrors,
    TimeSpan Elapsed)
{
    public double ConfirmedPerSecond => Elapsed.TotalSeconds > 0 ? Confirmed.Count / Elapsed.TotalSeconds : 0;

    /// <summary>The first confirm at or after <paramref name="at"/> (publisher clock), if any.</summary>
    public TimeSpan? FirstConfirmAtOrAfter(TimeSpan at)
    {
        foreach (var t in ConfirmTimes)
        {
            if (t >= at)
            {
                return t;
            }
        }

        return null;
    }

    /// <summary>The longest time without any confirm between <paramref name="from"/> and <paramref name="to"/>.</summary>
    public TimeSpan LongestConfirmGap(TimeSpan from, TimeSpan to)
    {
        var previous = from;
        var longest = TimeSpan.Zero;
        foreach (var t in ConfirmTimes)
        {
            if (t < from)
            {
                continue;
            }

            if (t > to)
            {
                break;
            }

            longest = t - previous > longest ? t - previous : longest;
            previous = t;
        }

        return to - previous > longest ? to - previous : longest;
    }
}
