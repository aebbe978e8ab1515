using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Serving.Generation;
using RetrainDaemon.Serving.Generation.Text;
using RetrainDaemon.Serving.Runtime;

namespace RetrainDaemon.Serving.Http;

/// <summary>
/// <c>POST /v1/models/{model}/generate</c> when the serving version is a text (<c>gpt</c>) model: the
/// body is a <see cref="TextGenerateRequest"/>, the generation runs in the version's
/// <see cref="TextEngine"/> (continuous batching), and the answer is a <see cref="TextGenerateResponse"/>
/// — or, with <c>"stream": true</c>, server-sent events: <c>event: token</c> with
/// <c>{"text", "index"}</c> whenever a token releases text (multi-byte characters are never split; text
/// that could still become a stop sequence is held back), then <c>event: done</c> with the response
/// object; a failure after the stream started is <c>event: error</c> with <c>{"error"}</c>. The
/// request keeps its version's lease for the whole generation, so a hot swap never cuts it; requests
/// arriving after a swap run on the new version.
/// </summary>
internal static class TextGenerateEndpoint
{
    public const int DefaultMaxNewTokens = 64;
    public const int MaxStops = 4;
    public const int MaxStopLength = 64;
    public const string EventStream = "text/event-stream";

    /// <summary>Runs a text generation on <paramref name="lease"/>'s version; the lease is handed to the engine (or released here on failure).</summary>
    public static async Task<IResult> GenerateAsync(HttpContext http, ServingCall call, ServingHttp serving, Lease lease, TextEngine engine)
    {
        var model = engine.Model;
        call.Served(model.Version);
        TextGenerationRequest request;
        TextSequence sequence;
        string? input;
        try
        {
            var body = await serving.ReadJsonAsync(http, ServingJson.Context.TextGenerateRequest, call.Token, static () => new TextGenerateRequest()).ConfigureAwait(false);
            request = Validate(body, model, serving.Options.MaxNewTokens);
            input = model.Conditional ? body.Source : body.Prompt;
            sequence = engine.Start(request, lease, call.Token);
        }
        catch
        {
            lease.Dispose();
            throw;
        }

        string generationId = GenerateEndpoint.NewGenerationId(model.Model, model.Version);
        var journal = http.RequestServices.GetService<IGenerationJournal>();
        var pending = serving.Metrics.Pending.WithLabels(model.Model);
        pending.Inc();
        try
        {
            if (!request.Stream)
            {
                var done = await sequence.Completion.Task.WaitAsync(call.Token).ConfigureAwait(false);
                journal?.Record(Record(model, generationId, input, DateTimeOffset.UtcNow));
                return TypedResults.Json(Response(model, request, done, generationId), ServingJson.Context.TextGenerateResponse);
            }

            await StreamAsync(http, call, serving, model, request, sequence, generationId, () => journal?.Record(Record(model, generationId, input, DateTimeOffset.UtcNow))).ConfigureAwait(false);
            return Results.Empty;
        }
        finally
        {
            pending.Dec();
        }
    }

    /// <summary>
    /// Checks a text request against the server's limits and the model (its task, context and
    /// vocabulary) and encodes the prompt: <c>[BOS] prompt</c> for lm models, <c>[BOS] source [SEP]</c>
    /// for conditional ones. Characters outside the vocabulary's tokens are encoded as their bytes, so
    /// any text is accepted. A seed is drawn when none was given.
    /// </summary>
    /// <exception cref="ServingException">400 naming every bad field and its allowed values.</exception>
    internal static TextGenerationRequest Validate(TextGenerateRequest body, TextModel model, int maxNewTokensLimit)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(model);
        var problems = new List<string>();
        string? text = null;
        string field = model.Conditional ? "source" : "prompt";
        if (model.Conditional)
        {
            if (body.Prompt is not null)
            {
                problems.Add($"'prompt' is for lm models; {model.Name} is a conditional model: send the text to transform as 'source'");
            }

            if (string.IsNullOrEmpty(body.Source))
            {
                problems.Add($"'source' is required and must not be empty: {model.Name} is a conditional model (source ⇒ target)");
            }
            else
            {
                text = body.Source;
            }
        }
        else
        {
            if (body.Source is not null)
            {
                problems.Add($"'source' is for conditional models; {model.Name} is an lm model: send the text to continue as 'prompt' (or nothing, for unconditional text)");
            }

            text = body.Prompt ?? "";
        }

