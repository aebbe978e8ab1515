using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace RetrainDaemon.Evaluation.Text;

/// <summary>sacreBLEU's <c>smooth_method</c> values.</summary>
public enum BleuSmoothing
{
    /// <summary><c>exp</c> (default; NIST/mteval-v13a): the k-th order with no match gets 100 / (2^k · total).</summary>
    Exp,

    /// <summary><c>none</c>: an order with no match has precision 0, so the score is 0.</summary>
    None,

    /// <summary><c>floor</c>: an order with no match gets precision 100 · value / total (value defaults to 0.1).</summary>
    Floor,

    /// <summary><c>add-k</c>: k (default 1) is added to the matches and totals of orders 2 and up, and reported so.</summary>
    AddK,
}

/// <summary>
/// sacreBLEU 2.6.0's BLEU options with its defaults. <see cref="Bleu.Sentence(string, IReadOnlyList{string?}, BleuOptions?)"/>
/// uses <see cref="SentenceDefault"/> (effective order on), as <c>sacrebleu.sentence_bleu</c> does.
/// </summary>
public sealed record BleuOptions
{
    /// <summary>Corpus defaults: 13a, mixed case, exp smoothing, order 4, no effective order.</summary>
    public static BleuOptions Default { get; } = new();

    /// <summary>Sentence defaults: as <see cref="Default"/> but with <see cref="EffectiveOrder"/> on.</summary>
    public static BleuOptions SentenceDefault { get; } = new() { EffectiveOrder = true };

    /// <summary>sacreBLEU <c>tokenize</c> (default <c>13a</c>).</summary>
    public TextTokenizer Tokenize { get; init; } = TextTokenizer.Mteval13a;

    /// <summary>sacreBLEU <c>lowercase</c>: Python <c>str.lower()</c> before tokenizing.</summary>
    public bool Lowercase { get; init; }

    /// <summary>sacreBLEU <c>smooth_method</c> (default <c>exp</c>).</summary>
    public BleuSmoothing SmoothMethod { get; init; } = BleuSmoothing.Exp;

    /// <summary>sacreBLEU <c>smooth_value</c>: null means floor 0.1 and add-k 1; ignored by exp and none.</summary>
    public double? SmoothValue { get; init; }

    /// <summary>sacreBLEU <c>max_ngram_order</c> (default 4).</summary>
    public int MaxNgramOrder { get; init; } = 4;

    /// <summary>
    /// sacreBLEU <c>effective_order</c>: average only over the orders for which the hypotheses have at least
    /// one n-gram (total &gt; 0) — not, despite sacreBLEU's docstring, the orders with a non-zero precision.
    /// </summary>
    public bool EffectiveOrder { get; init; }

    /// <summary>The smoothing value actually used: <see cref="SmoothValue"/> or the method's default.</summary>
    public double EffectiveSmoothValue => SmoothValue ?? (SmoothMethod == BleuSmoothing.AddK ? 1.0 : 0.1);

    internal void Validate()
    {
        if (MaxNgramOrder < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxNgramOrder), MaxNgramOrder, "BLEU needs a maximum n-gram order of at least 1");
        }

        if (SmoothValue is { } value && (!double.IsFinite(value) || value < 0))
        {
            throw new ArgumentOutOfRangeException(nameof(SmoothValue), value, "the smoothing value must be finite and non-negative");
        }

        if (!Enum.IsDefined(SmoothMethod))
        {
            throw new ArgumentOutOfRangeException(nameof(SmoothMethod), SmoothMethod, "unknown smoothing method");
        }

        if (!Enum.IsDefined(Tokenize))
        {
            throw new ArgumentOutOfRangeException(nameof(Tokenize), Tokenize, "unknown tokenizer");
        }
    }
}

