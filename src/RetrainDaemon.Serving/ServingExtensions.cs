using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Serving.Generation;
using RetrainDaemon.Serving.Http;
using RetrainDaemon.Serving.Observability;
using RetrainDaemon.Serving.Runtime;

namespace RetrainDaemon.Serving;

/// <summary>
/// The serving stage of the daemon: <c>builder.AddServing()</c> registers the runtime (sessions,
/// hot swap), the generation batcher, OpenAPI and Kestrel's limits and listeners;
/// <c>app.MapServing()</c> maps the routes. The routes, their JSON and their status codes are
/// described by the OpenAPI document the server publishes at <c>/openapi/v1.json</c>.
/// </summary>
public static partial class ServingExtensions
{
    /// <summary>The OpenAPI document of the serving routes: <c>/openapi/v1.json</c>.</summary>
    public const string OpenApiDocument = "v1";

    private const string ProtocolTag = "Open Inference Protocol v2";
    private const string GenerationTag = "Generation";
    private const string AdminTag = "Admin";

    /// <summary>
    /// Registers serving: the runtime (<see cref="ServingRuntimeExtensions.AddServingRuntime"/>:
    /// validated <see cref="ServingOptions"/>, sessions, hot swap), Kestrel's body limit
    /// (<see cref="ServingOptions.MaxRequestBodyBytes"/>, 413 beyond), and when
    /// <see cref="ServingOptions.Enabled"/>: the batcher, the request machinery, OpenAPI, and the
    /// admin listener(s) of <see cref="ServingOptions.AdminUrls"/> next to <c>Http:Urls</c>.
    /// </summary>
    /// <exception cref="OptionsValidationException">An admin URL without an explicit port of its own.</exception>
    public static WebApplicationBuilder AddServing(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        // Options (validated at start), sessions, hot swap; with Serving:Enabled=false it serves no model.
        services.AddServingRuntime();

        // Kestrel is configured before the host exists, so these two settings are read here; the
        // validated options (ValidateOnStart) still refuse a bad value before anything listens.
        var options = Bind<ServingOptions>(builder.Configuration, ServingOptions.Section);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes);
        if (!options.Enabled)
        {
            return builder;
        }

