using System.Globalization;
using System.Text;

namespace RetrainDaemon.Evaluation.Text;

/// <summary>A generated text found to copy a training record: which record, and the share of the text's n-grams it contains.</summary>
public readonly record struct CopyMatch(int TrainingRecord, double Share);

/// <summary>
/// Decides whether a generated text copies a training record (the <c>copy_share</c> metric). There is no
/// canonical definition (docs/metrics.md §7), so this one is exact and written down:
/// <list type="number">
/// <item>Texts and training records are tokenized with sacreBLEU's <c>13a</c> tokenizer and each token is
/// lowercased (<see cref="string.ToLowerInvariant()"/>): a copy with different case or spacing is still a copy.</item>
/// <item>A text of at least n tokens (n = <see cref="Ngram"/>, default 8) copies record r when at least
/// <see cref="MinShare"/> (default 0.9) of its n-gram positions — all L − n + 1 of them, repeats counted —
/// are n-grams that occur somewhere in that one record r. A verbatim copy of a whole record, or of any
/// n-token-or-longer stretch of one, has share 1; a text stitched from two records, or a record with one word
/// in ten changed, usually does not reach 0.9 against either.</item>
/// <item>A text of 1 … n − 1 tokens copies a record only when it equals that whole record (token for
/// token): short generic phrases ("Thank you.") occur inside many records without being copies of any.</item>
/// <item>An empty text copies nothing. <c>copy_share</c> = copies / texts.</item>
/// </list>
/// The index maps a 64-bit hash of every training n-gram to the records containing it, so a query costs
/// O(L + postings) instead of a scan of the training set; the best candidate record is then re-checked with
/// exact token comparison, so a hash collision can never create a copy. Immutable after construction and
/// thread-safe.
/// </summary>
public sealed class CopyDetector
{
    private readonly Dictionary<string, int> tokenIds = new(StringComparer.Ordinal);
    private readonly int[][] records;                            // token ids per training record
    private readonly Dictionary<ulong, int> postings = [];       // n-gram hash → record id, or −(k+1) for shared[k]
    private readonly List<List<int>> shared = [];                // records of an n-gram found in several records
    private readonly Dictionary<string, int> shortRecords = new(StringComparer.Ordinal); // records of < n tokens → first record id

    /// <param name="training">The training records, in a fixed order (record ids are indices into it).</param>
    /// <param name="ngram">n of the n-gram check (≥ 1).</param>
    /// <param name="minShare">The share of n-gram positions that must occur in one record, in (0, 1].</param>
    public CopyDetector(IReadOnlyList<string> training, int ngram = 8, double minShare = 0.9)
    {
        ArgumentNullException.ThrowIfNull(training);
        ArgumentOutOfRangeException.ThrowIfLessThan(ngram, 1);
        if (!(minShare > 0 && minShare <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(minShare), minShare, "the share must be in (0, 1]");
        }

        Ngram = ngram;
        MinShare = minShare;
        records = new int[training.Count][];
        for (int r = 0; r < training.Count; r++)
        {
            var tokens = Tokens(training[r] ?? throw new ArgumentException($"training[{r}] is null", nameof(training)));
            var ids = new int[tokens.Length];
            for (int i = 0; i < tokens.Length; i++)
            {
                if (!tokenIds.TryGetValue(tokens[i], out ids[i]))
                {
                    ids[i] = tokenIds.Count;
                    tokenIds[tokens[i]] = ids[i];
                }
            }

            records[r] = ids;
            if (ids.Length > 0 && ids.Length < ngram)
            {
                shortRecords.TryAdd(Key(ids), r);
            }

            var seen = new HashSet<ulong>();
            for (int i = 0; i + ngram <= ids.Length; i++)
            {
                ulong hash = Hash(ids.AsSpan(i, ngram));
                if (seen.Add(hash))
                {
                    AddPosting(hash, r);
                }
            }
        }
    }

    public int Ngram { get; }

    public double MinShare { get; }

    public int TrainingRecords => records.Length;

    /// <summary>The definition's parameters for metric signatures, e.g. <c>copy:tok=13a-lower,n=8,share>=0.9,short=whole-record</c>.</summary>
    public string Signature => string.Create(CultureInfo.InvariantCulture, $"copy:tok=13a-lower,n={Ngram},share>={MinShare:R},short=whole-record");

