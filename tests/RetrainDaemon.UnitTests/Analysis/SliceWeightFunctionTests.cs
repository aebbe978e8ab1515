using RetrainDaemon.Core.Evaluation;

namespace RetrainDaemon.UnitTests.Analysis;

/// <summary>The weights function as a table of hand-computed cases, plus the properties it promises (mean 1, bounds, order).</summary>
public sealed class SliceWeightFunctionTests
{
    private static readonly SliceWeightOptions Defaults = new();

    private static SliceEvidence[] Classes(params double?[] badness) =>
        [.. badness.Select((b, i) => new SliceEvidence(SliceKeys.Class(i), b))];

    public static TheoryData<string, SliceEvidence[], double[]> Cases => new()
    {
        // u = 1 + 4·s; w = clamp(c·u, 0.5, 4) with mean 1.
        { "all equal → all 1", Classes(0.3, 0.3, 0.3, 0.3), [1, 1, 1, 1] },
        { "all perfect → all 1", Classes(0, 0, 0), [1, 1, 1] },
        // u = [5, 1×9]: c = 10/14 → 50/14 and 10/14, inside the bounds.
        { "one bad of ten", Classes(1, 0, 0, 0, 0, 0, 0, 0, 0, 0), [50.0 / 14, 10.0 / 14, 10.0 / 14, 10.0 / 14, 10.0 / 14, 10.0 / 14, 10.0 / 14, 10.0 / 14, 10.0 / 14, 10.0 / 14] },
        // u = [5, 1]: unclamped [5/3, 1/3] breaks the lower bound, so the good slice sits at 0.5 and the bad one takes 1.5.
        { "lower bound", Classes(1, 0), [1.5, 0.5] },
        // u = [5, 1×19]: unclamped 5·20/24 = 4.17 breaks the upper bound: 4, and the rest share 16/19.
        { "upper bound", Classes([1, .. Enumerable.Repeat<double?>(0, 19)]), [4, .. Enumerable.Repeat(16.0 / 19, 19)] },
        // An unjudged slice gets the mean badness of the judged ones (0.5 here): u = [5, 1, 3]; c = 1/3 would put the
        // good slice below 0.5, so it sits at 0.5 and 8c + 0.5 = 3 → c = 0.3125.
        { "unjudged slice is neutral", Classes(1, 0, null), [1.5625, 0.5, 0.9375] },
        { "nothing judged → all 1", Classes(null, null), [1, 1] },
        { "badness is clamped to [0, 1]", Classes(7, -3), [1.5, 0.5] },
        // Feedback: three ratings of 1 → f = 1, s = 0 + 0.5·1 → u = [3, 1] → c = 0.5 → [1.5, 0.5].
        {
            "low feedback raises a slice",
            [new SliceEvidence("class=0", 0, FeedbackCount: 3, MeanRating: 1), new SliceEvidence("class=1", 0)], [1.5, 0.5]
        },
        {
            "feedback below the minimum count is ignored",
            [new SliceEvidence("class=0", 0, FeedbackCount: 2, MeanRating: 1), new SliceEvidence("class=1", 0)], [1, 1]
        },
        {
            "top ratings add nothing",
            [new SliceEvidence("class=0", 0, FeedbackCount: 10, MeanRating: 5), new SliceEvidence("class=1", 0)], [1, 1]
        },
        { "one slice", Classes(0.8), [1] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Weights_match_the_hand_computed_table(string name, SliceEvidence[] slices, double[] expected)
    {
        var weights = SliceWeightFunction.Compute(slices, Defaults);
        Assert.Equal(slices.Select(s => s.Slice), weights.Select(w => w.Slice));
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - weights[i].Weight) < 1e-12, $"{name}: slice {i} weight {weights[i].Weight:R}, expected {expected[i]:R}");
        }
    }

    [Fact]
    public void Random_inputs_keep_the_promises_mean_one_bounds_and_order()
    {
        var random = new Random(7);
        for (int trial = 0; trial < 500; trial++)
        {
            int n = random.Next(1, 30);
            var slices = Enumerable.Range(0, n).Select(i => new SliceEvidence($"s{i}", random.NextDouble() < 0.1 ? null : random.NextDouble(),
                random.Next(0, 6), random.NextDouble() < 0.5 ? null : 1 + 4 * random.NextDouble())).ToArray();
            var options = new SliceWeightOptions { Sharpness = random.NextDouble() * 10, MinWeight = 0.25 + random.NextDouble() * 0.75, MaxWeight = 1 + random.NextDouble() * 5 };
            var weights = SliceWeightFunction.Compute(slices, options);
            Assert.True(Math.Abs(weights.Average(w => w.Weight) - 1) < 1e-9, $"trial {trial}: mean {weights.Average(w => w.Weight):R}");
            Assert.All(weights, w => Assert.InRange(w.Weight, options.MinWeight, options.MaxWeight));
            foreach (var a in weights)
            {
                foreach (var b in weights)
                {
                    if (a.Score > b.Score)
                    {
                        Assert.True(a.Weight >= b.Weight, $"trial {trial}: score {a.Score} > {b.Score} but weight {a.Weight} < {b.Weight}");
                    }
                }
            }
        }
    }

    [Fact]
    public void The_worst_slice_gets_the_largest_weight()
    {
        var weights = SliceWeightFunction.Compute(Classes(0.1, 0.9, 0.3, 0.2), Defaults);
        Assert.Equal("class=1", weights.MaxBy(w => w.Weight)!.Slice);
        Assert.Equal("class=0", weights.MinBy(w => w.Weight)!.Slice);
    }

    [Fact]
    public void Bad_input_is_refused_by_name()
    {
        var options = Assert.Throws<ArgumentException>(() => SliceWeightFunction.Compute(Classes(0.1), new SliceWeightOptions { MinWeight = 1.5, MaxWeight = 0.5, Sharpness = -1 }));
        Assert.Contains("MinWeight = 1.5", options.Message, StringComparison.Ordinal);
        Assert.Contains("MaxWeight = 0.5", options.Message, StringComparison.Ordinal);
        Assert.Contains("Sharpness = -1", options.Message, StringComparison.Ordinal);

        var duplicate = Assert.Throws<ArgumentException>(() => SliceWeightFunction.Compute([new SliceEvidence("class=1", 0), new SliceEvidence("class=1", 1)], Defaults));
        Assert.Contains("'class=1' is listed 2 times", duplicate.Message, StringComparison.Ordinal);

        var nan = Assert.Throws<ArgumentException>(() => SliceWeightFunction.Compute(Classes(double.NaN), Defaults));
        Assert.Contains("non-finite badness", nan.Message, StringComparison.Ordinal);
        Assert.Empty(SliceWeightFunction.Compute([], Defaults));
    }
}
