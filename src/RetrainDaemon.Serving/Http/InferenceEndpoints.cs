using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Serving.Generation;
using RetrainDaemon.Serving.Runtime;

namespace RetrainDaemon.Serving.Http;

/// <summary>
/// The Open Inference Protocol v2 REST subset: server metadata, model metadata and readiness, and
/// <c>/infer</c> with the JSON tensor format. Only the serving version of a model can be asked for;
/// any other version in the URL is a 404 that names the serving one.
/// </summary>
internal static class InferenceEndpoints
{
    /// <summary>The OIP platform name of an ONNX model served by ONNX Runtime (Triton's spelling).</summary>
    public const string Platform = "onnxruntime_onnx";

    public const string ServerName = "retrain-daemon";

    private static readonly string ServerVersion =
        (Assembly.GetEntryAssembly() ?? typeof(InferenceEndpoints).Assembly).GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? "0.0.0";

    // A version's signature is read from its session once: it never changes while the version lives.
    private static readonly ConditionalWeakTable<ServedVersion, Signature> Signatures = [];

    /// <summary><c>GET /v2</c>.</summary>
    public static Task<IResult> ServerMetadataAsync(HttpContext http, [FromServices] ServingHttp serving) =>
        serving.RunAsync(http, ServingRoute.ServerMetadata, null, _ =>
            Task.FromResult<IResult>(TypedResults.Json(new ServerMetadata(ServerName, ServerVersion, []), ServingJson.Context.ServerMetadata)));

    /// <summary><c>GET /v2/models/{model}[/versions/{version}]</c>.</summary>
    public static Task<IResult> ModelMetadataAsync(string model, string? version, HttpContext http, [FromServices] ServingHttp serving) =>
        serving.RunAsync(http, ServingRoute.ModelMetadata, model, call =>
        {
            var status = Known(serving, model);
            if (status.Version is not int current || status.Manifest is not { } manifest)
            {
                throw ServingException.NotReady(status.Problem ?? $"model '{model}' has no version loaded yet");
            }

            CheckVersion(model, version, current);
            call.Served(current);
            var body = new ModelMetadata(
                model,
                [current.ToString(CultureInfo.InvariantCulture)],
                Platform,
                manifest.Inputs.Select(Describe).ToList(),
                manifest.Outputs.Select(Describe).ToList(),
                status.Provider,
                status.Ready,
                status.LoadedAt);
            return Task.FromResult<IResult>(TypedResults.Json(body, ServingJson.Context.ModelMetadata));
        });

    /// <summary><c>GET /v2/models/{model}[/versions/{version}]/ready</c>: 200 when ready, 503 with the reason when not.</summary>
    public static Task<IResult> ModelReadyAsync(string model, string? version, HttpContext http, [FromServices] ServingHttp serving) =>
        serving.RunAsync(http, ServingRoute.ModelReady, model, call =>
        {
            var status = Known(serving, model);
            if (status.Version is int current)
            {
                CheckVersion(model, version, current);
                call.Served(current);
            }

            if (status.Ready && status.Version is int ready)
            {
                var body = new ModelReadyResponse(model, true, ready.ToString(CultureInfo.InvariantCulture), null);
                return Task.FromResult<IResult>(TypedResults.Json(body, ServingJson.Context.ModelReadyResponse));
            }

            call.FailureReason = FailureReasons.NotReady;
            var notReady = new ModelReadyResponse(model, false, status.Version?.ToString(CultureInfo.InvariantCulture), status.Problem ?? $"model '{model}' has no ready version yet");
            return Task.FromResult<IResult>(TypedResults.Json(notReady, ServingJson.Context.ModelReadyResponse, statusCode: StatusCodes.Status503ServiceUnavailable));
        });

    /// <summary><c>POST /v2/models/{model}[/versions/{version}]/infer</c>.</summary>
    public static Task<IResult> InferAsync(string model, string? version, HttpContext http, [FromServices] ServingHttp serving, [FromServices] InferenceAdmission admission) =>
        serving.RunAsync(http, ServingRoute.Infer, model, async call =>
        {
            Known(serving, model);
            InferenceAdmission.Ticket ticket;
            try
            {
                ticket = admission.Admit(model);
            }
            catch (ServingException)
            {
                // Refused before parsing (fast under a burst), but the body is still read off the wire:
                // answering while the client is still sending makes it see a broken pipe, not the 429.
                await http.Request.Body.CopyToAsync(Stream.Null, call.Token).ConfigureAwait(false);
                throw;
            }

            using var admitted = ticket;
            var request = await serving.ReadJsonAsync(http, ServingJson.Context.InferRequest, call.Token).ConfigureAwait(false);
            var pending = serving.Metrics.Pending.WithLabels(model);
            pending.Inc();
            try
            {
                await ticket.WaitForRunAsync(call.Token).ConfigureAwait(false);
                if (!serving.Served.TryLease(model, out var lease, out string? reason, out bool unknown))
                {
                    throw unknown ? NotServed(serving, model) : ServingException.NotReady(reason ?? $"model '{model}' has no ready version");
                }

                using (lease)
                {
                    var served = lease.Version ?? throw ServingException.NotReady($"model '{model}' has no ready version");
                    call.Served(served.Version);
                    CheckVersion(model, version, served.Version);
                    var outputs = Run(served, request, serving, call.Token);
                    return new InferResult(model, served.Version, request.Id, outputs);
                }
            }
            finally
            {
                pending.Dec();
            }
        });

