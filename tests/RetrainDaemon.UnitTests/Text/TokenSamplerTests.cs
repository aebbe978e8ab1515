using RetrainDaemon.Core.Text;

namespace RetrainDaemon.UnitTests.Text;

/// <summary>Table tests of the sampling policy: greedy, temperature, top-k, top-p, determinism, validation.</summary>
public class TokenSamplerTests
{
    private const float NegInf = float.NegativeInfinity;

    public static TheoryData<float[], int> ArgmaxCases => new()
    {
        { [1f, 3f, 2f], 1 },
        { [5f, 5f, 1f], 0 }, // tie: the first index
        { [1f, 4f, 4f, 4f], 1 },
        { [NegInf, 2f, 2f], 1 },
        { [0f], 0 },
        { [-3f, -0.5f, -0.5f, -7f], 1 },
        { [float.MinValue, NegInf, float.MinValue], 0 },
    };

    [Theory]
    [MemberData(nameof(ArgmaxCases))]
    public void Greedy_PicksTheArgmax_FirstOnTies(float[] logits, int expected)
    {
        foreach (ulong seed in new ulong[] { 0, 1, 12345 })
        {
            var sampler = new TokenSampler(SamplingOptions.Greedy, seed);
            for (int draw = 0; draw < 10; draw++)
            {
                Assert.Equal(expected, sampler.Next(logits));
            }
        }
    }

    public static TheoryData<double, int, double> GreedyEquivalentOptions => new()
    {
        // top_k = 1 is greedy at any temperature …
        { 0.01, 1, 1.0 },
        { 1.0, 1, 1.0 },
        { 7.0, 1, 1.0 },
        { 100.0, 1, 1.0 },
        { 1.0, 1, 0.5 },
        // … and so is a top_p smaller than any probability …
        { 1.0, 0, 1e-9 },
        { 100.0, 0, 1e-12 },
        { 0.3, 5, 1e-9 },
    };

    [Theory]
    [MemberData(nameof(GreedyEquivalentOptions))]
    public void Options_ThatLeaveOneToken_EqualGreedy(double temperature, int topK, double topP)
    {
        var sampler = new TokenSampler(new SamplingOptions(temperature, topK, topP), seed: 7);
        var greedy = new TokenSampler(SamplingOptions.Greedy, seed: 7);
        foreach (float[] logits in RandomRows(count: 300, width: 37, seed: 99))
        {
            Assert.Equal(greedy.Next(logits), sampler.Next(logits));
        }
    }

    public static TheoryData<float[], double, int, double, int[]> FilterCases => new()
    {
        // logits, temperature, top_k, top_p, the tokens that may be emitted.
        // Probabilities 0.1, 0.2, 0.3, 0.4 at temperature 1 (the logits are their logarithms).
        { Log(0.1, 0.2, 0.3, 0.4), 1.0, 2, 1.0, [3, 2] },
        { Log(0.1, 0.2, 0.3, 0.4), 0.5, 2, 1.0, [3, 2] }, // top-k does not depend on the temperature
        { Log(0.1, 0.2, 0.3, 0.4), 3.0, 2, 1.0, [3, 2] },
        { Log(0.1, 0.2, 0.3, 0.4), 1.0, 3, 1.0, [3, 2, 1] },
        { Log(0.1, 0.2, 0.3, 0.4), 1.0, 0, 0.35, [3] },
        { Log(0.1, 0.2, 0.3, 0.4), 1.0, 0, 0.45, [3, 2] },
        { Log(0.1, 0.2, 0.3, 0.4), 1.0, 0, 0.75, [3, 2, 1] },
        { Log(0.1, 0.2, 0.3, 0.4), 1.0, 0, 0.95, [3, 2, 1, 0] },
        // top-p applies after the temperature: at 3 the probabilities flatten to .19 .24 .27 .30
        { Log(0.1, 0.2, 0.3, 0.4), 3.0, 0, 0.35, [3, 2] },
        // top-k, then top-p on the renormalized survivors: 0.4/0.9 = 0.44 < 0.5, then 0.78 ≥ 0.5
        { Log(0.1, 0.2, 0.3, 0.4), 1.0, 3, 0.5, [3, 2] },
        { Log(0.1, 0.2, 0.3, 0.4), 1.0, 2, 0.9, [3, 2] },
        // ties at the boundary keep the lower ids
        { [1f, 1f, 1f, 1f], 1.0, 2, 1.0, [0, 1] },
        { [1f, 1f, 1f, 1f], 2.0, 0, 0.3, [0, 1] },
        // a prefix whose cumulative probability equals p exactly is enough (0.25 + 0.25 = 0.5, exact in binary)
        { [1f, 1f, 1f, 1f], 1.0, 0, 0.5, [0, 1] },
        { [1f, 1f, 1f, 1f, -5f], 1.0, 4, 0.5, [0, 1] },
        { [0f, 2f, 2f, 2f, 1f], 0.7, 2, 1.0, [1, 2] },
        // -∞ is never emitted, even when top_k would have room for it
        { [NegInf, 0f, 0f, NegInf], 1.0, 3, 1.0, [1, 2] },
        { [NegInf, 0f, 0f, NegInf], 1.0, 0, 1.0, [1, 2] },
        { [NegInf, 0f, 1f, NegInf], 1.0, 0, 0.99, [1, 2] },
    };