    /// <summary>The record <paramref name="text"/> copies (for the n-gram rule the one sharing the most n-grams; ties: the lowest id), or null.</summary>
    public CopyMatch? Find(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = Tokens(text);
        if (tokens.Length == 0)
        {
            return null;
        }

        var ids = new int[tokens.Length];
        for (int i = 0; i < tokens.Length; i++)
        {
            ids[i] = tokenIds.GetValueOrDefault(tokens[i], -1); // a token no record has: no n-gram through it can match
        }

        if (ids.Length < Ngram)
        {
            return ids.Contains(-1) || !shortRecords.TryGetValue(Key(ids), out int record) ? null : new CopyMatch(record, 1.0);
        }

        int positions = ids.Length - Ngram + 1;
        var counts = new Dictionary<int, int>();
        for (int i = 0; i < positions; i++)
        {
            var gram = ids.AsSpan(i, Ngram);
            if (gram.Contains(-1) || !postings.TryGetValue(Hash(gram), out int entry))
            {
                continue;
            }

            if (entry >= 0)
            {
                counts[entry] = counts.GetValueOrDefault(entry) + 1;
            }
            else
            {
                foreach (int r in shared[-entry - 1])
                {
                    counts[r] = counts.GetValueOrDefault(r) + 1;
                }
            }
        }

        // Hashed counts can only overstate (a collision adds, never removes), so candidates are verified
        // exactly in descending order until one holds or none can reach the share any more.
        foreach (var (record, hashed) in counts.OrderByDescending(c => c.Value).ThenBy(c => c.Key))
        {
            if ((double)hashed / positions < MinShare)
            {
                break;
            }

            int exact = ExactMatches(ids, records[record]);
            if ((double)exact / positions >= MinShare)
            {
                return new CopyMatch(record, (double)exact / positions);
            }
        }

        return null;
    }

    /// <summary>copies / texts (0 for no texts).</summary>
    public double CopyShare(IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        return texts.Count == 0 ? 0 : (double)texts.Count(t => Find(t) is not null) / texts.Count;
    }

    private static string[] Tokens(string text)
    {
        var tokens = TextTokenizers.Tokenize(text, TextTokenizer.Mteval13a);
        for (int i = 0; i < tokens.Length; i++)
        {
            tokens[i] = tokens[i].ToLowerInvariant();
        }

        return tokens;
    }

    private int ExactMatches(int[] text, int[] record)
    {
        var grams = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i + Ngram <= record.Length; i++)
        {
            grams.Add(Key(record.AsSpan(i, Ngram)));
        }

        int matches = 0;
        for (int i = 0; i + Ngram <= text.Length; i++)
        {
            var gram = text.AsSpan(i, Ngram);
            if (!gram.Contains(-1) && grams.Contains(Key(gram)))
            {
                matches++;
            }
        }

        return matches;
    }

    private void AddPosting(ulong hash, int record)
    {
        if (!postings.TryGetValue(hash, out int entry))
        {
            postings[hash] = record;
        }
        else if (entry >= 0)
        {
            shared.Add([entry, record]);
            postings[hash] = -shared.Count;
        }
        else
        {
            shared[-entry - 1].Add(record);
        }
    }

    private static string Key(ReadOnlySpan<int> ids)
    {
        var sb = new StringBuilder(ids.Length * 6);
        foreach (int id in ids)
        {
            sb.Append(id.ToString(CultureInfo.InvariantCulture)).Append(' ');
        }

        return sb.ToString();
    }

    // FNV-1a over the ids' 32-bit values, then SplitMix64's finalizer to spread the bits.
    private static ulong Hash(ReadOnlySpan<int> ids)
    {
        ulong hash = 14695981039346656037UL;
        foreach (int id in ids)
        {
            hash = (hash ^ (uint)id) * 1099511628211UL;
        }

        hash = (hash ^ (hash >> 30)) * 0xBF58476D1CE4E5B9UL;
        hash = (hash ^ (hash >> 27)) * 0x94D049BB133111EBUL;
        return hash ^ (hash >> 31);
    }
}
