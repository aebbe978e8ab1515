using System.Globalization;

namespace RetrainDaemon.Evaluation.Text;

/// <summary>Self-BLEU options; the defaults are Texygen's (<c>SelfBleu(gram=3)</c>, fast mode).</summary>
public sealed record SelfBleuOptions
{
    /// <summary>Texygen's defaults: 3-grams, the first 500 sentences.</summary>
    public static SelfBleuOptions Default { get; } = new();

    /// <summary>n of Self-BLEU-n: weights (1/n, …, 1/n) over orders 1..n. Texygen's default is 3.</summary>
    public int NgramOrder { get; init; } = 3;

    /// <summary>
    /// At most this many sentences are used, both as hypotheses and as the reference pool (Texygen's fast mode
    /// uses 500 because the metric costs O(N²·L) in NLTK). Null uses every sentence.
    /// </summary>
    public int? MaxSentences { get; init; } = 500;

    /// <summary>
    /// Null (Texygen): when there are more sentences than <see cref="MaxSentences"/>, the first ones are used.
    /// Otherwise a seeded uniform subsample is used instead, in original order (see <see cref="SelfBleu.Subsample"/>).
    /// </summary>
    public ulong? SubsampleSeed { get; init; }
}

/// <summary>A Self-BLEU value and what it was computed on.</summary>
/// <param name="Score">Mean sentence BLEU on the 0–1 scale (not 0–100).</param>
/// <param name="SentencesUsed">Sentences actually scored (after the cap).</param>
/// <param name="SentencesGiven">Sentences passed in.</param>
/// <param name="Signature">e.g. <c>ngram:3|smooth:method1|cap:500|sample:first|used:500/800|tok:given|version:nltk-3.8</c>.</param>
public sealed record SelfBleuResult(double Score, int SentencesUsed, int SentencesGiven, string Signature);

/// <summary>
/// Self-BLEU in the Texygen convention (Zhu et al. 2018, <c>utils/metrics/SelfBleu.py</c>): the mean over
/// sentences i of NLTK 3.8's <c>sentence_bleu(references = all other sentences, hypothesis = sentence i,
/// weights = (1/n, …), SmoothingFunction().method1)</c>. Agrees with NLTK + Texygen to 1e-9. Pure and thread-safe.
/// </summary>
/// <remarks>
/// <para>Only index i itself is excluded from the references; a duplicate of sentence i elsewhere stays one.</para>
/// <para>NLTK semantics reproduced exactly (docs/metrics.md §5.2): modified precision with the maximum count
/// over references and denominator max(1, hypothesis n-grams); no unigram match → 0 before smoothing; method1
/// replaces a zero-match precision by 0.1/denominator; brevity penalty from the closest reference length (ties
/// to the shorter), 1 when c &gt; r; the weighted logs summed with <c>math.fsum</c>.</para>
/// <para>Texygen tokenizes with <c>nltk.word_tokenize</c> (punkt), which is not ported: pass tokens from the
/// tokenizer you evaluate with, or use the string overload with a sacreBLEU tokenizer; the signature records it.</para>
/// <para>Cost: the maximum count of each n-gram over "all sentences but i" comes from the top two counts per
/// n-gram over the whole set, so the whole metric is linear in the number of n-grams instead of NLTK's O(N²·L).</para>
/// </remarks>
public static class SelfBleu
{
    private const double Method1Epsilon = 0.1; // NLTK SmoothingFunction(epsilon=0.1)

    /// <summary>Self-BLEU of pre-tokenized sentences.</summary>
    /// <exception cref="ArgumentException">Fewer than two sentences remain after the cap, or a sentence or token is null.</exception>
    public static SelfBleuResult Compute(IReadOnlyList<IReadOnlyList<string>> sentences, SelfBleuOptions? options = null) =>
        Compute(sentences, options ?? SelfBleuOptions.Default, "given");

    /// <summary>Self-BLEU of texts tokenized with a sacreBLEU tokenizer (no lowercasing).</summary>
    public static SelfBleuResult Compute(IReadOnlyList<string> texts, TextTokenizer tokenizer, SelfBleuOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var tokenized = texts.Select((t, i) => (IReadOnlyList<string>)TextTokenizers.Tokenize(
            t ?? throw new ArgumentException($"texts[{i}] is null", nameof(texts)), tokenizer)).ToList();
        return Compute(tokenized, options ?? SelfBleuOptions.Default, TextTokenizers.SignatureName(tokenizer));
    }

