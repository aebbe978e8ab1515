using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.IntegrationTests.Serving;

/// <summary>
/// The Open Inference Protocol v2 REST API as its specification writes it
/// (kserve/open-inference-protocol, <c>specification/protocol/inference_rest.md</c>, "Inference Request
/// Examples"), sent unchanged to the served generator except for what the spec leaves to the model —
/// input and output names, shapes and datatypes. The answers are checked against the spec's response
/// objects and the outputs against ONNX Runtime run locally on the same exported bytes.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class ServingProtocolTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-serving-oip")
{
    private const int Seed = 1;
    private const int Batch = 2;

    [Fact]
    public async Task SpecificationExample_WorksUnchanged_AndMatchesOnnxRuntimeRunLocally()
    {
        var registry = ServingDaemon.OpenRegistry(Directory);
        var v1 = GeneratorModels.Shared.PublishChampion(registry, ServingDaemon.Model, Seed);
        await using var serving = ServingDaemon.Start(Fixture.Broker, Directory);
        await serving.Daemon.WaitReadyAsync();
        var latent = ServingDaemon.Latent(Batch, seed: 42);
        var expected = Local(latent);
        string data = string.Join(", ", latent.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));

        // The spec's example, its layout kept (spaces around ':' and inside brackets); its two inputs
        // (UINT32 [2, 2], BOOL [3]) become the generator's one, its output0 becomes image.
        string example = $$"""
            {
              "id" : "42",
              "inputs" : [
                {
                  "name" : "latent",
                  "shape" : [ {{Batch}}, 64 ],
                  "datatype" : "FP32",
                  "data" : [ {{data}} ]
                }
              ],
              "outputs" : [
                {
                  "name" : "image"
                }
              ]
            }
            """;
        foreach (string path in new[] { $"/v2/models/{ServingDaemon.Model}/infer", $"/v2/models/{ServingDaemon.Model}/versions/{v1.Version}/infer" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(example, Encoding.UTF8, "application/json") };
            using var response = await serving.Http.SendAsync(request);
            string body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, body);
            Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal(v1.Version, ServingDaemon.VersionOf(response));
            double diff = CheckResponse(body, v1.Version, id: "42", expected);
            output.WriteLine($"POST {path} (spec example layout): 200, id echoed, output 'image' [{Batch}, 1, 28, 28] FP32, max |server - local ORT| = {diff:g3}");
        }

        // "data" nested by the tensor's shape (the spec's row-major nesting) gives the same answer.
        string nested = $$"""
            { "inputs" : [ { "name" : "latent", "shape" : [ {{Batch}}, 64 ], "datatype" : "FP32",
              "data" : [ {{string.Join(", ", latent.Chunk(64).Select(row => "[ " + string.Join(", ", row.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + " ]"))}} ] } ] }
            """;
        using (var response = await serving.Http.PostAsync(new Uri($"/v2/models/{ServingDaemon.Model}/infer", UriKind.Relative), ServingDaemon.Json(nested)))
        {
            string body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, body);
            CheckResponse(body, v1.Version, id: null, expected);
        }

        // $metadata_server_response, $metadata_model_response, $ready_model_response.
        using (var server = JsonDocument.Parse(await serving.Daemon.GetAsync("/v2")))
        {
            var root = server.RootElement;
            Assert.False(string.IsNullOrEmpty(root.GetProperty("name").GetString()));
            Assert.False(string.IsNullOrEmpty(root.GetProperty("version").GetString()));
            Assert.Equal(JsonValueKind.Array, root.GetProperty("extensions").ValueKind);
        }

        var metadata = await serving.MetadataAsync();
        output.WriteLine($"GET /v2/models/{ServingDaemon.Model}: {metadata}");
        Assert.Equal(ServingDaemon.Model, metadata.GetProperty("name").GetString());
        Assert.Equal([v1.Version.ToString(CultureInfo.InvariantCulture)], metadata.GetProperty("versions").EnumerateArray().Select(v => v.GetString()));
        Assert.Equal("onnxruntime_onnx", metadata.GetProperty("platform").GetString());
        AssertTensor(metadata.GetProperty("inputs").EnumerateArray().Single(), "latent", "FP32", [-1, 64]);
        AssertTensor(metadata.GetProperty("outputs").EnumerateArray().Single(), "image", "FP32", [-1, 1, 28, 28]);
        Assert.Equal("CPUExecutionProvider", metadata.GetProperty("execution_provider").GetString());
        using (var ready = JsonDocument.Parse(await serving.Daemon.GetAsync($"/v2/models/{ServingDaemon.Model}/ready")))
        {
            Assert.Equal(ServingDaemon.Model, ready.RootElement.GetProperty("name").GetString());
            Assert.True(ready.RootElement.GetProperty("ready").GetBoolean());
        }

        // $inference_error_response: {"error": $string}, with a 4xx, naming what was expected.
        var errors = new (string Body, string Expect)[]
        {
            (example.Replace("\"latent\"", "\"input0\"", StringComparison.Ordinal), "latent"),
            (example.Replace("\"FP32\"", "\"UINT32\"", StringComparison.Ordinal), "FP32"),
            (example.Replace($"[ {Batch}, 64 ]", $"[ {Batch}, 63 ]", StringComparison.Ordinal), "64"),
            (example.Replace("\"image\"", "\"output0\"", StringComparison.Ordinal), "image"),
            (example[..^10], "JSON"),
        };
        foreach (var (body, expect) in errors)
        {
            using var response = await serving.Http.PostAsync(new Uri($"/v2/models/{ServingDaemon.Model}/infer", UriKind.Relative), ServingDaemon.Json(body));
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            string error = json.RootElement.GetProperty("error").GetString()!;
            output.WriteLine($"{(int)response.StatusCode}: {error}");
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains(expect, error, StringComparison.Ordinal);
        }

        using (var missing = await serving.Http.PostAsync(new Uri("/v2/models/no-such-model/infer", UriKind.Relative), ServingDaemon.Json(example)))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }
    }

    /// <summary>Checks an <c>$inference_response</c> and returns the largest difference from <paramref name="expected"/>.</summary>
    private static double CheckResponse(string body, int version, string? id, float[] expected)
    {
        using var json = JsonDocument.Parse(body);
        var root = json.RootElement;
        Assert.Equal(ServingDaemon.Model, root.GetProperty("model_name").GetString());
        Assert.Equal(version.ToString(CultureInfo.InvariantCulture), root.GetProperty("model_version").GetString());
        if (id is not null)
        {
            Assert.Equal(id, root.GetProperty("id").GetString());
        }

        var image = root.GetProperty("outputs").EnumerateArray().Single();
        Assert.Equal("image", image.GetProperty("name").GetString());
        Assert.Equal("FP32", image.GetProperty("datatype").GetString());
        Assert.Equal([Batch, 1, 28, 28], image.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        var values = image.GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(expected.Length, values.Length);
        double max = 0;
        for (int i = 0; i < values.Length; i++)
        {
            max = Math.Max(max, Math.Abs(values[i] - expected[i]));
        }

        Assert.True(max <= 1e-6, $"max difference {max}");
        return max;
    }

    private static void AssertTensor(JsonElement tensor, string name, string datatype, long[] shape)
    {
        Assert.Equal(name, tensor.GetProperty("name").GetString());
        Assert.Equal(datatype, tensor.GetProperty("datatype").GetString());
        Assert.Equal(shape, tensor.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
    }

    /// <summary>The same exported bytes run by ONNX Runtime in this process.</summary>
    private static float[] Local(float[] latent)
    {
        using var session = new InferenceSession(GeneratorModels.Shared.Onnx(Seed));
        using var input = OrtValue.CreateTensorValueFromMemory(latent, [Batch, 64]);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, ["latent"], [input], ["image"]);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }
}
