using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Text;

/// <summary>
/// Greedy generation straight on an <see cref="InferenceSession"/> of a gpt graph (Core.Text.GptGraph),
/// two ways: with the key/value cache (prefill, then one token per run with the presents fed back as
/// past) and without (the whole sequence every run, past empty) — the difference the cache makes.
/// </summary>
internal static class OrtGeneration
{
    public static int[] WithCache(InferenceSession session, GptShape shape, int[] prompt, int newTokens)
    {
        var generated = new List<int>(newTokens);
        var past = EmptyPast(shape);
        long[] feed = [.. prompt.Select(t => (long)t)];
        int total = 0;
        try
        {
            while (generated.Count < newTokens)
            {
                using var outputs = Run(session, shape, feed, total, past);
                total += feed.Length;
                int next = ArgMaxLast(outputs[0], shape.Vocabulary);
                generated.Add(next);
                DisposeAll(past);
                past = [.. Enumerable.Range(1, 2 * shape.Layers).Select(i => Copy(outputs[i]))];
                feed = [next];
            }
        }
        finally
        {
            DisposeAll(past);
        }

        return [.. generated];
    }

    public static int[] Recompute(InferenceSession session, GptShape shape, int[] prompt, int newTokens)
    {
        var sequence = prompt.Select(t => (long)t).ToList();
        var generated = new List<int>(newTokens);
        var empty = EmptyPast(shape);
        try
        {
            while (generated.Count < newTokens)
            {
                using var outputs = Run(session, shape, [.. sequence], 0, empty);
                int next = ArgMaxLast(outputs[0], shape.Vocabulary);
                generated.Add(next);
                sequence.Add(next);
            }
        }
        finally
        {
            DisposeAll(empty);
        }

        return [.. generated];
    }

    private static IDisposableReadOnlyCollection<OrtValue> Run(InferenceSession session, GptShape shape, long[] feed, int past, OrtValue[] pastValues)
    {
        using var ids = OrtValue.CreateTensorValueFromMemory(feed, [1, feed.Length]);
        using var positions = OrtValue.CreateTensorValueFromMemory(Enumerable.Range(past, feed.Length).Select(p => (long)p).ToArray(), [1, feed.Length]);
        using var mask = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1L, past + feed.Length).ToArray(), [1, past + feed.Length]);
        var names = new List<string> { GptGraph.InputIds, GptGraph.PositionIds, GptGraph.AttentionMask };
        var values = new List<OrtValue> { ids, positions, mask };
        var outputNames = new List<string> { GptGraph.Logits };
        for (int layer = 0; layer < shape.Layers; layer++)
        {
            names.Add(GptGraph.PastKey(layer));
            values.Add(pastValues[2 * layer]);
            names.Add(GptGraph.PastValue(layer));
            values.Add(pastValues[2 * layer + 1]);
            outputNames.Add(GptGraph.PresentKey(layer));
            outputNames.Add(GptGraph.PresentValue(layer));
        }

        using var runOptions = new RunOptions();
        return session.Run(runOptions, names, values, outputNames);
    }

    private static OrtValue[] EmptyPast(GptShape shape) =>
        [.. Enumerable.Range(0, 2 * shape.Layers).Select(_ => OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [1, shape.Heads, 0, shape.HeadDim]))];

    private static OrtValue Copy(OrtValue value)
    {
        var data = value.GetTensorDataAsSpan<float>().ToArray();
        return OrtValue.CreateTensorValueFromMemory(data, value.GetTensorTypeAndShape().Shape);
    }

    private static int ArgMaxLast(OrtValue logits, int vocabulary)
    {
        var span = logits.GetTensorDataAsSpan<float>();
        span = span[^vocabulary..];
        int best = 0;
        for (int i = 1; i < span.Length; i++)
        {
            if (span[i] > span[best])
            {
                best = i;
            }
        }

        return best;
    }

    private static void DisposeAll(IEnumerable<OrtValue> values)
    {
        foreach (var value in values)
        {
            value.Dispose();
        }
    }
}
