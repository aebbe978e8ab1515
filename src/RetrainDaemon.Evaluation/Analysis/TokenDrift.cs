using RetrainDaemon.Core.Text;

namespace RetrainDaemon.Evaluation.Analysis;

/// <summary>
/// Drift of text on token statistics: the Jensen–Shannon divergence, in bits (log base 2, so it lies in [0, 1]),
/// between the unigram distributions of two token multisets over the champion's vocabulary:
/// JSD(P, Q) = ½ KL(P ‖ M) + ½ KL(Q ‖ M), M = ½ (P + Q), P(t) = count(t) / total, with 0 · log 0 = 0.
/// 0 for identical distributions, 1 for disjoint supports. The tokens of a sample are the champion vocabulary's
/// encoding of its text, preceded by that of its source for conditional models (specials never occur). Unlike
/// KL it is symmetric and finite when one side has tokens the other lacks — exactly what new data brings.
/// </summary>
public static class TokenDrift
{
    /// <summary>JSD in bits of the distributions given by <paramref name="p"/> and <paramref name="q"/> (counts per token id, same length).</summary>
    /// <exception cref="ArgumentException">Different lengths, a negative count, or an empty side.</exception>
    public static double JensenShannon(IReadOnlyList<long> p, IReadOnlyList<long> q)
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(q);
        if (p.Count != q.Count)
        {
            throw new ArgumentException($"count vectors differ in length ({p.Count} and {q.Count}): both must cover the same vocabulary");
        }

        double totalP = Total(p, nameof(p)), totalQ = Total(q, nameof(q));
        double sum = 0;
        for (int i = 0; i < p.Count; i++)
        {
            double pi = p[i] / totalP, qi = q[i] / totalQ;
            double mi = (pi + qi) / 2;
            if (pi > 0)
            {
                sum += pi * Math.Log2(pi / mi);
            }

            if (qi > 0)
            {
                sum += qi * Math.Log2(qi / mi);
            }
        }

        // Round-off can leave a tiny negative for identical inputs or a hair above 1 for disjoint ones.
        return Math.Clamp(sum / 2, 0, 1);
    }

    /// <summary>Token counts per vocabulary id of <paramref name="texts"/> (each: optional source, then text).</summary>
    public static long[] Counts(TextVocabulary vocabulary, IEnumerable<(string? Source, string Text)> texts)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        ArgumentNullException.ThrowIfNull(texts);
        var counts = new long[vocabulary.Count];
        foreach (var (source, text) in texts)
        {
            if (source is not null)
            {
                foreach (int id in vocabulary.Encode(source))
                {
                    counts[id]++;
                }
            }

            foreach (int id in vocabulary.Encode(text))
            {
                counts[id]++;
            }
        }

        return counts;
    }

    /// <summary>The share of tokens that are byte-fallback tokens (text the vocabulary has no token for): rises with unseen words.</summary>
    public static double ByteFallbackShare(IReadOnlyList<long> counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        long total = 0, fallback = 0;
        for (int i = 0; i < counts.Count; i++)
        {
            total += counts[i];
            if (i is >= TextVocabulary.FirstByteToken and < TextVocabulary.FirstMergedToken)
            {
                fallback += counts[i];
            }
        }

        return total == 0 ? 0 : (double)fallback / total;
    }

    private static double Total(IReadOnlyList<long> counts, string name)
    {
        long total = 0;
        foreach (long c in counts)
        {
            if (c < 0)
            {
                throw new ArgumentException($"{name} has a negative count ({c})", name);
            }

            total += c;
        }

        if (total == 0)
        {
            throw new ArgumentException($"{name} has no tokens: a distribution needs at least one", name);
        }

        return total;
    }
}
