using System.Text.Json.Nodes;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.Gate;
using RetrainDaemon.Core.Registry;

namespace RetrainDaemon.Evaluation.Gating;

/// <summary>The gate's verdict on a candidate next to the champion it was compared with.</summary>
internal sealed record ChampionVerdict<TEvaluation>(GateReport Report, TEvaluation? Champion, int? ChampionVersion, string? ChampionProblem)
    where TEvaluation : class;

/// <summary>
/// What the image and text gates share: re-score the registry champion now with the candidate's own
/// protocol (never trusting the scores in its manifest, which may come from another reference set),
/// decide, and fail closed when a champion alias exists but does not verify or cannot be scored — only a
/// model without a champion is gated on value thresholds alone. Then record the outcome in the registry.
/// </summary>
internal static class ChampionComparison
{
    /// <param name="score">Scores a verified champion file; an <see cref="InvalidDataException"/> (it no longer loads, diverges) fails the gate closed.</param>
    public static ChampionVerdict<TEvaluation> Decide<TEvaluation>(ModelRegistry registry, string model, GateOptions gate, IReadOnlyList<MetricValue> candidate,
        Func<string, TEvaluation> score, Func<TEvaluation, IReadOnlyList<MetricValue>> metrics)
        where TEvaluation : class
    {
        ArgumentNullException.ThrowIfNull(gate);
        var resolution = registry.ResolveServable(model);
        string? problem = resolution.IsServable || resolution.Absent ? null : resolution.Problem ?? "the champion cannot be resolved";
        TEvaluation? champion = null;
        if (resolution.Verified is { } verified)
        {
            try
            {
                champion = score(verified.ModelPath);
            }
            catch (InvalidDataException ex)
            {
                // A champion that no longer loads (or diverges) cannot vouch for anything.
                problem = $"champion v{verified.Version} cannot be scored: {ex.Message}";
            }
        }

        var report = GateDecision.Evaluate(gate, candidate, champion is null ? null : metrics(champion));
        if (problem is not null)
        {
            report = report with { Passed = false, Reason = $"not comparable with the champion: {problem}" };
        }

        return new ChampionVerdict<TEvaluation>(report, champion, resolution.Verified?.Version, problem);
    }

    /// <summary>
    /// Records a candidate: a passing one becomes a servable version and the champion (the old champion
    /// becomes previous); a failing one is kept as a rejected candidate with its report.
    /// </summary>
    public static PublishResult Publish(ModelRegistry registry, string model, IReadOnlyDictionary<string, string> files, GateReport report, IReadOnlyList<MetricValue> metrics,
        int? championVersion, IReadOnlyDictionary<string, string> hyperparameters, ExportParity? parity, string? runId, long? dataWatermark, int maxBatchSize) =>
        registry.Publish(new PublishRequest
        {
            Model = model,
            Status = report.Passed ? VersionStatus.Passed : VersionStatus.Rejected,
            Files = files,
            RunId = runId,
            ParentVersion = championVersion,
            DataWatermark = dataWatermark,
            Hyperparameters = hyperparameters,
            Metrics = metrics,
            GateReport = JsonNode.Parse(report.ToJson()),
            Parity = parity,
            MaxBatchSize = maxBatchSize,
            Alias = report.Passed ? PublishAlias.Champion : PublishAlias.None,
            Reason = report.Passed ? $"passed the gate ({report.Checks} checks)" : null,
        });
}
