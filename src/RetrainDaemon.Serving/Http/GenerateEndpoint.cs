using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Imaging;
using RetrainDaemon.Serving.Generation;

namespace RetrainDaemon.Serving.Http;

/// <summary>
/// <c>POST /v1/models/{model}/generate</c>: text from a served <c>gpt</c> model
/// (<see cref="TextGenerateEndpoint"/>), or images from a served generator, through the
/// <see cref="GenerationBatcher"/>. Pixels come from <see cref="PixelQuantizer"/>, the function the
/// evaluator used when the version was gated, so what was gated is what is served; a non-finite
/// output is refused (500), never clamped into black pixels.
/// </summary>
internal static class GenerateEndpoint
{
    public const string GenerationIdsHeader = "X-Generation-Ids";
    public const string SeedHeader = "X-Seed";
    public const string ClassesHeader = "X-Classes";

    public static Task<IResult> GenerateAsync(string model, HttpContext http, [FromServices] ServingHttp serving, [FromServices] GenerationBatcher batcher) =>
        serving.RunAsync(http, ServingRoute.Generate, model, async call =>
        {
            if (serving.Served.Status(model) is null)
            {
                throw ServingException.NotFound($"no model '{model}' is served here; served: {(serving.Served.Names.Count == 0 ? "none" : string.Join(", ", serving.Served.Names))}");
            }

            // The serving version decides what the body is: a text model's request, or an image request.
            if (!serving.Served.TryLease(model, out var lease, out string? reason, out bool unknown))
            {
                // Read off the wire first: answering while the client is still sending makes it see a broken pipe.
                await http.Request.Body.CopyToAsync(Stream.Null, call.Token).ConfigureAwait(false);
                throw unknown ? ServingException.NotFound($"no model '{model}' is served here") : ServingException.NotReady(reason ?? $"model '{model}' has no ready version");
            }

            if (lease.Version?.Text is { } text)
            {
                return await TextGenerateEndpoint.GenerateAsync(http, call, serving, lease, text).ConfigureAwait(false);
            }

            // Images lease again in the batcher, for the version current when their batch starts.
            lease.Dispose();
            var body = await serving.ReadJsonAsync(http, ServingJson.Context.GenerateRequest, call.Token, static () => new GenerateRequest()).ConfigureAwait(false);
            var request = Validate(model, body, serving.Options.MaxSamplesPerRequest);
            var pending = serving.Metrics.Pending.WithLabels(model);
            pending.Inc();
            try
            {
                var result = await batcher.GenerateAsync(request, call.Token).ConfigureAwait(false);
                call.Served(result.Spec.Version);
                return Answer(http, body.Format, request, result);
            }
            finally
            {
                pending.Dec();
            }
        });

    /// <summary>Checks a request body against the limits; the seed is drawn here when none was given.</summary>
    /// <exception cref="ServingException">400 naming the field and its allowed values.</exception>
    internal static GenerationRequest Validate(string model, GenerateRequest body, int maxSamples)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (body.Count < 1 || body.Count > maxSamples)
        {
            throw ServingException.BadRequest(string.Create(CultureInfo.InvariantCulture, $"'count' must be between 1 and {maxSamples}, not {body.Count}"));
        }

        if (body.Format is not (GenerateFormats.Json or GenerateFormats.Png or GenerateFormats.Grid))
        {
            throw ServingException.BadRequest($"'format' must be '{GenerateFormats.Json}', '{GenerateFormats.Png}' or '{GenerateFormats.Grid}', not '{body.Format}'");
        }

        if (body.Format == GenerateFormats.Png && body.Count != 1)
        {
            throw ServingException.BadRequest(string.Create(CultureInfo.InvariantCulture,
                $"'format': 'png' returns one image, so 'count' must be 1 (got {body.Count}); use 'grid' or 'json' for several"));
        }

        if (body.Truncation is double psi && !(psi > 0 && psi <= 1))
        {
            throw ServingException.BadRequest(string.Create(CultureInfo.InvariantCulture, $"'truncation' must be in (0, 1], not {psi}"));
        }

        if (body.Seed is long seed && (seed < 0 || seed > LatentSampler.MaxSeed))
        {
            throw ServingException.BadRequest(string.Create(CultureInfo.InvariantCulture, $"'seed' must be between 0 and {LatentSampler.MaxSeed}, not {seed}"));
        }

        if (body.Class is int c && c < 0)
        {
            throw ServingException.BadRequest(string.Create(CultureInfo.InvariantCulture, $"'class' must not be negative (got {c})"));
        }

