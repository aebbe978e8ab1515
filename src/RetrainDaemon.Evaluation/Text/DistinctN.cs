namespace RetrainDaemon.Evaluation.Text;

/// <summary>A distinct-n value with its parts.</summary>
/// <param name="Distinct">Number of different n-grams over all outputs.</param>
/// <param name="Total">Number of n-grams over all outputs (with repetition).</param>
/// <param name="Value">Distinct / Total, or 0 when there is no n-gram at all.</param>
public sealed record DistinctNResult(long Distinct, long Total, double Value);

/// <summary>
/// Corpus-level distinct-n (docs/metrics.md §6): |set of all n-grams in all outputs| / number of n-grams in
/// all outputs. n-grams are taken within each output and never cross output boundaries; no n-gram at all
/// gives 0. Pure and thread-safe.
/// </summary>
/// <remarks>
/// Other definitions circulate under the same name and give different numbers: Li et al. (2016) divide by the
/// number of generated <i>tokens</i>; the <c>distinct-n</c> PyPI package (neural-dialogue-metrics/Distinct-N)
/// averages a per-sentence ratio (and fails on short sentences); Texygen's <c>UniqueGram</c> divides by the
/// number of sentences. This class implements none of those; the parts are returned so callers can tell.
/// </remarks>
public static class DistinctN
{
    /// <summary>distinct-n of pre-tokenized outputs.</summary>
    public static DistinctNResult Compute(IReadOnlyList<IReadOnlyList<string>> outputs, int n)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        var index = new NGramIndex();
        var distinct = new HashSet<int>();
        long total = 0;
        var level = new List<int>();
        var tokenIds = new List<int>();
        for (int s = 0; s < outputs.Count; s++)
        {
            var tokens = outputs[s] ?? throw new ArgumentException($"outputs[{s}] is null", nameof(outputs));
            level.Clear();
            tokenIds.Clear();
            foreach (string token in tokens)
            {
                int id = index.AddToken(token ?? throw new ArgumentException($"outputs[{s}] has a null token", nameof(outputs)));
                level.Add(id);
                tokenIds.Add(id);
            }

            for (int k = 2; k <= n; k++)
            {
                for (int i = 0; i + k <= tokens.Count; i++)
                {
                    level[i] = index.AddGram(level[i], tokenIds[i + k - 1]);
                }
            }

            for (int i = 0; i + n <= tokens.Count; i++)
            {
                distinct.Add(level[i]);
                total++;
            }
        }

        return new DistinctNResult(distinct.Count, total, total == 0 ? 0.0 : (double)distinct.Count / total);
    }

    /// <summary>distinct-n of texts tokenized with a sacreBLEU tokenizer (default: Python whitespace split, no lowercasing).</summary>
    public static DistinctNResult Compute(IReadOnlyList<string> outputs, int n, TextTokenizer tokenizer = TextTokenizer.None)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        var tokenized = outputs.Select((t, i) => (IReadOnlyList<string>)TextTokenizers.Tokenize(
            t ?? throw new ArgumentException($"outputs[{i}] is null", nameof(outputs)), tokenizer)).ToList();
        return Compute(tokenized, n);
    }
}
