using RetrainDaemon.Core.Text;

namespace RetrainDaemon.Serving.Generation.Text;

/// <summary>
/// One sequence's keys and values, compact: per layer a (heads, capacity, head_dim) block of which the
/// first <see cref="Length"/> positions are filled. Batched decode steps copy it into the padded past
/// tensors of whatever batch the sequence is in, so a sequence's cache never depends on its neighbours.
/// Not thread-safe (owned by one decode loop).
/// </summary>
internal sealed class KvCache
{
    private readonly float[][] keys;
    private readonly float[][] values;

    public KvCache(GptShape shape, int capacity)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Heads = shape.Heads;
        HeadDim = shape.HeadDim;
        Capacity = capacity;
        keys = new float[shape.Layers][];
        values = new float[shape.Layers][];
        for (int layer = 0; layer < shape.Layers; layer++)
        {
            keys[layer] = new float[shape.Heads * capacity * shape.HeadDim];
            values[layer] = new float[shape.Heads * capacity * shape.HeadDim];
        }
    }

    public int Heads { get; }

    public int HeadDim { get; }

    /// <summary>Positions this cache can hold (the most tokens its sequence will ever feed).</summary>
    public int Capacity { get; }

    /// <summary>Positions filled: the tokens of the sequence fed so far.</summary>
    public int Length { get; private set; }

    public int Layers => keys.Length;

    /// <summary>Layer <paramref name="layer"/>'s keys (<paramref name="value"/> false) or values, (heads, capacity, head_dim).</summary>
    public float[] Block(int layer, bool value) => value ? values[layer] : keys[layer];

    /// <summary>The first <see cref="Length"/> positions of <paramref name="head"/> in a block.</summary>
    public ReadOnlySpan<float> Filled(int layer, bool value, int head) =>
        Block(layer, value).AsSpan(head * Capacity * HeadDim, Length * HeadDim);

    /// <summary>Where position <paramref name="position"/> of <paramref name="head"/> goes in a block.</summary>
    public Span<float> Slot(int layer, bool value, int head, int position, int count = 1) =>
        Block(layer, value).AsSpan(((head * Capacity) + position) * HeadDim, count * HeadDim);

    /// <summary>Marks <paramref name="count"/> more positions as filled (after their slots were written).</summary>
    public void Advance(int count)
    {
        if (count < 0 || Length + count > Capacity)
        {
            throw new InvalidOperationException($"cache of {Capacity} positions cannot take {count} more after {Length}");
        }

        Length += count;
    }

    /// <summary>A copy of this cache (warm-up runs one prefill in several rows).</summary>
    public KvCache Clone(GptShape shape)
    {
        var copy = new KvCache(shape, Capacity);
        for (int layer = 0; layer < keys.Length; layer++)
        {
            keys[layer].CopyTo(copy.keys[layer], 0);
            values[layer].CopyTo(copy.values[layer], 0);
        }

        copy.Length = Length;
        return copy;
    }
}

/// <summary>
/// How long the attention of a decode step is for one row, as a pure function of that row alone.
/// <para>
/// Why: ONNX Runtime's CPU kernels give a row the same bits whatever other rows share its run (checked
/// for batches of 1 to 12 rows), but not whatever the attention length is — the softmax and the
/// attention·V product accumulate in vector lanes whose grouping moves with the left padding. If the
/// length were the longest row of the batch, a request's logits would depend on who else is being
/// served, and a seeded request could sample a different token. So each row decodes at
/// <see cref="Total"/>(its own cached length): rows with the same total share a run, rows with different
/// ones run in separate runs of the same step. The cost is attention over up to
/// <see cref="Granularity"/> − 1 padded positions per row.
/// </para>
/// </summary>
internal static class DecodeLayout
{
    /// <summary>Attention lengths are multiples of this (or the context): 64 keeps the padding under 2× the real length past the first bucket and rows in few groups.</summary>
    public const int Granularity = 64;

    /// <summary>
    /// The attention length (past + 1 new token) a row with <paramref name="cached"/> tokens in its cache
    /// decodes at: <c>cached + 1</c> rounded up to <see cref="Granularity"/>, at most <paramref name="context"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The new token would not fit in the context.</exception>
    public static int Total(int cached, int context)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cached);
        if (cached + 1 > context)
        {
            throw new ArgumentOutOfRangeException(nameof(cached), cached, $"a row with {cached} cached tokens cannot decode within a context of {context}");
        }

        int rounded = (cached + Granularity) / Granularity * Granularity; // cached + 1 rounded up
        return Math.Min(context, rounded);
    }
}
