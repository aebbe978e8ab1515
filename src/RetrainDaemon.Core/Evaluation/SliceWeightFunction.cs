using System.Globalization;

namespace RetrainDaemon.Core.Evaluation;

/// <summary>The parameters of <see cref="SliceWeightFunction"/> (recorded in every analysis report).</summary>
public sealed record SliceWeightOptions
{
    /// <summary>α in u = 1 + α·s: how strongly a bad slice is pulled up before normalisation.</summary>
    public double Sharpness { get; init; } = 4.0;

    /// <summary>λ: how much a slice's low feedback adds to its score (a mean rating of 1 adds λ, 5 adds 0).</summary>
    public double FeedbackInfluence { get; init; } = 0.5;

    /// <summary>Feedback counts for a slice only with at least this many ratings (a single bad rating is not evidence).</summary>
    public int MinFeedbackRatings { get; init; } = 3;

    /// <summary>Lower bound of a weight.</summary>
    public double MinWeight { get; init; } = 0.5;

    /// <summary>Upper bound of a weight.</summary>
    public double MaxWeight { get; init; } = 4.0;

    /// <summary>Every problem at once, naming the parameter and its value.</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        void Add(string name, object value, string problem) => problems.Add(string.Create(CultureInfo.InvariantCulture, $"{name} = {value}: {problem}"));
        if (!double.IsFinite(Sharpness) || Sharpness < 0)
        {
            Add(nameof(Sharpness), Sharpness, "must be a finite number ≥ 0");
        }

        if (!double.IsFinite(FeedbackInfluence) || FeedbackInfluence < 0)
        {
            Add(nameof(FeedbackInfluence), FeedbackInfluence, "must be a finite number ≥ 0");
        }

        if (MinFeedbackRatings < 1)
        {
            Add(nameof(MinFeedbackRatings), MinFeedbackRatings, "must be ≥ 1");
        }

        if (!double.IsFinite(MinWeight) || MinWeight <= 0 || MinWeight > 1)
        {
            Add(nameof(MinWeight), MinWeight, "must be in (0, 1] so that weights can average 1");
        }

        if (!double.IsFinite(MaxWeight) || MaxWeight < 1)
        {
            Add(nameof(MaxWeight), MaxWeight, "must be a finite number ≥ 1 so that weights can average 1");
        }

        return problems;
    }
}

/// <summary>
/// What one slice contributes to its weight.
/// </summary>
/// <param name="Slice">The slice key (<see cref="SliceKeys"/>).</param>
/// <param name="Badness">Its metric badness in [0, 1] (0 = as good as the best slice), or null when it could not be judged (too few samples).</param>
/// <param name="FeedbackCount">Feedback ratings citing the slice.</param>
/// <param name="MeanRating">Their mean (1–5), or null without ratings.</param>
public sealed record SliceEvidence(string Slice, double? Badness, int FeedbackCount = 0, double? MeanRating = null);

/// <summary>One slice's weight and how it came about.</summary>
/// <param name="Slice">The slice key.</param>
/// <param name="Score">s = b + λ·f (see <see cref="SliceWeightFunction"/>).</param>
/// <param name="Weight">The normalised, bounded weight.</param>
public sealed record SliceWeight(string Slice, double Score, double Weight);

/// <summary>
/// Sampling weights for the next fine-tune from slice badness and feedback — deterministic and pure:
/// <list type="number">
/// <item>b = the slice's badness clamped to [0, 1]; a slice without one (too few samples to judge) gets the mean badness of
/// the judged slices (0 if none), so it is neither favoured nor starved.</item>
/// <item>f = (5 − mean rating) / 4 when the slice has at least <see cref="SliceWeightOptions.MinFeedbackRatings"/> ratings
/// (ratings clamped to 1–5), else 0: a mean of 1 gives 1, a mean of 5 gives 0.</item>
/// <item>score s = b + λ·f; raw weight u = 1 + α·s (≥ 1, increasing in s).</item>
/// <item>w = clamp(c·u, MinWeight, MaxWeight) with the one c &gt; 0 that makes the mean of w over the slices exactly 1
/// (found by bisection: the mean is continuous and non-decreasing in c, MinWeight at c → 0 and MaxWeight at c = MaxWeight).</item>
/// </list>
/// Weights are therefore ordered as the scores are: the worst slice gets the largest weight, equal scores get
/// equal weights, and all-equal slices all get 1.
/// </summary>
public static class SliceWeightFunction
{
    public static IReadOnlyList<SliceWeight> Compute(IReadOnlyList<SliceEvidence> slices, SliceWeightOptions options)
    {
        ArgumentNullException.ThrowIfNull(slices);
        ArgumentNullException.ThrowIfNull(options);
        var problems = options.Validate();
        if (problems.Count > 0)
        {
            throw new ArgumentException("invalid slice weight options: " + string.Join("; ", problems), nameof(options));
        }

        var duplicate = slices.GroupBy(s => s.Slice, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ArgumentException($"slice '{duplicate.Key}' is listed {duplicate.Count()} times", nameof(slices));
        }

        if (slices.Count == 0)
        {
            return [];
        }

        foreach (var slice in slices)
        {
            if (slice.Badness is { } b && !double.IsFinite(b))
            {
                throw new ArgumentException($"slice '{slice.Slice}' has a non-finite badness ({b})", nameof(slices));
            }

            if (slice.MeanRating is { } r && !double.IsFinite(r))
            {
                throw new ArgumentException($"slice '{slice.Slice}' has a non-finite mean rating ({r})", nameof(slices));
            }
        }

        var judged = slices.Where(s => s.Badness is not null).Select(s => Math.Clamp(s.Badness!.Value, 0, 1)).ToList();
        double neutral = judged.Count == 0 ? 0 : judged.Average();
        var scores = new double[slices.Count];
        var raw = new double[slices.Count];
        for (int i = 0; i < slices.Count; i++)
        {
            var slice = slices[i];
            double b = slice.Badness is { } badness ? Math.Clamp(badness, 0, 1) : neutral;
            double f = slice.FeedbackCount >= options.MinFeedbackRatings && slice.MeanRating is { } mean ? (5 - Math.Clamp(mean, 1, 5)) / 4 : 0;
            scores[i] = b + options.FeedbackInfluence * f;
            raw[i] = 1 + options.Sharpness * scores[i];
        }

        double scale = Scale(raw, options.MinWeight, options.MaxWeight);
        var result = new SliceWeight[slices.Count];
        for (int i = 0; i < slices.Count; i++)
        {
            result[i] = new SliceWeight(slices[i].Slice, scores[i], Math.Clamp(scale * raw[i], options.MinWeight, options.MaxWeight));
        }

        return result;
    }

    /// <summary>The c with mean(clamp(c·u, lo, hi)) = 1, by bisection on [0, hi] (u ≥ 1, so c = hi clamps every weight to hi ≥ 1).</summary>
    private static double Scale(double[] raw, double lo, double hi)
    {
        double Mean(double c)
        {
            double sum = 0;
            foreach (double u in raw)
            {
                sum += Math.Clamp(c * u, lo, hi);
            }

            return sum / raw.Length;
        }

        double low = 0, high = hi;
        // 200 halvings take the interval below the spacing of doubles; the loop stops earlier once it cannot shrink.
        for (int i = 0; i < 200; i++)
        {
            double middle = (low + high) / 2;
            if (middle <= low || middle >= high)
            {
                break;
            }

            if (Mean(middle) < 1)
            {
                low = middle;
            }
            else
            {
                high = middle;
            }
        }

        return high;
    }
}
