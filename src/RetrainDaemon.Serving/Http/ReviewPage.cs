using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Unicode;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Gate;
using RetrainDaemon.Core.Registry;

namespace RetrainDaemon.Serving.Http;

/// <summary><c>POST /review/{model}/ratings</c> request: a generation the page showed and the rating given to it.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed class ReviewRatingRequest
{
    public string? GenerationId { get; set; }

    /// <summary>Read as a raw element so that 7, 2.5 or "3" are answered with what is wrong, not a serializer message.</summary>
    public JsonElement? Rating { get; set; }
}

/// <summary><c>POST /review/{model}/ratings</c> answer (202): the feedback event the broker confirmed.</summary>
internal sealed record ReviewRatingResponse(string Model, int Version, string GenerationId, int Rating, string EventId, string Status);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ReviewRatingRequest))]
[JsonSerializable(typeof(ReviewRatingResponse))]
[JsonSerializable(typeof(ReviewPageConfig))]
internal sealed partial class ReviewJsonContext : JsonSerializerContext;

/// <summary>What the page's script needs: where to generate and rate, what to send. Written into the page as JSON.</summary>
internal sealed record ReviewPageConfig(
    string Model,
    int Version,
    string Kind,
    int Count,
    IReadOnlyList<string> Prompts,
    int MaxNewTokens,
    double Temperature,
    bool NeedsKey,
    string GenerateUrl,
    string RatingsUrl);

/// <summary>
/// The human review page (issue 7 §6), served by the daemon next to the inference API:
/// <list type="bullet">
/// <item><c>GET /review</c>: the registry's models with their champions.</item>
/// <item><c>GET /review/{model}</c>: the champion and the newest registry version (passed or rejected) side by side —
/// versions, status, the training samples the fine-tune published (<c>samples.png</c> / <c>samples.txt</c>), the gate
/// report as a table — the latest error-analysis report, and live samples of the serving champion to rate 1–5.</item>
/// <item><c>GET /review/{model}/versions/{v}/files/{name}</c>: <c>samples.png</c> or <c>samples.txt</c> of a version,
/// only when the manifest lists the file and its bytes still have the recorded SHA-256.</item>
/// <item><c>GET /review/{model}/analysis/report.html</c>: the newest analysis page, and nothing else from that folder.</item>
/// <item><c>POST /review/{model}/ratings</c>: <c>{generation_id, rating}</c> → a <c>retrain.feedback.v1</c> CloudEvent
/// published through the broker (<see cref="IFeedbackPublisher"/>), 202 once confirmed.</item>
/// </list>
/// The live samples are made by the page's script through <c>POST /v1/models/{model}/generate</c> itself, so each has a
/// generation id the journal recorded, exactly as a client's would; ingestion then joins the rating to it. The pages are
/// self-contained (inline style and script under a per-response nonce, images as data: URLs or from this server), and a
/// Content-Security-Policy forbids loading anything from elsewhere. Everything that comes from files, manifests or
/// generations is HTML-encoded where it is written; the script only ever sets <c>textContent</c>.
/// </summary>
internal static class ReviewPage
{
    /// <summary>How many live samples the page asks the champion for.</summary>
    public const int LiveSamples = 6;

    /// <summary>The feedback <c>rater</c> of ratings given on this page.</summary>
    public const string Rater = "review-page";

    public const string SamplesPng = "samples.png";
    public const string SamplesTxt = "samples.txt";

    /// <summary>Text samples longer than this are cut on the page (the file route serves them whole).</summary>
    private const int MaxInlineText = 32 * 1024;

    /// <summary>Prompts for unconditional (lm) text models: short openings, the way fortunes start.</summary>
    internal static readonly string[] LmPrompts = ["The", "A man", "You will", "Never", "Life is", "Why"];

    /// <summary>Sources for conditional text models: short UI strings of the kind the gettext holdout holds.</summary>
    internal static readonly string[] ConditionalSources = ["Open file", "Save changes?", "File not found", "Permission denied", "Cancel", "Invalid argument"];

    // Encodes every HTML-significant character (< > & " ' and more) but keeps letters of any script readable.
    private static readonly HtmlEncoder Html = HtmlEncoder.Create(UnicodeRanges.All);

