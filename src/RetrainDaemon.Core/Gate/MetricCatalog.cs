using RetrainDaemon.Core.Contracts;

namespace RetrainDaemon.Core.Gate;

/// <summary>Which way a metric gets better.</summary>
public enum MetricDirection
{
    /// <summary>A larger value is a better model (BLEU, Inception Score, coverage).</summary>
    Higher,

    /// <summary>A smaller value is a better model (FID, perplexity, memorized share).</summary>
    Lower,
}

/// <summary>A metric the evaluators report and the gate can check.</summary>
/// <param name="Name">The exact name a <see cref="Evaluation.MetricValue"/> carries (case-sensitive: <c>rougeL</c> and <c>rougeLsum</c> differ).</param>
/// <param name="Better">The direction of a better model.</param>
/// <param name="Modality">The kind of model whose evaluator reports it.</param>
/// <param name="Description">One line for operators: what the number is.</param>
public sealed record MetricInfo(string Name, MetricDirection Better, Modality Modality, string Description);

/// <summary>
/// The metrics the gate knows, with their better direction. The direction is a property of the
/// metric, not of a gate check, so that configuration cannot say "FID higher is better"; the
/// validator uses it to reject thresholds pointing the wrong way. Definitions follow
/// <c>shared/docs/metrics.md</c>.
/// </summary>
public static class MetricCatalog
{
    private static readonly MetricInfo[] Metrics =
    [
        // Images: scored on features of the pinned extractor (DESIGN.md §4).
        new("fid", MetricDirection.Lower, Modality.Image, "Fréchet distance between generated and holdout features of the pinned extractor"),
        new("is", MetricDirection.Higher, Modality.Image, "Inception Score on the pinned classifier"),
        new("kid", MetricDirection.Lower, Modality.Image, "Kernel Inception Distance (unbiased MMD, cubic polynomial kernel) on the pinned extractor's features"),
        new("mifid", MetricDirection.Lower, Modality.Image, "Memorization-informed FID: FID divided by the memorization term (Bai et al. 2021)"),
        new("memorized_share", MetricDirection.Lower, Modality.Image, "share of generated samples whose nearest-neighbour distance ratio d1/d2 to training features is < 1/3"),
        new("nn_distance_mean", MetricDirection.Higher, Modality.Image, "mean nearest-neighbour distance of generated samples to training features"),
        new("class_coverage", MetricDirection.Higher, Modality.Image, "share of classes the classifier assigns at least one generated sample to"),
        new("class_entropy", MetricDirection.Higher, Modality.Image, "entropy of the classifier's class histogram over generated samples"),
        new("mean_pairwise_distance", MetricDirection.Higher, Modality.Image, "mean pairwise feature distance between generated samples (diversity)"),
        new("conditional_accuracy", MetricDirection.Higher, Modality.Image, "share of class-conditioned samples the classifier assigns to the requested class"),
        new("reconstruction_mse", MetricDirection.Lower, Modality.Image, "mean squared reconstruction error on the holdout (VAE)"),

        // Text: sacreBLEU / rouge-score / Texygen conventions.
        new("bleu", MetricDirection.Higher, Modality.Text, "corpus BLEU against the holdout references, 0-100 (sacreBLEU)"),
        new("chrf", MetricDirection.Higher, Modality.Text, "chrF against the holdout references, 0-100 (sacreBLEU)"),
        new("rouge1", MetricDirection.Higher, Modality.Text, "ROUGE-1 F-measure against the holdout references"),
        new("rouge2", MetricDirection.Higher, Modality.Text, "ROUGE-2 F-measure against the holdout references"),
        new("rougeL", MetricDirection.Higher, Modality.Text, "ROUGE-L F-measure (sentence-level LCS) against the holdout references"),
        new("rougeLsum", MetricDirection.Higher, Modality.Text, "ROUGE-Lsum F-measure (summary-level LCS, newline-split) against the holdout references"),
        new("self_bleu", MetricDirection.Lower, Modality.Text, "mean BLEU of each generated text against the other generated texts (Texygen; repetition)"),
        new("distinct_1", MetricDirection.Higher, Modality.Text, "distinct unigrams / all unigrams over generated texts"),
        new("distinct_2", MetricDirection.Higher, Modality.Text, "distinct bigrams / all bigrams over generated texts"),
        new("perplexity", MetricDirection.Lower, Modality.Text, "per-token perplexity on the holdout"),
        new("test_bleu", MetricDirection.Higher, Modality.Text, "BLEU of generated texts against the holdout texts as references (Texygen; quality)"),
        new("copy_share", MetricDirection.Lower, Modality.Text, "share of generated texts that copy a training record"),
        new("source_copy_share", MetricDirection.Lower, Modality.Text, "conditional models: share of outputs that merely repeat their source (pairs whose reference differs from the source)"),
    ];

    private static readonly Dictionary<string, MetricInfo> ByName = Metrics.ToDictionary(m => m.Name, StringComparer.Ordinal);

    /// <summary>Every known metric, in catalog order (images, then text).</summary>
    public static IReadOnlyList<MetricInfo> All => Metrics;

    /// <summary>The known names, comma-separated, for error messages.</summary>
    public static string NameList { get; } = string.Join(", ", Metrics.Select(m => m.Name));

    /// <summary>Looks a metric up by its exact (case-sensitive) name.</summary>
    public static bool TryGet(string? name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out MetricInfo? info)
    {
        if (name is null)
        {
            info = null;
            return false;
        }

        return ByName.TryGetValue(name, out info);
    }

    /// <summary>The known name that equals <paramref name="name"/> ignoring case, for a "did you mean" hint.</summary>
    public static string? Suggest(string? name) =>
        name is null ? null : Metrics.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase))?.Name;
}
