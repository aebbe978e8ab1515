using RetrainDaemon.Core.Imaging;
using RetrainDaemon.Core.Gate;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Evaluation.Extractors;
using RetrainDaemon.Evaluation.Images;

namespace RetrainDaemon.Evaluation.Gating;

/// <summary>A candidate's gate outcome: the report, both evaluations, and which champion it was compared with.</summary>
public sealed record GatedCandidate(GateReport Report, ImageEvaluation Candidate, ImageEvaluation? Champion, int? ChampionVersion, string? ChampionProblem);

/// <summary>
/// Gates an exported image generator against the model's champion and records the outcome in the
/// registry. The champion is re-scored now, from its verified registry file, by the same protocol
/// (same latents, reference set and extractor) as the candidate, rather than trusting the scores
/// in its manifest, which may come from an older reference set: what is compared is comparable.
/// Only a model that has no champion yet is gated on value thresholds alone; a champion alias that
/// exists but cannot be read or does not verify fails the gate closed (an operator repairs or rolls
/// back the registry first), so a broken registry can never wave a candidate past its change checks.
/// </summary>
public sealed class ImageCandidateGate(EvaluationOptions options, OnnxFeatureExtractor extractor, ModelRegistry registry)
{
    private readonly ImageEvaluator evaluator = new(options, extractor);

    public GatedCandidate Evaluate(string model, string candidateOnnx, GeneratorRange range, ImageReferenceSet reference, GateOptions gate, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(gate);
        var candidate = evaluator.Evaluate(candidateOnnx, range, reference, cancellationToken);
        var verdict = ChampionComparison.Decide(registry, model, gate, candidate.Metrics,
            path => evaluator.Evaluate(path, range, reference, cancellationToken), champion => champion.Metrics);
        return new GatedCandidate(verdict.Report, candidate, verdict.Champion, verdict.ChampionVersion, verdict.ChampionProblem);
    }

    /// <summary>
    /// Records the candidate: a passing one becomes a servable version and the champion (the old
    /// champion becomes previous); a failing one is kept as a rejected candidate with its report.
    /// </summary>
    public PublishResult Publish(string model, IReadOnlyDictionary<string, string> files, GatedCandidate gated, IReadOnlyDictionary<string, string> hyperparameters,
        ExportParity? parity = null, string? runId = null, long? dataWatermark = null)
    {
        ArgumentNullException.ThrowIfNull(gated);
        return ChampionComparison.Publish(registry, model, files, gated.Report, gated.Candidate.Metrics, gated.ChampionVersion, hyperparameters, parity, runId, dataWatermark, maxBatchSize: 256);
    }
}
