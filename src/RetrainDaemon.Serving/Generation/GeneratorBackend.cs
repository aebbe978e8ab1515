using System.Diagnostics.CodeAnalysis;
using RetrainDaemon.Core.Imaging;

namespace RetrainDaemon.Serving.Generation;

/// <summary>
/// What the batcher needs to know about one loaded generator version: its latent size, whether it
/// takes a class <c>label</c> (and how many classes, when the manifest says), and how its
/// <c>image</c> output maps to pixels.
/// </summary>
internal sealed record GeneratorSpec(string Model, int Version, string Provider, int LatentSize, bool Conditional, int? Classes, GeneratorRange Range);

/// <summary>One run's <c>image</c> output: channel-first <c>(batch, channels, height, width)</c> values.</summary>
internal sealed record GeneratorOutput(float[] Values, int Batch, int Channels, int Height, int Width);

/// <summary>
/// A hold on one generator version for the duration of a batch: the version cannot be disposed
/// while the lease lives, however many swaps happen meanwhile. Dispose it when the run is done.
/// </summary>
internal interface IGeneratorLease : IDisposable
{
    GeneratorSpec Spec { get; }

    /// <summary>
    /// Runs the generator on <c>batch × LatentSize</c> latents (and one label per sample when the
    /// generator is conditional). Blocking; cancelling <paramref name="cancellationToken"/>
    /// terminates the run and throws <see cref="OperationCanceledException"/>.
    /// </summary>
    GeneratorOutput Run(float[] latents, long[]? labels, int batch, CancellationToken cancellationToken);
}

/// <summary>Leases the serving version of a generator (production: <see cref="OnnxGeneratorBackend"/>; tests: a fake).</summary>
internal interface IGeneratorBackend
{
    /// <summary>
    /// Leases the version serving <paramref name="model"/> now, or returns the failure to answer with
    /// (<see cref="Http.ServingException"/>: unknown model 404, nothing ready 503, not an image generator 400).
    /// </summary>
    bool TryLease(string model, [NotNullWhen(true)] out IGeneratorLease? lease, [NotNullWhen(false)] out Http.ServingException? failure);
}
