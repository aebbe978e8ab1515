using Microsoft.Extensions.Options;

namespace RetrainDaemon.Core.Options;

/// <summary>What the operations metrics watch (section <c>Operations</c>).</summary>
public sealed class OperationsOptions
{
    public const string Section = "Operations";

    /// <summary>
    /// This host is meant to run on a GPU. <c>Training:AllowCuda</c> and <c>Serving:UseCuda</c> only say
    /// "use CUDA when it works" and default to true, so they cannot tell a CPU host from a GPU host whose
    /// CUDA broke; this says which one it is, for the CPU-fallback alert (<c>retrain_gpu_expected</c>).
    /// </summary>
    public bool ExpectGpu { get; set; }

    /// <summary>How often the free space of the store's and the registry's file systems is read.</summary>
    public TimeSpan DiskCheckInterval { get; set; } = TimeSpan.FromSeconds(30);
}

public sealed class OperationsOptionsValidator : IValidateOptions<OperationsOptions>
{
    public ValidateOptionsResult Validate(string? name, OperationsOptions options)
    {
        var f = new Failures(OperationsOptions.Section);
        f.Positive(nameof(options.DiskCheckInterval), options.DiskCheckInterval);
        return f.Result();
    }
}