    /// <summary>
    /// NLTK 3.8's <c>sentence_bleu(references, hypothesis, (1/n,)*n, SmoothingFunction().method1)</c> on the 0–1 scale.
    /// </summary>
    public static double SentenceBleu(IReadOnlyList<IReadOnlyList<string>> references, IReadOnlyList<string> hypothesis, int ngramOrder)
    {
        ArgumentNullException.ThrowIfNull(references);
        ArgumentNullException.ThrowIfNull(hypothesis);
        ArgumentOutOfRangeException.ThrowIfLessThan(ngramOrder, 1);
        if (references.Count == 0)
        {
            throw new ArgumentException("sentence BLEU needs at least one reference", nameof(references));
        }

        var all = new List<IReadOnlyList<string>>(references.Count + 1) { hypothesis };
        all.AddRange(references);
        var pool = new NGramPool(all, ngramOrder);
        return pool.SentenceBleu(0);
    }

    /// <summary>
    /// The seeded subsample: a partial Fisher–Yates shuffle of 0..count−1 driven by SplitMix64 seeded with
    /// <paramref name="seed"/> (step i swaps i with i + next() mod (count − i)), the first <paramref name="size"/>
    /// indices, sorted. Documented so that the same subset can be drawn outside .NET (tests/reference does).
    /// </summary>
    public static int[] Subsample(int count, int size, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, count);
        var index = new int[count];
        for (int i = 0; i < count; i++)
        {
            index[i] = i;
        }

        ulong state = seed;
        for (int i = 0; i < size; i++)
        {
            state += 0x9E3779B97F4A7C15UL;
            ulong z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            int j = i + (int)(z % (ulong)(count - i));
            (index[i], index[j]) = (index[j], index[i]);
        }

