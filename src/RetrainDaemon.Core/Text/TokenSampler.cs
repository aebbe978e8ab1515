using System.Globalization;

namespace RetrainDaemon.Core.Text;

/// <summary>
/// How the next token is chosen from a model's logits. <see cref="Temperature"/> 0 is greedy;
/// <see cref="TopK"/> 0 and <see cref="TopP"/> 1 switch those filters off.
/// </summary>
public sealed record SamplingOptions(double Temperature = 1.0, int TopK = 0, double TopP = 1.0)
{
    public const double MaxTemperature = 100;

    public static SamplingOptions Greedy { get; } = new(Temperature: 0);

    public bool IsGreedy => Temperature == 0;

    /// <summary>
    /// Every problem of <paramref name="options"/> for a model with <paramref name="vocabulary"/> tokens,
    /// each naming the request field (<c>temperature</c>, <c>top_k</c>, <c>top_p</c>), the allowed range
    /// and the bad value; empty when the options are usable.
    /// </summary>
    public static IReadOnlyList<string> Validate(SamplingOptions options, int vocabulary)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabulary, 1);

        var problems = new List<string>();
        if (!double.IsFinite(options.Temperature) || options.Temperature < 0 || options.Temperature > MaxTemperature)
        {
            problems.Add(Invariant($"temperature must be a number in [0, {MaxTemperature}] (0 = greedy); got {options.Temperature}"));
        }

        if (options.TopK < 0 || options.TopK > vocabulary)
        {
            problems.Add(Invariant($"top_k must be an integer in [0, {vocabulary}] (0 = off; {vocabulary} is the vocabulary size); got {options.TopK}"));
        }

        // The negated test also catches NaN.
        if (!(options.TopP > 0 && options.TopP <= 1))
        {
            problems.Add(Invariant($"top_p must be a number in (0, 1] (1 = off); got {options.TopP}"));
        }

        return problems;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// Picks the next token from a row of logits, the same way in serving and in evaluation:
/// <list type="number">
/// <item>temperature 0: the argmax (the lowest id among equal maxima); no random number is used;</item>
/// <item>otherwise logits / temperature; top-k keeps the k largest (ties at the boundary keep lower ids);</item>
/// <item>softmax in double; top-p keeps the smallest prefix, by descending probability (ties: lower id
/// first), whose cumulative probability is at least p, and always at least one token;</item>
/// <item>the kept probabilities are renormalized and one token is drawn with one number from the
/// sampler's own <see cref="Xoshiro256StarStar"/> stream.</item>
/// </list>
/// A logit of −∞ means "never this token". NaN and +∞ logits, or a row with nothing finite, are a
/// broken model and throw. The same seed and the same sequence of logits give the same tokens on
/// every machine and .NET version (System.Random's algorithm is not a contract, so it is not used).
/// Buffers are reused between calls: one instance per generation stream; not thread-safe.
/// </summary>
public sealed class TokenSampler
{
    private readonly Xoshiro256StarStar _random;
    private int[] _heap = [];      // candidate ids, a binary max-heap under OrderedBefore
    private int[] _kept = [];      // ids taken from the heap, in descending order
    private double[] _weights = []; // unnormalized probability of _kept[i] (or of id i when no order is needed)

    public TokenSampler(SamplingOptions options, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(options);

        // top_k's upper bound depends on the model, so it is checked per call against the logits' width.
        var problems = SamplingOptions.Validate(options, int.MaxValue);
        if (problems.Count > 0)
        {
            throw new ArgumentException("invalid sampling options: " + string.Join("; ", problems), nameof(options));
        }

        Options = options;
        _random = new Xoshiro256StarStar(seed);
    }

    public SamplingOptions Options { get; }

    /// <summary>The next token id, an index into <paramref name="logits"/>.</summary>
    /// <exception cref="ArgumentException">The row is empty, narrower than top_k, or has NaN, +∞ or no finite logit.</exception>
    public int Next(ReadOnlySpan<float> logits)
    {
        int width = logits.Length;
        if (width == 0)
        {
            throw new ArgumentException("no logits to sample from", nameof(logits));
        }

        if (Options.TopK > width)
        {
            throw new ArgumentException($"top_k {Options.TopK} exceeds the {width} logits of the model", nameof(logits));
        }

        int argmax = 0;
        int finite = 0;
        for (int i = 0; i < width; i++)
        {
            float logit = logits[i];
            if (float.IsNaN(logit) || float.IsPositiveInfinity(logit))
            {
                throw new ArgumentException($"logits[{i}] is {logit}; the model output is broken", nameof(logits));
            }

            if (logit > logits[argmax])
            {
                argmax = i;
            }

            if (!float.IsNegativeInfinity(logit))
            {
                finite++;
            }
        }

        if (finite == 0)
        {
            throw new ArgumentException("every logit is -∞; there is no token to choose", nameof(logits));
        }

        if (Options.IsGreedy)
        {
            return argmax;
        }

        EnsureCapacity(width);
        double maxLogit = logits[argmax];
        bool topK = Options.TopK > 0 && Options.TopK < finite;
        bool topP = Options.TopP < 1;
        return topK || topP ? SampleOrdered(logits, maxLogit, finite) : SampleAll(logits, maxLogit);
    }

