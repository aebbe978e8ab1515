using System.Collections.ObjectModel;

namespace RetrainDaemon.Evaluation.Text;

/// <summary>One ROUGE score, as rouge-score's <c>Score</c> tuple.</summary>
/// <param name="Precision">Matches over prediction units.</param>
/// <param name="Recall">Matches over target units.</param>
/// <param name="FMeasure">F1: 2PR/(P+R), or 0 when P+R is 0.</param>
public readonly record struct RougeScore(double Precision, double Recall, double FMeasure)
{
    internal static RougeScore From(double precision, double recall) =>
        new(precision, recall, precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0);
}

/// <summary>
/// rouge-score 0.1.2's <c>DefaultTokenizer</c>: Python <c>lower()</c>, every run of characters outside
/// <c>[a-z0-9]</c> becomes a separator (so every non-ASCII letter splits a word: "café" → "caf"), then
/// optionally NLTK's Porter stemmer on tokens longer than three characters. Pure and thread-safe.
/// </summary>
public static class RougeTokenizer
{
    /// <summary>The tokens rouge-score scores for <paramref name="text"/>.</summary>
    public static IReadOnlyList<string> Tokenize(string text, bool useStemmer = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        string lower = PythonText.Lower(text);
        var tokens = new List<string>();
        int i = 0;
        while (i < lower.Length)
        {
            while (i < lower.Length && !IsAsciiLowerOrDigit(lower[i]))
            {
                i++;
            }

            int start = i;
            while (i < lower.Length && IsAsciiLowerOrDigit(lower[i]))
            {
                i++;
            }

            if (i > start)
            {
                string token = lower[start..i];
                tokens.Add(useStemmer && token.Length > 3 ? PorterStemmer.Stem(token) : token);
            }
        }

        // rouge-score drops tokens that are not [a-z0-9]+ after stemming; stems of such tokens always are,
        // except that a stem could in principle be empty.
        tokens.RemoveAll(t => t.Length == 0);
        return tokens;
    }

    private static bool IsAsciiLowerOrDigit(char c) => c is (>= 'a' and <= 'z') or (>= '0' and <= '9');
}

/// <summary>
/// rouge-score 0.1.2's <c>RougeScorer(rouge_types, use_stemmer)</c>: rouge1..rouge9 (n-gram overlap),
/// rougeL (LCS of the whole texts) and rougeLsum (summary-level LCS over newline-separated sentences, with
/// rouge-score's exact backtracking tie-break). Results agree with rouge-score to 1e-9 (bit for bit in
/// practice). Immutable and thread-safe.
/// </summary>
/// <remarks>
/// <para><b>Argument order:</b> the target (reference) comes first, the prediction second; swapping them
/// swaps precision and recall.</para>
/// <para><b>rougeLsum</b> splits on "\n" only and drops empty lines (a line of spaces stays, with no
/// tokens). Without newlines it equals rougeL. rouge-score's <c>split_summaries=True</c> (NLTK's punkt
/// sentence splitter) is not provided.</para>
/// <para><b>Corpus level:</b> <see cref="Corpus"/> is the plain mean of the per-pair precision, recall and
/// F — deterministic, unlike rouge-score's <c>BootstrapAggregator</c>, whose "mid" is a bootstrap median.</para>
/// </remarks>
public sealed class RougeScorer
{
    private readonly string[] _types;

    /// <summary>Creates a scorer for <paramref name="rougeTypes"/> (any of rouge1..rouge9, rougeL, rougeLsum).</summary>
    /// <exception cref="ArgumentException">An unknown rouge type (e.g. rouge0, rouge10, rougen).</exception>
    public RougeScorer(IEnumerable<string> rougeTypes, bool useStemmer = false)
    {
        ArgumentNullException.ThrowIfNull(rougeTypes);
        _types = rougeTypes.Distinct(StringComparer.Ordinal).ToArray();
        if (_types.Length == 0)
        {
            throw new ArgumentException("at least one rouge type is needed", nameof(rougeTypes));
        }

        foreach (string type in _types)
        {
            if (type is not ("rougeL" or "rougeLsum") && NgramOrder(type) == 0)
            {
                throw new ArgumentException($"invalid rouge type '{type}': use rouge1..rouge9, rougeL or rougeLsum", nameof(rougeTypes));
            }
        }

        UseStemmer = useStemmer;
    }

    /// <summary>The rouge types, in the order given (duplicates removed).</summary>
    public IReadOnlyList<string> RougeTypes => Array.AsReadOnly(_types);

    /// <summary>Whether tokens longer than three characters are Porter-stemmed.</summary>
    public bool UseStemmer { get; }

    /// <summary>A signature for stored results, e.g. <c>rouge-score:0.1.2|stem:yes|lsum:newline|agg:mean</c>.</summary>
    public string Signature => $"rouge-score:0.1.2|stem:{(UseStemmer ? "yes" : "no")}|lsum:newline|agg:mean";

