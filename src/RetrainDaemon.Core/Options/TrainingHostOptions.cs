using Microsoft.Extensions.Options;

namespace RetrainDaemon.Core.Options;

/// <summary>How training uses this machine (section <c>Training</c>).</summary>
public sealed class TrainingHostOptions
{
    public const string Section = "Training";

    /// <summary>
    /// libtorch threads. libtorch defaults to the core count and does not clamp it (PLATFORM.md); on a
    /// small box the broker, ingestion and serving share those cores, so the count is explicit.
    /// </summary>
    public int Threads { get; set; } = 2;

    /// <summary>Use CUDA when TorchSharp can (only with a CUDA build; see the TorchSharpCuda switch).</summary>
    public bool AllowCuda { get; set; } = true;
}

public sealed class TrainingHostOptionsValidator : IValidateOptions<TrainingHostOptions>
{
    public ValidateOptionsResult Validate(string? name, TrainingHostOptions options) =>
        options.Threads is >= 1 and <= 256
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"{TrainingHostOptions.Section}:{nameof(options.Threads)} = '{options.Threads}': must be between 1 and 256");
}
