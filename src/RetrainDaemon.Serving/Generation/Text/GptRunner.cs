using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Text;

namespace RetrainDaemon.Serving.Generation.Text;

/// <summary>One row of a decode step: its cache (its past) and the token it feeds at position <c>Cache.Length</c>.</summary>
internal readonly record struct DecodeRow(KvCache Cache, int Token);

/// <summary>
/// Runs a <see cref="GptGraph"/> session: a prefill of one sequence (zero-length past) and decode
/// steps of several sequences at once (one new token each, past left-padded to a common length with
/// mask 0, positions per row). Inputs and outputs live in buffers owned by the runner and are bound to
/// the run (no ONNX Runtime allocations, no copies out of native memory); the new keys and values are
/// copied into each row's <see cref="KvCache"/>. Cancellation is the caller's business between runs: a
/// step lasts milliseconds and other rows share it, so runs are never terminated.
/// Not thread-safe: one decode loop (or the warm-up before it) uses a runner.
/// </summary>
internal sealed class GptRunner
{
    private readonly InferenceSession session;
    private readonly GptShape shape;
    private readonly string[] inputNames;
    private readonly string[] outputNames;
    private readonly int vocabulary;

    // Grow-only buffers, bound to runs through Memory slices of the exact size.
    private long[] ids = [];
    private long[] positions = [];
    private long[] mask = [];
    private float[] logits = [];
    private readonly float[][] past;
    private readonly float[][] present;

    public GptRunner(InferenceSession session, TextModel model)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(model);
        this.session = session;
        shape = model.Shape;
        vocabulary = model.Vocabulary.Count;
        var inputs = new List<string> { GptGraph.InputIds, GptGraph.PositionIds, GptGraph.AttentionMask };
        var outputs = new List<string> { GptGraph.Logits };
        for (int layer = 0; layer < shape.Layers; layer++)
        {
            inputs.Add(GptGraph.PastKey(layer));
            inputs.Add(GptGraph.PastValue(layer));
            outputs.Add(GptGraph.PresentKey(layer));
            outputs.Add(GptGraph.PresentValue(layer));
        }