        services.TryAddSingleton<ServingMetrics>();
        services.AddSingleton<ServingDrain>();
        services.AddHostedService(sp => sp.GetRequiredService<ServingDrain>());
        services.TryAddSingleton<Core.Contracts.ServingOutcomes>();
        services.AddSingleton<ServingHttp>();
        services.AddSingleton<InferenceAdmission>();
        services.AddSingleton<IGeneratorBackend, OnnxGeneratorBackend>();
        services.AddSingleton<GenerationBatcher>();
        services.ConfigureHttpJsonOptions(json =>
        {
            // The OpenAPI generator describes bodies with these options: snake_case, like the wire format.
            json.SerializerOptions.TypeInfoResolverChain.Insert(0, ServingJsonContext.Default);
            json.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            json.SerializerOptions.NumberHandling = JsonNumberHandling.Strict; // numbers in quotes are refused, so documented as numbers only
        });
        services.AddOpenApi(OpenApiDocument, openApi => openApi.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "RetrainDaemon serving API";
            document.Info.Description =
                "Open Inference Protocol v2 REST subset, image generation and admin routes. Inference routes need " +
                "'Authorization: Bearer <api key>' when Serving:ApiKeys/ApiKeysFile are set; admin routes need the admin key. " +
                "Errors are {\"error\": \"...\"}; every answer from a model names its version in X-Model-Version.";
            return Task.CompletedTask;
        }));

        var adminUrls = Urls(options.AdminUrls);
        if (adminUrls.Count > 0)
        {
            var http = Bind<HttpOptions>(builder.Configuration, HttpOptions.Section);
            var publicUrls = Urls(http.Urls);
            AdminPorts(adminUrls, publicUrls);
            builder.WebHost.UseUrls([.. publicUrls, .. adminUrls]);
        }

        return builder;
    }

    /// <summary>
    /// Maps the serving routes (nothing when serving is disabled). Reads the API key files now, so a
    /// missing or bad key file stops the start with the setting named.
    /// </summary>
    /// <exception cref="OptionsValidationException">Invalid serving options or key files.</exception>
    public static WebApplication MapServing(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var options = app.Services.GetRequiredService<IOptions<ServingOptions>>().Value;
        if (!options.Enabled)
        {
            return app;
        }

        var keys = ApiKeys.Load(options);
        var http = app.Services.GetRequiredService<ServingHttp>();
        var inferenceKey = new ApiKeyFilter(keys, admin: false, http);
        var drain = app.Services.GetRequiredService<ServingDrain>();
        app.Use((context, next) =>
        {
            // Decided when the answer starts: a request in flight at SIGTERM is answered with it too.
            context.Response.OnStarting(static state =>
            {
                var (response, drain) = ((HttpResponse, ServingDrain))state;
                if (drain.Draining)
                {
                    response.Headers.Connection = "close";
                }

                return Task.CompletedTask;
            }, (context.Response, drain));
            return next(context);
        });
        app.MapOpenApi("/openapi/{documentName}.json");

        app.MapGet("/v2", InferenceEndpoints.ServerMetadataAsync)
            .Route(ServingRoute.ServerMetadata, ProtocolTag, "Server metadata", "Name, version and extensions of the server (no key needed).")
            .Produces<ServerMetadata>();

        foreach (string prefix in new[] { "/v2/models/{model}", "/v2/models/{model}/versions/{version}" })
        {
            bool versioned = prefix.EndsWith("{version}", StringComparison.Ordinal);
            string which = versioned ? " The version must be the serving one (404 naming it otherwise)." : "";
            (versioned
                ? app.MapGet(prefix, (string model, string version, HttpContext h, [FromServices] ServingHttp s) => InferenceEndpoints.ModelMetadataAsync(model, version, h, s))
                : app.MapGet(prefix, (string model, HttpContext h, [FromServices] ServingHttp s) => InferenceEndpoints.ModelMetadataAsync(model, null, h, s)))
                .Route(ServingRoute.ModelMetadata, ProtocolTag, "Model metadata", "Platform, inputs and outputs (datatype, shape with -1 for dynamic dimensions), execution provider and readiness of the serving version." + which)
                .Produces<ModelMetadata>()
                .Errors(401, 403, 404, 503)
                .AddEndpointFilter(inferenceKey);
            (versioned
                ? app.MapGet(prefix + "/ready", (string model, string version, HttpContext h, [FromServices] ServingHttp s) => InferenceEndpoints.ModelReadyAsync(model, version, h, s))
                : app.MapGet(prefix + "/ready", (string model, HttpContext h, [FromServices] ServingHttp s) => InferenceEndpoints.ModelReadyAsync(model, null, h, s)))
                .Route(ServingRoute.ModelReady, ProtocolTag, "Model readiness", "200 when a verified, warmed version serves; 503 with the reason otherwise." + which)
                .Produces<ModelReadyResponse>()
                .Produces<ModelReadyResponse>(StatusCodes.Status503ServiceUnavailable)
                .Errors(401, 403, 404)
                .AddEndpointFilter(inferenceKey);
            (versioned
                ? app.MapPost(prefix + "/infer", (string model, string version, HttpContext h, [FromServices] ServingHttp s, [FromServices] InferenceAdmission a) => InferenceEndpoints.InferAsync(model, version, h, s, a))
                : app.MapPost(prefix + "/infer", (string model, HttpContext h, [FromServices] ServingHttp s, [FromServices] InferenceAdmission a) => InferenceEndpoints.InferAsync(model, null, h, s, a)))
                .Route(ServingRoute.Infer, ProtocolTag, "Inference",
                    "JSON tensor format: inputs with name, shape, datatype and data (flat or nested, row-major); optional outputs by name; id echoed. " +
                    "400 names the expected input, datatype or shape; 429 when the model's queue is full; 503 when not ready or timed out." + which)
                .JsonBody<InferRequest>()
                .Produces<InferResponse>()
                .Errors(400, 401, 403, 404, 413, 429, 500, 503)
                .AddEndpointFilter(inferenceKey);
        }

        app.MapPost("/v1/models/{model}/generate", GenerateEndpoint.GenerateAsync)
            .Route(ServingRoute.Generate, GenerationTag, "Generate images or text",
                "Text models (gpt): body {prompt (lm) | source (conditional), max_new_tokens 1..Serving:MaxNewTokens (default 64), temperature 0..100 (default 1, 0 greedy), " +
                "top_k 0..vocabulary (0 off), top_p (0, 1] (1 off), seed 0..2^53-1 (same seed, request and version: same text; absent: random, reported), stop (<= 4 strings of 1..64 chars, excluded from the text), stream}; " +
                "answer {model, version, generation_id, text, finish_reason (eos | stop | length | context), prompt_tokens, completion_tokens, seed}; with stream true, text/event-stream: " +
                "'token' events {text, index} as text is released, then 'done' with the answer, or 'error' {error}. 400 names a bad field, a prompt beyond the context names the limit. " +
                "Image generators: count 1..Serving:MaxSamplesPerRequest; class (class-conditioned generators); seed 0..2^53-1 (same seed, same version: same images; absent: random, reported); " +
                "truncation psi in (0, 1] (latent components redrawn until |z| <= 2 psi); format json (base64 PNGs, default), png (count 1, image/png) or grid (one image/png). " +
                "Every sample has a generation_id for feedback; png and grid answer 200 with an image/png body and the headers X-Model-Version, X-Generation-Ids (comma-separated, grid order), X-Seed and X-Classes.")
            .JsonBody<GenerateRequest>()
            // One 200 per endpoint survives in the document: the JSON one; the PNG formats are in the description.
            .Produces<GenerateResponse>()
            .Errors(400, 401, 403, 404, 413, 429, 500, 503)
            .AddEndpointFilter(inferenceKey);

        MapReview(app, inferenceKey, keysRequired: !keys.InferenceOpen);

        var adminPorts = AdminPorts(Urls(options.AdminUrls), []);
        if (keys.AdminEnabled)
        {
            var adminKey = new ApiKeyFilter(keys, admin: true, http);
            var promote = app.MapPost("/admin/models/{model}/promote", AdminEndpoints.PromoteAsync)
                .Route(ServingRoute.Promote, AdminTag, "Promote a version",
                    "Body {\"version\": n, \"reason\": \"...\"}: makes a passed, verifying version the champion and tells the server to swap to it. 409 when the registry refuses.")
                .JsonBody<PromoteRequest>();
            var rollback = app.MapPost("/admin/models/{model}/rollback", AdminEndpoints.RollbackAsync)
                .Route(ServingRoute.Rollback, AdminTag, "Roll back",
                    "Body {\"reason\": \"...\"}: points the champion back at the previous version and tells the server to swap. 409 when there is nothing to roll back to.")
                .JsonBody<RollbackRequest>();
            var routes = new List<RouteHandlerBuilder> { promote, rollback };
            if (app.Services.GetService<Core.Contracts.IRetrainRequester>() is not null)
            {
                routes.Add(app.MapPost("/admin/models/{model}/retrain", AdminEndpoints.RetrainAsync)
                    .Route(ServingRoute.Retrain, AdminTag, "Fine-tune now",
                        "Body {\"reason\": \"...\"}: queues one fine-tune of the model (202); the run appears in the ledger (retrain-daemon runs list). 404 for a model the loop does not train.")
                    .JsonBody<RollbackRequest>());
            }

            foreach (var route in routes)
            {
                route.Produces<AdminResponse>().Errors(400, 401, 403, 404, 409);
                if (adminPorts.Count > 0)
                {
                    // The port check runs first: on the public port the routes do not exist, key or not.
                    route.AddEndpointFilter(new AdminPortFilter(adminPorts));
                }

                route.AddEndpointFilter(adminKey);
            }
        }

        LogMapped(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ServingExtensions).FullName!),
            keys.InferenceOpen ? "open (no API key configured)" : string.Create(CultureInfo.InvariantCulture, $"{keys.InferenceKeyCount} API key(s)"),
            !keys.AdminEnabled ? "off (no admin key)" : adminPorts.Count > 0 ? $"on {options.AdminUrls} only" : "on the main listener",
            options.Batching
                ? string.Create(CultureInfo.InvariantCulture, $"batching up to {options.MaxBatchSize} samples waiting at most {options.MaxQueueDelay.TotalMilliseconds} ms, queue {options.QueueCapacity}")
                : "batching off");
        return app;
    }

    /// <summary>
    /// The human review page (<see cref="ReviewPage"/>). The pages only show what the registry and the analysis folder
    /// already hold, so they need no key: a browser cannot send a bearer key when it follows a link. What costs or
    /// changes something needs one like inference does: the live samples come from the generate route (the page's
    /// script sends the key typed into it), and the ratings route carries the same key filter.
    /// </summary>
    private static void MapReview(WebApplication app, ApiKeyFilter inferenceKey, bool keysRequired)
    {
        app.MapGet("/review", (HttpContext h, [FromServices] ServingHttp s) => ReviewPage.IndexAsync(h, s))
            .WithMetadata(new ServingRoute(ServingRoute.ReviewPage)).ExcludeFromDescription();
        app.MapGet("/review/{model}", (string model, HttpContext h, [FromServices] ServingHttp s) => ReviewPage.ModelAsync(model, h, s, keysRequired))
            .WithMetadata(new ServingRoute(ServingRoute.ReviewPage)).ExcludeFromDescription();
        app.MapGet("/review/{model}/versions/{version}/files/{name}", (string model, string version, string name, HttpContext h, [FromServices] ServingHttp s) => ReviewPage.FileAsync(model, version, name, h, s))
            .WithMetadata(new ServingRoute(ServingRoute.ReviewFile)).ExcludeFromDescription();
        app.MapGet("/review/{model}/analysis/report.html", (string model, HttpContext h, [FromServices] ServingHttp s) => ReviewPage.AnalysisAsync(model, h, s))
            .WithMetadata(new ServingRoute(ServingRoute.ReviewAnalysis)).ExcludeFromDescription();
        app.MapPost("/review/{model}/ratings", (string model, HttpContext h, [FromServices] ServingHttp s) => ReviewPage.RateAsync(model, h, s))
            .Route(ServingRoute.ReviewRating, GenerationTag, "Rate a generation (review page)",
                "Body {generation_id, rating 1..5}: publishes a retrain.feedback.v1 CloudEvent {generation_id, model, version, rating, rater: \"review-page\"} " +
                "through the broker and answers 202 once the broker confirmed it. The generation id must be one this server handed out for the model's serving version " +
                "(400 for a malformed id, another model's id or a rating outside 1..5, naming each problem; 404 for a model not served here; 409 for a generation of an older version; " +
                "503 when the broker does not confirm).")
            .JsonBody<ReviewRatingRequest>()
            .Produces<ReviewRatingResponse>(StatusCodes.Status202Accepted)
            .Errors(400, 401, 403, 404, 409, 413, 503)
            .AddEndpointFilter(inferenceKey);
    }

    private static RouteHandlerBuilder Route(this RouteHandlerBuilder builder, string route, string tag, string summary, string description) =>
        builder.WithMetadata(new ServingRoute(route)).WithTags(tag).WithSummary(summary).WithDescription(description);

    /// <summary>
    /// Documents a JSON body without letting routing refuse other content types: a client that
    /// forgets <c>Content-Type: application/json</c> gets its JSON read (or a 400 naming the JSON
    /// problem), never a bare 415 outside the <c>{"error": …}</c> contract.
    /// </summary>
    private static RouteHandlerBuilder JsonBody<T>(this RouteHandlerBuilder builder)
        where T : notnull =>
        builder.Accepts<T>("application/json", "*/*");

    private static RouteHandlerBuilder Errors(this RouteHandlerBuilder builder, params int[] statuses)
    {
        foreach (int status in statuses)
        {
            builder.Produces<ErrorBody>(status);
        }

        return builder;
    }

    /// <summary>Binds a section now; a value the binder cannot convert is reported like any invalid setting (the CLI lists it, exit 2).</summary>
    private static T Bind<T>(IConfiguration configuration, string section)
        where T : class, new()
    {
        try
        {
            return configuration.GetSection(section).Get<T>() ?? new T();
        }
        catch (InvalidOperationException ex)
        {
            throw new OptionsValidationException(section, typeof(T), [$"{section}: {ex.Message}"]);
        }
    }

    private static List<string> Urls(string urls) =>
        urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

    /// <summary>The ports of the admin URLs; each must be explicit and differ from every public URL's port.</summary>
    private static HashSet<int> AdminPorts(IReadOnlyList<string> adminUrls, IReadOnlyList<string> publicUrls)
    {
        var failures = new List<string>();
        var publicPorts = publicUrls.Select(Port).ToHashSet();
        var ports = new HashSet<int>();
        foreach (string url in adminUrls)
        {
            int port = Port(url);
            if (port <= 0)
            {
                failures.Add($"{ServingOptions.Section}:{nameof(ServingOptions.AdminUrls)} = '{url}': the admin listener needs an explicit port (a dynamic port cannot be told apart from the public ones)");
            }
            else if (publicPorts.Contains(port))
            {
                failures.Add($"{ServingOptions.Section}:{nameof(ServingOptions.AdminUrls)} = '{url}': port {port} is also a public port (Http:Urls); the admin listener needs a port of its own");
            }
            else
            {
                ports.Add(port);
            }
        }

        return failures.Count > 0 ? throw new OptionsValidationException(ServingOptions.Section, typeof(ServingOptions), failures) : ports;
    }

    // Kestrel's URL forms include hosts Uri does not take (http://*:9465, http://+:9465).
    private static int Port(string url)
    {
        string normalized = url.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal);
        return Uri.TryCreate(normalized, UriKind.Absolute, out var uri) ? uri.Port : -1;
    }

    [LoggerMessage(EventId = 702, Level = LogLevel.Information, Message = "Serving routes mapped: inference {Inference}; admin routes {Admin}; generation {Batching}")]
    private static partial void LogMapped(ILogger logger, string inference, string admin, string batching);
}
