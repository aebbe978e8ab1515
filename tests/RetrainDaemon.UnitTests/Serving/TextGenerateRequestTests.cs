using System.Text.Json;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Serving.Generation;
using RetrainDaemon.Serving.Generation.Text;
using RetrainDaemon.Serving.Http;

namespace RetrainDaemon.UnitTests.Serving;

/// <summary>
/// The text generate route's pure parts: request validation (every bad field is a 400 that names it
/// and its allowed values), prompt encoding, stop sequences, finish reasons and the decode layout.
/// </summary>
public sealed class TextGenerateRequestTests
{
    private const int MaxNewTokens = 400;
    private const int Context = 16;

    private static readonly Lazy<TextVocabulary> SharedVocabulary = new(() => TextVocabulary.Build(
        ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"], maxSize: 300, minCount: 1));

    private static TextModel Lm => new("tiny", 3, GptTasks.Lm, new GptShape(1, 2, 8, Context, SharedVocabulary.Value.Count), SharedVocabulary.Value);

    private static TextModel Conditional => new("tiny-cond", 4, GptTasks.Conditional, new GptShape(1, 2, 8, Context, SharedVocabulary.Value.Count), SharedVocabulary.Value);

    private static TextGenerateRequest Body(string json) =>
        JsonSerializer.Deserialize(json, ServingJsonContext.Default.TextGenerateRequest) ?? throw new InvalidOperationException("null body");

    private static TextGenerationRequest Validate(string json, TextModel? model = null) =>
        TextGenerateEndpoint.Validate(Body(json), model ?? Lm, MaxNewTokens);

    [Fact]
    public void An_empty_body_is_unconditional_text_with_the_defaults_and_a_fresh_seed()
    {
        var request = Validate("{}");

        Assert.Equal([TextVocabulary.Bos], request.PromptTokens);
        Assert.Equal(64, request.MaxNewTokens);
        Assert.Equal(new SamplingOptions(1.0, 0, 1.0), request.Sampling);
        Assert.InRange(request.Seed, 0, LatentSampler.MaxSeed);
        Assert.Empty(request.Stops);
        Assert.False(request.Stream);
    }

    [Fact]
    public void Every_field_is_read()
    {
        var request = Validate("""{"prompt":"the cat","max_new_tokens":400,"temperature":0,"top_k":5,"top_p":0.9,"seed":9007199254740991,"stop":["\n","dog"],"stream":true}""");

        Assert.Equal([TextVocabulary.Bos, .. SharedVocabulary.Value.Encode("the cat")], request.PromptTokens);
        Assert.Equal((400, new SamplingOptions(0, 5, 0.9), LatentSampler.MaxSeed, true), (request.MaxNewTokens, request.Sampling, request.Seed, request.Stream));
        Assert.Equal(["\n", "dog"], request.Stops);
    }

    [Fact]
    public void A_conditional_model_gets_bos_source_sep()
    {
        var request = Validate("""{"source":"a dog"}""", Conditional);

        Assert.Equal([TextVocabulary.Bos, .. SharedVocabulary.Value.Encode("a dog"), TextVocabulary.Sep], request.PromptTokens);
    }

    [Fact]
    public void The_default_budget_never_exceeds_the_servers_limit()
    {
        var request = TextGenerateEndpoint.Validate(Body("{}"), Lm, maxNewTokensLimit: 10);

        Assert.Equal(10, request.MaxNewTokens);
    }

    [Theory]
    [InlineData("""{"source":"a cat"}""", false, "'source' is for conditional models; model 'tiny' v3 is an lm model")]
    [InlineData("""{"prompt":"a cat","source":"a dog"}""", true, "'prompt' is for lm models; model 'tiny-cond' v4 is a conditional model")]
    [InlineData("""{}""", true, "'source' is required and must not be empty")]
    [InlineData("""{"source":""}""", true, "'source' is required and must not be empty")]
    [InlineData("""{"max_new_tokens":0}""", false, "'max_new_tokens' must be between 1 and 400, not 0")]
    [InlineData("""{"max_new_tokens":401}""", false, "'max_new_tokens' must be between 1 and 400, not 401")]
    [InlineData("""{"temperature":-0.5}""", false, "'temperature' must be a number in [0, 100] (0 = greedy); got -0.5")]
    [InlineData("""{"temperature":100.5}""", false, "'temperature' must be a number in [0, 100]")]
    [InlineData("""{"top_k":-1}""", false, "'top_k' must be an integer in [0, ")]
    [InlineData("""{"top_k":100000}""", false, "'top_k' must be an integer in [0, ")]
    [InlineData("""{"top_p":0}""", false, "'top_p' must be a number in (0, 1] (1 = off); got 0")]
    [InlineData("""{"top_p":1.5}""", false, "'top_p' must be a number in (0, 1]")]
    [InlineData("""{"seed":-1}""", false, "'seed' must be between 0 and 9007199254740991, not -1")]
    [InlineData("""{"seed":9007199254740992}""", false, "'seed' must be between 0 and 9007199254740991")]
    [InlineData("""{"stop":["a","b","c","d","e"]}""", false, "'stop' may hold at most 4 sequences, not 5")]
    [InlineData("""{"stop":[""]}""", false, "'stop'[0] must be a non-empty string")]
    [InlineData("""{"stop":["ok",null]}""", false, "'stop'[1] must be a non-empty string")]
    [InlineData("""{"prompt":"the cat sat on the mat the dog sat on the log the cat sat on the mat"}""", false, "tokens (BOS included); model 'tiny' v3 has a context of 16 tokens, so the prompt may be at most 16 tokens")]
    [InlineData("""{"source":"the cat sat on the mat the dog sat on the log the cat sat on the"}""", true, "tokens (BOS and SEP included); model 'tiny-cond' v4 has a context of 16 tokens")]
    public void Bad_fields_are_400s_naming_the_field_and_its_range(string json, bool conditional, string expected)
    {
        var refused = Assert.Throws<ServingException>(() => Validate(json, conditional ? Conditional : Lm));

        Assert.Equal(400, refused.Status);
        Assert.Equal(conditional ? 4 : 3, refused.Version);
        Assert.Contains(expected, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_stop_sequence_longer_than_64_characters_is_named()
    {
        var refused = Assert.Throws<ServingException>(() => Validate($$"""{"stop":["ok","{{new string('x', 65)}}"]}"""));

        Assert.Contains("'stop'[1] is 65 characters; at most 64", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_stop_sequence_with_an_unpaired_surrogate_is_named()
    {
        Assert.Equal(["'stop'[1] holds an unpaired surrogate (\\u escape); it could never match generated text"], TextGenerateEndpoint.StopProblems(["🦀", "a\ud800"]));
    }

    [Fact]
    public void Every_bad_field_is_named_at_once()
    {
        var refused = Assert.Throws<ServingException>(() => Validate("""{"max_new_tokens":0,"temperature":-1,"top_p":2,"seed":-3}"""));

        foreach (string field in new[] { "'max_new_tokens'", "'temperature'", "'top_p'", "'seed'" })
        {
            Assert.Contains(field, refused.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("""{"promt":"x"}""", "'promt' is not a field of this request")]
    [InlineData("""{"max_new_tokens":"5"}""", "$.max_new_tokens")]
    [InlineData("""{"max_new_tokens":2.5}""", "$.max_new_tokens")]
    [InlineData("""{"stop":"\n"}""", "$.stop")]
    [InlineData("""{"stream":"yes"}""", "$.stream")]
    public void Json_problems_name_the_field(string json, string expected)
    {
        var exception = Assert.ThrowsAny<JsonException>(() => Body(json));

        string problem = ServingHttp.JsonProblem(exception);
        Assert.Contains(expected, problem, StringComparison.Ordinal);
        Assert.DoesNotContain("RetrainDaemon", problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("日本語のテキスト")]
    [InlineData("emoji 🦀🧪 and \u0000 control")]
    [InlineData("\uE000 private use")]
    public void Characters_outside_the_vocabulary_fall_back_to_bytes(string prompt)
    {
        // Every byte of an unknown character is a token of its own: a wider context than the other cases.
        var wide = new TextModel("tiny", 3, GptTasks.Lm, new GptShape(1, 2, 8, 64, SharedVocabulary.Value.Count), SharedVocabulary.Value);
        var request = Validate(JsonSerializer.Serialize(new Dictionary<string, string> { ["prompt"] = prompt }), wide);

        Assert.Equal(TextVocabulary.Bos, request.PromptTokens[0]);
        Assert.Equal(prompt, SharedVocabulary.Value.Decode(request.PromptTokens));
    }

    [Theory]
    // text, stops, expected match, expected safe
    [InlineData("hello world", new[] { "wor" }, 6, 6)]
    [InlineData("hello world", new[] { "xyz" }, -1, 11)]
    [InlineData("hello wo", new[] { "world" }, -1, 6)]
    [InlineData("hello w", new[] { "world", "w!" }, -1, 6)]
    [InlineData("ab", new[] { "b", "ab" }, 0, 0)]
    [InlineData("aaa", new[] { "aab" }, -1, 1)]
    [InlineData("end.\n", new[] { "\n\n" }, -1, 4)]
    [InlineData("", new[] { "x" }, -1, 0)]
    public void Stop_scan_finds_the_earliest_match_or_holds_back_a_possible_start(string text, string[] stops, int match, int safe)
    {
        Assert.Equal(new StopScan(match, safe), StopSequences.Scan(text, stops));
    }

    public static TheoryData<string[], string[], string?, string[], string, bool> CompletionCases => new()
    {
        // pieces, stops, flushed tail (null: stopped before the end), released per piece (+ the finish), final text, stopped
        { ["Hel", "lo", " wor", "ld"], [], "", ["Hel", "lo", " wor", "ld", ""], "Hello world", false },
        { ["Hel", "lo", "\n", "\nmore"], ["\n\n"], null, ["Hel", "lo", "", ""], "Hello", true },
        { ["a", "b", "c"], ["bd"], "", ["a", "", "bc", ""], "abc", false },
        { ["x", "E", "N"], ["END"], "", ["x", "", "", "EN"], "xEN", false },
        { ["x", "E", "N"], ["END"], "D", ["x", "", "", ""], "x", true },
        { ["one STOP two"], ["STOP", "one"], null, [""], "", true },
        { ["abc", "def"], ["cd", "bcdx"], null, ["a", "b"], "ab", true },
    };

    [Theory]
    [MemberData(nameof(CompletionCases))]
    public void Completion_text_releases_only_what_no_stop_can_claim(string[] pieces, string[] stops, string? tail, string[] released, string text, bool stopped)
    {
        var completion = new CompletionText(stops);
        var got = new List<string>();
        foreach (string piece in pieces)
        {
            if (completion.Stopped)
            {
                break;
            }

            got.Add(completion.Append(piece));
        }

        if (tail is not null)
        {
            got.Add(completion.Finish(tail));
        }

        Assert.Equal(released, got);
        Assert.Equal(text, completion.Text);
        Assert.Equal(text, string.Concat(got));
        Assert.Equal(stopped, completion.Stopped);
    }

    [Theory]
    // eos, stopped, generated, max, sequence, context → reason
    [InlineData(true, true, 64, 64, 200, 128, TextFinish.Eos)]
    [InlineData(false, true, 64, 64, 200, 128, TextFinish.Stop)]
    [InlineData(false, false, 64, 64, 200, 128, TextFinish.Length)]
    [InlineData(false, false, 10, 64, 129, 128, TextFinish.Context)]
    [InlineData(false, false, 10, 64, 128, 128, null)]
    [InlineData(false, false, 63, 64, 70, 128, null)]
    [InlineData(false, false, 1, 1, 2, 128, TextFinish.Length)]
    public void Finish_reasons_in_precedence_order(bool eos, bool stopped, int generated, int max, int sequence, int context, string? expected)
    {
        Assert.Equal(expected, TextFinish.Decide(eos, stopped, generated, max, sequence, context));
    }

    [Theory]
    [InlineData(0, 128, 64)]
    [InlineData(1, 128, 64)]
    [InlineData(63, 128, 64)]
    [InlineData(64, 128, 128)]
    [InlineData(127, 128, 128)]
    [InlineData(0, 16, 16)]
    [InlineData(15, 16, 16)]
    [InlineData(100, 1000, 128)]
    public void A_rows_attention_length_depends_on_its_own_length_only(int cached, int context, int total)
    {
        Assert.Equal(total, DecodeLayout.Total(cached, context));
    }

    [Fact]
    public void A_row_that_would_overflow_the_context_cannot_decode()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => DecodeLayout.Total(128, 128));
    }
}