        int maxNewTokens = body.MaxNewTokens ?? Math.Min(DefaultMaxNewTokens, maxNewTokensLimit);
        if (maxNewTokens < 1 || maxNewTokens > maxNewTokensLimit)
        {
            problems.Add(Invariant($"'max_new_tokens' must be between 1 and {maxNewTokensLimit}, not {maxNewTokens}"));
        }

        var sampling = new SamplingOptions(body.Temperature ?? 1.0, body.TopK ?? 0, body.TopP ?? 1.0);
        problems.AddRange(SamplingOptions.Validate(sampling, model.Vocabulary.Count).Select(QuoteField));

        if (body.Seed is long seed && (seed < 0 || seed > LatentSampler.MaxSeed))
        {
            problems.Add(Invariant($"'seed' must be between 0 and {LatentSampler.MaxSeed}, not {seed}"));
        }

        var stops = body.Stop ?? [];
        problems.AddRange(StopProblems(stops));

        int[] tokens = [];
        if (text is not null && problems.Count == 0)
        {
            tokens = Encode(text, model);
            if (tokens.Length > model.Context)
            {
                string specials = model.Conditional ? "BOS and SEP" : "BOS";
                problems.Add(Invariant(
                    $"'{field}' is {tokens.Length} tokens ({specials} included); {model.Name} has a context of {model.Context} tokens, so the {field} may be at most {model.Context} tokens ({specials} included)"));
            }
        }

        if (problems.Count > 0)
        {
            throw ServingException.BadRequest(string.Join("; ", problems), model.Version);
        }

