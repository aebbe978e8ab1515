using System.Globalization;
using System.Text;

namespace RetrainDaemon.Evaluation.Text;

/// <summary>sacreBLEU 2.6.0's <c>CHRF</c> options with its defaults (chrF2: character 6-grams, no word n-grams, β = 2).</summary>
public sealed record ChrfOptions
{
    /// <summary>sacreBLEU's defaults: <c>nc:6|nw:0</c>, β 2, mixed case, whitespace removed, effective-order averaging.</summary>
    public static ChrfOptions Default { get; } = new();

    /// <summary>chrF++ (<c>word_order=2</c>).</summary>
    public static ChrfOptions ChrfPlusPlus { get; } = new() { WordOrder = 2 };

    /// <summary><c>char_order</c>: character n-grams 1..CharOrder.</summary>
    public int CharOrder { get; init; } = 6;

    /// <summary><c>word_order</c>: word n-grams 1..WordOrder after chrF's punctuation split (2 = chrF++).</summary>
    public int WordOrder { get; init; }

    /// <summary><c>beta</c>: recall weighs β times as much as precision.</summary>
    public int Beta { get; init; } = 2;

    /// <summary><c>lowercase</c>: Python <c>str.lower()</c> first.</summary>
    public bool Lowercase { get; init; }

    /// <summary><c>whitespace</c>: keep whitespace inside character n-grams (default: all whitespace is removed first).</summary>
    public bool Whitespace { get; init; }

    /// <summary>
    /// <c>eps_smoothing</c>: average the per-order F scores with ε = 1e-16 for empty orders (chrF++.py, Moses,
    /// NLTK). Default false: sacreBLEU 2's effective-order averaging of precision and recall before one F.
    /// </summary>
    public bool EpsSmoothing { get; init; }

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(CharOrder, nameof(CharOrder));
        ArgumentOutOfRangeException.ThrowIfNegative(WordOrder, nameof(WordOrder));
        if (CharOrder + WordOrder == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(CharOrder), "chrF needs at least one character or word order");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(Beta, 0, nameof(Beta));
    }
}

/// <summary>A chrF score with its corpus statistics.</summary>
/// <param name="Score">chrF on the 0–100 scale.</param>
/// <param name="Statistics">Per order (characters 1..nc, then words 1..nw) the triple [hypothesis n-grams, reference n-grams, matches], summed over segments.</param>
/// <param name="Name">sacreBLEU's name: <c>chrF2</c>, <c>chrF2++</c>, …</param>
/// <param name="Signature">e.g. <c>nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0</c>.</param>
public sealed record ChrfResult(double Score, IReadOnlyList<long> Statistics, string Name, string Signature);

/// <summary>
/// chrF and chrF++ exactly as sacreBLEU 2.6.0 computes them (<c>sacrebleu/metrics/chrf.py</c>, <c>helpers.py</c>):
/// character n-grams over code points of the text with all Python whitespace removed (unless
/// <see cref="ChrfOptions.Whitespace"/>), word n-grams over chrF's punctuation split; per segment the reference
/// whose statistics give the best F (the first on ties) is kept; corpus statistics are sums; the score
/// averages precision and recall over the orders where both sides have n-grams, then takes F-β.
/// Arithmetic follows the Python expression order, so scores agree bit for bit. Pure and thread-safe.
/// </summary>
/// <remarks>
/// <para><b>Reference layout</b>: segment-major as in <see cref="Bleu.Corpus"/> (<c>references[i]</c> lists the
/// references of hypothesis i; null = no such reference).</para>
/// <para><b>Differences from sacreBLEU</b>: a segment whose references are all null, a null hypothesis and
/// mismatched counts are rejected (sacreBLEU crashes or silently truncates).</para>
/// </remarks>
public static class Chrf
{
    private const double Epsilon = 1e-16;

    // Python's string.punctuation, the characters chrF++ splits off the start or end of a word.
    private const string Punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