    // Default JSON escaping turns < > & ' into \uXXXX, so the config can never close its <script> element.
    private static readonly ReviewJsonContext ScriptJson = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = JavaScriptEncoder.Default,
    });

    // ───────────────────────────── pages ─────────────────────────────

    /// <summary><c>GET /review</c>.</summary>
    public static Task<IResult> IndexAsync(HttpContext http, ServingHttp serving) =>
        serving.RunAsync(http, ServingRoute.ReviewPage, null, _ =>
        {
            var registry = http.RequestServices.GetRequiredService<ModelRegistry>();
            var models = registry.Models().Union(serving.Served.Names, StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            string nonce = Nonce();
            var page = Begin("Review", nonce);
            page.Append("<h1>Review</h1>");
            if (models.Count == 0)
            {
                page.Append("<p>The registry holds no model yet.</p>");
            }
            else
            {
                page.Append("<table><thead><tr><th>model</th><th>champion</th><th>served here</th></tr></thead><tbody>");
                foreach (string model in models)
                {
                    string champion;
                    try
                    {
                        champion = registry.ReadAliases(model)?.Champion is int c ? "v" + Invariant(c) : "none yet";
                    }
                    catch (RegistryException ex)
                    {
                        champion = "unreadable aliases: " + ex.Message;
                    }

                    var status = serving.Served.Status(model);
                    string served = status is null ? "no" : status.Ready ? $"v{Invariant(status.Version ?? 0)}, ready" : "not ready: " + (status.Problem ?? "loading");
                    page.Append("<tr><td><a href=\"/review/").Append(Attr(model)).Append("\">").Append(Text(model)).Append("</a></td><td>")
                        .Append(Text(champion)).Append("</td><td>").Append(Text(served)).Append("</td></tr>");
                }

                page.Append("</tbody></table>");
            }

            return Task.FromResult(HtmlResult(End(page), nonce));
        });

    /// <summary><c>GET /review/{model}</c>.</summary>
    public static Task<IResult> ModelAsync(string model, HttpContext http, ServingHttp serving, bool keysRequired) =>
        serving.RunAsync(http, ServingRoute.ReviewPage, model, _ =>
        {
            var registry = http.RequestServices.GetRequiredService<ModelRegistry>();
            var served = serving.Served.Status(model);
            bool inRegistry = RegistryLayout.IsValidModelName(model) && registry.Models().Contains(model, StringComparer.Ordinal);
            if (!inRegistry && served is null)
            {
                return Task.FromResult(NotFoundPage(model, registry, serving));
            }

            string nonce = Nonce();
            var page = Begin($"Review: {model}", nonce);
            page.Append("<p class=\"nav\"><a href=\"/review\">all models</a></p>");
            page.Append("<h1>").Append(Text(model)).Append("</h1>");

            ModelListing? listing = inRegistry ? registry.List(model) : null;
            AppendVersions(page, model, listing);
            AppendAnalysis(page, model, http.RequestServices.GetService<IAnalysisReports>());
            AppendLive(page, model, serving, served, keysRequired, http.RequestServices.GetService<IFeedbackPublisher>() is not null);
            return Task.FromResult(HtmlResult(End(page), nonce));
        });

    /// <summary><c>GET /review/{model}/versions/{version}/files/{name}</c>: a version's training samples, hash-checked.</summary>
    public static Task<IResult> FileAsync(string model, string version, string name, HttpContext http, ServingHttp serving) =>
        serving.RunAsync(http, ServingRoute.ReviewFile, model, _ =>
        {
            if (name is not (SamplesPng or SamplesTxt))
            {
                throw ServingException.NotFound($"'{name}' is not served here: the review page serves only {SamplesPng} and {SamplesTxt} of a version");
            }

            var bytes = VersionFile(http.RequestServices.GetRequiredService<ModelRegistry>(), model, version, name);
            http.Response.Headers.XContentTypeOptions = "nosniff";
            return Task.FromResult<IResult>(TypedResults.Bytes(bytes, name == SamplesPng ? "image/png" : "text/plain; charset=utf-8"));
        });

    /// <summary><c>GET /review/{model}/analysis/report.html</c>: the newest error-analysis page of the model.</summary>
    public static Task<IResult> AnalysisAsync(string model, HttpContext http, ServingHttp serving) =>
        serving.RunAsync(http, ServingRoute.ReviewAnalysis, model, async call =>
        {
            var reports = http.RequestServices.GetService<IAnalysisReports>()
                ?? throw ServingException.NotFound("error-analysis reports are not available on this node (no analysis directory is configured)");
            var latest = (RegistryLayout.IsValidModelName(model) ? reports.Latest(model) : null)
                ?? throw ServingException.NotFound($"model '{model}' has no error-analysis report yet");
            byte[] page;
            try
            {
                page = await File.ReadAllBytesAsync(latest.HtmlPath, call.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
                throw ServingException.NotFound($"the newest analysis of '{model}' (run {latest.RunId}) has no {AnalysisReportLocation.HtmlFileName}");
            }

            // The report is one self-contained page of inline CSS, SVG and data: images; it may show generated text, so it
            // runs sandboxed (no script, no forms, its own origin) and may load nothing, whatever it contains.
            var headers = http.Response.Headers;
            headers.ContentSecurityPolicy = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox";
            headers.XContentTypeOptions = "nosniff";
            headers.CacheControl = "no-store";
            return TypedResults.Bytes(page, "text/html; charset=utf-8");
        });

    // ───────────────────────────── ratings ─────────────────────────────

    /// <summary><c>POST /review/{model}/ratings</c>.</summary>
    public static Task<IResult> RateAsync(string model, HttpContext http, ServingHttp serving) =>
        serving.RunAsync(http, ServingRoute.ReviewRating, model, async call =>
        {
            if (serving.Served.Status(model) is null)
            {
                // Read off the wire first: answering while the client is still sending makes it see a broken pipe.
                await http.Request.Body.CopyToAsync(Stream.Null, call.Token).ConfigureAwait(false);
                throw ServingException.NotFound($"no model '{model}' is served here, so it has no generations to rate; served: {(serving.Served.Names.Count == 0 ? "none" : string.Join(", ", serving.Served.Names))}");
            }

            var body = await serving.ReadJsonAsync(http, ReviewJsonContext.Default.ReviewRatingRequest, call.Token).ConfigureAwait(false);
            var (generationId, generationVersion, rating) = Validate(model, body);
            // Read after the body: a swap while it arrived is judged against the version serving now.
            var status = serving.Served.Status(model) ?? throw ServingException.NotFound($"model '{model}' is no longer served here");
            if (status.Version is not int servingVersion)
            {
                throw ServingException.NotReady($"model '{model}' has no ready version ({status.Problem ?? "loading"}); its generations cannot be rated now");
            }

            if (generationVersion != servingVersion)
            {
                throw new ServingException(StatusCodes.Status409Conflict, FailureReasons.Conflict,
                    Invariant($"generation '{generationId}' was made by v{generationVersion}; '{model}' now serves v{servingVersion}: reload the page to rate the serving champion's samples"),
                    servingVersion);
            }

            var publisher = http.RequestServices.GetService<IFeedbackPublisher>()
                ?? throw ServingException.NotReady("this node has no broker publisher for feedback, so ratings cannot be published here");
            call.Served(servingVersion);
            var feedback = new FeedbackRating(EventId(generationId, rating), generationId, model, servingVersion, rating, Rater);
            try
            {
                await publisher.PublishAsync(feedback, call.Token).ConfigureAwait(false);
            }
            catch (FeedbackPublishException ex)
            {
                throw ServingException.NotReady(ex.Message);
            }

            return TypedResults.Json(new ReviewRatingResponse(model, servingVersion, generationId, rating, feedback.EventId, "published"),
                ReviewJsonContext.Default.ReviewRatingResponse, statusCode: StatusCodes.Status202Accepted);
        });

    /// <summary>Checks a rating body: every problem at once, each naming the field and what it must be.</summary>
    /// <exception cref="ServingException">400.</exception>
    internal static (string GenerationId, int Version, int Rating) Validate(string model, ReviewRatingRequest body)
    {
        ArgumentNullException.ThrowIfNull(body);
        var problems = new List<string>();
        int rating = 0;
        if (body.Rating is not { } element)
        {
            problems.Add("'rating' is required: an integer from 1 to 5");
        }
        else if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt32(out rating) || rating is < 1 or > 5)
        {
            problems.Add($"'rating' must be an integer from 1 to 5, not {element.GetRawText()}");
        }

        string id = body.GenerationId ?? "";
        int version = 0;
        if (id.Length == 0)
        {
            problems.Add("'generation_id' is required: the id the generate answer gave the sample");
        }
        else if (!TryParseGenerationId(id, out string idModel, out version))
        {
            problems.Add($"'generation_id' '{Shorten(id)}' is not a generation id of this server (<model>/<version>/<32 hex digits>)");
        }
        else if (!string.Equals(idModel, model, StringComparison.Ordinal))
        {
            problems.Add($"'generation_id' '{Shorten(id)}' is a generation of model '{idModel}', not of '{model}'");
        }

        if (problems.Count > 0)
        {
            throw ServingException.BadRequest(string.Join("; ", problems));
        }

        return (id, version, rating);
    }

    /// <summary>Reads <c>&lt;model&gt;/&lt;version&gt;/&lt;uuid, 32 hex digits&gt;</c>, the form <see cref="GenerateEndpoint.NewGenerationId"/> hands out.</summary>
    internal static bool TryParseGenerationId(string id, out string model, out int version)
    {
        model = "";
        version = 0;
        string[] parts = id.Split('/');
        if (id.Length > 200 || parts.Length != 3 || !RegistryLayout.IsValidModelName(parts[0])
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out version) || version < 1
            || parts[2].Length != 32 || !parts[2].All(char.IsAsciiHexDigitLower))
        {
            return false;
        }

        model = parts[0];
        return true;
    }

    /// <summary>
    /// The CloudEvent id of a rating: derived from the generation and the rating, so a click sent twice (a retry after
    /// a lost answer) is stored once, while a changed mind (another rating of the same sample) is a new event.
    /// </summary>
    internal static string EventId(string generationId, int rating) =>
        "review-page/" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Invariant($"{generationId}|{rating}"))))[..32];

    // ───────────────────────────── page sections ─────────────────────────────

    private static void AppendVersions(StringBuilder page, string model, ModelListing? listing)
    {
        page.Append("<h2>Champion and latest candidate</h2>");
        if (listing is null)
        {
            page.Append("<p>The registry has no folder for this model.</p>");
            return;
        }

        if (listing.AliasesProblem is { } problem)
        {
            page.Append("<p class=\"problem\">aliases.json cannot be read: ").Append(Text(problem)).Append("</p>");
        }

        var champion = listing.Aliases?.Champion is int c ? listing.Versions.FirstOrDefault(v => v.Version == c && v.Location == VersionLocation.Servable) : null;
        var newest = listing.Versions.Count > 0 ? listing.Versions[0] : null;
        page.Append("<div class=\"columns\">");
        page.Append("<section class=\"version\" id=\"champion\"><h3>Champion</h3>");
        if (champion is not null)
        {
            AppendVersion(page, model, champion);
        }
        else
        {
            page.Append("<p>").Append(listing.Aliases?.Champion is int missing ? Text($"the champion alias names v{Invariant(missing)}, which is not in the registry") : "No champion yet.").Append("</p>");
        }

        page.Append("</section><section class=\"version\" id=\"candidate\"><h3>Latest candidate</h3>");
        if (newest is null)
        {
            page.Append("<p>No version has been published yet.</p>");
        }
        else if (champion is not null && newest.Version == champion.Version && newest.Location == champion.Location)
        {
            page.Append("<p>The champion, v").Append(Invariant(champion.Version)).Append(", is the newest version: no candidate has been published since.</p>");
        }
        else
        {
            AppendVersion(page, model, newest);
        }

        page.Append("</section></div>");
    }

    private static void AppendVersion(StringBuilder page, string model, VersionInfo info)
    {
        var manifest = info.Manifest;
        string status = manifest?.Status switch
        {
            VersionStatus.Passed => "passed",
            VersionStatus.Rejected => "rejected",
            _ => "unknown",
        };
        page.Append("<p class=\"headline\"><span class=\"ver\">v").Append(Invariant(info.Version)).Append("</span> <span class=\"status ")
            .Append(status).Append("\">").Append(status).Append("</span>");
        if (info.Aliases.Count > 0)
        {
            page.Append(" <span class=\"aliases\">").Append(Text(string.Join(", ", info.Aliases))).Append("</span>");
        }

        page.Append("</p><table class=\"facts\"><tbody>");
        Row(page, "verified", info.Verified ? "yes" : "no: " + (info.Problem ?? "unknown problem"));
        if (manifest is not null)
        {
            Row(page, "created", manifest.CreatedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture));
            Row(page, "run", manifest.RunId ?? "-");
            Row(page, "parent version", manifest.ParentVersion is int p ? "v" + Invariant(p) : "none (trained from scratch)");
            Row(page, "data watermark", manifest.DataWatermark is long w ? Invariant(w) : "-");
        }

        page.Append("</tbody></table>");
        if (manifest is null)
        {
            return;
        }

        page.Append("<h4>Training samples</h4>");
        var files = manifest.Files.Select(f => f.Name).ToHashSet(StringComparer.Ordinal);
        string fileUrl = $"/review/{Uri.EscapeDataString(model)}/versions/{Invariant(info.Version)}/files/";
        if (files.Contains(SamplesPng))
        {
            page.Append("<img class=\"grid\" alt=\"training samples of v").Append(Invariant(info.Version)).Append("\" src=\"").Append(Attr(fileUrl + SamplesPng)).Append("\">");
        }
        else if (files.Contains(SamplesTxt))
        {
            page.Append("<pre class=\"samples\">");
            try
            {
                string text = Encoding.UTF8.GetString(VersionFile(info, SamplesTxt));
                page.Append(Text(text.Length > MaxInlineText ? text[..MaxInlineText] + "\n…" : text));
            }
            catch (ServingException ex)
            {
                page.Append(Text(ex.Message));
            }

            page.Append("</pre><p><a href=\"").Append(Attr(fileUrl + SamplesTxt)).Append("\">").Append(SamplesTxt).Append("</a></p>");
        }
        else
        {
            page.Append("<p>This version was published without training samples.</p>");
        }

        page.Append("<h4>Gate report</h4>");
        AppendGate(page, manifest.GateReport);
    }

    private static void AppendGate(StringBuilder page, JsonNode? node)
    {
        if (node is null)
        {
            page.Append("<p>No gate report recorded (published without the gate).</p>");
            return;
        }

        GateReport report;
        try
        {
            report = GateReport.FromJson(node.ToJsonString());
        }
        catch (JsonException ex)
        {
            page.Append("<p class=\"problem\">The recorded gate report cannot be read: ").Append(Text(ex.Message)).Append("</p>");
            return;
        }

        page.Append("<p class=\"gate ").Append(report.Passed ? "passed" : "rejected").Append("\">").Append(Text(report.Headline())).Append("</p>");
        if (report.Rows.Count == 0)
        {
            return;
        }

        page.Append("<table class=\"gate-report\"><thead><tr><th>metric</th><th>value</th><th>champion</th><th>threshold</th><th>verdict</th><th>why</th></tr></thead><tbody>");
        foreach (var row in report.Rows)
        {
            string verdict = row.Verdict switch
            {
                GateVerdict.Pass => "pass",
                GateVerdict.Fail => "fail",
                _ => "skipped",
            };
            page.Append("<tr class=\"").Append(verdict).Append("\"><td>").Append(Text(row.Label)).Append("</td><td class=\"num\">").Append(Text(Number(row.Value)))
                .Append("</td><td class=\"num\">").Append(Text(Number(row.ChampionValue))).Append("</td><td>").Append(Text(row.Threshold))
                .Append("</td><td class=\"verdict\">").Append(verdict).Append("</td><td>").Append(Text(row.Reason)).Append("</td></tr>");
        }

        page.Append("</tbody></table>");
    }

    private static void AppendAnalysis(StringBuilder page, string model, IAnalysisReports? reports)
    {
        page.Append("<h2>Error analysis</h2>");
        var latest = reports is not null && RegistryLayout.IsValidModelName(model) ? reports.Latest(model) : null;
        if (latest is null)
        {
            page.Append("<p>").Append(reports is null ? "Error-analysis reports are not available on this node." : "No error analysis of this model has run yet.").Append("</p>");
            return;
        }

        page.Append("<p id=\"analysis-facts\">Newest report: run ").Append(Text(latest.RunId)).Append(", written ")
            .Append(latest.WrittenAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture)).Append('.');
        try
        {
            // A few headline facts from the JSON; the page below has the rest. A report being replaced is read next time.
            var json = JsonNode.Parse(File.ReadAllText(latest.JsonPath));
            if (json?["champion"]?["version"] is JsonValue v && v.TryGetValue(out int analysed))
            {
                page.Append(" Champion analysed: v").Append(Invariant(analysed)).Append('.');
            }

            if (json?["worst"] is JsonArray worst && worst.Count > 0)
            {
                page.Append(" Worst slices: ").Append(Text(string.Join(", ", worst.Select(w => w?.ToString() ?? "?")))).Append('.');
            }

            if (json?["drift"] is JsonObject drift)
            {
                string value = drift["value"] is JsonValue dv && dv.TryGetValue(out double d) ? Number(d) : drift["status"]?.ToString() ?? "-";
                page.Append(" Drift (").Append(Text(drift["metric"]?.ToString() ?? "?")).Append("): ").Append(Text(value)).Append('.');
            }
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException or InvalidOperationException)
        {
            page.Append(" (report.json unreadable: ").Append(Text(ex.Message)).Append(')');
        }

        string url = $"/review/{Uri.EscapeDataString(model)}/analysis/report.html";
        page.Append("</p><p><a id=\"analysis-link\" href=\"").Append(Attr(url)).Append("\">open the report</a></p>");
        page.Append("<iframe class=\"analysis\" title=\"error analysis\" sandbox src=\"").Append(Attr(url)).Append("\"></iframe>");
    }

    private static void AppendLive(StringBuilder page, string model, ServingHttp serving, Runtime.ModelStatus? status, bool keysRequired, bool canPublish)
    {
        page.Append("<h2>Rate live samples</h2>");
        if (status is null)
        {
            page.Append("<p>This node does not serve '").Append(Text(model)).Append("', so it has no live samples to rate.</p>");
            return;
        }

        if (!serving.Served.TryLease(model, out var lease, out string? reason, out _))
        {
            page.Append("<p class=\"problem\">The champion is not being served right now: ").Append(Text(reason ?? "not ready")).Append(". Reload the page later.</p>");
            return;
        }

        int version;
        string kind;
        using (lease)
        {
            var served = lease.Version!;
            version = served.Version;
            kind = served.Text is null ? "image" : served.Text.Model.Conditional ? "conditional" : "lm";
        }

        var config = new ReviewPageConfig(
            model,
            version,
            kind,
            LiveSamples,
            kind switch { "lm" => LmPrompts, "conditional" => ConditionalSources, _ => [] },
            Math.Min(40, serving.Options.MaxNewTokens),
            // Translations are judged as the gate decodes them (greedy); open-ended text is sampled.
            kind == "conditional" ? 0.0 : 0.9,
            keysRequired,
            $"/v1/models/{Uri.EscapeDataString(model)}/generate",
            $"/review/{Uri.EscapeDataString(model)}/ratings");

        page.Append("<p>").Append(LiveSamples.ToString(CultureInfo.InvariantCulture)).Append(" samples from the serving champion, v").Append(Invariant(version))
            .Append(", made for this page through the generate API. Each rating is published as <code>retrain.feedback.v1</code> through the broker and joins its generation in the store.</p>");
        if (!canPublish)
        {
            page.Append("<p class=\"problem\">This node has no broker publisher: ratings will be refused.</p>");
        }

        if (keysRequired)
        {
            page.Append("<p class=\"key\"><label>API key <input id=\"api-key\" type=\"password\" autocomplete=\"off\"></label> <button id=\"use-key\" type=\"button\">generate</button> (inference needs a key on this server)</p>");
        }

        page.Append("<p><button id=\"regenerate\" type=\"button\">new samples</button> <span id=\"live-status\" role=\"status\"></span></p>");
        page.Append("<div id=\"live\" class=\"live\"></div>");
        page.Append("<script type=\"application/json\" id=\"review-config\">")
            .Append(JsonSerializer.Serialize(config, ScriptJson.ReviewPageConfig))
            .Append("</script>");
    }

    private static IResult NotFoundPage(string model, ModelRegistry registry, ServingHttp serving)
    {
        var known = registry.Models().Union(serving.Served.Names, StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        string nonce = Nonce();
        var page = Begin("Review: unknown model", nonce);
        page.Append("<h1>No model '").Append(Text(model)).Append("'</h1><p>It is neither in the registry nor served here. Known models: ")
            .Append(known.Count == 0 ? "none" : Text(string.Join(", ", known))).Append(".</p><p><a href=\"/review\">all models</a></p>");
        return HtmlResult(End(page), nonce, StatusCodes.Status404NotFound);
    }

    // ───────────────────────────── files ─────────────────────────────

    /// <summary>A listed file of a version, read and checked against the manifest's size and SHA-256.</summary>
    /// <exception cref="ServingException">404 naming what is missing; 409 when the bytes changed since publishing.</exception>
    private static byte[] VersionFile(ModelRegistry registry, string model, string versionText, string name)
    {
        if (!RegistryLayout.IsValidModelName(model))
        {
            throw ServingException.NotFound($"'{model}' is not a model name");
        }

        if (!int.TryParse(versionText, NumberStyles.None, CultureInfo.InvariantCulture, out int version) || version < 1)
        {
            throw ServingException.NotFound($"'{versionText}' is not a version number");
        }

        var info = registry.Inspect(model, version) ?? throw ServingException.NotFound(Invariant($"model '{model}' has no version {version}"));
        return VersionFile(info, name);
    }

    private static byte[] VersionFile(VersionInfo info, string name)
    {
        string which = Invariant($"'{info.Model}' v{info.Version}");
        var entry = info.Manifest?.Files.FirstOrDefault(f => f.Name == name)
            ?? throw ServingException.NotFound(info.Manifest is null ? $"{which} has no readable manifest ({info.Problem})" : $"{which} was published without {name}");
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(Path.Combine(info.Directory, entry.Name));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw ServingException.NotFound($"{name} of {which} cannot be read: {ex.Message}");
        }

        string hash = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (bytes.LongLength != entry.Bytes || hash != entry.Sha256)
        {
            throw new ServingException(StatusCodes.Status409Conflict, FailureReasons.Conflict, $"{name} of {which} changed after it was published (sha256 {hash}, manifest {entry.Sha256}); not served");
        }

        return bytes;
    }

    // ───────────────────────────── HTML ─────────────────────────────

    private static StringBuilder Begin(string title, string nonce)
    {
        var page = new StringBuilder(16 * 1024);
        page.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"icon\" href=\"data:,\"><title>")
            .Append(Text(title)).Append(" · retrain-daemon</title><style nonce=\"").Append(nonce).Append("\">").Append(Style).Append("</style></head><body>");
        page.Append("<script nonce=\"").Append(nonce).Append("\">").Append(Script).Append("</script>");
        return page;
    }

    private static string End(StringBuilder page) => page.Append("</body></html>").ToString();

    /// <summary>
    /// The page with a policy that allows only this response's own inline style and script, images from here or data:
    /// URLs, requests to this server and frames of it: nothing from the internet, whatever ends up in the page.
    /// </summary>
    private static IResult HtmlResult(string html, string nonce, int status = StatusCodes.Status200OK) =>
        new HtmlPage(html, status,
            $"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");

    private sealed class HtmlPage(string html, int status, string policy) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            ArgumentNullException.ThrowIfNull(httpContext);
            var response = httpContext.Response;
            response.StatusCode = status;
            response.ContentType = "text/html; charset=utf-8";
            response.Headers.ContentSecurityPolicy = policy;
            response.Headers.XContentTypeOptions = "nosniff";
            response.Headers.CacheControl = "no-store";
            return response.WriteAsync(html, Encoding.UTF8, httpContext.RequestAborted);
        }
    }

    private static void Row(StringBuilder page, string name, string value) =>
        page.Append("<tr><th>").Append(Text(name)).Append("</th><td>").Append(Text(value)).Append("</td></tr>");

    private static string Text(string value) => Html.Encode(value);

    private static string Attr(string value) => Html.Encode(value);

    private static string Number(double? value) => value is { } v ? v.ToString("G6", CultureInfo.InvariantCulture) : "-";

    private static string Nonce() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(18));

    private static string Shorten(string text) => text.Length <= 80 ? text : text[..80] + "…";

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Invariant(long value) => value.ToString(CultureInfo.InvariantCulture);

    private const string Style =
        "body{font-family:sans-serif;margin:1.5em;max-width:80em;color:#222}h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}" +
        "table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left;vertical-align:top}" +
        "td.num{text-align:right;font-variant-numeric:tabular-nums}.columns{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1.5em}.version table.gate-report{width:100%}" +
        ".version{border:1px solid #ddd;padding:.5em 1em}.ver{font-size:1.4em;font-weight:bold}.status,.aliases{padding:1px 6px;border-radius:3px;font-size:13px}" +
        ".passed{background:#e3f4e1}.rejected{background:#fbe3e3}.aliases{background:#e6eefb}tr.fail{background:#fbe3e3}tr.skipped{color:#777}" +
        "img.grid{image-rendering:pixelated;width:100%;max-width:448px;border:1px solid #ddd}pre.samples{white-space:pre-wrap;max-height:24em;overflow:auto;background:#f7f7f7;padding:.5em}" +
        ".problem{color:#a00}iframe.analysis{width:100%;height:40em;border:1px solid #ddd}.live{display:grid;grid-template-columns:repeat(auto-fill,minmax(14em,1fr));gap:1em}" +
        ".sample{border:1px solid #ddd;padding:.5em;margin:0}.sample img{image-rendering:pixelated;width:112px;height:112px;display:block}" +
        ".sample .prompt{color:#555}.sample .output{white-space:pre-wrap}.sample .rated{margin-left:.5em;font-weight:bold}.sample .error{color:#a00}" +
        ".sample button{min-width:2.2em}.sample button.chosen{background:#2a6;color:#fff}";

    // The page's behaviour: asks the generate API for the samples, builds them with textContent only (never innerHTML),
    // and posts a rating per click. It runs at the end of the document (DOMContentLoaded), so the markup it needs exists.
    private const string Script = """
        document.addEventListener('DOMContentLoaded', function () {
          'use strict';
          var configElement = document.getElementById('review-config');
          if (!configElement) { return; }
          var config = JSON.parse(configElement.textContent);
          var live = document.getElementById('live');
          var status = document.getElementById('live-status');
          var keyInput = document.getElementById('api-key');

          function headers() {
            var h = { 'Content-Type': 'application/json' };
            if (keyInput && keyInput.value) { h['Authorization'] = 'Bearer ' + keyInput.value; }
            return h;
          }

          async function post(url, body) {
            var response = await fetch(url, { method: 'POST', headers: headers(), body: JSON.stringify(body) });
            var json = null;
            try { json = await response.json(); } catch (e) { json = null; }
            if (!response.ok) {
              throw new Error((json && json.error) ? json.error : ('HTTP ' + response.status));
            }
            return json;
          }

          function element(tag, className, text) {
            var e = document.createElement(tag);
            if (className) { e.className = className; }
            if (text !== undefined && text !== null) { e.textContent = String(text); }
            return e;
          }

          function card(sample, index) {
            var figure = element('figure', 'sample');
            figure.dataset.generationId = sample.id;
            figure.dataset.index = String(index);
            if (sample.png) {
              var img = element('img');
              img.src = 'data:image/png;base64,' + sample.png;
              img.alt = 'live sample ' + (index + 1);
              figure.appendChild(img);
              if (sample.label !== undefined && sample.label !== null) { figure.appendChild(element('div', 'label', 'class ' + sample.label)); }
            } else {
              figure.appendChild(element('div', 'prompt', sample.prompt + ' →'));
              figure.appendChild(element('div', 'output', sample.text));
            }
            var caption = element('figcaption', 'rate');
            var buttons = [];
            var rated = element('span', 'rated');
            var error = element('div', 'error');
            for (var r = 1; r <= 5; r++) {
              (function (rating) {
                var button = element('button', 'rating', rating);
                button.type = 'button';
                button.dataset.rating = String(rating);
                button.title = 'rate ' + rating + ' of 5';
                button.addEventListener('click', async function () {
                  buttons.forEach(function (b) { b.disabled = true; });
                  error.textContent = '';
                  rated.textContent = 'sending…';
                  try {
                    var answer = await post(config.ratings_url, { generation_id: sample.id, rating: rating });
                    button.classList.add('chosen');
                    rated.textContent = 'rated ' + answer.rating;
                    figure.dataset.rated = String(answer.rating);
                  } catch (e) {
                    rated.textContent = '';
                    error.textContent = 'not rated: ' + e.message;
                    buttons.forEach(function (b) { b.disabled = false; });
                  }
                });
                buttons.push(button);
                caption.appendChild(button);
              })(r);
            }
            caption.appendChild(rated);
            figure.appendChild(caption);
            figure.appendChild(error);
            return figure;
          }

          async function load() {
            status.textContent = 'generating…';
            live.replaceChildren();
            try {
              var samples;
              if (config.kind === 'image') {
                var answer = await post(config.generate_url, { count: config.count, format: 'json' });
                samples = answer.samples.map(function (s) { return { id: s.generation_id, png: s.png, label: s['class'] }; });
              } else {
                var field = config.kind === 'conditional' ? 'source' : 'prompt';
                var answers = await Promise.all(config.prompts.slice(0, config.count).map(function (p) {
                  var body = { max_new_tokens: config.max_new_tokens, temperature: config.temperature };
                  body[field] = p;
                  return post(config.generate_url, body);
                }));
                samples = answers.map(function (a, i) { return { id: a.generation_id, prompt: config.prompts[i], text: a.text }; });
              }
              samples.forEach(function (s, i) { live.appendChild(card(s, i)); });
              status.textContent = samples.length + ' samples from v' + config.version;
              document.body.dataset.samples = 'ready';
            } catch (e) {
              status.textContent = 'could not generate samples: ' + e.message;
              document.body.dataset.samples = 'failed';
            }
          }

          document.getElementById('regenerate').addEventListener('click', load);
          var useKey = document.getElementById('use-key');
          if (useKey) { useKey.addEventListener('click', load); }
          if (!config.needs_key) { load(); } else { status.textContent = 'enter an API key to generate samples'; }
        });
        """;
}
