using RetrainDaemon.Core.Registry;

namespace RetrainDaemon.Serving.Runtime;

/// <summary>What one served model looks like from outside: the version serving, readiness, and why not.</summary>
public sealed record ModelStatus(
    string Model,
    int? Version,
    bool Ready,
    string? Problem,
    string? Provider,
    DateTimeOffset? LoadedAt,
    VersionManifest? Manifest,
    long Swaps,
    long SwapFailures);

/// <summary>
/// The models this node serves, each following its registry <c>champion</c>. Requests lease the
/// current version; the swap machinery replaces it atomically behind them.
/// </summary>
public interface IServedModels
{
    /// <summary>The names of the models this node serves (ready or not).</summary>
    IReadOnlyList<string> Names { get; }

    /// <summary>Leases the serving version of <paramref name="model"/>, or says why there is none (unknown model, nothing ready).</summary>
    bool TryLease(string model, out Lease lease, out string? reason, out bool unknownModel);

    ModelStatus? Status(string model);

    /// <summary>Every served model's status.</summary>
    IReadOnlyList<ModelStatus> Statuses();

    /// <summary>Re-read the registry for <paramref name="model"/> now (file watch, <c>model.promoted</c> event, admin route).</summary>
    void Notify(string model);
}
