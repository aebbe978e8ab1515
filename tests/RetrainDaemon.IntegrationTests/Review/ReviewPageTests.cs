using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using PuppeteerSharp;
using RetrainDaemon.Core.Gate;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Data.Preprocessing;
using RetrainDaemon.Data.Store;
using RetrainDaemon.IntegrationTests.Serving;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.IntegrationTests.Review;

/// <summary>
/// The human review page in a real headless Chromium (Debian's <c>chromium</c>, driven by PuppeteerSharp), against the
/// real daemon and broker: the page shows the champion and the newest (rejected) candidate with their training samples
/// and gate tables and the newest error-analysis report; a click on a live sample's rating publishes
/// <c>retrain.feedback.v1</c> through the broker, and the rating arrives in the store joined to the generation the page
/// was given. Bad ratings are refused with the problem named, and never reach the store.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class ReviewPageTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-review")
{
    private const string Chromium = "/usr/bin/chromium";
    private const string Model = ServingDaemon.Model;
    private const string AnalysisRun = "analysis-run-7";
    private const string AnalysisMarker = "planted analysis page: class=1 is the worst slice";
    private static readonly TimeSpan StoreWait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Page_ShowsChampionCandidateGateAndAnalysis_AndARatingClickedInChromiumIsStoredWithItsGeneration()
    {
        var (champion, candidate) = PublishChampionAndRejectedCandidate();
        PlantAnalysisReport();
        await using var serving = StartDaemon();
        await serving.Daemon.WaitReadyAsync();

        await using var browser = await LaunchAsync();
        await using var page = await browser.NewPageAsync();
        var requested = new List<string>();
        page.Request += (_, e) => { lock (requested) { requested.Add(e.Request.Url); } };
        var consoleErrors = new List<string>();
        page.Console += (_, e) => { if (e.Message.Type == ConsoleType.Error) { lock (consoleErrors) { consoleErrors.Add(e.Message.Text); } } };

        var response = await page.GoToAsync(new Uri(serving.BaseUri, $"/review/{Model}").ToString(), WaitUntilNavigation.Load);
        Assert.Equal(HttpStatusCode.OK, response.Status);
        Assert.Contains("default-src 'none'", response.Headers["content-security-policy"], StringComparison.Ordinal);

        // Side by side: the champion (passed, serving) and the newer rejected candidate, each with its gate table.
        Assert.Equal($"v{champion.Version}", await TextAsync(page, "#champion .ver"));
        Assert.Equal("passed", await TextAsync(page, "#champion .status"));
        Assert.Equal($"v{candidate.Version}", await TextAsync(page, "#candidate .ver"));
        Assert.Equal("rejected", await TextAsync(page, "#candidate .status"));
        var championGate = await page.EvaluateExpressionAsync<string[][]>(
            "Array.from(document.querySelectorAll('#champion table.gate-report tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent))");
        Assert.Equal(["fid", "61.5", "-", "<= 90", "pass", "61.5 <= 90"], championGate[0]);
        var candidateGate = await page.EvaluateExpressionAsync<string[][]>(
            "Array.from(document.querySelectorAll('#candidate table.gate-report tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent))");
        Assert.Equal(2, candidateGate.Length);
        Assert.Equal(["fid", "97.25", "61.5", "<= 90", "fail", "97.25 > 90"], candidateGate[0]);
        Assert.Equal("skipped", candidateGate[1][4]);
        Assert.Equal("<b>not</b> compared", candidateGate[1][5]); // shown as text, not markup
        Assert.StartsWith("GATE FAILED", await TextAsync(page, "#candidate p.gate"), StringComparison.Ordinal);

        // The training sample grids came from the hash-checked file route and decoded as images.
        int[] gridWidths = await page.EvaluateExpressionAsync<int[]>("Array.from(document.querySelectorAll('img.grid')).map(i => i.complete ? i.naturalWidth : -1)");
        Assert.Equal([56, 56], gridWidths);

        // The newest analysis: its facts, and its page in a sandboxed frame served by the analysis route.
        string facts = await TextAsync(page, "#analysis-facts");
        Assert.Contains(AnalysisRun, facts, StringComparison.Ordinal);
        Assert.Contains("class=1", facts, StringComparison.Ordinal);
        var frame = await WaitForAsync(() => Task.FromResult(page.Frames.FirstOrDefault(f => f.Url.EndsWith("/analysis/report.html", StringComparison.Ordinal))), "the analysis frame");
        Assert.Contains(AnalysisMarker, await frame.EvaluateExpressionAsync<string>("document.body.textContent"), StringComparison.Ordinal);
        Assert.Null(await frame.EvaluateExpressionAsync<string?>("document.body.dataset.ran ?? null")); // its script did not run

        // Live samples: generated through /v1/models/{m}/generate by the page's script.
        await page.WaitForSelectorAsync("body[data-samples]", new WaitForSelectorOptions { Timeout = 30_000 });
        Assert.True(await page.EvaluateExpressionAsync<string>("document.body.dataset.samples") == "ready", await TextAsync(page, "#live-status"));
        string[] ids = await page.EvaluateExpressionAsync<string[]>("Array.from(document.querySelectorAll('figure.sample')).map(f => f.dataset.generationId)");
        Assert.Equal(6, ids.Length);
        Assert.All(ids, id => Assert.Matches($"^{Model}/{champion.Version}/[0-9a-f]{{32}}$", id));
        Assert.Equal(6, ids.Distinct().Count());

        // Rate the third sample 2; the page says "rated 2" once the broker confirmed the feedback event.
        await page.ClickAsync("figure.sample[data-index='2'] button[data-rating='2']");
        await page.WaitForFunctionAsync("() => document.querySelector(\"figure.sample[data-index='2']\").dataset.rated === '2'", new WaitForFunctionOptions { Timeout = 15_000 });
        Assert.Equal("rated 2", await TextAsync(page, "figure.sample[data-index='2'] .rated"));
        string rated = ids[2];

        // …and ingestion stored it, joined to that generation of the champion.
        await using var store = new SqliteSampleStore(new StoreOptions { Path = StorePath });
        var stored = await WaitForAsync(async () => (await ReadFeedbackAsync(store)).FirstOrDefault(f => f.GenerationId == rated), "the rating in the store");
        Assert.Equal((Model, champion.Version, 2), (stored.Model, stored.Version, stored.Rating));
        Assert.StartsWith("review-page/", stored.EventId, StringComparison.Ordinal);
        var summary = await store.GetFeedbackSummaryAsync(Model, champion.Version, null, CancellationToken.None);
        Assert.Equal((1L, 1L, 2.0), (summary.Count, summary.Ratings, summary.MeanRating));
        Assert.Equal(0u, await BrokerProbe.DepthAsync(Fixture.Broker, Topology.DeadLetterQueue));

        // Self-contained: everything the browser fetched came from the daemon or was inline.
        lock (requested)
        {
            output.WriteLine(string.Join('\n', requested));
            Assert.All(requested, url => Assert.True(url.StartsWith(serving.BaseUri.ToString(), StringComparison.Ordinal) || url.StartsWith("data:", StringComparison.Ordinal), url));
        }

        lock (consoleErrors)
        {
            output.WriteLine(string.Join('\n', consoleErrors));
            // The planted report's own script was refused by the frame's sandbox; nothing else complained (a
            // Content-Security-Policy violation or a failed request of the page itself would be reported here).
            Assert.Single(consoleErrors, e => e.StartsWith("Blocked script execution in", StringComparison.Ordinal) && e.Contains("/analysis/report.html", StringComparison.Ordinal));
            Assert.Single(consoleErrors);
        }
    }

    [Fact]
    public async Task BadRatings_AreRefusedWithTheProblemNamed_AndNothingIsStored()
    {
        var (champion, _) = PublishChampionAndRejectedCandidate();
        await using var serving = StartDaemon();
        await serving.Daemon.WaitReadyAsync();
        string id = await GenerateOneAsync(serving);

        var (status, error) = await RateAsync(serving, Model, $"{{\"generation_id\":\"{id}\",\"rating\":7}}");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("'rating' must be an integer from 1 to 5, not 7", error, StringComparison.Ordinal);

        (status, error) = await RateAsync(serving, "no-such-model", $"{{\"generation_id\":\"{id}\",\"rating\":3}}");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("no model 'no-such-model' is served here", error, StringComparison.Ordinal);

        (status, error) = await RateAsync(serving, Model, "{\"generation_id\":\"en-de/1/0123456789abcdef0123456789abcdef\",\"rating\":3}");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("is a generation of model 'en-de', not of 'fashion-mnist'", error, StringComparison.Ordinal);

        (status, error) = await RateAsync(serving, Model, "{\"generation_id\":\"made-up\",\"rating\":2.5}");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("'rating' must be an integer from 1 to 5, not 2.5", error, StringComparison.Ordinal);
        Assert.Contains("'generation_id' 'made-up' is not a generation id of this server", error, StringComparison.Ordinal);

        (status, error) = await RateAsync(serving, Model, $"{{\"generation_id\":\"{Model}/{champion.Version + 1}/0123456789abcdef0123456789abcdef\",\"rating\":3}}");
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Contains($"now serves v{champion.Version}", error, StringComparison.Ordinal);

        (status, error) = await RateAsync(serving, Model, "{\"generation_id\":\"x\",\"rating\":3,\"stars\":4}");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("'stars' is not a field of this request", error, StringComparison.Ordinal);

        // A good rating sent after the bad ones arrives; when it has, the store holds it alone.
        (status, error) = await RateAsync(serving, Model, $"{{\"generation_id\":\"{id}\",\"rating\":4}}");
        Assert.True(status == HttpStatusCode.Accepted, error);
        await using var store = new SqliteSampleStore(new StoreOptions { Path = StorePath });
        await WaitForAsync(async () => (await ReadFeedbackAsync(store)).FirstOrDefault(f => f.GenerationId == id), "the good rating in the store");
        var all = await ReadFeedbackAsync(store);
        var only = Assert.Single(all);
        Assert.Equal((id, 4), (only.GenerationId, only.Rating));
        Assert.Equal(0u, await BrokerProbe.DepthAsync(Fixture.Broker, Topology.DeadLetterQueue));
        Assert.Equal(0u, await BrokerProbe.DepthAsync(Fixture.Broker, Topology.FeedbackQueue));

        // The ratings route is documented with the API; the HTML pages are not API.
        string openApi = await serving.Http.GetStringAsync(new Uri("/openapi/v1.json", UriKind.Relative));
        Assert.Contains("\"/review/{model}/ratings\"", openApi, StringComparison.Ordinal);
        Assert.DoesNotContain("\"/review/{model}\"", openApi, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithApiKeys_ThePageOpens_ButGeneratingAndRatingNeedTheKey()
    {
        PublishChampionAndRejectedCandidate();
        await using var serving = StartDaemon(apiKeys: true);
        await serving.Daemon.WaitReadyAsync();

        using var anonymous = serving.NewClient(serving.BaseUri, withKey: false);
        using (var pageResponse = await anonymous.GetAsync(new Uri($"/review/{Model}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, pageResponse.StatusCode);
        }

        using (var refused = await anonymous.PostAsync(new Uri($"/review/{Model}/ratings", UriKind.Relative), ServingDaemon.Json("{\"generation_id\":\"x\",\"rating\":3}")))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        // In the browser: nothing is generated until the key is typed in; then samples come and a rating goes through.
        await using var browser = await LaunchAsync();
        await using var page = await browser.NewPageAsync();
        await page.GoToAsync(new Uri(serving.BaseUri, $"/review/{Model}").ToString(), WaitUntilNavigation.Load);
        Assert.Equal(0, await page.EvaluateExpressionAsync<int>("document.querySelectorAll('figure.sample').length"));
        await page.TypeAsync("#api-key", ServingDaemon.ApiKey);
        await page.ClickAsync("#use-key");
        await page.WaitForSelectorAsync("body[data-samples]", new WaitForSelectorOptions { Timeout = 30_000 });
        Assert.True(await page.EvaluateExpressionAsync<string>("document.body.dataset.samples") == "ready", await TextAsync(page, "#live-status"));
        await page.ClickAsync("figure.sample[data-index='0'] button[data-rating='5']");
        await page.WaitForFunctionAsync("() => document.querySelector(\"figure.sample[data-index='0']\").dataset.rated === '5'", new WaitForFunctionOptions { Timeout = 15_000 });
        string id = await page.EvaluateExpressionAsync<string>("document.querySelector(\"figure.sample[data-index='0']\").dataset.generationId");

        await using var store = new SqliteSampleStore(new StoreOptions { Path = StorePath });
        var stored = await WaitForAsync(async () => (await ReadFeedbackAsync(store)).FirstOrDefault(f => f.GenerationId == id), "the keyed rating in the store");
        Assert.Equal(5, stored.Rating);
    }

    [Fact]
    public async Task TextModel_SamplesShowAsText_AndALiveTranslationCanBeRated()
    {
        // The shipped catalog's conditional text model, served by a tiny GPT of the same task; its newest candidate was
        // rejected and published training samples that hold markup, which the page must show as text.
        const string model = "en-de";
        var registry = ServingDaemon.OpenRegistry(Directory);
        var models = TinyTextModels.Shared;
        var champion = models.Publish(registry, model, models.ConditionalOnnx, GptTasks.Conditional);
        const string samples = "Open file ⇒ <script>document.title='owned'</script> Datei öffnen & mehr\n";
        string samplesPath = Path.Combine(Directory, "samples.txt");
        File.WriteAllText(samplesPath, samples);
        registry.Publish(new PublishRequest
        {
            Model = model,
            Status = VersionStatus.Rejected,
            Files = new Dictionary<string, string> { ["samples.txt"] = samplesPath },
            Hyperparameters = new Dictionary<string, string> { ["family"] = "gpt", ["task"] = GptTasks.Conditional },
            ParentVersion = champion.Version,
        });
        await using var serving = ServingDaemon.Start(Fixture.Broker, Directory, new ServingDaemonOptions
        {
            Settings = new Dictionary<string, string> { ["Serving:Models:0"] = model, ["Serving:RequestTimeout"] = "00:01:00" },
        });
        await serving.Daemon.WaitReadyAsync();

        await using var browser = await LaunchAsync();
        await using var page = await browser.NewPageAsync();
        await page.GoToAsync(new Uri(serving.BaseUri, $"/review/{model}").ToString(), WaitUntilNavigation.Load);
        Assert.Equal(samples, await TextAsync(page, "#candidate pre.samples"));
        Assert.Equal(0, await page.EvaluateExpressionAsync<int>("document.querySelectorAll('#candidate pre.samples *').length"));
        Assert.NotEqual("owned", await page.EvaluateExpressionAsync<string>("document.title"));
        Assert.Equal("No gate report recorded (published without the gate).", await TextAsync(page, "#candidate p:last-of-type"));

        await page.WaitForSelectorAsync("body[data-samples]", new WaitForSelectorOptions { Timeout = 60_000 });
        Assert.True(await page.EvaluateExpressionAsync<string>("document.body.dataset.samples") == "ready", await TextAsync(page, "#live-status"));
        string[] prompts = await page.EvaluateExpressionAsync<string[]>("Array.from(document.querySelectorAll('figure.sample .prompt')).map(p => p.textContent)");
        Assert.Equal(6, prompts.Length);
        Assert.Equal("Open file →", prompts[0]);
        await page.ClickAsync("figure.sample[data-index='0'] button[data-rating='1']");
        await page.WaitForFunctionAsync("() => document.querySelector(\"figure.sample[data-index='0']\").dataset.rated === '1'", new WaitForFunctionOptions { Timeout = 15_000 });
        string id = await page.EvaluateExpressionAsync<string>("document.querySelector(\"figure.sample[data-index='0']\").dataset.generationId");

        await using var store = new SqliteSampleStore(new StoreOptions { Path = StorePath });
        var stored = await WaitForAsync(async () => (await ReadFeedbackAsync(store, model)).FirstOrDefault(f => f.GenerationId == id), "the text rating in the store");
        Assert.Equal((champion.Version, 1, (string?)null), (stored.Version, stored.Rating, stored.Slice));
    }

    // ───────────────────────────── helpers ─────────────────────────────

    private ServingDaemon StartDaemon(bool apiKeys = false) =>
        ServingDaemon.Start(Fixture.Broker, Directory, new ServingDaemonOptions
        {
            ApiKeys = apiKeys,
            Settings = new Dictionary<string, string> { ["Loop:AnalysisDirectory"] = Path.Combine(Directory, "analysis") },
        });

    private static Task<IBrowser> LaunchAsync() =>
        Puppeteer.LaunchAsync(new LaunchOptions
        {
            ExecutablePath = Chromium, // Debian's package; nothing is downloaded
            Headless = true,
            // CI runs as root, where Chromium refuses its sandbox; /dev/shm may be small in containers.
            Args = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
            Timeout = 60_000,
        });

    /// <summary>v1: a passing champion (samples.png, a passed gate); v2: a newer candidate the gate rejected.</summary>
    private (PublishResult Champion, PublishResult Candidate) PublishChampionAndRejectedCandidate()
    {
        var registry = ServingDaemon.OpenRegistry(Directory);
        var hyperparameters = new Dictionary<string, string> { ["family"] = GeneratorModels.Family, ["classes"] = "0" };
        var fid = new GateRow("fid", GateSlices.All, GateThresholdKind.Value, 61.5, null, 90, "<= 90", GateVerdict.Pass, "61.5 <= 90");
        var champion = registry.Publish(new PublishRequest
        {
            Model = Model,
            Status = VersionStatus.Passed,
            Files = new Dictionary<string, string> { ["model.onnx"] = GeneratorModels.Shared.File(1), ["samples.png"] = SampleGrid(1) },
            Hyperparameters = hyperparameters,
            GateReport = JsonNode.Parse(new GateReport(true, false, [fid]).ToJson()),
            Alias = PublishAlias.Champion,
            MaxBatchSize = 64,
            RunId = "run-champion",
            Reason = "test: review page champion",
        });
        var rows = new[]
        {
            new GateRow("fid", GateSlices.All, GateThresholdKind.Value, 97.25, 61.5, 90, "<= 90", GateVerdict.Fail, "97.25 > 90"),
            new GateRow("fid", GateSlices.All, GateThresholdKind.Regression, 97.25, 61.5, null, "regression <= 5 (abs)", GateVerdict.Skipped, "<b>not</b> compared"),
        };
        var candidate = registry.Publish(new PublishRequest
        {
            Model = Model,
            Status = VersionStatus.Rejected,
            Files = new Dictionary<string, string> { ["model.onnx"] = GeneratorModels.Shared.File(2), ["samples.png"] = SampleGrid(2) },
            Hyperparameters = hyperparameters,
            GateReport = JsonNode.Parse(new GateReport(false, true, rows).ToJson()),
            ParentVersion = 1,
            RunId = "run-candidate",
            Reason = "test: review page candidate",
        });
        return (champion, candidate);
    }

    /// <summary>A 56×56 grey PNG standing in for a fine-tune's 2×2 sample grid.</summary>
    private string SampleGrid(int seed)
    {
        var pixels = new byte[56 * 56];
        new Random(seed).NextBytes(pixels);
        string path = Path.Combine(Directory, $"samples-{seed}.png");
        File.WriteAllBytes(path, ImagePreprocessor.EncodePng(pixels, 56, 56, 1));
        return path;
    }

    /// <summary>Two analysis runs of the model; the newer one (by its report.json) is the one the page must show.</summary>
    private void PlantAnalysisReport()
    {
        string older = Path.Combine(Directory, "analysis", Model, "analysis-run-3");
        string newer = Path.Combine(Directory, "analysis", Model, AnalysisRun);
        foreach (var (folder, worst, marker) in new[] { (older, "class=6", "older report"), (newer, "class=1", AnalysisMarker) })
        {
            System.IO.Directory.CreateDirectory(folder);
            File.WriteAllText(Path.Combine(folder, "report.html"), $"<!DOCTYPE html><html><body><p>{marker}</p><script>document.body.dataset.ran='yes'</script></body></html>");
            File.WriteAllText(Path.Combine(folder, "report.json"),
                $"{{\"format\":1,\"model\":\"{Model}\",\"champion\":{{\"version\":1}},\"worst\":[\"{worst}\"],\"drift\":{{\"metric\":\"frechet_distance\",\"status\":\"ok\",\"value\":3.8}}}}");
        }

        File.SetLastWriteTimeUtc(Path.Combine(older, "report.json"), DateTime.UtcNow.AddHours(-1));
    }

    private static async Task<string> GenerateOneAsync(ServingDaemon serving)
    {
        using var response = await serving.Http.PostAsync(new Uri($"/v1/models/{Model}/generate", UriKind.Relative), ServingDaemon.Json("{\"count\":1}"));
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        using var json = JsonDocument.Parse(body);
        return json.RootElement.GetProperty("samples")[0].GetProperty("generation_id").GetString()!;
    }

    private async Task<(HttpStatusCode Status, string Error)> RateAsync(ServingDaemon serving, string model, string body)
    {
        using var response = await serving.Http.PostAsync(new Uri($"/review/{model}/ratings", UriKind.Relative), ServingDaemon.Json(body));
        string text = await response.Content.ReadAsStringAsync();
        output.WriteLine($"{(int)response.StatusCode} {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(text);
        return (response.StatusCode, json.RootElement.TryGetProperty("error", out var error) ? error.GetString()! : text);
    }

    private static async Task<List<StoredFeedback>> ReadFeedbackAsync(SqliteSampleStore store, string model = Model)
    {
        var rows = new List<StoredFeedback>();
        await foreach (var row in store.ReadFeedbackAsync(model, 0, CancellationToken.None))
        {
            rows.Add(row);
        }

        return rows;
    }

    private static Task<string> TextAsync(IPage page, string selector) =>
        page.EvaluateFunctionAsync<string>("s => { const e = document.querySelector(s); return e ? e.textContent : '(no ' + s + ')'; }", selector);

    private static async Task<T> WaitForAsync<T>(Func<Task<T?>> probe, string what)
        where T : class
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            if (await probe() is { } found)
            {
                return found;
            }

            if (watch.Elapsed > StoreWait)
            {
                throw new TimeoutException($"{what}: not seen within {StoreWait.TotalSeconds:0} s");
            }

            await Task.Delay(100);
        }
    }
}
