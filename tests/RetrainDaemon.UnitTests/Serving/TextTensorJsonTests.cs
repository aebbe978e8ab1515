using System.Text.Json;
using RetrainDaemon.Serving.Http;

namespace RetrainDaemon.UnitTests.Serving;

/// <summary>
/// <c>/infer</c> on a text model's raw graph: int64 token inputs, and past key/value tensors with a
/// zero-size dimension (a prefill's past is (batch, heads, 0, head_dim), data <c>[]</c>).
/// </summary>
public sealed class TextTensorJsonTests
{
    private const string Model = "model 'tiny' v1";

    private static readonly TensorSignature[] Inputs =
    [
        new("input_ids", "INT64", [-1, -1], ["batch", "seq"]),
        new("attention_mask", "INT64", [-1, -1], ["batch", "total"]),
        new("past_key_0", "FP32", [-1, 4, -1, 16], ["batch", "", "past", ""]),
    ];

    private static InferRequest Parse(string json) =>
        JsonSerializer.Deserialize(json, ServingJsonContext.Default.InferRequest) ?? throw new InvalidOperationException("null request");

    [Fact]
    public void A_prefill_with_an_empty_past_is_read_and_becomes_onnx_runtime_values()
    {
        var request = Parse("""
            {"inputs":[
              {"name":"input_ids","shape":[1,3],"datatype":"INT64","data":[1,9007199254740993,42]},
              {"name":"attention_mask","shape":[1,3],"datatype":"INT64","data":[[1,1,1]]},
              {"name":"past_key_0","shape":[1,4,0,16],"datatype":"FP32","data":[]}]}
            """);

        var inputs = TensorJson.ReadInputs(request, Inputs, Model);

        Assert.Equal(new long[] { 1, 9007199254740993, 42 }, (long[])inputs[0].Data);
        Assert.Empty((float[])inputs[2].Data);
        foreach (var input in inputs)
        {
            using var value = TensorJson.ToOrtValue(input);
            Assert.Equal(input.Shape, value.GetTensorTypeAndShape().Shape);
        }
    }

    [Theory]
    [InlineData("""{"name":"past_key_0","shape":[1,4,0,16],"datatype":"FP32","data":[0.5]}""", "= 0 elements but 1 data values")]
    [InlineData("""{"name":"past_key_0","shape":[1,4,2,16],"datatype":"FP32","data":[]}""", "= 128 elements but 0 data values")]
    [InlineData("""{"name":"input_ids","shape":[1,1],"datatype":"INT64","data":[1.5]}""", "input 'input_ids' (INT64): value 1.5 is not an integer")]
    [InlineData("""{"name":"input_ids","shape":[1,1],"datatype":"FP32","data":[1]}""", "input 'input_ids' has datatype FP32; model 'tiny' v1 expects INT64")]
    public void Mistakes_are_400s_naming_the_input(string input, string expected)
    {
        var request = Parse($$"""{"inputs":[{{input}}]}""");

        var refused = Assert.Throws<ServingException>(() => TensorJson.ReadInputs(request, Inputs, Model));

        Assert.Equal(400, refused.Status);
        Assert.Contains(expected, refused.Message, StringComparison.Ordinal);
    }
}