        var chosen = index[..size];
        Array.Sort(chosen);
        return chosen;
    }

    private static SelfBleuResult Compute(IReadOnlyList<IReadOnlyList<string>> sentences, SelfBleuOptions options, string tokenizer)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.NgramOrder, 1, nameof(options.NgramOrder));
        if (options.MaxSentences is < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxSentences, "MaxSentences must be at least 2 (or null for no cap)");
        }

        IReadOnlyList<IReadOnlyList<string>> used = sentences;
        string sample = "first";
        if (options.MaxSentences is int cap && sentences.Count > cap)
        {
            if (options.SubsampleSeed is ulong seed)
            {
                used = Subsample(sentences.Count, cap, seed).Select(i => sentences[i]).ToList();
                sample = "seed=" + seed.ToString(CultureInfo.InvariantCulture);
            }
            else
            {
                used = sentences.Take(cap).ToList(); // Texygen: reference[0:sample_size]
            }
        }
        else if (options.SubsampleSeed is ulong seed)
        {
            sample = "seed=" + seed.ToString(CultureInfo.InvariantCulture); // recorded even when nothing was dropped
        }

        if (used.Count < 2)
        {
            throw new ArgumentException($"Self-BLEU needs at least two sentences, got {used.Count}", nameof(sentences));
        }

        var pool = new NGramPool(used, options.NgramOrder);
        double sum = 0.0;
        for (int i = 0; i < used.Count; i++)
        {
            sum += pool.SentenceBleu(i); // in index order, as Texygen adds its pool results
        }

        string capText = options.MaxSentences?.ToString(CultureInfo.InvariantCulture) ?? "none";
        string signature = string.Create(CultureInfo.InvariantCulture,
            $"ngram:{options.NgramOrder}|smooth:method1|cap:{capText}|sample:{sample}|used:{used.Count}/{sentences.Count}|tok:{tokenizer}|version:nltk-3.8");
        return new SelfBleuResult(sum / used.Count, used.Count, sentences.Count, signature);
    }

    /// <summary>
    /// All n-grams of a sentence set with, per n-gram, the largest count in any one sentence, which sentence
    /// that was, and the largest count among the other sentences: enough to get "max over every sentence but i"
    /// in O(1). Sentence lengths are kept as a histogram for the closest-length search.
    /// </summary>
    private sealed class NGramPool
    {
        private readonly int _order;
        private readonly int[][][] _ids;      // [sentence][order-1][position]
        private readonly int[] _best;         // per n-gram id
        private readonly int[] _bestSentence;
        private readonly int[] _second;
        private readonly int[] _scratch;
        private readonly SortedDictionary<int, int> _lengths = [];

        public NGramPool(IReadOnlyList<IReadOnlyList<string>> sentences, int order)
        {
            _order = order;
            var index = new NGramIndex();
            _ids = new int[sentences.Count][][];
            for (int s = 0; s < sentences.Count; s++)
            {
                var tokens = sentences[s] ?? throw new ArgumentException($"sentence {s} is null", nameof(sentences));
                _lengths[tokens.Count] = _lengths.GetValueOrDefault(tokens.Count) + 1;
                _ids[s] = new int[order][];
                var level = new int[tokens.Count];
                var tokenIds = new int[tokens.Count];
                for (int i = 0; i < tokens.Count; i++)
                {
                    tokenIds[i] = level[i] = index.AddToken(tokens[i] ?? throw new ArgumentException($"sentence {s} has a null token", nameof(sentences)));
                }

                for (int n = 1; n <= order; n++)
                {
                    if (n > 1)
                    {
                        for (int i = 0; i + n <= tokens.Count; i++)
                        {
                            level[i] = index.AddGram(level[i], tokenIds[i + n - 1]);
                        }
                    }

                    _ids[s][n - 1] = level[..Math.Max(0, tokens.Count - n + 1)];
                }
            }

            _best = new int[index.Count];
            _bestSentence = new int[index.Count];
            _second = new int[index.Count];
            _scratch = new int[index.Count];
            Array.Fill(_bestSentence, -1);
            for (int s = 0; s < _ids.Length; s++)
            {
                foreach (int[] ids in _ids[s])
                {
                    foreach (int id in ids)
                    {
                        _scratch[id]++;
                    }

                    foreach (int id in ids)
                    {
                        int count = _scratch[id];
                        if (count == 0)
                        {
                            continue; // already recorded for this sentence
                        }

                        if (count > _best[id])
                        {
                            _second[id] = _best[id];
                            _best[id] = count;
                            _bestSentence[id] = s;
                        }
                        else if (count > _second[id])
                        {
                            _second[id] = count;
                        }

                        _scratch[id] = 0;
                    }
                }
            }
        }

        /// <summary>NLTK sentence_bleu of sentence <paramref name="h"/> against every other sentence of the pool.</summary>
        public double SentenceBleu(int h)
        {
            var hypothesis = _ids[h];
            int c = hypothesis[0].Length;
            var weighted = new double[_order];
            double weight = 1.0 / _order;
            for (int n = 1; n <= _order; n++)
            {
                int[] ids = hypothesis[n - 1];
                long numerator = 0;
                foreach (int id in ids)
                {
                    _scratch[id]++;
                }

                foreach (int id in ids)
                {
                    int count = _scratch[id];
                    if (count == 0)
                    {
                        continue;
                    }

                    int maxOther = _bestSentence[id] == h ? _second[id] : _best[id];
                    numerator += Math.Min(count, maxOther);
                    _scratch[id] = 0;
                }

                if (n == 1 && numerator == 0)
                {
                    return 0.0; // NLTK: no unigram match → 0, before any smoothing
                }

                long denominator = Math.Max(1, ids.Length);
                double p = numerator == 0 ? Method1Epsilon / denominator : (double)numerator / denominator;
                weighted[n - 1] = weight * Math.Log(p);
            }

            int r = ClosestOtherLength(c);
            double bp = c > r ? 1.0 : c == 0 ? 0.0 : Math.Exp(1 - ((double)r / c));
            return bp * Math.Exp(PythonText.FSum(weighted));
        }

        /// <summary>Closest length among all sentences but one of length <paramref name="c"/>; ties go to the shorter.</summary>
        private int ClosestOtherLength(int c)
        {
            int best = -1, bestDiff = int.MaxValue;
            foreach (var (length, count) in _lengths)
            {
                if (length == c && count == 1)
                {
                    continue; // the hypothesis itself is the only sentence of its length
                }

                int diff = Math.Abs(length - c);
                if (diff < bestDiff)
                {
                    bestDiff = diff;
                    best = length; // ascending order: on a tie the earlier (shorter) length stays
                }
            }

            return best;
        }
    }
}
