namespace RetrainDaemon.Evaluation.Analysis;

/// <summary>
/// Badness of a slice in [0, 1], as the relative shortfall from the best judged slice of the same kind, so
/// metrics of any scale combine (docs/architecture.md, "Error analysis"):
/// <list type="bullet">
/// <item>higher is better (BLEU, chrF): 1 − v / best; the component is dropped when best ≤ 0
/// (every slice scores 0: nothing to tell them apart).</item>
/// <item>lower is better (Fréchet distance, perplexity): 1 − best / v for v &gt; 0 (negative round-off clamped to 0), 0 when v = 0.</item>
/// <item>coverage (generated share g vs holdout share h of an image class): max(0, 1 − g / h) — over-represented classes are not bad;
/// for a class-conditioned generator, which is asked for every class equally, 1 − conditional accuracy instead.</item>
/// </list>
/// A slice's badness is the mean of its available components; none available = not judged (null).
/// </summary>
public static class SliceBadness
{
    /// <summary>1 − v / best for a higher-is-better metric; null when best ≤ 0.</summary>
    public static double? HigherIsBetter(double value, double best)
    {
        Finite(value, nameof(value));
        Finite(best, nameof(best));
        return best <= 0 ? null : Math.Clamp(1 - value / best, 0, 1);
    }

    /// <summary>1 − best / v for a lower-is-better metric (v, best clamped at 0; 0 when v = 0).</summary>
    public static double LowerIsBetter(double value, double best)
    {
        Finite(value, nameof(value));
        Finite(best, nameof(best));
        double v = Math.Max(0, value), b = Math.Max(0, best);
        return v == 0 ? 0 : Math.Clamp(1 - b / v, 0, 1);
    }

    /// <summary>max(0, 1 − generated share / holdout share); null when the holdout share is 0.</summary>
    public static double? Coverage(double generatedShare, double holdoutShare)
    {
        Finite(generatedShare, nameof(generatedShare));
        Finite(holdoutShare, nameof(holdoutShare));
        return holdoutShare <= 0 ? null : Math.Clamp(1 - generatedShare / holdoutShare, 0, 1);
    }

    /// <summary>The mean of the components that are present; null when none is.</summary>
    public static double? Combine(params double?[] components)
    {
        ArgumentNullException.ThrowIfNull(components);
        double sum = 0;
        int count = 0;
        foreach (double? component in components)
        {
            if (component is { } c)
            {
                sum += c;
                count++;
            }
        }

        return count == 0 ? null : sum / count;
    }

    private static void Finite(double value, string name)
    {
        if (!double.IsFinite(value))
        {
            throw new ArgumentException($"{name} is {value}; badness needs finite metric values", name);
        }
    }
}