/// <summary>
/// BLEU's sufficient statistics: corpus sums of hypothesis length, chosen reference length, clipped
/// matches and hypothesis n-grams per order. Combining corpora is adding these, never averaging scores.
/// </summary>
/// <param name="SysLen">Total hypothesis tokens.</param>
/// <param name="RefLen">Total of the per-segment closest reference lengths (ties: the shorter).</param>
/// <param name="Correct">Clipped n-gram matches, index 0 = unigrams.</param>
/// <param name="Total">Hypothesis n-grams, index 0 = unigrams.</param>
/// <param name="NumRefs">References per segment (nulls not counted), or −1 when it varies (<c>nrefs:var</c>).</param>
public sealed record BleuStatistics(long SysLen, long RefLen, IReadOnlyList<long> Correct, IReadOnlyList<long> Total, int NumRefs);

/// <summary>A BLEU score with sacreBLEU's reported fields.</summary>
/// <param name="Score">BLEU on the 0–100 scale.</param>
/// <param name="Precisions">n-gram precisions in percent (after smoothing), index 0 = unigrams.</param>
/// <param name="Counts">Clipped matches per order. With add-k these include the added k, as sacreBLEU reports them.</param>
/// <param name="Totals">Hypothesis n-grams per order, likewise including add-k's k.</param>
/// <param name="Bp">Brevity penalty, from corpus totals.</param>
/// <param name="SysLen">Total hypothesis tokens.</param>
/// <param name="RefLen">Total chosen reference tokens.</param>
/// <param name="Signature">sacreBLEU-style signature; compare scores only when signatures are equal.</param>
public sealed record BleuResult(
    double Score,
    IReadOnlyList<double> Precisions,
    IReadOnlyList<double> Counts,
    IReadOnlyList<double> Totals,
    double Bp,
    long SysLen,
    long RefLen,
    string Signature)
{
    /// <summary>sys_len / ref_len, or 0 when there is no reference token (informational only).</summary>
    public double Ratio => RefLen == 0 ? 0 : (double)SysLen / RefLen;

    /// <summary>sacreBLEU's one-line report, e.g. <c>BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)</c>.</summary>
    public override string ToString()
    {
        var inv = CultureInfo.InvariantCulture;
        string precisions = string.Join('/', Precisions.Select(p => p.ToString("F1", inv)));
        return string.Format(inv, "BLEU = {0:F2} {1} (BP = {2:F3} ratio = {3:F3} hyp_len = {4} ref_len = {5})",
            Score, precisions, Bp, Ratio, SysLen, RefLen);
    }
}

/// <summary>
/// BLEU exactly as sacreBLEU 2.6.0 computes it (<c>sacrebleu/metrics/bleu.py</c>): same pre-processing,
/// tokenizers, n-gram clipping against the maximum reference count, closest reference length with ties to
/// the shorter, smoothing, effective order and <c>my_log(0) = -9999999999</c>. Scores agree with sacreBLEU
/// to 1e-6 on the 0–100 scale (in practice bit for bit). Thread-safe; large corpora are scored in parallel.
/// </summary>
/// <remarks>
/// <para><b>Reference layout.</b> <see cref="Corpus"/> takes references <i>segment-major</i>:
/// <c>references[i]</c> lists the references of hypothesis i. sacreBLEU's own API is <i>stream-major</i>
/// (<c>refs[k][i]</c> is the k-th reference of segment i); <see cref="CorpusStreamMajor"/> takes that layout.
/// In both, a null reference means "segment i has no k-th reference" (variable reference counts), while ""
/// is a real, empty reference.</para>
/// <para><b>Where this differs from sacreBLEU:</b> bad input is rejected instead of silently truncated or
/// crashing: mismatched hypothesis/reference counts (sacreBLEU's <c>zip</c> drops the extra segments), a
/// segment whose references are all null (sacreBLEU then uses ref_len −1 or fails), an empty corpus. The
/// <c>intl</c>, <c>zh</c>, <c>ja-mecab</c> and spm tokenizers are not provided.</para>
/// </remarks>
public static class Bleu
{
    /// <summary>
    /// The <c>version:</c> field of our signatures. It means "the conventions of sacreBLEU 2.6.0", whose
    /// numbers this implementation reproduces — not that sacreBLEU itself computed the score.
    /// </summary>
    public const string SacreBleuConventionsVersion = "2.6.0";