    [Theory]
    [MemberData(nameof(FilterCases))]
    public void Filters_NeverEmitExcludedTokens_AndEmitEveryKeptOne(float[] logits, double temperature, int topK, double topP, int[] kept)
    {
        var sampler = new TokenSampler(new SamplingOptions(temperature, topK, topP), seed: 2024);
        var seen = new HashSet<int>();
        for (int draw = 0; draw < 5000; draw++)
        {
            int token = sampler.Next(logits);
            Assert.Contains(token, kept);
            seen.Add(token);
        }

        Assert.Equal(kept.Order(), seen.Order());
    }

    [Theory]
    [InlineData(1e-300)]
    [InlineData(1e-30)]
    public void TinyTemperature_StaysFinite_AndPicksTheMax(double temperature)
    {
        // (logit − max) / T underflows to −∞ for all but the max: no NaN, no overflow. Rows without ties.
        var sampler = new TokenSampler(new SamplingOptions(temperature), seed: 5);
        var greedy = new TokenSampler(SamplingOptions.Greedy, seed: 5);
        for (int row = 0; row < 100; row++)
        {
            float[] logits = Wide(300, seed: row);
            Assert.Equal(greedy.Next(logits), sampler.Next(logits));
        }
    }

    public static TheoryData<float[], double, int, double> DistributionCases => new()
    {
        { [1f, 2f, 3f, 4f], 1.0, 0, 1.0 },
        { [1f, 2f, 3f, 4f], 0.5, 0, 1.0 },
        { [1f, 2f, 3f, 4f], 2.5, 0, 1.0 },
        { [0f, 0f, 0f, 0f, 0f], 1.0, 0, 1.0 },
        { [0.3f, -1.2f, 2.2f, 0.9f, 1.7f, -0.4f], 1.0, 3, 1.0 },
        { [0.3f, -1.2f, 2.2f, 0.9f, 1.7f, -0.4f], 1.3, 0, 0.8 },
        { [0.3f, -1.2f, 2.2f, 0.9f, 1.7f, -0.4f], 0.8, 4, 0.9 },
        { [NegInf, 1f, 1.5f, NegInf, 0.5f], 1.0, 0, 1.0 },
        { Wide(50, seed: 5), 1.0, 0, 1.0 },
        { Wide(50, seed: 6), 0.7, 20, 0.95 },
    };