        return new TextGenerationRequest(tokens, sampling, body.Seed ?? LatentSampler.NewSeed(), maxNewTokens, stops, body.Stream ?? false);
    }

    /// <summary>The model's input for <paramref name="text"/>: <c>[BOS] text</c>, or <c>[BOS] text [SEP]</c> for a conditional model.</summary>
    internal static int[] Encode(string text, TextModel model)
    {
        var encoded = model.Vocabulary.Encode(text);
        var tokens = new int[encoded.Length + (model.Conditional ? 2 : 1)];
        tokens[0] = TextVocabulary.Bos;
        encoded.CopyTo(tokens, 1);
        if (model.Conditional)
        {
            tokens[^1] = TextVocabulary.Sep;
        }

        return tokens;
    }

    /// <summary>Every problem of a <c>stop</c> list: at most <see cref="MaxStops"/> entries of 1 to <see cref="MaxStopLength"/> characters of well-formed text.</summary>
    internal static IEnumerable<string> StopProblems(IReadOnlyList<string> stops)
    {
        ArgumentNullException.ThrowIfNull(stops);
        if (stops.Count > MaxStops)
        {
            yield return Invariant($"'stop' may hold at most {MaxStops} sequences, not {stops.Count}");
        }

        for (int i = 0; i < stops.Count; i++)
        {
            string? stop = stops[i];
            if (string.IsNullOrEmpty(stop))
            {
                yield return Invariant($"'stop'[{i}] must be a non-empty string");
            }
            else if (stop.Length > MaxStopLength)
            {
                yield return Invariant($"'stop'[{i}] is {stop.Length} characters; at most {MaxStopLength}");
            }
            else if (!IsWellFormed(stop))
            {
                yield return Invariant($"'stop'[{i}] holds an unpaired surrogate (\\u escape); it could never match generated text");
            }
        }
    }

    /// <summary>The journal record of a text generation: its input is the prompt (lm) or the source (conditional).</summary>
    internal static GenerationRecord Record(TextModel model, string generationId, string? input, DateTimeOffset createdAt)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new GenerationRecord(generationId, model.Model, model.Version, createdAt, GenerationModalities.Text, null, input);
    }

    internal static TextGenerateResponse Response(TextModel model, TextGenerationRequest request, TextCompletion done, string generationId) =>
        new(model.Model, model.Version, generationId, done.Text, done.FinishReason, done.PromptTokens, done.CompletionTokens, request.Seed);

    /// <param name="handingOutId">Called just before the <c>done</c> event, the only one that carries the generation id.</param>
    private static async Task StreamAsync(HttpContext http, ServingCall call, ServingHttp serving, TextModel model, TextGenerationRequest request, TextSequence sequence, string generationId, Action handingOutId)
    {
        var reader = sequence.Chunks.Reader;

        // Nothing is sent before the first chunk or the end: a failure before that (a failed prefill, a
        // timeout in the queue) is still an ordinary error answer with its status.
        bool more = await reader.WaitToReadAsync(call.Token).ConfigureAwait(false);
        var response = http.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = EventStream;
        response.Headers.CacheControl = "no-cache";
        http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var writer = response.BodyWriter;
        try
        {
            while (more)
            {
                while (reader.TryRead(out var chunk))
                {
                    WriteEvent(writer, "token", JsonSerializer.SerializeToUtf8Bytes(new TextTokenEvent(chunk.Text, chunk.Index), ServingJson.Context.TextTokenEvent));
                }

                await writer.FlushAsync(call.Token).ConfigureAwait(false);
                more = await reader.WaitToReadAsync(call.Token).ConfigureAwait(false);
            }

            var done = await sequence.Completion.Task.WaitAsync(call.Token).ConfigureAwait(false);
            handingOutId();
            WriteEvent(writer, "done", JsonSerializer.SerializeToUtf8Bytes(Response(model, request, done, generationId), ServingJson.Context.TextGenerateResponse));
            await writer.FlushAsync(call.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !http.RequestAborted.IsCancellationRequested)
        {
            // The status line is gone: the failure becomes the stream's last event.
            string message;
            (call.FailureReason, message) = ex switch
            {
                ServingException failure => (failure.Reason, failure.Message),
                OperationCanceledException => (FailureReasons.Timeout, Invariant($"timed out after {serving.Options.RequestTimeout.TotalSeconds:0.###} s")),
                _ => (FailureReasons.Internal, "internal error; the server's log has the details"),
            };
            if (call.FailureReason == FailureReasons.Internal)
            {
                serving.LogStreamFailure(ServingRoute.Generate, model.Model, ex);
            }

            try
            {
                WriteEvent(writer, "error", JsonSerializer.SerializeToUtf8Bytes(new ErrorBody(message), ServingJson.Context.ErrorBody));
                await writer.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception writeFailure) when (writeFailure is IOException or OperationCanceledException or InvalidOperationException)
            {
                // The client is gone too; the metric still counts the failure.
            }
        }
        catch (OperationCanceledException)
        {
            call.FailureReason = FailureReasons.Cancelled; // the client went away mid-stream
        }
    }

    private static void WriteEvent(PipeWriter writer, string name, byte[] json)
    {
        // One data line: JSON escapes every line break inside strings.
        writer.Write("event: "u8);
        writer.Write(Encoding.ASCII.GetBytes(name));
        writer.Write("\ndata: "u8);
        writer.Write(json);
        writer.Write("\n\n"u8);
    }

    /// <summary>"temperature must be …" → "'temperature' must be …", as the other fields are named.</summary>
    private static string QuoteField(string problem)
    {
        int space = problem.IndexOf(' ', StringComparison.Ordinal);
        return space > 0 ? $"'{problem[..space]}'{problem[space..]}" : problem;
    }

    private static bool IsWellFormed(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(text[i]))
            {
                return false;
            }
        }

        return true;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