    // my_log(0) in sacreBLEU: a huge negative number instead of -inf, so exp() underflows to exactly 0.
    private const double LogZero = -9999999999;

    // Below this many segments the thread hand-off costs more than it saves.
    private const int ParallelThreshold = 512;

    /// <summary>Corpus BLEU with segment-major references (<c>references[i]</c> = the references of hypothesis i).</summary>
    /// <exception cref="ArgumentException">The counts differ, a hypothesis is null, or a segment has no non-null reference.</exception>
    public static BleuResult Corpus(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string?>> references, BleuOptions? options = null)
    {
        options ??= BleuOptions.Default;
        var statistics = CorpusStatistics(hypotheses, references, options);
        return FromStatistics(statistics, options);
    }

    /// <summary>Corpus BLEU with sacreBLEU's stream-major references (<c>referenceStreams[k][i]</c> = k-th reference of segment i).</summary>
    /// <exception cref="ArgumentException">A stream's length differs from the hypothesis count, a hypothesis is null, or a segment has no reference.</exception>
    public static BleuResult CorpusStreamMajor(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string?>> referenceStreams, BleuOptions? options = null)
    {
        options ??= BleuOptions.Default;
        ArgumentNullException.ThrowIfNull(hypotheses);
        ArgumentNullException.ThrowIfNull(referenceStreams);
        options.Validate();
        var layout = new StreamMajor(hypotheses, referenceStreams);
        return FromStatistics(Collect(hypotheses, layout, options), options);
    }

    /// <summary>
    /// Sentence BLEU (<c>sacrebleu.sentence_bleu</c>): corpus BLEU over one segment. With no options the
    /// sentence defaults apply, i.e. effective order is on.
    /// </summary>
    public static BleuResult Sentence(string hypothesis, IReadOnlyList<string?> references, BleuOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(hypothesis);
        ArgumentNullException.ThrowIfNull(references);
        return Corpus([hypothesis], [references], options ?? BleuOptions.SentenceDefault);
    }

    /// <summary>Sentence BLEU against a single reference.</summary>
    public static BleuResult Sentence(string hypothesis, string reference, BleuOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(reference);
        return Sentence(hypothesis, [reference], options);
    }

    /// <summary>The sufficient statistics of a corpus (segment-major references), for combining corpora or resampling.</summary>
    public static BleuStatistics CorpusStatistics(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string?>> references, BleuOptions? options = null)
    {
        options ??= BleuOptions.Default;
        ArgumentNullException.ThrowIfNull(hypotheses);
        ArgumentNullException.ThrowIfNull(references);
        options.Validate();
        if (references.Count != hypotheses.Count)
        {
            throw new ArgumentException(
                $"BLEU needs one reference set per hypothesis, but got {hypotheses.Count} hypotheses and {references.Count} reference sets",
                nameof(references));
        }

        return Collect(hypotheses, new SegmentMajor(references), options);
    }

