using System.Text;
using System.Text.Json;
using RetrainDaemon.Serving.Http;

namespace RetrainDaemon.UnitTests.Serving;

/// <summary>
/// The Open Inference Protocol's JSON tensor format: request parsing (the spec's own example),
/// validation against a model signature with 400s that name what was expected, and the response writer.
/// </summary>
public sealed class HttpTensorJsonTests
{
    private const string Model = "model 'gen' v3";

    private static readonly TensorSignature[] GeneratorInputs =
    [
        new("latent", "FP32", [-1, 4], ["batch", ""]),
        new("label", "INT64", [-1], ["batch"]),
    ];

    private static readonly TensorSignature[] GeneratorOutputs = [new("image", "FP32", [-1, 1, 2, 2])];

    private static InferRequest Parse(string json) =>
        JsonSerializer.Deserialize(json, ServingJsonContext.Default.InferRequest) ?? throw new InvalidOperationException("null request");

    private static ServingException Refused(string json)
    {
        var request = Parse(json);
        return Assert.Throws<ServingException>(() =>
        {
            TensorJson.ReadInputs(request, GeneratorInputs, Model);
            TensorJson.ReadOutputs(request, GeneratorOutputs, Model);
        });
    }

    [Fact]
    public void The_specifications_example_request_parses_unchanged()
    {
        // The inference request example of the OIP REST specification, verbatim.
        const string example = """
            {
              "id" : "42",
              "inputs" : [
                {
                  "name" : "input0",
                  "shape" : [ 2, 2 ],
                  "datatype" : "UINT32",
                  "data" : [ 1, 2, 3, 4 ]
                },
                {
                  "name" : "input1",
                  "shape" : [ 3 ],
                  "datatype" : "BOOL",
                  "data" : [ true ]
                }
              ],
              "outputs" : [
                {
                  "name" : "output0"
                }
              ]
            }
            """;

        var request = Parse(example);

        Assert.Equal("42", request.Id);
        Assert.Equal(["input0", "input1"], request.Inputs.Select(i => i.Name));
        Assert.Equal([2L, 2L], request.Inputs[0].Shape);
        Assert.Equal("UINT32", request.Inputs[0].Datatype);
        Assert.Equal([1u, 2u, 3u, 4u], (uint[])TensorJson.ReadData(request.Inputs[0]));
        Assert.Equal("output0", Assert.Single(request.Outputs!).Name);
        // The example's second input declares 3 values and gives 1: refused with the counts.
        var mismatch = Assert.Throws<ServingException>(() => TensorJson.ReadData(request.Inputs[1]));
        Assert.Equal(400, mismatch.Status);
        Assert.Contains("3 elements but 1 data values", mismatch.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Flat_and_nested_data_give_the_same_row_major_values()
    {
        var flat = Parse("""{"inputs":[{"name":"latent","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8.5]},{"name":"label","shape":[2],"datatype":"INT64","data":[3,9]}]}""");
        var nested = Parse("""{"inputs":[{"name":"latent","shape":[2,4],"datatype":"FP32","data":[[1,2,3,4],[5,6,7,8.5]]},{"name":"label","shape":[2],"datatype":"INT64","data":[[3],[9]]}]}""");

        var a = TensorJson.ReadInputs(flat, GeneratorInputs, Model);
        var b = TensorJson.ReadInputs(nested, GeneratorInputs, Model);

        Assert.Equal([1f, 2, 3, 4, 5, 6, 7, 8.5f], (float[])a[0].Data);
        Assert.Equal((float[])a[0].Data, (float[])b[0].Data);
        Assert.Equal([3L, 9L], (long[])b[1].Data);
        Assert.Equal(["image"], TensorJson.ReadOutputs(flat, GeneratorOutputs, Model));
    }

    [Theory]
    [InlineData("""{"inputs":[{"name":"noise","shape":[1,4],"datatype":"FP32","data":[0,0,0,0]}]}""", "has no input 'noise'; its inputs are latent (FP32 [-1, 4]), label (INT64 [-1])")]
    [InlineData("""{"inputs":[{"name":"latent","shape":[1,4],"datatype":"FP32","data":[0,0,0,0]}]}""", "missing input label (INT64 [-1])")]
    [InlineData("""{"inputs":[{"name":"latent","shape":[1,4],"datatype":"FP64","data":[0,0,0,0]},{"name":"label","shape":[1],"datatype":"INT64","data":[0]}]}""", "input 'latent' has datatype FP64; model 'gen' v3 expects FP32")]
    [InlineData("""{"inputs":[{"name":"latent","shape":[1,5],"datatype":"FP32","data":[0,0,0,0,0]},{"name":"label","shape":[1],"datatype":"INT64","data":[0]}]}""", "input 'latent' has shape [1, 5]; model 'gen' v3 expects [-1, 4]")]
    [InlineData("""{"inputs":[{"name":"latent","shape":[4],"datatype":"FP32","data":[0,0,0,0]},{"name":"label","shape":[1],"datatype":"INT64","data":[0]}]}""", "input 'latent' has shape [4]; model 'gen' v3 expects [-1, 4]")]
    [InlineData("""{"inputs":[{"name":"latent","shape":[-1,4],"datatype":"FP32","data":[0,0,0,0]},{"name":"label","shape":[1],"datatype":"INT64","data":[0]}]}""", "has shape [-1, 4]")]
    [InlineData("""{"inputs":[{"name":"latent","shape":[2,4],"datatype":"FP32","data":[0,0,0,0]},{"name":"label","shape":[2],"datatype":"INT64","data":[0,1]}]}""", "input 'latent' has shape [2, 4] = 8 elements but 4 data values")]
    [InlineData("""{"inputs":[{"name":"latent","shape":[1,4],"datatype":"FP32","data":[0,0,"x",0]},{"name":"label","shape":[1],"datatype":"INT64","data":[0]}]}""", "input 'latent' (FP32): value \"x\" is not a finite number")]
    [InlineData("""{"inputs":[{"name":"latent","shape":[1,4],"datatype":"FP32","data":[0,0,1e39,0]},{"name":"label","shape":[1],"datatype":"INT64","data":[0]}]}""", "value 1e39 is out of FP32 range")]
    [InlineData("""{"inputs":[{"name":"latent","shape":[1,4],"datatype":"FP32","data":[0,0,0,0]},{"name":"label","shape":[1],"datatype":"INT64","data":[1.5]}]}""", "input 'label' (INT64): value 1.5 is not an integer")]
    [InlineData("""{"inputs":[{"name":"latent","shape":[1,4],"datatype":"FP32","data":0},{"name":"label","shape":[1],"datatype":"INT64","data":[1]}]}""", "'data' must be an array")]
    [InlineData("""{"inputs":[{"name":"latent","shape":[1,4],"datatype":"FP32","data":[0,0,0,0]},{"name":"latent","shape":[1,4],"datatype":"FP32","data":[0,0,0,0]}]}""", "input 'latent' is given twice")]
    [InlineData("""{"inputs":[{"name":"latent","shape":[1,4],"datatype":"FP32","data":[0,0,0,0]},{"name":"label","shape":[1],"datatype":"INT64","data":[1]}],"outputs":[{"name":"pixels"}]}""", "has no output 'pixels'; its outputs are image (FP32 [-1, 1, 2, 2])")]
    [InlineData("""{"inputs":[{"name":"latent","shape":[1,4],"datatype":"FP32","data":[0,0,0,0]},{"name":"label","shape":[1],"datatype":"INT64","data":[1]}],"outputs":[{"name":"image"},{"name":"image"}]}""", "output 'image' is asked for twice")]
    [InlineData("""{"inputs":[{"name":"latent","shape":[1,4],"datatype":"FP32","data":[0,0,0,0]},{"name":"label","shape":[2],"datatype":"INT64","data":[1,2]}]}""", "inputs 'latent' and 'label' disagree on dimension 'batch': 1 and 2")]
    public void Mistakes_are_400s_that_name_the_expectation(string json, string expected)
    {
        var refused = Refused(json);

        Assert.Equal(400, refused.Status);
        Assert.Equal(FailureReasons.BadRequest, refused.Reason);
        Assert.Contains(expected, refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("UINT8", "[0, 255]", true)]
    [InlineData("UINT8", "[256]", false)]
    [InlineData("INT8", "[-128, 127]", true)]
    [InlineData("INT8", "[-129]", false)]
    [InlineData("INT32", "[2147483647]", true)]
    [InlineData("INT32", "[2147483648]", false)]
    [InlineData("UINT64", "[18446744073709551615]", true)]
    [InlineData("UINT64", "[-1]", false)]
    [InlineData("BOOL", "[true, false]", true)]
    [InlineData("BOOL", "[1]", false)]
    [InlineData("FP64", "[1e300, -2.5]", true)]
    [InlineData("FP16", "[1]", false)]
    public void Every_datatype_checks_its_values(string datatype, string data, bool accepted)
    {
        int count = JsonDocument.Parse(data).RootElement.GetArrayLength();
        var input = Parse($$"""{"inputs":[{"name":"x","shape":[{{count}}],"datatype":"{{datatype}}","data":{{data}}}]}""").Inputs[0];

        if (accepted)
        {
            Assert.Equal(count, TensorJson.ReadData(input).Length);
        }
        else
        {
            Assert.Equal(400, Assert.Throws<ServingException>(() => TensorJson.ReadData(input)).Status);
        }
    }

    [Theory]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"data":[1]}]}""")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}""")]
    [InlineData("""{"id":"1"}""")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}""")]
    [InlineData("""{"inputs":[{"name":"x","shape":["a"],"datatype":"FP32","data":[1]}]}""")]
    public void Malformed_requests_fail_to_deserialize(string json)
    {
        Assert.ThrowsAny<JsonException>(() => Parse(json));
    }

    [Fact]
    public void Shapes_match_on_fixed_dimensions_only()
    {
        Assert.True(TensorJson.ShapeMatches([64, 100], [-1, 100]));
        Assert.True(TensorJson.ShapeMatches([0, 100], [-1, 100]));
        Assert.False(TensorJson.ShapeMatches([64, 99], [-1, 100]));
        Assert.False(TensorJson.ShapeMatches([64], [-1, 100]));
        Assert.False(TensorJson.ShapeMatches([-1, 100], [-1, 100]));
        Assert.True(TensorJson.ShapeMatches([], []));
    }

    [Theory]
    [InlineData("float32", "FP32")]
    [InlineData("int64", "INT64")]
    [InlineData("uint8", "UINT8")]
    [InlineData("bool", "BOOL")]
    [InlineData("float64", "FP64")]
    [InlineData("string", "BYTES")]
    public void Manifest_element_types_map_to_protocol_datatypes(string manifest, string protocol)
    {
        Assert.Equal(protocol, TensorJson.Datatype(manifest));
    }

    [Fact]
    public void The_response_names_model_version_and_id_and_carries_flat_data()
    {
        var outputs = new[]
        {
            new OutputTensor("image", "FP32", [1, 1, 2, 2], new[] { 0.5f, -1f, 1e-7f, 0.1f }),
            new OutputTensor("label", "INT64", [1], new[] { 7L }),
            new OutputTensor("ok", "BOOL", [2], new[] { true, false }),
        };
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            TensorJson.WriteResponse(writer, "gen", 3, "42", outputs);
        }

        using var document = JsonDocument.Parse(Encoding.UTF8.GetString(buffer.ToArray()));
        var root = document.RootElement;
        Assert.Equal("gen", root.GetProperty("model_name").GetString());
        Assert.Equal("3", root.GetProperty("model_version").GetString());
        Assert.Equal("42", root.GetProperty("id").GetString());
        var image = root.GetProperty("outputs")[0];
        Assert.Equal("FP32", image.GetProperty("datatype").GetString());
        Assert.Equal([1L, 1, 2, 2], image.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        // Round-trip exact: the writer uses the shortest representation that parses back to the same float.
        Assert.Equal([0.5f, -1f, 1e-7f, 0.1f], image.GetProperty("data").EnumerateArray().Select(e => e.GetSingle()));
        Assert.Equal(7, root.GetProperty("outputs")[1].GetProperty("data")[0].GetInt64());
        Assert.True(root.GetProperty("outputs")[2].GetProperty("data")[0].GetBoolean());
    }

    [Fact]
    public void The_id_is_left_out_when_the_request_had_none()
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            TensorJson.WriteResponse(writer, "gen", 3, null, []);
        }

        using var document = JsonDocument.Parse(buffer.ToArray());
        Assert.False(document.RootElement.TryGetProperty("id", out _));
    }

    [Theory]
    [InlineData(null, true)]
    [InlineData("3", true)]
    [InlineData("2", false)]
    [InlineData("03", true)]
    [InlineData("v3", false)]
    [InlineData("-3", false)]
    public void Only_the_serving_version_can_be_asked_for(string? requested, bool accepted)
    {
        if (accepted)
        {
            InferenceEndpoints.CheckVersion("gen", requested, 3);
            return;
        }

        var refused = Assert.Throws<ServingException>(() => InferenceEndpoints.CheckVersion("gen", requested, 3));
        Assert.Equal(404, refused.Status);
        Assert.Contains("the serving version is 3", refused.Message, StringComparison.Ordinal);
    }
}