    /// <summary>Corpus chrF with segment-major references.</summary>
    /// <exception cref="ArgumentException">The counts differ, a hypothesis is null, a segment has no non-null reference, or the corpus is empty.</exception>
    public static ChrfResult Corpus(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string?>> references, ChrfOptions? options = null)
    {
        options ??= ChrfOptions.Default;
        ArgumentNullException.ThrowIfNull(hypotheses);
        ArgumentNullException.ThrowIfNull(references);
        options.Validate();
        if (hypotheses.Count != references.Count)
        {
            throw new ArgumentException($"chrF needs the references of every hypothesis, but got {hypotheses.Count} hypotheses and {references.Count} reference lists", nameof(references));
        }

        if (hypotheses.Count == 0)
        {
            throw new ArgumentException("chrF needs at least one segment", nameof(hypotheses));
        }

        int order = options.CharOrder + options.WordOrder;
        var totals = new long[3 * order];
        var referenceCounts = new HashSet<int>();
        for (int i = 0; i < hypotheses.Count; i++)
        {
            string hypothesis = hypotheses[i] ?? throw new ArgumentException($"hypotheses[{i}] is null", nameof(hypotheses));
            var present = (references[i] ?? throw new ArgumentException($"references[{i}] is null", nameof(references))).Where(r => r is not null).Select(r => r!).ToList();
            if (present.Count == 0)
            {
                throw new ArgumentException($"segment {i} has no reference", nameof(references));
            }

            referenceCounts.Add(present.Count);
            var statistics = SegmentStatistics(hypothesis, present, options);
            for (int k = 0; k < totals.Length; k++)
            {
                totals[k] += statistics[k];
            }
        }

        int numRefs = referenceCounts.Count == 1 ? referenceCounts.First() : -1;
        return new ChrfResult(FScore(totals, options), totals, Name(options), Signature(options, numRefs));
    }

    /// <summary>Sentence chrF (<c>sentence_score</c>): corpus chrF of one segment.</summary>
    public static ChrfResult Sentence(string hypothesis, IReadOnlyList<string?> references, ChrfOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(hypothesis);
        ArgumentNullException.ThrowIfNull(references);
        return Corpus([hypothesis], [references], options);
    }

    /// <summary>sacreBLEU's chrF signature, e.g. <c>nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0</c>.</summary>
    public static string Signature(ChrfOptions options, int numRefs)
    {
        ArgumentNullException.ThrowIfNull(options);
        return string.Create(CultureInfo.InvariantCulture,
            $"nrefs:{(numRefs < 0 ? "var" : numRefs.ToString(CultureInfo.InvariantCulture))}|case:{(options.Lowercase ? "lc" : "mixed")}|eff:{(options.EpsSmoothing ? "no" : "yes")}|nc:{options.CharOrder}|nw:{options.WordOrder}|space:{(options.Whitespace ? "yes" : "no")}|version:{Bleu.SacreBleuConventionsVersion}");
    }

    /// <summary>sacreBLEU's score name: <c>chrF{β}</c> followed by one <c>+</c> per word order.</summary>
    public static string Name(ChrfOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return $"chrF{options.Beta.ToString(CultureInfo.InvariantCulture)}{new string('+', options.WordOrder)}";
    }

    /// <summary>
    /// <c>_compute_segment_statistics</c>: the [hyp, ref, match] triples against the reference with the best F;
    /// the first reference wins ties (the comparison is strictly greater, starting from −1).
    /// </summary>
    private static long[] SegmentStatistics(string hypothesis, List<string> references, ChrfOptions options)
    {
        var hypothesisGrams = NGrams(Preprocess(hypothesis, options), options);
        long[]? best = null;
        double bestF = -1.0;
        foreach (string reference in references)
        {
            var referenceGrams = NGrams(Preprocess(reference, options), options);
            var statistics = new long[3 * hypothesisGrams.Length];
            for (int k = 0; k < hypothesisGrams.Length; k++)
            {
                var (hyp, refs) = (hypothesisGrams[k], referenceGrams[k]);
                long matches = 0, hypCount = 0, refCount = 0;
                foreach (var (gram, count) in hyp)
                {
                    hypCount += count;
                    if (refs.TryGetValue(gram, out int refGram))
                    {
                        matches += Math.Min(count, refGram);
                    }
                }

                foreach (int count in refs.Values)
                {
                    refCount += count;
                }

                // sacreBLEU: "Don't count hits if no reference exists for that n-gram" — an order the reference
                // has no n-gram of contributes no hypothesis n-grams either.
                statistics[3 * k] = refs.Count > 0 ? hypCount : 0;
                statistics[(3 * k) + 1] = refCount;
                statistics[(3 * k) + 2] = matches;
            }

            double f = FScore(statistics, options);
            if (f > bestF)
            {
                bestF = f;
                best = statistics;
            }
        }

        return best!;
    }

    private static string Preprocess(string text, ChrfOptions options) => options.Lowercase ? PythonText.Lower(text) : text;

