using RetrainDaemon.Serving.Runtime;

namespace RetrainDaemon.Serving.Http;

/// <summary>
/// One served model's part of <c>/v2/health/ready</c>: ready or not, the serving version, and why not —
/// or, while an older version keeps serving, why the champion was refused.
/// </summary>
public sealed record ServedModelReadiness(string Name, bool Ready, int? Version, string? Reason);

/// <summary>Readiness of the serving stage: every served model must have a verified, warmed version serving.</summary>
public static class ServingReadiness
{
    /// <summary>Each served model's readiness, in the order <see cref="IServedModels.Statuses"/> gives them.</summary>
    public static IReadOnlyList<ServedModelReadiness> Check(IServedModels served)
    {
        ArgumentNullException.ThrowIfNull(served);
        return served.Statuses()
            // A refused champion is reported even while an older version keeps the model ready: that is
            // where an operator sees why a promotion did not take effect.
            .Select(s => new ServedModelReadiness(s.Model, s.Ready, s.Version, s.Ready ? s.Problem : s.Problem ?? "no version is ready yet"))
            .ToList();
    }
}