    [Theory]
    [MemberData(nameof(DistributionCases))]
    public void EmpiricalFrequencies_MatchTheFilteredSoftmax(float[] logits, double temperature, int topK, double topP)
    {
        const int Draws = 20_000;
        double[] expected = ReferenceProbabilities(logits, temperature, topK, topP);
        var sampler = new TokenSampler(new SamplingOptions(temperature, topK, topP), seed: 31337);
        var counts = new int[logits.Length];
        for (int draw = 0; draw < Draws; draw++)
        {
            counts[sampler.Next(logits)]++;
        }

        for (int id = 0; id < logits.Length; id++)
        {
            double frequency = counts[id] / (double)Draws;
            double sigma = Math.Sqrt(expected[id] * (1 - expected[id]) / Draws);
            Assert.True(
                Math.Abs(frequency - expected[id]) <= 4.5 * sigma + 1e-4,
                $"token {id}: frequency {frequency:F4}, softmax {expected[id]:F4} (σ {sigma:F4})");
        }
    }

    public static TheoryData<SamplingOptions> SeededOptions => new()
    {
        new SamplingOptions(),
        new SamplingOptions(Temperature: 0.8, TopK: 10),
        new SamplingOptions(Temperature: 1.2, TopP: 0.9),
        new SamplingOptions(Temperature: 1.0, TopK: 20, TopP: 0.95),
    };

    [Theory]
    [MemberData(nameof(SeededOptions))]
    public void SameSeed_GivesTheSameTokens_DifferentSeeds_DifferentOnes(SamplingOptions options)
    {
        var rows = RandomRows(count: 200, width: 64, seed: 3).ToList();
        int[] Run(ulong seed)
        {
            var sampler = new TokenSampler(options, seed);
            return rows.Select(row => sampler.Next(row)).ToArray();
        }

        int[] first = Run(42);
        Assert.Equal(first, Run(42));
        Assert.NotEqual(first, Run(43));
        Assert.NotEqual(first, Run(0));
    }

    [Fact]
    public void Generator_MatchesThePublishedAlgorithms()
    {
        // SplitMix64 from state 0 and xoshiro256** seeded by it: the published reference outputs.
        ulong state = 0;
        Assert.Equal(0xE220A8397B1DCDAFUL, Xoshiro256StarStar.SplitMix64(ref state));
        Assert.Equal(0x6E789E6AA1B965F4UL, Xoshiro256StarStar.SplitMix64(ref state));
        var random = new Xoshiro256StarStar(0);
        Assert.Equal(
            new[] { 0x99EC5F36CB75F2B4UL, 0xBF6E1F784956452AUL, 0x1A5F849D4933E6E0UL, 0x6AA594F1262D2D2CUL },
            Enumerable.Range(0, 4).Select(_ => random.NextUInt64()));

        var unit = new Xoshiro256StarStar(1);
        for (int i = 0; i < 10_000; i++)
        {
            Assert.InRange(unit.NextDouble(), 0.0, Math.BitDecrement(1.0));
        }
    }

