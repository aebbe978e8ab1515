using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Loop;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Publishing;

namespace RetrainDaemon.Hosting;

/// <summary>Registration of what the review page (served by the Serving project) needs from the daemon.</summary>
public static class ReviewServicesExtensions
{
    /// <summary>
    /// <see cref="IFeedbackPublisher"/> over the daemon's broker settings and <see cref="IAnalysisReports"/> over
    /// <c>Loop:AnalysisDirectory</c>. Reads the <c>Broker</c>, <c>Ingest</c> and <c>Loop</c> options the other stages
    /// register (call after <c>AddIngestion</c>). Idempotent.
    /// </summary>
    public static IServiceCollection AddReviewServices(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton<IFeedbackPublisher>(sp => new BrokerFeedbackPublisher(
            sp.GetRequiredService<IOptions<BrokerOptions>>().Value,
            sp.GetRequiredService<IOptions<IngestOptions>>().Value,
            sp.GetRequiredService<ILoggerFactory>()));
        services.TryAddSingleton<IAnalysisReports>(sp => new AnalysisReportsDirectory(sp.GetRequiredService<IOptions<LoopOptions>>().Value.AnalysisDirectory));
        return services;
    }
}

/// <summary>
/// Publishes review-page ratings as <c>retrain.feedback.v1</c> CloudEvents to <c>retrain.ingest</c> with the same
/// <see cref="ConfirmedPublisher"/> the <c>publish feedback</c> command uses (persistent, mandatory, confirmed), so a
/// rating travels the way any producer's does and ingestion judges it like any other.
/// <para>
/// One connection of its own, opened at the first rating and kept (ratings come at human speed, a connection per
/// click would be waste); publishes are serialized. Its connector does not track health: readiness and
/// <c>retrain_broker_connected</c> describe the ingestion connection, not this one. A publish is bounded by
/// <see cref="Deadline"/> (and by the HTTP request's own timeout): the person clicking waits for the broker's
/// confirm, or gets the reason it did not come. After a failure the next rating connects again.
/// </para>
/// </summary>
public sealed partial class BrokerFeedbackPublisher : IFeedbackPublisher, IAsyncDisposable
{
    /// <summary>The CloudEvent <c>source</c> of review-page feedback.</summary>
    public const string Source = "/retrain-daemon/review-page";

    /// <summary>How long one rating may take to be confirmed, connecting included.</summary>
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(8);

    private readonly BrokerOptions broker;
    private readonly IngestOptions ingest;
    private readonly ILoggerFactory loggers;
    private readonly ILogger logger;
    private readonly SemaphoreSlim gate = new(1, 1);
    private ConfirmedPublisher? publisher;
    private bool disposed;

    public BrokerFeedbackPublisher(BrokerOptions broker, IngestOptions ingest, ILoggerFactory loggers)
    {
        ArgumentNullException.ThrowIfNull(broker);
        ArgumentNullException.ThrowIfNull(loggers);
        // A copy with a name of its own (the broker's connection list tells it from ingestion) and a short connect
        // budget: a person is waiting, so an unreachable broker is reported after two tries instead of retried forever.
        this.broker = new BrokerOptions
        {
            Endpoints = [.. broker.Endpoints],
            VirtualHost = broker.VirtualHost,
            UserName = broker.UserName,
            Password = broker.Password,
            PasswordFile = broker.PasswordFile,
            ClientName = broker.ClientName + " review-feedback",
            Heartbeat = broker.Heartbeat,
            NetworkRecoveryInterval = broker.NetworkRecoveryInterval,
            ConnectRetryInitial = TimeSpan.FromMilliseconds(250),
            ConnectRetryMax = TimeSpan.FromSeconds(1),
            ConnectAttempts = 2,
        };
        this.ingest = ingest;
        this.loggers = loggers;
        logger = loggers.CreateLogger<BrokerFeedbackPublisher>();
    }

    /// <summary>The structured-mode CloudEvent of <paramref name="rating"/> (DESIGN.md §3), routed to the feedback queue.</summary>
    public static OutgoingMessage Encode(FeedbackRating rating)
    {
        ArgumentNullException.ThrowIfNull(rating);
        var data = new JsonObject
        {
            ["generation_id"] = rating.GenerationId,
            ["model"] = rating.Model,
            ["version"] = rating.Version,
            ["rating"] = rating.Rating,
            ["rater"] = rating.Rater,
        };
        return CloudEventEncoder.Encode(rating.EventId, EventTypes.Feedback, rating.Model, Source, data);
    }