    /// <summary>
    /// sacreBLEU's <c>BLEU.compute_bleu</c>: the score from sufficient statistics. The reported counts and
    /// totals include add-k's k for orders ≥ 2, exactly as sacreBLEU reports them.
    /// </summary>
    public static BleuResult FromStatistics(BleuStatistics statistics, BleuOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(statistics);
        options ??= BleuOptions.Default;
        options.Validate();
        int order = options.MaxNgramOrder;
        if (statistics.Correct.Count != order || statistics.Total.Count != order)
        {
            throw new ArgumentException(
                $"the statistics hold {statistics.Correct.Count} matched and {statistics.Total.Count} total orders, but the options ask for order {order}",
                nameof(statistics));
        }

        double[] correct = statistics.Correct.Select(c => (double)c).ToArray();
        double[] total = statistics.Total.Select(t => (double)t).ToArray();
        long sysLen = statistics.SysLen, refLen = statistics.RefLen;
        string signature = Signature(options, statistics.NumRefs);

        double bp = 1.0;
        if (sysLen < refLen)
        {
            bp = sysLen > 0 ? Math.Exp(1 - ((double)refLen / sysLen)) : 0.0;
        }

        var precisions = new double[order];
        if (correct.All(c => c == 0))
        {
            // sacreBLEU #141: no match at any order is 0 for every smoothing method; counts are reported unchanged.
            return new BleuResult(0.0, precisions, correct, total, bp, sysLen, refLen, signature);
        }

        double smoothValue = options.EffectiveSmoothValue;
        double smoothMteval = 1.0;
        int effectiveOrder = order;
        for (int n = 1; n <= order; n++)
        {
            if (options.SmoothMethod == BleuSmoothing.AddK && n > 1)
            {
                correct[n - 1] += smoothValue;
                total[n - 1] += smoothValue;
            }

            if (total[n - 1] == 0)
            {
                break; // this and every higher order keep precision 0
            }

            if (options.EffectiveOrder)
            {
                effectiveOrder = n;
            }

            if (correct[n - 1] == 0)
            {
                if (options.SmoothMethod == BleuSmoothing.Exp)
                {
                    smoothMteval *= 2;
                    precisions[n - 1] = 100.0 / (smoothMteval * total[n - 1]);
                }
                else if (options.SmoothMethod == BleuSmoothing.Floor)
                {
                    precisions[n - 1] = 100.0 * smoothValue / total[n - 1];
                }
            }
            else
            {
                precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1];
            }
        }

        // Plain left-to-right sum, as Python 3.11's sum() does (no compensation).
        double logSum = 0;
        for (int n = 0; n < effectiveOrder; n++)
        {
            logSum += precisions[n] == 0.0 ? LogZero : Math.Log(precisions[n]);
        }