    /// <summary>The request's version, if any, must be the serving one.</summary>
    /// <exception cref="ServingException">404 naming the serving version.</exception>
    internal static void CheckVersion(string model, string? requested, int serving)
    {
        if (requested is null)
        {
            return;
        }

        if (!int.TryParse(requested, NumberStyles.None, CultureInfo.InvariantCulture, out int asked) || asked != serving)
        {
            throw ServingException.NotFound(string.Create(CultureInfo.InvariantCulture,
                $"model '{model}' version '{requested}' is not served; the serving version is {serving} (leave the version out to get it)"));
        }
    }

    private static ModelStatus Known(ServingHttp serving, string model) =>
        serving.Served.Status(model) ?? throw NotServed(serving, model);

    private static ServingException NotServed(ServingHttp serving, string model) =>
        ServingException.NotFound($"no model '{model}' is served here; served: {(serving.Served.Names.Count == 0 ? "none" : string.Join(", ", serving.Served.Names))}");

    private static TensorMetadata Describe(TensorSpec spec) => new(spec.Name, TensorJson.Datatype(spec.ElementType), spec.Shape);

    private static List<OutputTensor> Run(ServedVersion served, InferRequest request, ServingHttp serving, CancellationToken cancellationToken)
    {
        string name = string.Create(CultureInfo.InvariantCulture, $"model '{served.Model}' v{served.Version}");
        var signature = Signatures.GetValue(served, static v =>
        {
            var (inputs, outputs) = TensorJson.Signature(v.Session);
            return new Signature(inputs, outputs);
        });
        var inputs = TensorJson.ReadInputs(request, signature.Inputs, name);
        var outputNames = TensorJson.ReadOutputs(request, signature.Outputs, name);
        var values = new List<OrtValue>(inputs.Count);
        try
        {
            foreach (var input in inputs)
            {
                values.Add(TensorJson.ToOrtValue(input));
            }

            long start = Stopwatch.GetTimestamp();
            using var results = OnnxRunner.Run(served.Session, inputs.Select(i => i.Name).ToList(), values, outputNames, cancellationToken);
            serving.Metrics.ComputeSeconds.WithLabels(served.Model, served.Version.ToString(CultureInfo.InvariantCulture)).Observe(Stopwatch.GetElapsedTime(start).TotalSeconds);
            var outputs = new List<OutputTensor>(outputNames.Count);
            for (int i = 0; i < outputNames.Count; i++)
            {
                outputs.Add(TensorJson.ReadOutput(outputNames[i], results[i], name, served.Version));
            }

            return outputs;
        }
        catch (OnnxRuntimeException ex) when (OnnxRunner.IsInvalidArgument(ex))
        {
            // Shapes that match the signature one by one can still disagree with each other (batch sizes).
            throw ServingException.BadRequest($"{name} refused the inputs: {ex.Message}", served.Version);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new ServingException(500, FailureReasons.Internal, $"{name} failed to run: {ex.Message}", served.Version);
        }
        finally
        {
            foreach (var value in values)
            {
                value.Dispose();
            }
        }
    }

    private sealed record Signature(IReadOnlyList<TensorSignature> Inputs, IReadOnlyList<TensorSignature> Outputs);

    /// <summary>Writes the inference response straight to the body (the outputs were already copied out of ONNX Runtime).</summary>
    private sealed class InferResult(string model, int version, string? id, IReadOnlyList<OutputTensor> outputs) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            ArgumentNullException.ThrowIfNull(httpContext);
            var response = httpContext.Response;
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "application/json; charset=utf-8";
            await using (var writer = new Utf8JsonWriter(response.BodyWriter, ServingJson.Writer))
            {
                TensorJson.WriteResponse(writer, model, version, id, outputs);
                await writer.FlushAsync(httpContext.RequestAborted).ConfigureAwait(false);
            }

            await response.BodyWriter.FlushAsync(httpContext.RequestAborted).ConfigureAwait(false);
        }
    }
}
