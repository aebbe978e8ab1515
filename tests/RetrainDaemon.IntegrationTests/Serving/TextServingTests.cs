using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Export.Exporters;
using RetrainDaemon.Serving.Generation.Text;
using RetrainDaemon.Serving.Observability;
using RetrainDaemon.Serving.Runtime;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RetrainDaemon.IntegrationTests.Serving;

/// <summary>
/// Text (<c>gpt</c>) models served end to end: tiny GPTs built in TorchSharp on a vocabulary of the
/// real fortunes, exported by the project's exporter, published into a registry and served by the
/// real daemon — greedy text equal to TorchSharp's own KV-cache decode, seeded sampling reproducible
/// alone and among concurrent requests (which are batched), server-sent events, stop sequences,
/// validation, a file without its vocabulary refused at load, <c>/infer</c> on the raw graph.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class TextServingTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-serving-text")
{
    private const string Lm = "tiny-lm";
    private const string Conditional = "tiny-cond";
    private const string Broken = "tiny-broken";
    private static readonly TimeSpan ReadyBound = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Lm_GreedyEqualsTorchSharp_SeededSamplingIsReproducible_AloneAndBatched()
    {
        var models = TinyTextModels.Shared;
        models.Publish(ServingDaemon.OpenRegistry(Directory), Lm, models.LmOnnx, GptTasks.Lm);
        await using var serving = Start(Lm);
        await WaitReadyAsync(serving, Lm);

        // Greedy decoding through HTTP gives the tokens TorchSharp's own prefill + KV-cache decode gives.
        foreach (string prompt in new[] { "", "The meaning of life is", "Q: What is a fortune?\nA:" })
        {
            const int tokens = 40;
            var (status, body) = await PostAsync(serving, Lm, Json(new { prompt, max_new_tokens = tokens, temperature = 0 }));
            Assert.True(status == HttpStatusCode.OK, body);
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            var (expectedText, expectedTokens, eos) = models.Greedy(prompt, tokens);
            output.WriteLine($"greedy '{prompt}' → {Quote(root.GetProperty("text").GetString()!)} ({root.GetProperty("finish_reason").GetString()})");
            Assert.Equal(expectedText, root.GetProperty("text").GetString());
            Assert.Equal(eos ? "eos" : "length", root.GetProperty("finish_reason").GetString());
            Assert.Equal(expectedTokens, root.GetProperty("completion_tokens").GetInt32());
            Assert.Equal(1 + models.Vocabulary.Encode(prompt).Length, root.GetProperty("prompt_tokens").GetInt32());
            Assert.Equal(Lm, root.GetProperty("model").GetString());
            Assert.Equal(1, root.GetProperty("version").GetInt32());
            Assert.StartsWith($"{Lm}/1/", root.GetProperty("generation_id").GetString(), StringComparison.Ordinal);
        }

        // Seeded sampling: the same request twice in a row gives the same text; different seeds differ.
        var requests = Enumerable.Range(0, 6)
            .Select(i => Json(new { prompt = i % 2 == 0 ? "The" : "Never trust a", max_new_tokens = 60 + (10 * i), temperature = 0.9, top_k = 40, seed = 1000 + i }))
            .ToList();
        var alone = new List<string>();
        foreach (string request in requests)
        {
            alone.Add(await TextAsync(serving, Lm, request));
        }

        Assert.Equal(alone[0], await TextAsync(serving, Lm, requests[0]));
        Assert.True(alone.Distinct(StringComparer.Ordinal).Count() > 1, "different seeds gave one text");

        // The same requests all at once, among others of other lengths and prompts: the same texts, and
        // the decode loop ran them in shared steps (batch size metric).
        double count = await serving.Daemon.MetricAsync("retrain_serving_decode_batch_size_count", $"model=\"{Lm}\"");
        double sum = await serving.Daemon.MetricAsync("retrain_serving_decode_batch_size_sum", $"model=\"{Lm}\"");
        var noise = Enumerable.Range(0, 6).Select(i => Json(new { prompt = new string('x', 5 * i) + " and then", max_new_tokens = 100, seed = 7 + i })).ToList();
        var together = await Task.WhenAll(requests.Concat(noise).Select(r => TextAsync(serving, Lm, r)));
        double runs = await serving.Daemon.MetricAsync("retrain_serving_decode_batch_size_count", $"model=\"{Lm}\"") - count;
        double rows = await serving.Daemon.MetricAsync("retrain_serving_decode_batch_size_sum", $"model=\"{Lm}\"") - sum;
        output.WriteLine($"{requests.Count + noise.Count} concurrent requests: {rows} decode rows in {runs} runs (mean batch {rows / runs:0.00})");
        Assert.Equal(alone, together.Take(requests.Count));
        Assert.True(rows > runs, $"no decode run had more than one sequence ({rows} rows in {runs} runs)");
        Assert.True(await serving.Daemon.MetricAsync("retrain_serving_generated_tokens_total", $"model=\"{Lm}\"", "version=\"1\"") > 0);
        Assert.True(await serving.Daemon.MetricAsync("retrain_serving_time_per_token_seconds_count", $"model=\"{Lm}\"", "version=\"1\"") > 0);
    }

    [Fact]
    public async Task Stream_ConcatenatesToTheSameText_StopSequencesCutIt_AndDoneCarriesTheAnswer()
    {
        var models = TinyTextModels.Shared;
        models.Publish(ServingDaemon.OpenRegistry(Directory), Lm, models.LmOnnx, GptTasks.Lm);
        await using var serving = Start(Lm);
        await WaitReadyAsync(serving, Lm);

        const string prompt = "A fortune: ";
        string whole = await TextAsync(serving, Lm, Json(new { prompt, max_new_tokens = 80, seed = 42, top_p = 0.95 }));
        var stream = await StreamAsync(serving, Lm, Json(new { prompt, max_new_tokens = 80, seed = 42, top_p = 0.95, stream = true }));
        output.WriteLine($"non-stream: {Quote(whole)}; stream: {stream.Tokens.Count} token events");
        Assert.Equal(whole, string.Concat(stream.Tokens.Select(t => t.Text)));
        Assert.Equal(stream.Tokens.Select(t => t.Index).Order(), stream.Tokens.Select(t => t.Index));
        var done = stream.Done!.Value;
        Assert.Equal(whole, done.GetProperty("text").GetString());
        Assert.Equal(Lm, done.GetProperty("model").GetString());
        Assert.Equal(1, done.GetProperty("version").GetInt32());
        Assert.StartsWith($"{Lm}/1/", done.GetProperty("generation_id").GetString(), StringComparison.Ordinal);
        Assert.Equal(42, done.GetProperty("seed").GetInt64());
        Assert.Equal("done", stream.Events[^1]);

        // A stop sequence taken from that text: the same tokens up to it, the text cut before it.
        int at = Enumerable.Range(5, whole.Length - 10).First(i => !whole.AsSpan(i, 3).ContainsAny(SurrogatesAndFffd));
        string stop = whole.Substring(at, 3);
        string expected = whole[..whole.IndexOf(stop, StringComparison.Ordinal)];
        var (status, body) = await PostAsync(serving, Lm, Json(new { prompt, max_new_tokens = 80, seed = 42, top_p = 0.95, stop = new[] { "\u0001never", stop } }));
        Assert.True(status == HttpStatusCode.OK, body);
        using (var json = JsonDocument.Parse(body))
        {
            output.WriteLine($"stop {Quote(stop)}: {Quote(json.RootElement.GetProperty("text").GetString()!)}");
            Assert.Equal(expected, json.RootElement.GetProperty("text").GetString());
            Assert.Equal("stop", json.RootElement.GetProperty("finish_reason").GetString());
        }

        var stopped = await StreamAsync(serving, Lm, Json(new { prompt, max_new_tokens = 80, seed = 42, top_p = 0.95, stop = new[] { stop }, stream = true }));
        Assert.Equal(expected, string.Concat(stopped.Tokens.Select(t => t.Text)));
        Assert.Equal("stop", stopped.Done!.Value.GetProperty("finish_reason").GetString());

        // A failure before the stream starts is an ordinary JSON error with its status.
        var (badStatus, badBody) = await PostAsync(serving, Lm, Json(new { stream = true, temperature = -1 }));
        Assert.Equal(HttpStatusCode.BadRequest, badStatus);
        Assert.Contains("'temperature'", badBody, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validation_ConditionalModels_RefusedFiles_AndInferOnTheRawGraph()
    {
        var models = TinyTextModels.Shared;
        var registry = ServingDaemon.OpenRegistry(Directory);
        var lm = models.Publish(registry, Lm, models.LmOnnx, GptTasks.Lm);
        models.Publish(registry, Conditional, models.ConditionalOnnx, GptTasks.Conditional);
        var broken = models.Publish(registry, Broken, models.WithoutVocabulary(), GptTasks.Lm);
        await using var serving = Start(Lm, Conditional, Broken);
        await WaitReadyAsync(serving, Lm);
        await WaitReadyAsync(serving, Conditional);

        // A model file without its vocabulary is refused at load with the reason; nothing serves it.
        var refusal = await WaitForRefusalAsync(serving, Broken);
        output.WriteLine($"{Broken}: {refusal}");
        Assert.Contains($"v{broken.Version} was refused at load", refusal, StringComparison.Ordinal);
        Assert.Contains("no vocabulary in its metadata ('retrain.vocabulary')", refusal, StringComparison.Ordinal);
        var (brokenStatus, brokenBody) = await PostAsync(serving, Broken, "{}");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, brokenStatus);
        Assert.Contains("no vocabulary", brokenBody, StringComparison.Ordinal);

        // Conditional models take a source (and only that); lm models take a prompt.
        var cases = new (string Model, string Body, string Expect)[]
        {
            (Conditional, Json(new { prompt = "Hello" }), "'prompt' is for lm models"),
            (Conditional, "{}", "'source' is required"),
            (Lm, Json(new { source = "Hello" }), "'source' is for conditional models"),
            (Lm, Json(new { prompt = string.Concat(Enumerable.Repeat("fortune ", 200)) }), "has a context of 128 tokens"),
            (Lm, Json(new { temperature = 101 }), "'temperature' must be a number in [0, 100]"),
            (Lm, Json(new { top_p = 0 }), "'top_p' must be a number in (0, 1]"),
            (Lm, Json(new { top_k = -1 }), "'top_k' must be an integer in [0, "),
            (Lm, Json(new { max_new_tokens = 401 }), "'max_new_tokens' must be between 1 and 400"),
            (Lm, Json(new { stop = new[] { "a", "b", "c", "d", "e" } }), "'stop' may hold at most 4"),
            (Lm, Json(new { seed = -5 }), "'seed' must be between 0 and"),
            (Lm, """{"prompt":"x","count":2}""", "'count' is not a field of this request"),
        };
        foreach (var (model, body, expect) in cases)
        {
            var (status, answer) = await PostAsync(serving, model, body);
            using var json = JsonDocument.Parse(answer);
            string error = json.RootElement.GetProperty("error").GetString()!;
            output.WriteLine($"{model} {body[..Math.Min(body.Length, 60)]} → {(int)status}: {error[..Math.Min(error.Length, 160)]}");
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Contains(expect, error, StringComparison.Ordinal);
        }

        var (okStatus, okBody) = await PostAsync(serving, Conditional, Json(new { source = "Open file", max_new_tokens = 20, seed = 3 }));
        Assert.True(okStatus == HttpStatusCode.OK, okBody);
        using (var json = JsonDocument.Parse(okBody))
        {
            // [BOS] source [SEP]
            Assert.Equal(2 + models.Vocabulary.Encode("Open file").Length, json.RootElement.GetProperty("prompt_tokens").GetInt32());
        }

        // Characters the vocabulary has no token for are encoded as bytes, never a failure.
        var (unicodeStatus, unicodeBody) = await PostAsync(serving, Lm, Json(new { prompt = "日本語 🦀 \u0007", max_new_tokens = 5 }));
        Assert.True(unicodeStatus == HttpStatusCode.OK, unicodeBody);

        // OIP v2 exposes the raw graph: a prefill with zero-length past tensors, int64 ids, as ONNX Runtime runs it here.
        using var metadata = JsonDocument.Parse(await serving.Daemon.GetAsync($"/v2/models/{Lm}"));
        var past = metadata.RootElement.GetProperty("inputs").EnumerateArray().Single(i => i.GetProperty("name").GetString() == "past_key_0");
        Assert.Equal([-1, 4, -1, 16], past.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        long[] ids = [TextVocabulary.Bos, .. models.Vocabulary.Encode("Hello there").Select(t => (long)t)];
        string infer = InferBody(ids);
        using var inferResponse = await serving.Http.PostAsync(new Uri($"/v2/models/{Lm}/infer", UriKind.Relative), ServingDaemon.Json(infer));
        string inferBody = await inferResponse.Content.ReadAsStringAsync();
        Assert.True(inferResponse.StatusCode == HttpStatusCode.OK, inferBody);
        Assert.Equal(lm.Version, ServingDaemon.VersionOf(inferResponse));
        using var inferJson = JsonDocument.Parse(inferBody);
        var outputs = inferJson.RootElement.GetProperty("outputs").EnumerateArray().ToDictionary(o => o.GetProperty("name").GetString()!, o => o);
        Assert.Equal([1, ids.Length, models.Vocabulary.Count], outputs["logits"].GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        Assert.Equal([1, 4, ids.Length, 16], outputs["present_value_1"].GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        var served = outputs["logits"].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        var local = models.LocalPrefillLogits(ids);
        double diff = served.Zip(local, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"/infer prefill of {ids.Length} tokens: logits [1, {ids.Length}, {models.Vocabulary.Count}], max |served - local ORT| = {diff:g3}");
        Assert.True(diff <= 1e-6, $"max difference {diff}");
    }

    private static readonly System.Buffers.SearchValues<char> SurrogatesAndFffd =
        System.Buffers.SearchValues.Create([.. Enumerable.Range(0xD800, 0x800).Select(c => (char)c), '\uFFFD']);

    private ServingDaemon Start(params string[] served)
    {
        var settings = new Dictionary<string, string> { ["Serving:RequestTimeout"] = "00:01:00" };
        for (int i = 0; i < served.Length; i++)
        {
            settings[$"Serving:Models:{i}"] = served[i];
        }

        return ServingDaemon.Start(Fixture.Broker, Directory, new ServingDaemonOptions { Settings = settings });
    }

    private static async Task WaitReadyAsync(ServingDaemon serving, string model)
    {
        await serving.WaitLiveAsync();
        var watch = Stopwatch.StartNew();
        string last = "";
        while (watch.Elapsed < ReadyBound)
        {
            using var response = await serving.Http.GetAsync(new Uri($"/v2/models/{model}/ready", UriKind.Relative));
            last = await response.Content.ReadAsStringAsync();
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"{model} was not ready within {ReadyBound} (last: {last}):\n{ServingDaemon.Tail(serving.Daemon.Output)}");
    }

    private static async Task<string> WaitForRefusalAsync(ServingDaemon serving, string model)
    {
        var watch = Stopwatch.StartNew();
        string error = "";
        while (watch.Elapsed < ReadyBound)
        {
            using var response = await serving.Http.GetAsync(new Uri($"/v2/models/{model}/ready", UriKind.Relative));
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            error = json.RootElement.TryGetProperty("error", out var e) ? e.GetString() ?? "" : "";
            Assert.NotEqual(HttpStatusCode.OK, response.StatusCode);
            if (error.Contains("refused", StringComparison.Ordinal))
            {
                return error;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"{model} was not refused within {ReadyBound} (last: {error})");
    }

    private static async Task<(HttpStatusCode Status, string Body)> PostAsync(ServingDaemon serving, string model, string body)
    {
        using var response = await serving.Http.PostAsync(new Uri($"/v1/models/{model}/generate", UriKind.Relative), ServingDaemon.Json(body));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static async Task<string> TextAsync(ServingDaemon serving, string model, string body)
    {
        var (status, answer) = await PostAsync(serving, model, body);
        Assert.True(status == HttpStatusCode.OK, answer);
        using var json = JsonDocument.Parse(answer);
        return json.RootElement.GetProperty("text").GetString()!;
    }

    private static async Task<SseAnswer> StreamAsync(ServingDaemon serving, string model, string body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/models/{model}/generate") { Content = ServingDaemon.Json(body) };
        using var response = await serving.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        string text = await response.Content.ReadAsStringAsync();
        var answer = new SseAnswer();
        foreach (string block in text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            string name = "", data = "";
            foreach (string line in block.Split('\n'))
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    name = line["event: ".Length..];
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    data = line["data: ".Length..];
                }
            }

            answer.Events.Add(name);
            using var json = JsonDocument.Parse(data);
            switch (name)
            {
                case "token":
                    answer.Tokens.Add((json.RootElement.GetProperty("text").GetString()!, json.RootElement.GetProperty("index").GetInt32()));
                    break;
                case "done":
                    answer.Done = json.RootElement.Clone();
                    break;
                default:
                    throw new InvalidOperationException($"unexpected event '{name}': {data}");
            }
        }

        return answer;
    }

    private static string InferBody(long[] ids)
    {
        var inputs = new List<object>
        {
            new { name = "input_ids", shape = new[] { 1, ids.Length }, datatype = "INT64", data = ids },
            new { name = "position_ids", shape = new[] { 1, ids.Length }, datatype = "INT64", data = Enumerable.Range(0, ids.Length).ToArray() },
            new { name = "attention_mask", shape = new[] { 1, ids.Length }, datatype = "INT64", data = ids.Select(_ => 1).ToArray() },
        };
        for (int layer = 0; layer < 2; layer++)
        {
            foreach (string kind in new[] { "key", "value" })
            {
                inputs.Add(new { name = $"past_{kind}_{layer}", shape = new[] { 1, 4, 0, 16 }, datatype = "FP32", data = Array.Empty<float>() });
            }
        }

        return JsonSerializer.Serialize(new { inputs });
    }

    private static string Json(object body) => JsonSerializer.Serialize(body);

    private static string Quote(string text) => JsonSerializer.Serialize(text.Length > 100 ? text[..100] + "…" : text);

    private sealed class SseAnswer
    {
        public List<string> Events { get; } = [];

        public List<(string Text, int Index)> Tokens { get; } = [];

        public JsonElement? Done { get; set; }
    }
}

/// <summary>
/// The text runtime in process, without the daemon: a generation keeping its version across a hot swap,
/// and decode rows whose logits have the same bits whatever shares their run (what reproducible seeded
/// sampling under batching rests on), with the engine batching concurrent generations.
/// </summary>
public sealed class TextRuntimeTests(ITestOutputHelper output) : IDisposable
{
    private readonly string root = TestPaths.NewTempDirectory("rd-text-runtime");

    public void Dispose() => Directory.Delete(root, recursive: true);

    /// <summary>
    /// In process: a generation that holds v1's lease finishes on v1 after v2 was swapped in (v1's session
    /// goes only with it), and the next request runs on v2.
    /// </summary>
    [Fact]
    public async Task HotSwap_DoesNotBreakAnInFlightGeneration_AndNewRequestsUseTheNewVersion()
    {
        var models = TinyTextModels.Shared;
        using var loggers = LoggerFactory.Create(b => b.AddProvider(new TestOutputLoggerProvider(output)).SetMinimumLevel(LogLevel.Information));
        var registry = new ModelRegistry(Path.Combine(root, "registry"), keepLast: 10);
        var options = new ServingOptions();
        string model = $"text-{Guid.NewGuid():N}"[..20];
        var server = new ModelServer(model, registry, new SessionFactory(options), options, null, new ServingMetrics(), loggers.CreateLogger<ModelServer>());
        models.Publish(registry, model, models.LmOnnx, GptTasks.Lm);
        await server.RefreshAsync();
        Assert.True(server.TryLease(out var lease, out string? why), why);
        var v1 = server.Current!;
        Assert.NotNull(v1.Text);

        models.Publish(registry, model, models.LmOnnxV2, GptTasks.Lm);
        await server.RefreshAsync();
        Assert.Equal(2, server.Current!.Version);
        Assert.True(v1.IsRetired);
        Assert.False(v1.IsReleased); // the lease held for the request keeps v1's session

        var request = new TextGenerationRequest([TextVocabulary.Bos], new SamplingOptions(), Seed: 5, MaxNewTokens: 100, Stops: [], Stream: false);
        var sequence = v1.Text!.Start(request, lease, CancellationToken.None);
        var done = await sequence.Completion.Task.WaitAsync(TimeSpan.FromSeconds(30));
        output.WriteLine($"in-flight on v1 across the swap: {done.CompletionTokens} tokens ({done.FinishReason})");
        Assert.Equal(done.FinishReason == TextFinish.Eos ? done.CompletionTokens : 100, done.CompletionTokens);
        Assert.True(v1.IsReleased); // its last lease went with the generation

        Assert.True(server.TryLease(out var next, out why), why);
        var v2 = next.Version!;
        Assert.Equal(2, v2.Version);
        var onV2 = v2.Text!.Start(request, next, CancellationToken.None);
        var second = await onV2.Completion.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, v2.Text.Model.Version);
        Assert.NotEqual(done.Text, second.Text); // other weights, same seed
        server.Stop();
    }

    /// <summary>
    /// In process, the property seeded sampling under batching rests on: a decode row's logits have the
    /// same bits alone and in a run with any other rows, at the attention length its own cache decides;
    /// and eight generations started together are batched and give the texts they give alone.
    /// </summary>
    [Fact]
    public async Task DecodeRows_HaveTheSameBits_WhateverShareTheirRun_AndTheEngineBatches()
    {
        var models = TinyTextModels.Shared;
        using var session = new InferenceSession(models.LmOnnx);
        var text = TextModels.Read("bits", 1, session);
        var runner = new GptRunner(session, text);
        int vocabulary = text.Vocabulary.Count;
        string[] prompts = ["", "The", "A long time ago in a galaxy far", "Q: why?\nA: because", "x y z", "One more"];
        var caches = prompts.Select(p =>
        {
            var tokens = Encode(text, p);
            var cache = new KvCache(text.Shape, tokens.Length + 1);
            runner.Prefill(tokens, cache, new float[vocabulary]);
            return cache;
        }).ToList();

        var alone = caches.Select(c =>
        {
            var logits = new float[vocabulary];
            runner.Decode([new DecodeRow(c.Clone(text.Shape), 7)], DecodeLayout.Total(c.Length, text.Context), logits);
            return logits;
        }).ToList();
        int compared = 0;
        foreach (var group in Enumerable.Range(0, caches.Count).GroupBy(i => DecodeLayout.Total(caches[i].Length, text.Context)))
        {
            var members = group.ToList();
            for (int size = 2; size <= members.Count * 2; size++)
            {
                // Rows repeat, in rotating order: the same row at different places of different batches.
                var chosen = Enumerable.Range(0, size).Select(k => members[(k + size) % members.Count]).ToList();
                var logits = new float[size * vocabulary];
                runner.Decode(chosen.Select(i => new DecodeRow(caches[i].Clone(text.Shape), 7)).ToList(), group.Key, logits);
                for (int b = 0; b < size; b++)
                {
                    Assert.True(alone[chosen[b]].AsSpan().SequenceEqual(logits.AsSpan(b * vocabulary, vocabulary)),
                        $"row {chosen[b]} differs between a run of 1 and a run of {size}");
                    compared++;
                }
            }
        }

        output.WriteLine($"{compared} decode rows compared bit for bit between runs of one row and runs of 2..{2 * caches.Count} rows: all equal");

        using var engine = new TextEngine(text, runner, new ServingOptions(), new ServingMetrics(), NullLogger.Instance);
        var requests = Enumerable.Range(0, 8)
            .Select(i => new TextGenerationRequest(Encode(text, prompts[i % prompts.Length]), new SamplingOptions(0.8, 50, 1), 100 + i, 60, [], false))
            .ToList();
        var sequential = new List<string>();
        var clock = Stopwatch.StartNew();
        foreach (var request in requests)
        {
            sequential.Add((await engine.Start(request, default, CancellationToken.None).Completion.Task).Text);
        }

        var alone8 = clock.Elapsed;
        var before = engine.DecodeStatistics;
        clock.Restart();
        var started = requests.Select(r => engine.Start(r, default, CancellationToken.None)).ToList();
        var together = await Task.WhenAll(started.Select(s => s.Completion.Task));
        var together8 = clock.Elapsed;
        var after = engine.DecodeStatistics;
        output.WriteLine($"8 generations together: {after.Rows - before.Rows} rows in {after.Runs - before.Runs} runs, largest {after.Largest}; " +
            $"{together8.TotalMilliseconds:0} ms together vs {alone8.TotalMilliseconds:0} ms one after another ({8 * 60} tokens)");
        Assert.Equal(sequential, together.Select(t => t.Text));
        Assert.True(after.Largest > 1, "no decode run had more than one sequence");
    }

    /// <summary>
    /// In process: at most <see cref="ServingOptions.MaxBatchSize"/> sequences decode together; a
    /// cancelled request leaves at the next step (its lease released) and the others are not disturbed.
    /// </summary>
    [Fact]
    public async Task Cancellation_RemovesOnlyThatSequence_AndMaxBatchSizeIsHonoured()
    {
        var models = TinyTextModels.Shared;
        using var session = new InferenceSession(models.LmOnnx);
        var text = TextModels.Read("cancel", 1, session);
        using var engine = new TextEngine(text, new GptRunner(session, text), new ServingOptions { MaxBatchSize = 3 }, new ServingMetrics(), NullLogger.Instance);
        var requests = Enumerable.Range(0, 7)
            .Select(i => new TextGenerationRequest(Encode(text, "Hello"), new SamplingOptions(), 500 + i, 100, [], Stream: true))
            .ToList();
        var alone = new List<string>();
        foreach (var request in requests)
        {
            alone.Add((await engine.Start(request, default, CancellationToken.None).Completion.Task).Text);
        }

        var before = engine.DecodeStatistics;
        using var cancel = new CancellationTokenSource();
        var started = requests.Select((r, i) => engine.Start(r, default, i == 1 ? cancel.Token : CancellationToken.None)).ToList();
        await started[1].Chunks.Reader.ReadAsync(); // it is generating
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => started[1].Completion.Task);
        Assert.True(started[1].Done);
        var others = await Task.WhenAll(started.Where((_, i) => i != 1).Select(s => s.Completion.Task));
        var after = engine.DecodeStatistics;
        output.WriteLine($"7 generations, one cancelled after its first text: {after.Rows - before.Rows} rows in {after.Runs - before.Runs} runs, largest {after.Largest} (MaxBatchSize 3)");
        Assert.Equal(alone.Where((_, i) => i != 1), others.Select(o => o.Text));
        Assert.Equal(3, after.Largest);
        Assert.True(started[1].Generated < 100, $"the cancelled generation ran to its end ({started[1].Generated} tokens)");
    }

    /// <summary>In process: a text version whose weights give NaN logits is refused at warm-up, and the serving version stays.</summary>
    [Fact]
    public async Task NaNWeights_AreRefusedAtWarmUp_AndTheOldVersionKeepsServing()
    {
        var models = TinyTextModels.Shared;
        using var loggers = LoggerFactory.Create(b => b.AddProvider(new TestOutputLoggerProvider(output)).SetMinimumLevel(LogLevel.Information));
        var registry = new ModelRegistry(Path.Combine(root, "registry"), keepLast: 10);
        var options = new ServingOptions();
        string model = $"text-{Guid.NewGuid():N}"[..20];
        var server = new ModelServer(model, registry, new SessionFactory(options), options, null, new ServingMetrics(), loggers.CreateLogger<ModelServer>());
        models.Publish(registry, model, models.LmOnnx, GptTasks.Lm);
        await server.RefreshAsync();
        var bad = models.Publish(registry, model, models.NaNOnnx(), GptTasks.Lm);
        await server.RefreshAsync();

        var status = server.Status();
        output.WriteLine(status.Problem);
        Assert.Equal(1, status.Version);
        Assert.True(status.Ready);
        Assert.Contains($"v{bad.Version} was refused at warmup: the prefill: output 'logits' holds a non-finite value", status.Problem, StringComparison.Ordinal);
        server.Stop();
    }

    private static int[] Encode(TextModel model, string prompt) =>
        [TextVocabulary.Bos, .. model.Vocabulary.Encode(prompt)];
}

/// <summary>
/// Tiny text models for the serving tests, built once per process: a vocabulary of the real fortunes
/// (<see cref="Fortunes"/>, <see cref="TextVocabulary.Build"/>), GPTs of 2 layers × 4 heads × 64 wide with
/// a context of 128, exported by <see cref="GptExporter"/>. The token embedding is scaled down (×0.25)
/// so that the logits spread out (std ≈ 2 instead of ≈ 8 with the default N(0, 1) embedding, tied to the
/// output) and seeded sampling has real choices to make. Kept: the lm model, for TorchSharp's reference decode.
/// </summary>
internal sealed class TinyTextModels
{
    private static readonly Lazy<TinyTextModels> SharedInstance = new(() => new TinyTextModels());
    private static readonly Lock TorchLock = new();
    private readonly string scratch = Directory.CreateTempSubdirectory("rd-text-models-").FullName;

    private TinyTextModels()
    {
        Vocabulary = TextVocabulary.Build(Fortunes.Read().Select(f => f.Text), maxSize: 1024);
        lock (TorchLock)
        {
            LmModel = Build(seed: 11);
            LmOnnx = new GptExporter(LmModel, GptTasks.Lm, Vocabulary).Export();
            using var v2 = Build(seed: 12);
            LmOnnxV2 = new GptExporter(v2, GptTasks.Lm, Vocabulary).Export();
            using var conditional = Build(seed: 13);
            ConditionalOnnx = new GptExporter(conditional, GptTasks.Conditional, Vocabulary).Export();
        }
    }

    public static TinyTextModels Shared => SharedInstance.Value;

    public TextVocabulary Vocabulary { get; }

    public Gpt LmModel { get; }

    public byte[] LmOnnx { get; }

    public byte[] LmOnnxV2 { get; }

    public byte[] ConditionalOnnx { get; }

    /// <summary>The lm model with its <c>retrain.vocabulary</c> metadata key renamed (same length, so the protobuf stays valid): a file without its vocabulary.</summary>
    public byte[] WithoutVocabulary()
    {
        byte[] bytes = (byte[])LmOnnx.Clone();
        byte[] key = [0x0a, 0x12, .. "retrain.vocabulary"u8];
        for (int i = 0; i + key.Length <= bytes.Length; i++)
        {
            if (bytes.AsSpan(i, key.Length).SequenceEqual(key))
            {
                bytes[i + key.Length - 1] = (byte)'X';
                return bytes;
            }
        }

        throw new InvalidOperationException("the vocabulary metadata key was not found in the exported model");
    }

    /// <summary>An lm model whose final layer norm is NaN: every logit is NaN (exported without any check, as a broken training could).</summary>
    public byte[] NaNOnnx()
    {
        lock (TorchLock)
        {
            using var gpt = Build(seed: 14);
            using (no_grad())
            {
                gpt.named_parameters().Single(p => p.name == "ln_f.weight").parameter.fill_(float.NaN);
            }

            return new GptExporter(gpt, GptTasks.Lm, Vocabulary).Export();
        }
    }

    public PublishResult Publish(ModelRegistry registry, string model, byte[] onnx, string task)
    {
        string path = Path.Combine(scratch, $"{Guid.NewGuid():N}.onnx");
        File.WriteAllBytes(path, onnx);
        try
        {
            return registry.Publish(new PublishRequest
            {
                Model = model,
                Status = VersionStatus.Passed,
                Files = new Dictionary<string, string> { ["model.onnx"] = path },
                Hyperparameters = new Dictionary<string, string> { ["family"] = "gpt", ["task"] = task },
                Alias = PublishAlias.Champion,
                MaxBatchSize = 64,
                Reason = $"test: tiny {task} model",
            });
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>TorchSharp's greedy continuation of <paramref name="prompt"/> through <see cref="Gpt.Cached"/> (prefill, then one token per step with the presents as past).</summary>
    public (string Text, int Tokens, bool Eos) Greedy(string prompt, int maxNewTokens)
    {
        lock (TorchLock)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            long[] tokens = [TextVocabulary.Bos, .. Vocabulary.Encode(prompt).Select(t => (long)t)];
            int length = tokens.Length;
            var (logits, presents) = LmModel.Cached(tensor(tokens, [1, length]), arange(length, dtype: ScalarType.Int64).unsqueeze(0), ones(1, length, dtype: ScalarType.Int64), LmModel.EmptyPast(1));
            var generated = new List<int>();
            while (true)
            {
                int next = (int)logits[0, -1].argmax().item<long>();
                generated.Add(next);
                if (next == TextVocabulary.Eos || generated.Count == maxNewTokens)
                {
                    break;
                }

                (logits, presents) = LmModel.Cached(tensor(new long[] { next }, [1, 1]), tensor(new long[] { length }, [1, 1]), ones(1, length + 1, dtype: ScalarType.Int64), presents);
                length++;
            }

            return (Vocabulary.Decode(generated.ToArray()), generated.Count, generated[^1] == TextVocabulary.Eos);
        }
    }

    /// <summary>The logits of a prefill of <paramref name="ids"/> by ONNX Runtime in this process, on the exported bytes.</summary>
    public float[] LocalPrefillLogits(long[] ids)
    {
        using var session = new InferenceSession(LmOnnx);
        var names = new List<string> { "input_ids", "position_ids", "attention_mask" };
        var values = new List<OrtValue>
        {
            OrtValue.CreateTensorValueFromMemory(ids, [1, ids.Length]),
            OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, ids.Length).Select(i => (long)i).ToArray(), [1, ids.Length]),
            OrtValue.CreateTensorValueFromMemory(ids.Select(_ => 1L).ToArray(), [1, ids.Length]),
        };
        for (int layer = 0; layer < 2; layer++)
        {
            names.Add($"past_key_{layer}");
            values.Add(OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [1, 4, 0, 16]));
            names.Add($"past_value_{layer}");
            values.Add(OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [1, 4, 0, 16]));
        }

        try
        {
            using var runOptions = new RunOptions();
            using var results = session.Run(runOptions, names, values, ["logits"]);
            return results[0].GetTensorDataAsSpan<float>().ToArray();
        }
        finally
        {
            foreach (var value in values)
            {
                value.Dispose();
            }
        }
    }

    private Gpt Build(int seed)
    {
        manual_seed(seed);
        var gpt = new Gpt(new GptConfig(Vocabulary.Count, Layers: 2, Heads: 4, Width: 64, Context: 128));
        using (no_grad())
        {
            gpt.TokenEmbedding.weight!.mul_(0.25);
        }

        gpt.eval();
        return gpt;
    }
}