        inputNames = [.. inputs];
        outputNames = [.. outputs];
        past = new float[2 * shape.Layers][];
        present = new float[2 * shape.Layers][];
        for (int i = 0; i < past.Length; i++)
        {
            past[i] = [];
            present[i] = [];
        }
    }

    public GptShape Shape => shape;

    /// <summary>Logits per position: the vocabulary size.</summary>
    public int Vocabulary => vocabulary;

    /// <summary>
    /// Runs <paramref name="tokens"/> (positions 0…n−1, no past) and fills <paramref name="cache"/> with
    /// their keys and values; <paramref name="lastLogits"/> receives the logits of the last position.
    /// </summary>
    /// <exception cref="OnnxRuntimeException">The run failed.</exception>
    public void Prefill(ReadOnlySpan<int> tokens, KvCache cache, Span<float> lastLogits)
    {
        ArgumentNullException.ThrowIfNull(cache);
        int n = tokens.Length;
        if (n < 1 || n > shape.Context || cache.Length != 0 || cache.Capacity < n)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"a prefill of {n} tokens needs 1..{shape.Context} tokens and an empty cache of at least {n} positions"), nameof(tokens));
        }

        Ensure(ref ids, n);
        Ensure(ref positions, n);
        Ensure(ref mask, n);
        for (int t = 0; t < n; t++)
        {
            ids[t] = tokens[t];
            positions[t] = t;
            mask[t] = 1;
        }

        Ensure(ref logits, n * vocabulary);
        int block = shape.Heads * n * shape.HeadDim;
        for (int i = 0; i < present.Length; i++)
        {
            Ensure(ref present[i], block);
        }

        Run(batch: 1, length: n, total: n, pastLength: 0);
        logits.AsSpan((n - 1) * vocabulary, vocabulary).CopyTo(lastLogits);
        for (int layer = 0; layer < shape.Layers; layer++)
        {
            for (int head = 0; head < shape.Heads; head++)
            {
                // present (1, H, n, D): head h's n positions are contiguous.
                present[2 * layer].AsSpan(head * n * shape.HeadDim, n * shape.HeadDim).CopyTo(cache.Slot(layer, false, head, 0, n));
                present[(2 * layer) + 1].AsSpan(head * n * shape.HeadDim, n * shape.HeadDim).CopyTo(cache.Slot(layer, true, head, 0, n));
            }
        }

        cache.Advance(n);
    }

    /// <summary>
    /// One decode step for <paramref name="rows"/>, all at attention length <paramref name="total"/>
    /// (<see cref="DecodeLayout.Total"/> of each): row b's past is its cache right-aligned in
    /// <c>total − 1</c> positions (mask 0 on the padding, which is zeroed), its token at position
    /// <c>Cache.Length</c>. <paramref name="rowLogits"/> receives B × vocabulary logits; each cache gains one position.
    /// </summary>
    /// <exception cref="OnnxRuntimeException">The run failed.</exception>
    public void Decode(IReadOnlyList<DecodeRow> rows, int total, Span<float> rowLogits)
    {
        ArgumentNullException.ThrowIfNull(rows);
        int batch = rows.Count;
        int pastLength = total - 1;
        if (batch < 1 || total < 1 || total > shape.Context)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"a decode step needs rows and a total length in 1..{shape.Context}, not {batch} rows at {total}"), nameof(rows));
        }

        Ensure(ref ids, batch);
        Ensure(ref positions, batch);
        Ensure(ref mask, batch * total);
        Ensure(ref logits, batch * vocabulary);
        int pastBlock = shape.Heads * pastLength * shape.HeadDim;
        int presentBlock = shape.Heads * total * shape.HeadDim;
        for (int i = 0; i < past.Length; i++)
        {
            Ensure(ref past[i], batch * pastBlock);
            Ensure(ref present[i], batch * presentBlock);
        }

        int d = shape.HeadDim;
        for (int b = 0; b < batch; b++)
        {
            var cache = rows[b].Cache;
            int n = cache.Length;
            if (n > pastLength || cache.Length >= cache.Capacity)
            {
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"row {b} has {n} cached tokens (capacity {cache.Capacity}); it cannot decode at total length {total}"), nameof(rows));
            }

            ids[b] = rows[b].Token;
            positions[b] = n;
            int padding = pastLength - n;
            mask.AsSpan(b * total, padding).Clear();
            mask.AsSpan((b * total) + padding, n + 1).Fill(1);
            for (int layer = 0; layer < shape.Layers; layer++)
            {
                for (int kind = 0; kind < 2; kind++)
                {
                    var target = past[(2 * layer) + kind];
                    for (int head = 0; head < shape.Heads; head++)
                    {
                        int start = ((b * shape.Heads) + head) * pastLength * d;
                        // Padding is zeroed so that no stale value (a NaN from a broken neighbour) meets a masked score.
                        target.AsSpan(start, padding * d).Clear();
                        cache.Filled(layer, kind == 1, head).CopyTo(target.AsSpan(start + (padding * d), n * d));
                    }
                }
            }
        }

        Run(batch, length: 1, total, pastLength);
        logits.AsSpan(0, batch * vocabulary).CopyTo(rowLogits);
        for (int b = 0; b < batch; b++)
        {
            var cache = rows[b].Cache;
            for (int layer = 0; layer < shape.Layers; layer++)
            {
                for (int kind = 0; kind < 2; kind++)
                {
                    var source = present[(2 * layer) + kind];
                    for (int head = 0; head < shape.Heads; head++)
                    {
                        // present (B, H, total, D): the new token is the last position.
                        int start = ((((b * shape.Heads) + head) * total) + total - 1) * d;
                        source.AsSpan(start, d).CopyTo(cache.Slot(layer, kind == 1, head, cache.Length));
                    }
                }
            }

            cache.Advance(1);
        }
    }

    private void Run(int batch, int length, int total, int pastLength)
    {
        var memory = OrtMemoryInfo.DefaultInstance;
        long[] cacheShape = [batch, shape.Heads, pastLength, shape.HeadDim];
        long[] presentShape = [batch, shape.Heads, total, shape.HeadDim];
        var inputs = new List<OrtValue>(inputNames.Length);
        var outputs = new List<OrtValue>(outputNames.Length);
        try
        {
            inputs.Add(OrtValue.CreateTensorValueFromMemory(memory, ids.AsMemory(0, batch * length), [batch, length]));
            inputs.Add(OrtValue.CreateTensorValueFromMemory(memory, positions.AsMemory(0, batch * length), [batch, length]));
            inputs.Add(OrtValue.CreateTensorValueFromMemory(memory, mask.AsMemory(0, batch * total), [batch, total]));
            outputs.Add(OrtValue.CreateTensorValueFromMemory(memory, logits.AsMemory(0, batch * length * vocabulary), [batch, length, vocabulary]));
            int pastCount = batch * shape.Heads * pastLength * shape.HeadDim;
            int presentCount = batch * shape.Heads * total * shape.HeadDim;
            for (int i = 0; i < past.Length; i++)
            {
                // A zero-length past is a (B, H, 0, D) tensor over an empty slice.
                inputs.Add(OrtValue.CreateTensorValueFromMemory(memory, past[i].AsMemory(0, pastCount), cacheShape));
                outputs.Add(OrtValue.CreateTensorValueFromMemory(memory, present[i].AsMemory(0, presentCount), presentShape));
            }

            using var runOptions = new RunOptions();
            session.Run(runOptions, inputNames, inputs, outputNames, outputs);
        }
        finally
        {
            foreach (var value in inputs)
            {
                value.Dispose();
            }

            foreach (var value in outputs)
            {
                value.Dispose();
            }
        }
    }

    private static void Ensure<T>(ref T[] buffer, int length)
    {
        if (buffer.Length < length)
        {
            buffer = new T[Math.Max(length, buffer.Length * 2)];
        }
    }
}