        return new GenerationRequest(model, body.Count, body.Class, body.Seed ?? LatentSampler.NewSeed(), body.Truncation);
    }

    /// <summary>The request's samples as channel-last 8-bit images.</summary>
    /// <exception cref="ServingException">500 when the generator produced a non-finite value.</exception>
    internal static List<byte[]> Pixels(GenerationResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var output = result.Output;
        int size = output.Channels * output.Height * output.Width;
        var images = new List<byte[]>(result.Count);
        for (int i = 0; i < result.Count; i++)
        {
            var chw = output.Values.AsSpan((result.Offset + i) * size, size);
            var hwc = new byte[size];
            if (!PixelQuantizer.TryToPixels(chw, output.Channels, output.Height, output.Width, result.Spec.Range, hwc, out int bad))
            {
                throw new ServingException(500, FailureReasons.Internal, string.Create(CultureInfo.InvariantCulture,
                    $"model '{result.Spec.Model}' v{result.Spec.Version} produced a non-finite value ({chw[bad]}) in sample {i}; refused (the model has diverged)"),
                    result.Spec.Version);
            }

            images.Add(hwc);
        }

        return images;
    }

    /// <summary>A generation id feedback can cite: <c>&lt;model&gt;/&lt;version&gt;/&lt;uuid v7, 32 hex digits&gt;</c>.</summary>
    internal static string NewGenerationId(string model, int version) =>
        string.Create(CultureInfo.InvariantCulture, $"{model}/{version}/{Guid.CreateVersion7():N}");

    /// <summary>
    /// The journal records of a result's samples: one per id, the slice being the class each sample was generated
    /// with — the requested class, or for a class-conditioned generator asked for none, the class drawn for it
    /// (what the image shows, which is what per-class feedback analysis needs); null for unconditional generators.
    /// </summary>
    internal static IReadOnlyList<GenerationRecord> Records(GenerationResult result, IReadOnlyList<string> ids, DateTimeOffset createdAt)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(ids);
        var records = new GenerationRecord[ids.Count];
        for (int i = 0; i < ids.Count; i++)
        {
            string? slice = result.Labels is { } labels ? labels[i].ToString(CultureInfo.InvariantCulture) : null;
            records[i] = new GenerationRecord(ids[i], result.Spec.Model, result.Spec.Version, createdAt, GenerationModalities.Image, slice, null);
        }

        return records;
    }

    private static IResult Answer(HttpContext http, string format, GenerationRequest request, GenerationResult result)
    {
        var spec = result.Spec;
        var output = result.Output;
        var images = Pixels(result);
        var ids = images.Select(_ => NewGenerationId(spec.Model, spec.Version)).ToList();
        // Recorded before the answer leaves, so feedback citing these ids can find them (the journal never blocks).
        if (http.RequestServices.GetService<IGenerationJournal>() is { } journal)
        {
            foreach (var record in Records(result, ids, DateTimeOffset.UtcNow))
            {
                journal.Record(record);
            }
        }

        if (format == GenerateFormats.Json)
        {
            var samples = new List<GeneratedSample>(images.Count);
            for (int i = 0; i < images.Count; i++)
            {
                byte[] png = PngEncoder.Encode(images[i], output.Width, output.Height, output.Channels);
                samples.Add(new GeneratedSample(ids[i], result.Labels is { } labels ? (int)labels[i] : null, Convert.ToBase64String(png)));
            }

            var body = new GenerateResponse(spec.Model, spec.Version, request.Seed, request.Truncation, output.Width, output.Height, output.Channels, ids, samples);
            return TypedResults.Json(body, ServingJson.Context.GenerateResponse);
        }

        var headers = http.Response.Headers;
        headers[GenerationIdsHeader] = string.Join(',', ids);
        headers[SeedHeader] = request.Seed.ToString(CultureInfo.InvariantCulture);
        if (result.Labels is { } classes)
        {
            headers[ClassesHeader] = string.Join(',', classes.Select(c => c.ToString(CultureInfo.InvariantCulture)));
        }

        if (format == GenerateFormats.Png)
        {
            return TypedResults.Bytes(PngEncoder.Encode(images[0], output.Width, output.Height, output.Channels), "image/png");
        }

        var (grid, width, height) = ImageGrid.Tile(images, output.Width, output.Height, output.Channels);
        return TypedResults.Bytes(PngEncoder.Encode(grid, width, height, output.Channels), "image/png");
    }
}