    [Fact]
    public void Next_DoesNotAllocate_OnceWarm()
    {
        var sampler = new TokenSampler(new SamplingOptions(0.9, 40, 0.9), seed: 1);
        var plain = new TokenSampler(new SamplingOptions(), seed: 1);
        float[] logits = Wide(8192, seed: 11);
        sampler.Next(logits);
        plain.Next(logits);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 200; i++)
        {
            sampler.Next(logits);
            plain.Next(logits);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    public static TheoryData<double, int, double, int, string[]> ValidationCases => new()
    {
        { 1.0, 0, 1.0, 100, [] },
        { 0.0, 100, 1.0, 100, [] }, // the bounds themselves are allowed
        { 100.0, 0, 1e-9, 100, [] },
        { -1.0, 0, 1.0, 100, ["temperature"] },
        { -0.0001, 0, 1.0, 100, ["temperature"] },
        { 100.5, 0, 1.0, 100, ["temperature"] },
        { double.NaN, 0, 1.0, 100, ["temperature"] },
        { double.PositiveInfinity, 0, 1.0, 100, ["temperature"] },
        { 1.0, -1, 1.0, 100, ["top_k"] },
        { 1.0, 101, 1.0, 100, ["top_k"] },
        { 1.0, 0, 0.0, 100, ["top_p"] },
        { 1.0, 0, -0.5, 100, ["top_p"] },
        { 1.0, 0, 1.5, 100, ["top_p"] },
        { 1.0, 0, double.NaN, 100, ["top_p"] },
        { 1.0, 0, double.PositiveInfinity, 100, ["top_p"] },
        { double.NaN, 8193, 0.0, 8192, ["temperature", "top_k", "top_p"] },
        { -1.0, -5, 1.5, 10, ["temperature", "top_k", "top_p"] },
    };

    [Theory]
    [MemberData(nameof(ValidationCases))]
    public void Validate_ListsEveryBadField_WithItsRange(double temperature, int topK, double topP, int vocabulary, string[] badFields)
    {
        var problems = SamplingOptions.Validate(new SamplingOptions(temperature, topK, topP), vocabulary);
        Assert.Equal(badFields, problems.Select(p => p.Split(' ')[0]));
        foreach (string problem in problems)
        {
            string range = problem.Split(' ')[0] switch
            {
                "temperature" => "[0, 100]",
                "top_k" => $"[0, {vocabulary}]",
                _ => "(0, 1]",
            };
            Assert.Contains(range, problem, StringComparison.Ordinal);
            Assert.Contains("got ", problem, StringComparison.Ordinal);
        }

        if (badFields.Length > 0 && !badFields.SequenceEqual(["top_k"]))
        {
            // The sampler refuses what Validate refuses (top_k is checked against each row's width instead).
            Assert.Throws<ArgumentException>(() => new TokenSampler(new SamplingOptions(temperature, topK, topP), seed: 0));
        }
    }

    public static TheoryData<float[], int> BrokenRows => new()
    {
        { [], 0 },
        { [1f, float.NaN, 2f], 0 },
        { [1f, float.PositiveInfinity], 0 },
        { [NegInf, NegInf], 0 },
        { [1f, 2f, 3f], 4 }, // top_k wider than the row
    };

    [Theory]
    [MemberData(nameof(BrokenRows))]
    public void Next_RefusesRowsItCannotSampleFrom(float[] logits, int topK)
    {
        foreach (double temperature in new[] { 0.0, 1.0 })
        {
            var sampler = new TokenSampler(new SamplingOptions(temperature, topK), seed: 0);
            Assert.Throws<ArgumentException>(() => sampler.Next(logits));
        }
    }

    // An independent, naive statement of the policy: sort everything, filter, softmax, renormalize.
    private static double[] ReferenceProbabilities(float[] logits, double temperature, int topK, double topP)
    {
        var order = Enumerable.Range(0, logits.Length)
            .Where(i => !float.IsNegativeInfinity(logits[i]))
            .OrderByDescending(i => logits[i]).ThenBy(i => i)
            .ToList();
        if (topK > 0)
        {
            order = order.Take(topK).ToList();
        }

        double max = order.Max(i => (double)logits[i]);
        var weights = order.ToDictionary(i => i, i => Math.Exp((logits[i] - max) / temperature));
        double total = weights.Values.Sum();
        var kept = new List<int>();
        double cumulative = 0;
        foreach (int i in order)
        {
            kept.Add(i);
            cumulative += weights[i] / total;
            if (cumulative >= topP)
            {
                break;
            }
        }

        double keptTotal = kept.Sum(i => weights[i]);
        var probabilities = new double[logits.Length];
        foreach (int i in kept)
        {
            probabilities[i] = weights[i] / keptTotal;
        }

        return probabilities;
    }

    private static float[] Log(params double[] probabilities) => probabilities.Select(p => (float)Math.Log(p)).ToArray();

    private static float[] Wide(int width, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, width).Select(_ => (float)(random.NextDouble() * 6 - 3)).ToArray();
    }

    // Rows with deliberate ties (values on a coarse grid) so that tie-breaking is exercised too.
    private static IEnumerable<float[]> RandomRows(int count, int width, int seed)
    {
        var random = new Random(seed);
        for (int row = 0; row < count; row++)
        {
            yield return Enumerable.Range(0, width).Select(_ => random.Next(-20, 21) * 0.25f).ToArray();
        }
    }
}