    // Neither filter: draw over all ids in id order (the distribution is the same in any order).
    private int SampleAll(ReadOnlySpan<float> logits, double maxLogit)
    {
        double total = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            double weight = Weight(logits[i], maxLogit);
            _weights[i] = weight;
            total += weight;
        }

        double target = _random.NextDouble() * total;
        double cumulative = 0;
        int last = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            if (_weights[i] > 0)
            {
                cumulative += _weights[i];
                last = i;
                if (target < cumulative)
                {
                    return i;
                }
            }
        }

        return last; // rounding left target at the very top: the last possible token
    }

    // Top-k and/or top-p: take candidates from a max-heap in descending order, so only the kept
    // prefix is ever ordered (O(width + kept · log width) instead of sorting the whole row).
    private int SampleOrdered(ReadOnlySpan<float> logits, double maxLogit, int finite)
    {
        int heapSize = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            if (!float.IsNegativeInfinity(logits[i]))
            {
                _heap[heapSize++] = i;
            }
        }

        for (int parent = heapSize / 2 - 1; parent >= 0; parent--)
        {
            SiftDown(logits, parent, heapSize);
        }

        int kept;
        double keptTotal = 0;
        if (Options.TopK > 0 && Options.TopK < finite)
        {
            // Top-k first; its softmax is over the k survivors, and top-p then applies to that.
            for (kept = 0; kept < Options.TopK; kept++)
            {
                int id = PopMax(logits, ref heapSize);
                _kept[kept] = id;
                _weights[kept] = Weight(logits[id], maxLogit);
                keptTotal += _weights[kept];
            }

            if (Options.TopP < 1)
            {
                double threshold = Options.TopP * keptTotal;
                double cumulative = 0;
                int prefix = 0;
                while (prefix < kept && (prefix == 0 || cumulative < threshold))
                {
                    cumulative += _weights[prefix++];
                }

                kept = prefix;
                keptTotal = cumulative;
            }
        }
        else
        {
            // Top-p alone: the softmax is over every token, so its total is needed before the walk.
            double total = 0;
            for (int i = 0; i < logits.Length; i++)
            {
                total += Weight(logits[i], maxLogit);
            }

            double threshold = Options.TopP * total;
            kept = 0;
            while (heapSize > 0 && (kept == 0 || keptTotal < threshold))
            {
                int id = PopMax(logits, ref heapSize);
                _kept[kept] = id;
                _weights[kept] = Weight(logits[id], maxLogit);
                keptTotal += _weights[kept++];
            }
        }

        double target = _random.NextDouble() * keptTotal;
        double running = 0;
        for (int i = 0; i < kept; i++)
        {
            running += _weights[i];
            if (target < running)
            {
                return _kept[i];
            }
        }

        return _kept[kept - 1]; // rounding left target at the very top: the last kept token
    }

    // exp((logit − max) / T) ≤ 1: shifting by the max before dividing keeps it finite for any T > 0.
    private double Weight(float logit, double maxLogit) => Math.Exp((logit - maxLogit) / Options.Temperature);

    // Descending probability = descending logit; among equal logits the lower id comes first.
    private static bool OrderedBefore(ReadOnlySpan<float> logits, int a, int b) =>
        logits[a] > logits[b] || (logits[a] == logits[b] && a < b);

    private int PopMax(ReadOnlySpan<float> logits, ref int heapSize)
    {
        int top = _heap[0];
        _heap[0] = _heap[--heapSize];
        SiftDown(logits, 0, heapSize);
        return top;
    }

    private void SiftDown(ReadOnlySpan<float> logits, int index, int heapSize)
    {
        while (true)
        {
            int left = 2 * index + 1;
            if (left >= heapSize)
            {
                return;
            }

            int right = left + 1;
            int child = right < heapSize && OrderedBefore(logits, _heap[right], _heap[left]) ? right : left;
            if (!OrderedBefore(logits, _heap[child], _heap[index]))
            {
                return;
            }

            (_heap[index], _heap[child]) = (_heap[child], _heap[index]);
            index = child;
        }
    }

    private void EnsureCapacity(int width)
    {
        if (_heap.Length < width)
        {
            _heap = new int[width];
            _kept = new int[width];
            _weights = new double[width];
        }
    }
}

/// <summary>
/// xoshiro256** 1.0 (Blackman and Vigna, "Scrambled linear pseudorandom number generators", 2018):
/// 256 bits of state, period 2^256 − 1, seeded by expanding a 64-bit seed with SplitMix64 as its
/// authors recommend. Its output for a seed is fixed forever; sampling reproducibility depends on it.
/// </summary>
public sealed class Xoshiro256StarStar
{
    private ulong _s0, _s1, _s2, _s3;

    public Xoshiro256StarStar(ulong seed)
    {
        ulong splitMix = seed;
        _s0 = SplitMix64(ref splitMix);
        _s1 = SplitMix64(ref splitMix);
        _s2 = SplitMix64(ref splitMix);
        _s3 = SplitMix64(ref splitMix);
    }

    /// <summary>SplitMix64 (Steele, Lea and Flood, 2014): advances <paramref name="state"/> and returns the next output.</summary>
    public static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextUInt64()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1): the top 53 bits of <see cref="NextUInt64"/> scaled by 2^−53.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));
}
