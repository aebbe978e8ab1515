using System.Text.Json;
using Microsoft.Extensions.Options;
using Prometheus;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Events;
using RetrainDaemon.Messaging.Ingestion;
using RetrainDaemon.Serving.Http;
using RetrainDaemon.Serving.Runtime;

namespace RetrainDaemon.Hosting;

/// <summary>One extension per pipeline stage; <c>Program.cs</c> calls them in order.</summary>
public static class HostingExtensions
{
    /// <summary>Configuration, systemd integration, shutdown budget, Kestrel URLs.</summary>
    public static WebApplicationBuilder AddDaemonDefaults(this WebApplicationBuilder builder, IConfiguration configuration)
    {
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddConfiguration(configuration);
        builder.Services.AddSystemd();
        builder.Services.Configure<HostOptions>(o =>
        {
            // systemd's TimeoutStopSec (deploy/) must stay above this.
            o.ShutdownTimeout = TimeSpan.FromSeconds(30);
            o.BackgroundServiceExceptionBehavior = BackgroundServiceExceptionBehavior.StopHost;
        });
        builder.Services.AddValidatedOptions<HttpOptions, HttpOptionsValidator>(HttpOptions.Section);
        builder.Services.AddValidatedOptions<OperationsOptions, OperationsOptionsValidator>(OperationsOptions.Section).Services.AddHostedService<OperationsMetrics>();
        var http = configuration.GetSection(HttpOptions.Section).Get<HttpOptions>() ?? new HttpOptions();
        builder.WebHost.UseUrls(http.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        return builder;
    }

    /// <summary>
    /// <c>Node:Roles</c> (ingest, train, serve; all three by default): the stages of the roles this node lacks are
    /// switched off before any stage reads its switch, so a serving-only node never starts Quartz or the queue
    /// consumers, and never loads TorchSharp. Unknown or no roles stop the start with the setting named.
    /// </summary>
    public static WebApplicationBuilder AddNodeRoles(this WebApplicationBuilder builder)
    {
        var (roles, failures) = NodeRoles.Parse(builder.Configuration.GetSection(NodeOptions.Section)[nameof(NodeOptions.Roles)] ?? new NodeOptions().Roles);
        if (failures.Count > 0)
        {
            throw new OptionsValidationException(NodeOptions.Section, typeof(NodeOptions), failures);
        }

        builder.Configuration.AddInMemoryCollection(NodeRoles.Overrides(roles));
        builder.Services.AddSingleton(roles);
        return builder;
    }

    /// <summary>The sample/feedback store selected by <c>Store:Provider</c>.</summary>
    public static WebApplicationBuilder AddStore(this WebApplicationBuilder builder)
    {
        builder.Services.AddValidatedOptions<StoreOptions, StoreOptionsValidator>(StoreOptions.Section);
        // Npgsql's own reading of a PostgreSQL connection string, checked at start with the rest (Core has no driver).
        builder.Services.AddSingleton<IValidateOptions<StoreOptions>, PostgresConnectionValidator>();
        // One object is the sample store, the run ledger and the loop's queries (IDaemonStore), whichever the provider.
        builder.Services.AddSingleton<IDaemonStore>(sp => SampleStores.Open(sp.GetRequiredService<IOptions<StoreOptions>>().Value));
        builder.Services.AddSingleton<ISampleStore>(sp => sp.GetRequiredService<IDaemonStore>());
        builder.Services.AddGenerationJournal();
        return builder;
    }

    /// <summary>The model registry (recovered at start) and the evaluation protocol's options.</summary>
    public static WebApplicationBuilder AddRegistry(this WebApplicationBuilder builder)
    {
        builder.Services.AddValidatedOptions<RegistryOptions, RegistryOptionsValidator>(RegistryOptions.Section);
        builder.Services.AddValidatedOptions<EvaluationOptions, EvaluationOptionsValidator>(EvaluationOptions.Section);
        builder.Services.AddSingleton(sp => new ModelRegistry(sp.GetRequiredService<IOptions<RegistryOptions>>().Value));
        builder.Services.AddHostedService<RegistryRecovery>();
        return builder;
    }

    /// <summary>Broker connection, model catalog, decoder and the ingestion consumer.</summary>
    public static WebApplicationBuilder AddIngestion(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddValidatedOptions<BrokerOptions, BrokerOptionsValidator>(BrokerOptions.Section);
        services.AddValidatedOptions<IngestOptions, IngestOptionsValidator>(IngestOptions.Section);
        services.AddModelCatalog();
        services.AddSingleton(sp => new BrokerConnector(sp.GetRequiredService<IOptions<BrokerOptions>>().Value, sp.GetRequiredService<ILogger<BrokerConnector>>()));
        services.AddSingleton(sp => new MessageDecoder(sp.GetRequiredService<IOptions<ModelCatalogOptions>>().Value, sp.GetRequiredService<IOptions<IngestOptions>>().Value));
        services.AddSingleton<IngestMetrics>();
        services.AddSingleton<IngestionHealth>();
        if (builder.Configuration.GetSection(IngestOptions.Section).GetValue(nameof(IngestOptions.Enabled), true))
        {
            services.AddHostedService<IngestionConsumer>();
            services.AddHostedService(sp => new QueueDepthMonitor(new BrokerConnector(sp.GetRequiredService<IOptions<BrokerOptions>>().Value, sp.GetRequiredService<ILogger<BrokerConnector>>()) { TracksHealth = false }, sp.GetRequiredService<ILogger<QueueDepthMonitor>>()));
        }
        return builder;
    }

    /// <summary>
    /// The <c>model.promoted</c> consumer: tells the serving runtime to look at the registry at once
    /// (the file watch and poll would find the change anyway, a little later).
    /// </summary>
    public static WebApplicationBuilder AddModelEvents(this WebApplicationBuilder builder)
    {
        builder.Services.AddModelEvents();
        // The review page's ratings go out through the broker like the events, and its analysis links read the loop's folder.
        builder.Services.AddReviewServices();
        return builder;
    }

    public static IServiceCollection AddModelCatalog(this IServiceCollection services)
    {
        services.AddSingleton<IValidateOptions<ModelCatalogOptions>, ModelCatalogOptionsValidator>();
        services.AddOptions<ModelCatalogOptions>()
            .Configure<IConfiguration>((o, configuration) => configuration.GetSection(ModelCatalogOptions.Section).Bind(o.Models))
            .ValidateOnStart();
        return services;
    }

    public static OptionsBuilder<T> AddValidatedOptions<T, TValidator>(this IServiceCollection services, string section)
        where T : class
        where TValidator : class, IValidateOptions<T>
    {
        services.AddSingleton<IValidateOptions<T>, TValidator>();
        return services.AddOptions<T>().BindConfiguration(section).ValidateOnStart();
    }

    /// <summary>
    /// <c>/metrics</c> for Prometheus and the Open Inference Protocol health routes. Ready (200) needs
    /// the broker, the store, the consumer and — when <c>Serving:Enabled</c> — every served model;
    /// the 503 body says which part is not, and for each model why.
    /// </summary>
    public static WebApplication MapOperationalEndpoints(this WebApplication app)
    {
        app.UseHttpMetrics();
        app.MapMetrics("/metrics");
        app.MapGet("/v2/health/live", () => Results.Json(new { live = true }));
        app.MapGet("/v2/health/ready", async (BrokerConnector broker, IngestionHealth ingestion, IOptions<IngestOptions> ingest, ISampleStore store, IOptions<ServingOptions> serving, IServiceProvider services, IHostApplicationLifetime lifetime, CancellationToken cancellationToken) =>
        {
            // Shutting down (the serving drain period): not ready, so load balancers stop sending.
            bool stopping = lifetime.ApplicationStopping.IsCancellationRequested;
            bool storeUp = (!ingest.Value.Enabled || ingestion.StoreUp) && await store.PingAsync(cancellationToken);
            // Serving: every served model needs a verified, warmed version (a node that should serve and cannot is not ready).
            bool servingOn = serving.Value.Enabled && services.GetService<IServedModels>() is not null;
            var models = servingOn ? ServingReadiness.Check(services.GetRequiredService<IServedModels>()) : [];
            bool modelsReady = models.All(m => m.Ready);
            // A serving-only node (Ingest:Enabled false) is ready without consuming.
            bool ingesting = ingest.Value.Enabled;
            bool ready = !stopping && broker.IsOpen && (!ingesting || ingestion.Consuming) && storeUp && modelsReady;
            var body = new
            {
                ready,
                broker = broker.IsOpen ? "connected" : "disconnected",
                store = storeUp ? "up" : ingestion.StoreError ?? "down",
                ingestion = !ingesting ? "disabled" : ingestion.Consuming ? "consuming" : "stopped",
                serving = !servingOn ? "disabled" : modelsReady ? "ready" : "not ready",
                models = models.Select(m => new { name = m.Name, ready = m.Ready, version = m.Version, reason = m.Reason }),
                stopping,
            };
            return Results.Json(body, statusCode: ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
        });
        return app;
    }

    /// <summary>Every options failure as "Section:Key = 'value': problem", from a failed start.</summary>
    public static IReadOnlyList<string> OptionsFailures(Exception exception) => exception switch
    {
        OptionsValidationException ove => ove.Failures.ToList(),
        AggregateException ae => ae.InnerExceptions.SelectMany(OptionsFailures).ToList(),
        _ when exception.InnerException is not null => OptionsFailures(exception.InnerException),
        _ => [],
    };

    internal static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
}
