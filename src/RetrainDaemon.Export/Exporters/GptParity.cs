using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Training.Models;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace RetrainDaemon.Export.Exporters;

/// <summary>
/// One greedy generation run in both runtimes. <see cref="TorchTokens"/> and <see cref="OnnxTokens"/> are
/// the generated tokens (prompt excluded), each runtime feeding back its own choices.
/// <see cref="MaxAbsLogitDiff"/> covers every logit of the prefill and of every decode step while both
/// runtimes had been fed the same tokens (after a divergence their inputs differ, so later logits are
/// not comparable). <see cref="FirstDivergence"/> is the index of the first differing token, or −1;
/// <see cref="MarginAtDivergence"/> is TorchSharp's top-1 minus top-2 logit there, which tells a
/// near-tie (margin within the numeric noise) from a real difference.
/// </summary>
public sealed record GreedyParity(
    IReadOnlyList<int> Prompt,
    IReadOnlyList<int> TorchTokens,
    IReadOnlyList<int> OnnxTokens,
    double MaxAbsLogitDiff,
    int FirstDivergence,
    double? MarginAtDivergence)
{
    /// <summary>The largest logit difference in units of the export's allowed difference (<see cref="ModelExporter.ToleranceRatio"/>).</summary>
    public double WorstToleranceRatio { get; init; }

    public bool Matched => FirstDivergence < 0;

    /// <summary>Tokens generated per runtime.</summary>
    public int Steps => TorchTokens.Count;
}