    /// <summary><c>_compute_f_score</c>, with Python's evaluation order.</summary>
    private static double FScore(IReadOnlyList<long> statistics, ChrfOptions options)
    {
        int order = statistics.Count / 3;
        double factor = options.Beta * options.Beta; // an int in Python; exact in double
        double score = 0.0, averagePrecision = 0.0, averageRecall = 0.0;
        int effectiveOrder = 0;
        for (int i = 0; i < order; i++)
        {
            long hyp = statistics[3 * i], reference = statistics[(3 * i) + 1], match = statistics[(3 * i) + 2];
            double precision = hyp > 0 ? (double)match / hyp : Epsilon;
            double recall = reference > 0 ? (double)match / reference : Epsilon;
            double denominator = (factor * precision) + recall;
            score += denominator > 0 ? (1 + factor) * precision * recall / denominator : Epsilon;
            if (hyp > 0 && reference > 0)
            {
                averagePrecision += precision;
                averageRecall += recall;
                effectiveOrder++;
            }
        }

        if (options.EpsSmoothing)
        {
            return 100 * score / order;
        }

        if (effectiveOrder == 0)
        {
            averagePrecision = averageRecall = 0.0;
        }
        else
        {
            averagePrecision /= effectiveOrder;
            averageRecall /= effectiveOrder;
        }

        if (averagePrecision + averageRecall != 0)
        {
            double f = (1 + factor) * averagePrecision * averageRecall;
            f /= (factor * averagePrecision) + averageRecall;
            return 100 * f;
        }

        return 0.0;
    }

    /// <summary>Counters of character n-grams 1..nc, then word n-grams 1..nw (<c>extract_all_char_ngrams</c>, <c>extract_word_ngrams</c>).</summary>
    private static Dictionary<string, int>[] NGrams(string text, ChrfOptions options)
    {
        var counters = new Dictionary<string, int>[options.CharOrder + options.WordOrder];
        string characters = options.Whitespace ? text : RemoveWhitespace(text);

        // Python slices code points; a surrogate pair is one code point, a lone surrogate one as well.
        var starts = new List<int>(characters.Length + 1);
        for (int i = 0; i < characters.Length; i += char.IsSurrogatePair(characters, i) ? 2 : 1)
        {
            starts.Add(i);
        }

        int codePoints = starts.Count;
        starts.Add(characters.Length);
        for (int n = 1; n <= options.CharOrder; n++)
        {
            var counter = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i + n <= codePoints; i++)
            {
                string gram = characters[starts[i]..starts[i + n]];
                counter[gram] = counter.GetValueOrDefault(gram) + 1;
            }

            counters[n - 1] = counter;
        }

        if (options.WordOrder > 0)
        {
            var words = SplitPunctuation(text);
            for (int n = 1; n <= options.WordOrder; n++)
            {
                var counter = new Dictionary<string, int>(StringComparer.Ordinal);
                for (int i = 0; i + n <= words.Count; i++)
                {
                    string gram = string.Join(' ', words.Skip(i).Take(n));
                    counter[gram] = counter.GetValueOrDefault(gram) + 1;
                }

                counters[options.CharOrder + n - 1] = counter;
            }
        }

        return counters;
    }

    /// <summary><c>''.join(line.split())</c>: every Python whitespace character removed.</summary>
    private static string RemoveWhitespace(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (char c in text)
        {
            if (!PythonText.IsWhiteSpace(c))
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }

    /// <summary>
    /// <c>_remove_punctuation</c>: Python-whitespace words; a word of more than one code point loses a trailing
    /// punctuation character to a token of its own, or else a leading one (so <c>(hi)</c> gives <c>(hi</c> and <c>)</c>).
    /// </summary>
    private static List<string> SplitPunctuation(string text)
    {
        var tokens = new List<string>();
        foreach (string word in PythonText.Split(text))
        {
            bool single = word.Length == 1 || (word.Length == 2 && char.IsSurrogatePair(word, 0));
            if (single)
            {
                tokens.Add(word);
            }
            else if (Punctuation.Contains(word[^1], StringComparison.Ordinal))
            {
                tokens.Add(word[..^1]);
                tokens.Add(word[^1..]);
            }
            else if (Punctuation.Contains(word[0], StringComparison.Ordinal))
            {
                tokens.Add(word[..1]);
                tokens.Add(word[1..]);
            }
            else
            {
                tokens.Add(word);
            }
        }

        return tokens;
    }
}
