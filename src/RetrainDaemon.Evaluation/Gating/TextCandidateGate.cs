using RetrainDaemon.Core.Gate;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Evaluation.Text;

namespace RetrainDaemon.Evaluation.Gating;

/// <summary>A text candidate's gate outcome: the report, both evaluations, and which champion it was compared with.</summary>
public sealed record GatedTextCandidate(GateReport Report, TextEvaluation Candidate, TextEvaluation? Champion, int? ChampionVersion, string? ChampionProblem);

/// <summary>
/// Gates an exported <c>gpt</c> model against the model's champion and records the outcome in the registry,
/// as <see cref="ImageCandidateGate"/> does for generators. The champion is re-scored now, from its verified
/// registry file, by the same evaluator and protocol (same holdout, decoding, seeds and limits) as the
/// candidate. Signatures carry the task and the vocabulary hash, so a champion of another task or
/// vocabulary is not comparable and the gate's change checks fail closed (<see cref="GateDecision"/>).
/// Only a model that has no champion yet is gated on value thresholds alone; a champion alias that exists
/// but cannot be read, does not verify, or cannot be loaded as a gpt model fails the gate closed.
/// </summary>
public sealed class TextCandidateGate(TextEvaluationOptions options, int threads, ModelRegistry registry)
{
    private readonly TextEvaluator evaluator = new(options, threads);

    /// <summary>Scores <paramref name="candidateOnnx"/> and the champion of <paramref name="model"/>, then applies <paramref name="gate"/>.</summary>
    /// <exception cref="InvalidDataException">The candidate is not a complete gpt export (refused at load) or diverged.</exception>
    public GatedTextCandidate Evaluate(string model, string candidateOnnx, TextReferenceSet reference, GateOptions gate, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(gate);
        var candidate = evaluator.Evaluate(candidateOnnx, reference, cancellationToken);
        var verdict = ChampionComparison.Decide(registry, model, gate, candidate.Metrics,
            path => evaluator.Evaluate(path, reference, cancellationToken), champion => champion.Metrics);
        return new GatedTextCandidate(verdict.Report, candidate, verdict.Champion, verdict.ChampionVersion, verdict.ChampionProblem);
    }

    /// <summary>
    /// Records the candidate: a passing one becomes a servable version and the champion (the old champion
    /// becomes previous); a failing one is kept as a rejected candidate with its report.
    /// </summary>
    public PublishResult Publish(string model, IReadOnlyDictionary<string, string> files, GatedTextCandidate gated, IReadOnlyDictionary<string, string> hyperparameters,
        ExportParity? parity = null, string? runId = null, long? dataWatermark = null)
    {
        ArgumentNullException.ThrowIfNull(gated);
        // MaxBatchSize 0: Triton must not batch requests together — rows of one KV-cache step need their own
        // past lengths and masks, which only the caller's decode loop can arrange (the batch dimension stays explicit).
        return ChampionComparison.Publish(registry, model, files, gated.Report, gated.Candidate.Metrics, gated.ChampionVersion, hyperparameters, parity, runId, dataWatermark, maxBatchSize: 0);
    }
}
