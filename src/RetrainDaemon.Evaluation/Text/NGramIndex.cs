namespace RetrainDaemon.Evaluation.Text;

/// <summary>
/// Dense ids for tokens and n-grams, so that n-gram counting is array indexing instead of hashing tuples
/// of strings. A token gets an id; an n-gram of order k &gt; 1 gets the id of the pair (id of its first k−1
/// tokens, id of its last token). Ids of every order come from one counter, so a pair of ids identifies
/// exactly one n-gram and the scheme works for any maximum order. Not thread-safe: one per worker.
/// </summary>
internal sealed class NGramIndex
{
    private readonly Dictionary<string, int> _tokens = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _tokenSpans;
    private readonly Dictionary<long, int> _grams = [];

    public NGramIndex()
    {
        // Lookups by span: a token is only turned into a string when it is new.
        _tokenSpans = _tokens.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Ids handed out so far; ids are 0..Count-1.</summary>
    public int Count { get; private set; }

    public int AddToken(ReadOnlySpan<char> token)
    {
        if (!_tokenSpans.TryGetValue(token, out int id))
        {
            id = Count++;
            _tokenSpans[token] = id;
        }

        return id;
    }

    public int FindToken(ReadOnlySpan<char> token) => _tokenSpans.TryGetValue(token, out int id) ? id : -1;

    public int AddGram(int prefix, int last)
    {
        long key = Key(prefix, last);
        if (!_grams.TryGetValue(key, out int id))
        {
            id = Count++;
            _grams[key] = id;
        }

        return id;
    }

    /// <summary>The id of (prefix, last), or −1 when either part is unknown or the pair was never added.</summary>
    public int FindGram(int prefix, int last) =>
        prefix < 0 || last < 0 ? -1 : _grams.TryGetValue(Key(prefix, last), out int id) ? id : -1;

    public void Clear()
    {
        _tokens.Clear();
        _grams.Clear();
        Count = 0;
    }

    private static long Key(int prefix, int last) => ((long)prefix << 32) | (uint)last;
}
