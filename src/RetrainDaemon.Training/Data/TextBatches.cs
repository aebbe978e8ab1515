using RetrainDaemon.Core.Text;
using static TorchSharp.torch;

namespace RetrainDaemon.Training.Data;

/// <summary>
/// One training sequence: <c>[BOS] text [EOS]</c> (lm) or <c>[BOS] source [SEP] target [EOS]</c>
/// (conditional). Only tokens at index ≥ <see cref="LossFrom"/> are predicted with loss, so a
/// conditional model learns the target given the source and is never trained to produce sources.
/// </summary>
public sealed record TextExample(int[] Tokens, int LossFrom)
{
    public static TextExample Lm(TextVocabulary vocabulary, string text) =>
        new([TextVocabulary.Bos, .. vocabulary.Encode(text), TextVocabulary.Eos], 1);

    public static TextExample Conditional(TextVocabulary vocabulary, string source, string target)
    {
        int[] encodedSource = vocabulary.Encode(source);
        return new([TextVocabulary.Bos, .. encodedSource, TextVocabulary.Sep, .. vocabulary.Encode(target), TextVocabulary.Eos], encodedSource.Length + 2);
    }
}

/// <summary>
/// Token batches for the <c>gpt</c> family: inputs (B, T) and next-token targets (B, T) with
/// <see cref="IgnoreIndex"/> on padding and on positions without loss. T is the longest sequence of
/// the batch, capped at the context. An lm text longer than the context is trained on a window drawn
/// from (seed, step) — every part of a long fortune is seen over time; the holdout head uses each
/// sequence's first window so holdout loss is fixed for a given set.
/// </summary>
public sealed class TextBatches(IReadOnlyList<TextExample> examples, int context) : IBatchSource
{
    public const long IgnoreIndex = -100;

    public int Count => examples.Count;

    public int Context => context;

    public IReadOnlyList<TextExample> Examples => examples;

    public (Tensor Inputs, Tensor Targets) Batch(long seed, long step, int size)
    {
        var random = new Random(unchecked((int)(seed * 1_000_003 + step * 7_919)));
        var rows = new (TextExample Example, int Offset)[size];
        for (int i = 0; i < size; i++)
        {
            var example = examples[random.Next(Count)];
            int windows = example.Tokens.Length - 1 - context;
            rows[i] = (example, windows > 0 ? random.Next(windows + 1) : 0);
        }

        return Build(rows);
    }

    public (Tensor Inputs, Tensor Targets) Head(int size) =>
        Build([.. examples.Take(size).Select(e => (e, 0))]);

    private (Tensor Inputs, Tensor Targets) Build((TextExample Example, int Offset)[] rows)
    {
        int length = Math.Min(context, rows.Max(r => r.Example.Tokens.Length - 1 - r.Offset));
        var inputs = new long[rows.Length * length];
        var targets = new long[rows.Length * length];
        Array.Fill(targets, IgnoreIndex);
        for (int row = 0; row < rows.Length; row++)
        {
            var (example, offset) = rows[row];
            int take = Math.Min(length, example.Tokens.Length - 1 - offset);
            for (int t = 0; t < take; t++)
            {
                inputs[row * length + t] = example.Tokens[offset + t];
                int predicted = offset + t + 1;
                if (predicted >= example.LossFrom)
                {
                    targets[row * length + t] = example.Tokens[predicted];
                }
            }

            // Inputs past the end stay TextVocabulary.Pad (0) with ignored targets; causal attention
            // keeps real positions from seeing them.
        }

        return (tensor(inputs, [rows.Length, length]), tensor(targets, [rows.Length, length]));
    }
}