    public async Task PublishAsync(FeedbackRating rating, CancellationToken cancellationToken)
    {
        var message = Encode(rating);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(Deadline);
        try
        {
            await gate.WaitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new FeedbackPublishException(Invariant($"the broker did not take the rating within {Deadline.TotalSeconds:0} s (earlier ratings are still waiting for it)"));
        }

        try
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            var connected = await ConnectAsync(deadline.Token, cancellationToken).ConfigureAwait(false);
            var summary = await connected.PublishAsync([message], 1, progress: null, deadline.Token).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            if (summary.Confirmed == 1)
            {
                LogPublished(logger, rating.Model, rating.Version, rating.GenerationId, rating.Rating, message.EventId);
                return;
            }

            // Failed ids read "<event id>: <reason>"; the reason is what the person is told.
            string reason = summary.FailedIds.Count > 0 ? summary.FailedIds[0][(message.EventId.Length + 2)..] : "no confirm";
            if (deadline.IsCancellationRequested)
            {
                reason = Invariant($"no confirm from the broker within {Deadline.TotalSeconds:0} s");
            }

            // The connection may be wedged (the client can leave a publish unconfirmed for ever): start afresh next time.
            await DropAsync().ConfigureAwait(false);
            LogNotPublished(logger, rating.Model, rating.GenerationId, reason);
            throw new FeedbackPublishException($"the rating was not published: {reason}");
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task<ConfirmedPublisher> ConnectAsync(CancellationToken deadline, CancellationToken caller)
    {
        if (publisher is { } open)
        {
            return open;
        }

        var connector = new BrokerConnector(broker, loggers.CreateLogger<BrokerConnector>()) { TracksHealth = false };
        try
        {
            // One attempt per publish (the publisher retries a failed publish on a new connection itself).
            publisher = await ConfirmedPublisher.ConnectAsync(connector, ingest, loggers.CreateLogger<ConfirmedPublisher>(), window: 1, maxAttempts: 3, deadline).ConfigureAwait(false);
            return publisher;
        }
        catch (OperationCanceledException) when (!caller.IsCancellationRequested)
        {
            throw new FeedbackPublishException(Invariant($"the broker at {string.Join(", ", broker.Endpoints)} did not accept a connection within {Deadline.TotalSeconds:0} s"));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // BrokerConnector names the endpoint, the attempts and the refusal (a wrong password included, never the
            // password); a topology declaration the broker refuses names the queue and the argument.
            LogNotPublished(logger, "-", "-", ex.Message);
            throw new FeedbackPublishException($"the rating was not published: {ex.Message}", ex);
        }
    }

    private async Task DropAsync()
    {
        if (publisher is { } old)
        {
            publisher = null;
            await old.DisposeAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await gate.WaitAsync().ConfigureAwait(false);
        try
        {
            disposed = true;
            await DropAsync().ConfigureAwait(false);
        }
        finally
        {
            gate.Release();
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    [LoggerMessage(EventId = 1100, Level = LogLevel.Information, Message = "Review page: published rating {Rating} of {Model} v{Version} generation {GenerationId} (event {EventId})")]
    private static partial void LogPublished(ILogger logger, string model, int version, string generationId, int rating, string eventId);

    [LoggerMessage(EventId = 1101, Level = LogLevel.Warning, Message = "Review page: rating of {Model} generation {GenerationId} not published: {Reason}")]
    private static partial void LogNotPublished(ILogger logger, string model, string generationId, string reason);
}

/// <summary>
/// The error-analysis reports under <c>Loop:AnalysisDirectory</c>: <c>&lt;dir&gt;/&lt;model&gt;/&lt;run id&gt;/report.json</c>.
/// The newest is the one whose <c>report.json</c> was written last (run ids are not promised to sort by time);
/// a run folder without <c>report.json</c> is an analysis still writing, or one that failed, and is passed over.
/// </summary>
public sealed class AnalysisReportsDirectory(string root) : IAnalysisReports
{
    public string Root { get; } = Path.GetFullPath(root);

    public AnalysisReportLocation? Latest(string model)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        // The name comes from a URL: only a plain folder name may reach the file system.
        if (model is "." or ".." || model.IndexOfAny(['/', '\\', '\0']) >= 0)
        {
            return null;
        }

        var directory = new DirectoryInfo(Path.Combine(Root, model));
        if (!directory.Exists)
        {
            return null;
        }

        AnalysisReportLocation? newest = null;
        foreach (var run in directory.EnumerateDirectories())
        {
            var json = new FileInfo(Path.Combine(run.FullName, AnalysisReportLocation.JsonFileName));
            if (!json.Exists)
            {
                continue;
            }

            var written = new DateTimeOffset(json.LastWriteTimeUtc, TimeSpan.Zero);
            if (newest is null || written > newest.WrittenAt || (written == newest.WrittenAt && string.CompareOrdinal(run.Name, newest.RunId) > 0))
            {
                newest = new AnalysisReportLocation(model, run.Name, run.FullName, written);
            }
        }

        return newest;
    }
}
