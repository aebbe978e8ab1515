using System.Text.Json;
using RetrainDaemon.Core.Imaging;
using RetrainDaemon.Serving.Generation;
using RetrainDaemon.Serving.Http;

namespace RetrainDaemon.UnitTests.Serving;

/// <summary>The generate route's pure parts: body validation, pixels through the shared quantizer, ids, JSON problems.</summary>
public sealed class HttpGenerateTests
{
    private static GenerateRequest Body(string json) =>
        JsonSerializer.Deserialize(json, ServingJsonContext.Default.GenerateRequest) ?? throw new InvalidOperationException("null body");

    [Fact]
    public void An_empty_object_asks_for_one_image_as_json_with_a_fresh_seed()
    {
        var request = GenerateEndpoint.Validate("gen", Body("{}"), 64);

        Assert.Equal(("gen", 1, (int?)null, (double?)null), (request.Model, request.Count, request.Class, request.Truncation));
        Assert.InRange(request.Seed, 0, LatentSampler.MaxSeed);
        Assert.Equal(GenerateFormats.Json, Body("{}").Format);
    }

    [Fact]
    public void Every_field_is_read()
    {
        var request = GenerateEndpoint.Validate("gen", Body("""{"count":4,"class":3,"seed":9007199254740991,"truncation":0.5,"format":"grid"}"""), 64);

        Assert.Equal(new GenerationRequest("gen", 4, 3, LatentSampler.MaxSeed, 0.5), request);
    }

    [Theory]
    [InlineData("""{"count":0}""", "'count' must be between 1 and 8, not 0")]
    [InlineData("""{"count":9}""", "'count' must be between 1 and 8, not 9")]
    [InlineData("""{"format":"gif"}""", "'format' must be 'json', 'png' or 'grid', not 'gif'")]
    [InlineData("""{"format":"png","count":2}""", "'count' must be 1 (got 2)")]
    [InlineData("""{"truncation":0}""", "'truncation' must be in (0, 1], not 0")]
    [InlineData("""{"truncation":1.01}""", "'truncation' must be in (0, 1], not 1.01")]
    [InlineData("""{"seed":-1}""", "'seed' must be between 0 and 9007199254740991, not -1")]
    [InlineData("""{"seed":9007199254740992}""", "'seed' must be between 0 and 9007199254740991")]
    [InlineData("""{"class":-2}""", "'class' must not be negative (got -2)")]
    public void Out_of_range_fields_are_400s_naming_the_field(string json, string expected)
    {
        var refused = Assert.Throws<ServingException>(() => GenerateEndpoint.Validate("gen", Body(json), 8));

        Assert.Equal(400, refused.Status);
        Assert.Contains(expected, refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"clas":1}""", "'clas' is not a field of this request")]
    [InlineData("""{"count":"2"}""", "$.count")]
    [InlineData("""{"count":1.5}""", "$.count")]
    [InlineData("""{"format":null}""", "$.format")]
    public void Json_problems_name_the_field_but_not_the_servers_types(string json, string expected)
    {
        var exception = Assert.ThrowsAny<JsonException>(() => Body(json));

        string problem = ServingHttp.JsonProblem(exception);
        Assert.StartsWith("malformed JSON: ", problem, StringComparison.Ordinal);
        Assert.Contains(expected, problem, StringComparison.Ordinal);
        Assert.DoesNotContain("RetrainDaemon", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_required_field_is_named()
    {
        var exception = Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize("{}", ServingJsonContext.Default.PromoteRequest));

        string problem = ServingHttp.JsonProblem(exception);
        Assert.Contains("'version'", problem, StringComparison.Ordinal);
        Assert.DoesNotContain("RetrainDaemon", problem, StringComparison.Ordinal);
    }

    private static GenerationResult Result(float[] values, int count, int offset, GeneratorRange range) =>
        new(new GeneratorSpec("gen", 7, "CPUExecutionProvider", 2, false, null, range),
            new GeneratorOutput(values, values.Length / 4, 1, 2, 2), offset, count, null, TimeSpan.Zero, values.Length / 4);

    [Fact]
    public void Pixels_come_from_the_shared_quantizer_for_the_requests_own_samples()
    {
        // Two samples of 1×2×2 in the batch; the request owns the second.
        float[] values = [9, 9, 9, 9, -1f, 0f, 0.5f, 1f];

        var tanh = GenerateEndpoint.Pixels(Result(values, 1, 1, GeneratorRange.Tanh));
        var unit = GenerateEndpoint.Pixels(Result([0, 0, 0, 0, 0f, 0.25f, 0.5f, 1f], 1, 1, GeneratorRange.Unit));

        Assert.Equal([.. values[4..].Select(v => PixelQuantizer.Quantize(v, GeneratorRange.Tanh))], Assert.Single(tanh));
        Assert.Equal([0, 128, 191, 255], Assert.Single(tanh));
        Assert.Equal([0, 64, 128, 255], Assert.Single(unit));
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void A_non_finite_output_is_refused_not_clamped(float bad)
    {
        float[] values = [0, 0, 0, 0, 0, bad, 0, 0];

        var refused = Assert.Throws<ServingException>(() => GenerateEndpoint.Pixels(Result(values, 2, 0, GeneratorRange.Tanh)));

        Assert.Equal(500, refused.Status);
        Assert.Equal(7, refused.Version);
        Assert.Contains("non-finite value", refused.Message, StringComparison.Ordinal);
        Assert.Contains("in sample 1", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Generation_ids_name_model_and_version_and_are_unique()
    {
        var ids = Enumerable.Range(0, 1000).Select(_ => GenerateEndpoint.NewGenerationId("fashion-mnist", 12)).ToList();

        Assert.All(ids, id => Assert.Matches("^fashion-mnist/12/[0-9a-f]{32}$", id));
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.All(ids, id => Assert.InRange(id.Length, 1, 200)); // the feedback schema's limit
    }
}