/// <summary>
/// Greedy decoding with a KV cache, the way serving generates, in TorchSharp (<see cref="Gpt.Cached"/>)
/// and in ONNX Runtime (the exported graph) side by side: one prefill of the prompt with an empty past,
/// then one decode step per token with the previous step's presents as past. Generation does not stop
/// at EOS — the point is to exercise every cache length up to the requested count — but it stops at
/// the context (prompt + generated ≤ context). Ties in the argmax go to the lowest id in both runtimes.
/// Usable from tests, the CLI and benchmarks; the export runs it through <see cref="ModelExporter.VerifyGreedy"/>.
/// </summary>
public static class GptParity
{
    public static GreedyParity Greedy(Gpt gpt, byte[] onnx, IReadOnlyList<int> prompt, int newTokens)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = 2 };
        using var session = new InferenceSession(onnx, options);
        return Greedy(gpt, session, prompt, newTokens);
    }

    public static GreedyParity Greedy(Gpt gpt, InferenceSession session, IReadOnlyList<int> prompt, int newTokens)
    {
        var config = gpt.Config;
        if (prompt.Count == 0 || prompt.Count >= config.Context)
        {
            throw new ArgumentException($"the prompt has {prompt.Count} tokens; it needs 1 to {config.Context - 1} for a context of {config.Context}", nameof(prompt));
        }

        if (prompt.Any(t => t < 0 || t >= config.Vocabulary))
        {
            throw new ArgumentException($"the prompt has token ids outside [0, {config.Vocabulary})", nameof(prompt));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(newTokens, 1);
        int steps = Math.Min(newTokens, config.Context - prompt.Count);
        bool wasTraining = gpt.training;
        gpt.eval();
        try
        {
            using var torchSide = new TorchGreedy(gpt);
            using var onnxSide = new OnnxGreedy(session, config);
            var torchTokens = new List<int>(steps);
            var onnxTokens = new List<int>(steps);
            double maxDiff = 0, worst = 0;
            int divergence = -1;
            double? margin = null;

            // Step 0 is the prefill of the prompt; step s > 0 feeds the token chosen at step s − 1.
            for (int step = 0; step < steps; step++)
            {
                long[] torchFeed = step == 0 ? [.. prompt.Select(t => (long)t)] : [torchTokens[^1]];
                long[] onnxFeed = step == 0 ? [.. prompt.Select(t => (long)t)] : [onnxTokens[^1]];
                int start = step == 0 ? 0 : prompt.Count + step - 1;                       // absolute position of the first fed token
                float[] torchLogits = torchSide.Step(torchFeed, start);                     // (fed, V), row-major
                float[] onnxLogits = onnxSide.Step(onnxFeed, start);
                if (divergence < 0)
                {
                    for (int i = 0; i < torchLogits.Length; i++)
                    {
                        double diff = Math.Abs(torchLogits[i] - onnxLogits[i]);
                        maxDiff = Math.Max(maxDiff, double.IsNaN(diff) ? double.PositiveInfinity : diff);
                        worst = Math.Max(worst, ModelExporter.ToleranceRatio(onnxLogits[i], torchLogits[i]));
                    }
                }

                var (torchNext, torchMargin) = ArgMax(torchLogits.AsSpan(torchLogits.Length - config.Vocabulary));
                var (onnxNext, _) = ArgMax(onnxLogits.AsSpan(onnxLogits.Length - config.Vocabulary));
                torchTokens.Add(torchNext);
                onnxTokens.Add(onnxNext);
                if (divergence < 0 && torchNext != onnxNext)
                {
                    divergence = step;
                    margin = torchMargin;
                }
            }

            return new GreedyParity([.. prompt], torchTokens, onnxTokens, maxDiff, divergence, margin) { WorstToleranceRatio = worst };
        }
        finally
        {
            gpt.train(wasTraining);
        }
    }

    /// <summary>The first index of the largest value, and by how much it beats the runner-up.</summary>
    private static (int Index, double Margin) ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        float second = float.NegativeInfinity;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
            {
                second = logits[best];
                best = i;
            }
            else if (logits[i] > second)
            {
                second = logits[i];
            }
        }

        return (best, (double)logits[best] - second);
    }

    /// <summary>TorchSharp's side: batch 1, all tokens real, the cache kept as tensors between steps.</summary>
    private sealed class TorchGreedy(Gpt gpt) : IDisposable
    {
        private IReadOnlyList<(Tensor Key, Tensor Value)> past = gpt.EmptyPast(1);

        public float[] Step(long[] tokens, int start)
        {
            IReadOnlyList<(Tensor Key, Tensor Value)> presents;
            float[] logits;
            using (var scope = NewDisposeScope())
            using (no_grad())
            {
                var ids = tensor(tokens, [1, tokens.Length]);                                         // (1, T)
                var positions = arange(start, start + tokens.Length, dtype: ScalarType.Int64).unsqueeze(0); // (1, T)
                var mask = ones([1, start + tokens.Length], dtype: ScalarType.Int64);                 // (1, P+T)
                var (output, next) = gpt.Cached(ids, positions, mask, past);                          // (1, T, V), L × (1, H, P+T, D)
                logits = output.contiguous().data<float>().ToArray();
                presents = [.. next.Select(p => (p.Key.MoveToOuterDisposeScope(), p.Value.MoveToOuterDisposeScope()))];
            }

            Dispose();
            past = presents;
            return logits;
        }

        public void Dispose()
        {
            foreach (var (key, value) in past)
            {
                key.Dispose();
                value.Dispose();
            }
        }
    }

    /// <summary>ONNX Runtime's side: the presents of one run are fed unchanged as the next run's past.</summary>
    private sealed class OnnxGreedy : IDisposable
    {
        private readonly InferenceSession session;
        private readonly List<string> inputNames = [GptGraph.InputIds, GptGraph.PositionIds, GptGraph.AttentionMask];
        private readonly List<string> outputNames = [GptGraph.Logits];
        private readonly List<OrtValue> emptyPast = [];
        private readonly RunOptions runOptions = new();
        private IDisposableReadOnlyCollection<OrtValue>? previous;

        public OnnxGreedy(InferenceSession session, GptConfig config)
        {
            this.session = session;
            for (int layer = 0; layer < config.Layers; layer++)
            {
                inputNames.Add(GptGraph.PastKey(layer));
                inputNames.Add(GptGraph.PastValue(layer));
                outputNames.Add(GptGraph.PresentKey(layer));
                outputNames.Add(GptGraph.PresentValue(layer));
                emptyPast.Add(OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, [1, config.Heads, 0, config.HeadDim]));
                emptyPast.Add(OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, [1, config.Heads, 0, config.HeadDim]));
            }
        }

        public float[] Step(long[] tokens, int start)
        {
            long[] positions = [.. Enumerable.Range(start, tokens.Length).Select(p => (long)p)];
            long[] mask = [.. Enumerable.Repeat(1L, start + tokens.Length)];
            using var ids = OrtValue.CreateTensorValueFromMemory(tokens, [1, tokens.Length]);
            using var positionIds = OrtValue.CreateTensorValueFromMemory(positions, [1, tokens.Length]);
            using var attentionMask = OrtValue.CreateTensorValueFromMemory(mask, [1, mask.Length]);
            var past = previous is null ? (IEnumerable<OrtValue>)emptyPast : previous.Skip(1);      // outputs after logits are the presents, in input order
            var results = session.Run(runOptions, inputNames, [ids, positionIds, attentionMask, .. past], outputNames);
            previous?.Dispose();
            previous = results;
            return results[0].GetTensorDataAsSpan<float>().ToArray();                                 // (1, T, V)
        }

        public void Dispose()
        {
            previous?.Dispose();
            runOptions.Dispose();
            foreach (var value in emptyPast)
            {
                value.Dispose();
            }
        }
    }
}