        double score = bp * Math.Exp(logSum / effectiveOrder);
        return new BleuResult(score, precisions, correct, total, bp, sysLen, refLen, signature);
    }

    /// <summary>
    /// The sacreBLEU signature, e.g. <c>nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0</c>.
    /// <paramref name="numRefs"/> −1 prints <c>nrefs:var</c>. sacreBLEU omits the n-gram order; we add
    /// <c>ngram:N</c> before <c>version</c> when it is not 4, so that BLEU-2 and BLEU-4 never share a signature.
    /// </summary>
    public static string Signature(BleuOptions options, int numRefs)
    {
        ArgumentNullException.ThrowIfNull(options);
        var sb = new StringBuilder(80);
        sb.Append("nrefs:").Append(numRefs < 0 ? "var" : numRefs.ToString(CultureInfo.InvariantCulture));
        sb.Append("|case:").Append(options.Lowercase ? "lc" : "mixed");
        sb.Append("|eff:").Append(options.EffectiveOrder ? "yes" : "no");
        sb.Append("|tok:").Append(TextTokenizers.SignatureName(options.Tokenize));
        sb.Append("|smooth:").Append(options.SmoothMethod switch
        {
            BleuSmoothing.Exp => "exp",
            BleuSmoothing.None => "none",
            BleuSmoothing.Floor => "floor[" + PythonText.FormatTwoDecimals(options.EffectiveSmoothValue) + "]",
            BleuSmoothing.AddK => "add-k[" + PythonText.FormatTwoDecimals(options.EffectiveSmoothValue) + "]",
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.SmoothMethod, "unknown smoothing method"),
        });
        if (options.MaxNgramOrder != 4)
        {
            sb.Append("|ngram:").Append(options.MaxNgramOrder.ToString(CultureInfo.InvariantCulture));
        }

        sb.Append("|version:").Append(SacreBleuConventionsVersion);
        return sb.ToString();
    }

    private static BleuStatistics Collect(IReadOnlyList<string> hypotheses, ReferenceLayout references, BleuOptions options)
    {
        int segments = hypotheses.Count;
        if (segments == 0)
        {
            throw new ArgumentException("BLEU needs at least one segment", nameof(hypotheses));
        }

        // Validate everything up front, so the parallel phase cannot fail half-way with an AggregateException.
        int numRefs = -2;
        for (int i = 0; i < segments; i++)
        {
            if (hypotheses[i] is null)
            {
                throw new ArgumentException($"hypotheses[{i}] is null", nameof(hypotheses));
            }

            int present = references.Present(i);
            if (present == 0)
            {
                throw new ArgumentException($"segment {i} has no reference (every reference is null)", nameof(references));
            }

            numRefs = numRefs == -2 || numRefs == present ? present : -1;
        }

        int order = options.MaxNgramOrder;
        var correct = new long[order];
        var total = new long[order];
        long sysLen = 0, refLen = 0;
        if (segments < ParallelThreshold)
        {
            var worker = new BleuWorker(order);
            for (int i = 0; i < segments; i++)
            {
                worker.Add(hypotheses[i], references, i, options);
            }

            worker.AddTo(correct, total, ref sysLen, ref refLen);
        }
        else
        {
            // Each worker sums its own statistics; the sums are integers, so the result does not depend on
            // how segments were partitioned or in which order workers finished.
            var gate = new object();
            int chunk = Math.Max(64, segments / (Environment.ProcessorCount * 8));
            Parallel.ForEach(
                Partitioner.Create(0, segments, chunk),
                () => new BleuWorker(order),
                (range, _, worker) =>
                {
                    for (int i = range.Item1; i < range.Item2; i++)
                    {
                        worker.Add(hypotheses[i], references, i, options);
                    }

                    return worker;
                },
                worker =>
                {
                    lock (gate)
                    {
                        worker.AddTo(correct, total, ref sysLen, ref refLen);
                    }
                });
        }

        return new BleuStatistics(sysLen, refLen, correct, total, numRefs);
    }

    /// <summary>References of segment i, whichever way the caller laid them out.</summary>
    internal abstract class ReferenceLayout
    {
        /// <summary>Number of reference slots of segment i (nulls included).</summary>
        public abstract int Width(int segment);

        public abstract string? Get(int segment, int k);

        public int Present(int segment)
        {
            int present = 0;
            for (int k = 0, width = Width(segment); k < width; k++)
            {
                if (Get(segment, k) is not null)
                {
                    present++;
                }
            }

            return present;
        }
    }

    private sealed class SegmentMajor(IReadOnlyList<IReadOnlyList<string?>> references) : ReferenceLayout
    {
        public override int Width(int segment) =>
            references[segment]?.Count ?? throw new ArgumentException($"references[{segment}] is null; use an empty list or null entries", nameof(references));

        public override string? Get(int segment, int k) => references[segment][k];
    }

    private sealed class StreamMajor : ReferenceLayout
    {
        private readonly IReadOnlyList<IReadOnlyList<string?>> _streams;

        public StreamMajor(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string?>> streams)
        {
            if (streams.Count == 0)
            {
                throw new ArgumentException("at least one reference stream is needed", nameof(streams));
            }

            for (int k = 0; k < streams.Count; k++)
            {
                if (streams[k] is null)
                {
                    throw new ArgumentException($"reference stream {k} is null", nameof(streams));
                }

                if (streams[k].Count != hypotheses.Count)
                {
                    throw new ArgumentException(
                        $"reference stream {k} has {streams[k].Count} segments but there are {hypotheses.Count} hypotheses",
                        nameof(streams));
                }
            }

            _streams = streams;
        }

        public override int Width(int segment) => _streams.Count;

        public override string? Get(int segment, int k) => _streams[k][segment];
    }

    /// <summary>
    /// Per-thread BLEU state: tokenizer buffers, n-gram ids local to the current segment, count arrays
    /// indexed by id, and this worker's share of the corpus statistics.
    /// </summary>
    private sealed class BleuWorker(int order)
    {
        private readonly TokenScratch _tokens = new();
        private readonly NGramIndex _index = new();
        private readonly long[] _correct = new long[order];
        private readonly long[] _total = new long[order];
        private long _sysLen;
        private long _refLen;
        private int[] _tokenIds = new int[64];
        private int[] _level = new int[64];
        private int[] _hypCount = new int[256];
        private int[] _maxRef = new int[256];
        private int[] _refCount = new int[256];
        private int[] _orderOf = new int[256];
        private int[] _touched = new int[256];

        public void Add(string hypothesis, ReferenceLayout references, int segment, BleuOptions options)
        {
            _index.Clear();
            _tokens.Segment(hypothesis, options.Lowercase, options.Tokenize);
            int hypLen = _tokens.Count;
            _sysLen += hypLen;
            Grow(ref _tokenIds, hypLen);
            Grow(ref _level, hypLen);
            int capacity = hypLen * order;
            Grow(ref _hypCount, capacity);
            Grow(ref _maxRef, capacity);
            Grow(ref _refCount, capacity);
            Grow(ref _orderOf, capacity);
            Grow(ref _touched, capacity);

            // Hypothesis n-grams: the only ones that get ids; reference n-grams are only looked up.
            for (int i = 0; i < hypLen; i++)
            {
                int id = _index.AddToken(_tokens.Token(i));
                _tokenIds[i] = id;
                _level[i] = id;
                _hypCount[id]++;
                _orderOf[id] = 0;
            }

            for (int n = 2; n <= order && n <= hypLen; n++)
            {
                for (int i = 0; i + n <= hypLen; i++)
                {
                    int id = _index.AddGram(_level[i], _tokenIds[i + n - 1]);
                    _level[i] = id;
                    _hypCount[id]++;
                    _orderOf[id] = n - 1;
                }
            }

            for (int n = 1; n <= order; n++)
            {
                _total[n - 1] += Math.Max(0, hypLen - n + 1);
            }

            int closestDiff = -1, closestLen = -1;
            for (int k = 0, width = references.Width(segment); k < width; k++)
            {
                string? reference = references.Get(segment, k);
                if (reference is null)
                {
                    continue;
                }

                int refLen = CountReference(reference, options);
                int diff = Math.Abs(hypLen - refLen);
                if (closestDiff == -1 || diff < closestDiff)
                {
                    closestDiff = diff;
                    closestLen = refLen;
                }
                else if (diff == closestDiff && refLen < closestLen)
                {
                    closestLen = refLen;
                }
            }

            _refLen += closestLen;
            for (int id = 0, ids = _index.Count; id < ids; id++)
            {
                _correct[_orderOf[id]] += Math.Min(_hypCount[id], _maxRef[id]);
                _hypCount[id] = 0;
                _maxRef[id] = 0;
            }
        }

        public void AddTo(long[] correct, long[] total, ref long sysLen, ref long refLen)
        {
            for (int n = 0; n < order; n++)
            {
                correct[n] += _correct[n];
                total[n] += _total[n];
            }

            sysLen += _sysLen;
            refLen += _refLen;
        }

        /// <summary>Counts this reference's n-grams that also occur in the hypothesis into the running maximum; returns its length.</summary>
        private int CountReference(string reference, BleuOptions options)
        {
            _tokens.Segment(reference, options.Lowercase, options.Tokenize);
            int refLen = _tokens.Count;
            Grow(ref _tokenIds, refLen);
            Grow(ref _level, refLen);
            int touched = 0;
            for (int i = 0; i < refLen; i++)
            {
                int id = _index.FindToken(_tokens.Token(i));
                _tokenIds[i] = id;
                _level[i] = id;
                if (id >= 0 && _refCount[id]++ == 0)
                {
                    _touched[touched++] = id;
                }
            }

            for (int n = 2; n <= order && n <= refLen; n++)
            {
                for (int i = 0; i + n <= refLen; i++)
                {
                    // An n-gram whose prefix is not in the hypothesis cannot be either: no lookup needed.
                    int id = _index.FindGram(_level[i], _tokenIds[i + n - 1]);
                    _level[i] = id;
                    if (id >= 0 && _refCount[id]++ == 0)
                    {
                        _touched[touched++] = id;
                    }
                }
            }

            for (int t = 0; t < touched; t++)
            {
                int id = _touched[t];
                _maxRef[id] = Math.Max(_maxRef[id], _refCount[id]);
                _refCount[id] = 0;
            }

            return refLen;
        }

        private static void Grow(ref int[] array, int length)
        {
            if (array.Length < length)
            {
                array = new int[Math.Max(length, array.Length * 2)];
            }
        }
    }
}
