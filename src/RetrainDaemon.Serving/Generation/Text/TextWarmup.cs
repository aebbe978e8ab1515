using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Serving.Runtime;

namespace RetrainDaemon.Serving.Generation.Text;

/// <summary>
/// Warms a text version up the way it will serve, through the serving code (<see cref="GptRunner"/>):
/// a prefill of a short prompt, then greedy decode steps with two rows and one step with the largest
/// batch serving forms. Every logit must be finite, or the version is refused (broken weights).
/// It also checks the property reproducible sampling rests on: a row's logits have the same bits in
/// a run of one and in a run of several (<see cref="DecodeLayout"/>); <see cref="BatchInvariant"/>
/// reports it, and the server logs a warning when it does not hold (a GPU provider may not give it).
/// Cancellation is checked between runs.
/// </summary>
internal static class TextWarmup
{
    private const int Steps = 3;
    private const string Prompt = "The ";

    /// <summary>Runs the warm-up; failures are refusals naming the problem, never exceptions (except cancellation).</summary>
    /// <param name="batchInvariant">Whether a row gave identical logits alone and batched.</param>
    public static WarmupResult Run(GptRunner runner, TextModel model, int maxBatchSize, out bool batchInvariant, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(runner);
        ArgumentNullException.ThrowIfNull(model);
        var watch = Stopwatch.StartNew();
        batchInvariant = true;
        var batches = new List<int>();
        try
        {
            List<int> prompt = [TextVocabulary.Bos, .. model.Vocabulary.Encode(Prompt)];
            if (model.Conditional)
            {
                prompt.Add(TextVocabulary.Sep);
            }

            // Room for the decode steps within the context (a context of 2 still gets one step).
            int length = Math.Max(1, Math.Min(prompt.Count, model.Context - 1));
            int steps = Math.Min(Steps, model.Context - length);
            int vocabulary = runner.Vocabulary;
            var cache = new KvCache(model.Shape, length + steps);
            var logits = new float[Math.Max(2, maxBatchSize) * vocabulary];
            cancellationToken.ThrowIfCancellationRequested();
            runner.Prefill(prompt.ToArray().AsSpan(0, length), cache, logits.AsSpan(0, vocabulary));
            batches.Add(1);
            if (NonFinite(logits.AsSpan(0, vocabulary), 1, vocabulary) is { } prefillProblem)
            {
                return WarmupResult.Refuse(watch, $"the prefill: {prefillProblem}", batches);
            }

            int token = ArgMax(logits.AsSpan(0, vocabulary));
            var alone = new[] { new DecodeRow(cache.Clone(model.Shape), token) };
            int pair = Math.Min(2, maxBatchSize);
            var rows = Enumerable.Range(0, pair).Select(_ => new DecodeRow(cache.Clone(model.Shape), token)).ToArray();
            var single = new float[vocabulary];
            for (int step = 0; step < steps; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int total = DecodeLayout.Total(rows[0].Cache.Length, model.Context);
                runner.Decode(rows, total, logits.AsSpan(0, pair * vocabulary));
                batches.Add(pair);
                if (NonFinite(logits.AsSpan(0, pair * vocabulary), pair, vocabulary) is { } decodeProblem)
                {
                    return WarmupResult.Refuse(watch, $"decode step {step + 1}: {decodeProblem}", batches);
                }

                runner.Decode(alone, total, single);
                batches.Add(1);
                if (!single.AsSpan().SequenceEqual(logits.AsSpan(0, vocabulary)) || (pair > 1 && !single.AsSpan().SequenceEqual(logits.AsSpan(vocabulary, vocabulary))))
                {
                    batchInvariant = false;
                }

                token = ArgMax(single);
                for (int r = 0; r < rows.Length; r++)
                {
                    rows[r] = rows[r] with { Token = token };
                }

                alone[0] = alone[0] with { Token = token };
            }

            if (maxBatchSize > pair)
            {
                // The largest batch once, so its buffers and ONNX Runtime's arena are sized before the first request.
                cancellationToken.ThrowIfCancellationRequested();
                var full = Enumerable.Range(0, maxBatchSize).Select(_ => new DecodeRow(cache.Clone(model.Shape), ArgMax(logits.AsSpan(0, vocabulary)))).ToArray();
                runner.Decode(full, DecodeLayout.Total(cache.Length, model.Context), logits.AsSpan(0, maxBatchSize * vocabulary));
                batches.Add(maxBatchSize);
                if (NonFinite(logits.AsSpan(0, maxBatchSize * vocabulary), maxBatchSize, vocabulary) is { } fullProblem)
                {
                    return WarmupResult.Refuse(watch, $"a decode step of {maxBatchSize} rows: {fullProblem}", batches);
                }
            }

            // The tokenizer's tables load on first use; a request should not pay for that either.
            _ = model.Vocabulary.Decode([token]);
            return new WarmupResult(true, watch.Elapsed, null, batches);
        }
        catch (OnnxRuntimeException ex)
        {
            return WarmupResult.Refuse(watch, $"a warm-up run failed: {ex.Message}", batches);
        }
    }

    private static string? NonFinite(ReadOnlySpan<float> values, int rows, int vocabulary)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                return string.Create(CultureInfo.InvariantCulture,
                    $"output 'logits' holds a non-finite value ({values[i]}) at token {i % vocabulary} of row {i / vocabulary} of {rows}: the weights are broken (NaN/Inf)");
            }
        }

        return null;
    }

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }

        return best;
    }
}
