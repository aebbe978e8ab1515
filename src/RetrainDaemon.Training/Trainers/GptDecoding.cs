using RetrainDaemon.Core.Text;
using RetrainDaemon.Training.Models;
using static TorchSharp.torch;

namespace RetrainDaemon.Training.Trainers;

/// <summary>
/// Greedy decoding in TorchSharp through the key/value-cache path (<see cref="Gpt.Cached"/>): the
/// reference that ONNX Runtime generation is compared with, and the run's samples.txt.
/// </summary>
public static class GptDecoding
{
    /// <summary>Prefill <paramref name="prompt"/>, then up to <paramref name="maxNewTokens"/> argmax tokens; stops after EOS (not returned) or at the context.</summary>
    public static int[] Greedy(Gpt gpt, IReadOnlyList<int> prompt, int maxNewTokens, bool stopAtEos = true)
    {
        ArgumentOutOfRangeException.ThrowIfZero(prompt.Count);
        int context = gpt.Config.Context;
        if (prompt.Count > context)
        {
            throw new ArgumentException($"prompt of {prompt.Count} tokens exceeds the context of {context}");
        }

        bool wasTraining = gpt.training;
        gpt.eval();
        try
        {
            using var noGrad = no_grad();
            var generated = new List<int>();
            var past = gpt.EmptyPast(1);
            using var outer = NewDisposeScope();
            var tokens = tensor(prompt.Select(t => (long)t).ToArray(), [1, prompt.Count]);
            var positions = arange(prompt.Count, dtype: ScalarType.Int64).unsqueeze(0);
            int total = prompt.Count;
            while (generated.Count < maxNewTokens)
            {
                using var step = NewDisposeScope();
                var mask = ones([1, total], dtype: ScalarType.Int64);
                var (logits, presents) = gpt.Cached(tokens, positions, mask, past);
                int next = (int)logits[0, -1].argmax().item<long>();
                if (stopAtEos && next == TextVocabulary.Eos)
                {
                    break;
                }

                generated.Add(next);
                if (total >= context)
                {
                    break;
                }

                // Keep the presents (and the next inputs) past this step's scope and free what they replace,
                // so a long generation holds one cache, not one per step.
                var previous = (past, tokens, positions);
                past = [.. presents.Select(p => (p.Key.MoveToOuterDisposeScope(), p.Value.MoveToOuterDisposeScope()))];
                tokens = tensor(new long[] { next }, [1, 1]).MoveToOuterDisposeScope();
                positions = tensor(new long[] { total }, [1, 1]).MoveToOuterDisposeScope();
                foreach (var (key, value) in previous.past)
                {
                    key.Dispose();
                    value.Dispose();
                }

                previous.tokens.Dispose();
                previous.positions.Dispose();
                total++;
            }

            return [.. generated];
        }
        finally
        {
            gpt.train(wasTraining);
        }
    }
}