    /// <summary>rouge-score's <c>score(target, prediction)</c>.</summary>
    public IReadOnlyDictionary<string, RougeScore> Score(string target, string prediction)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(prediction);
        IReadOnlyList<string>? targetTokens = null, predictionTokens = null;
        var result = new Dictionary<string, RougeScore>(_types.Length, StringComparer.Ordinal);
        foreach (string type in _types)
        {
            if (type == "rougeLsum")
            {
                result[type] = SummaryLevelLcs(Sentences(target), Sentences(prediction));
                continue;
            }

            targetTokens ??= RougeTokenizer.Tokenize(target, UseStemmer);
            predictionTokens ??= RougeTokenizer.Tokenize(prediction, UseStemmer);
            result[type] = type == "rougeL"
                ? Lcs(targetTokens, predictionTokens)
                : NGrams(targetTokens, predictionTokens, NgramOrder(type));
        }

        return new ReadOnlyDictionary<string, RougeScore>(result);
    }

    /// <summary>
    /// rouge-score's <c>score_multi(targets, prediction)</c>: for each type separately, the score against the
    /// target with the highest F; the first such target wins ties (numpy's argmax).
    /// </summary>
    public IReadOnlyDictionary<string, RougeScore> ScoreMulti(IReadOnlyList<string> targets, string prediction)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(prediction);
        if (targets.Count == 0)
        {
            throw new ArgumentException("score_multi needs at least one target", nameof(targets));
        }

        var scores = targets.Select(t => Score(t ?? throw new ArgumentException("a target is null", nameof(targets)), prediction)).ToList();
        var result = new Dictionary<string, RougeScore>(_types.Length, StringComparer.Ordinal);
        foreach (string type in _types)
        {
            var best = scores[0][type];
            for (int i = 1; i < scores.Count; i++)
            {
                if (scores[i][type].FMeasure > best.FMeasure)
                {
                    best = scores[i][type];
                }
            }

            result[type] = best;
        }

        return new ReadOnlyDictionary<string, RougeScore>(result);
    }

    /// <summary>Corpus ROUGE: the plain mean over pairs of precision, recall and F (each averaged separately).</summary>
    /// <exception cref="ArgumentException">The counts differ or the corpus is empty.</exception>
    public IReadOnlyDictionary<string, RougeScore> Corpus(IReadOnlyList<string> targets, IReadOnlyList<string> predictions)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(predictions);
        if (targets.Count != predictions.Count)
        {
            throw new ArgumentException($"ROUGE needs one target per prediction, but got {targets.Count} targets and {predictions.Count} predictions", nameof(predictions));
        }

        if (targets.Count == 0)
        {
            throw new ArgumentException("ROUGE needs at least one pair", nameof(targets));
        }

        var sums = _types.ToDictionary(t => t, _ => (P: 0.0, R: 0.0, F: 0.0), StringComparer.Ordinal);
        for (int i = 0; i < targets.Count; i++)
        {
            var score = Score(
                targets[i] ?? throw new ArgumentException($"targets[{i}] is null", nameof(targets)),
                predictions[i] ?? throw new ArgumentException($"predictions[{i}] is null", nameof(predictions)));
            foreach (string type in _types)
            {
                var (p, r, f) = sums[type];
                var s = score[type];
                sums[type] = (p + s.Precision, r + s.Recall, f + s.FMeasure);
            }
        }

        var result = new Dictionary<string, RougeScore>(_types.Length, StringComparer.Ordinal);
        foreach (string type in _types)
        {
            var (p, r, f) = sums[type];
            result[type] = new RougeScore(p / targets.Count, r / targets.Count, f / targets.Count);
        }

        return new ReadOnlyDictionary<string, RougeScore>(result);
    }

    /// <summary>n for "rouge{n}" with n in 1..9, else 0.</summary>
    private static int NgramOrder(string type) =>
        type.Length == 6 && type.StartsWith("rouge", StringComparison.Ordinal) && type[5] is >= '1' and <= '9' ? type[5] - '0' : 0;

    private List<IReadOnlyList<string>> Sentences(string text) =>
        text.Split('\n').Where(s => s.Length > 0).Select(s => RougeTokenizer.Tokenize(s, UseStemmer)).ToList();

    private static RougeScore NGrams(IReadOnlyList<string> target, IReadOnlyList<string> prediction, int n)
    {
        // Both texts' n-grams get ids from one index; counts are then arrays indexed by id.
        var index = new NGramIndex();
        var targetIds = Ids(index, target, n);
        var predictionIds = Ids(index, prediction, n);
        var targetCount = new int[index.Count];
        var predictionCount = new int[index.Count];
        foreach (int id in targetIds)
        {
            targetCount[id]++;
        }

        foreach (int id in predictionIds)
        {
            predictionCount[id]++;
        }

        long overlap = 0;
        for (int id = 0; id < index.Count; id++)
        {
            overlap += Math.Min(targetCount[id], predictionCount[id]);
        }

        double precision = overlap / (double)Math.Max(predictionIds.Length, 1);
        double recall = overlap / (double)Math.Max(targetIds.Length, 1);
        return RougeScore.From(precision, recall);
    }

    /// <summary>The ids of the n-grams of <paramref name="tokens"/>, one per position.</summary>
    private static int[] Ids(NGramIndex index, IReadOnlyList<string> tokens, int n)
    {
        int count = Math.Max(0, tokens.Count - n + 1);
        var level = new int[tokens.Count];
        var tokenIds = new int[tokens.Count];
        for (int i = 0; i < tokens.Count; i++)
        {
            tokenIds[i] = level[i] = index.AddToken(tokens[i]);
        }

        for (int k = 2; k <= n; k++)
        {
            for (int i = 0; i + k <= tokens.Count; i++)
            {
                level[i] = index.AddGram(level[i], tokenIds[i + k - 1]);
            }
        }

        return level[..count];
    }

    private static RougeScore Lcs(IReadOnlyList<string> target, IReadOnlyList<string> prediction)
    {
        if (target.Count == 0 || prediction.Count == 0)
        {
            return default;
        }

        // Only the length is needed here, so two rows suffice.
        var previous = new int[prediction.Count + 1];
        var current = new int[prediction.Count + 1];
        for (int i = 1; i <= target.Count; i++)
        {
            for (int j = 1; j <= prediction.Count; j++)
            {
                current[j] = string.Equals(target[i - 1], prediction[j - 1], StringComparison.Ordinal)
                    ? previous[j - 1] + 1
                    : Math.Max(previous[j], current[j - 1]);
            }

            (previous, current) = (current, previous);
        }

        int lcs = previous[prediction.Count];
        return RougeScore.From(lcs / (double)prediction.Count, lcs / (double)target.Count);
    }

    /// <summary>rouge-score's <c>_summary_level_lcs</c> (ROUGE paper §3.2 with ROUGE-1.5.5's no-double-counting).</summary>
    private static RougeScore SummaryLevelLcs(List<IReadOnlyList<string>> target, List<IReadOnlyList<string>> prediction)
    {
        if (target.Count == 0 || prediction.Count == 0)
        {
            return default;
        }

        int m = target.Sum(s => s.Count);
        int n = prediction.Sum(s => s.Count);
        if (m == 0 || n == 0)
        {
            return default;
        }

        var targetCounts = Counts(target);
        var predictionCounts = Counts(prediction);
        int hits = 0;
        var union = new SortedSet<int>();
        foreach (var r in target)
        {
            union.Clear();
            foreach (var c in prediction)
            {
                LcsIndices(r, c, union);
            }

            foreach (int i in union)
            {
                string token = r[i];
                if (predictionCounts.GetValueOrDefault(token) > 0 && targetCounts.GetValueOrDefault(token) > 0)
                {
                    hits++;
                    predictionCounts[token]--;
                    targetCounts[token]--;
                }
            }
        }

        return RougeScore.From(hits / (double)n, hits / (double)m);
    }

    private static Dictionary<string, int> Counts(List<IReadOnlyList<string>> sentences)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var sentence in sentences)
        {
            foreach (string token in sentence)
            {
                counts[token] = counts.GetValueOrDefault(token) + 1;
            }
        }

        return counts;
    }

    /// <summary>
    /// Adds the indices into <paramref name="r"/> of one LCS of (r, c), read back from the full DP table with
    /// rouge-score's tie-break: on a mismatch move left (j−1) only when that cell is strictly larger than the
    /// one above, else move up. Against c = [w1], r = [w1, w2, w1] yields index 2, not 0.
    /// </summary>
    private static void LcsIndices(IReadOnlyList<string> r, IReadOnlyList<string> c, SortedSet<int> into)
    {
        int rows = r.Count, cols = c.Count;
        if (rows == 0 || cols == 0)
        {
            return;
        }

        int width = cols + 1;
        var t = new int[(rows + 1) * width];
        for (int i = 1; i <= rows; i++)
        {
            for (int j = 1; j <= cols; j++)
            {
                t[(i * width) + j] = string.Equals(r[i - 1], c[j - 1], StringComparison.Ordinal)
                    ? t[((i - 1) * width) + j - 1] + 1
                    : Math.Max(t[((i - 1) * width) + j], t[(i * width) + j - 1]);
            }
        }

        for (int i = rows, j = cols; i > 0 && j > 0;)
        {
            if (string.Equals(r[i - 1], c[j - 1], StringComparison.Ordinal))
            {
                into.Add(i - 1);
                i--;
                j--;
            }
            else if (t[(i * width) + j - 1] > t[((i - 1) * width) + j])
            {
                j--;
            }
            else
            {
                i--;
            }
        }
    }
}
