namespace RetrainDaemon.Training.Models;

/// <summary>
/// A decoder-only transformer (the <c>gpt</c> family): pre-LN blocks of causal self-attention and a
/// GELU MLP. <see cref="Vocabulary"/> is the size of the model's compact vocabulary
/// (Core.Text.TextVocabulary), <see cref="Context"/> the longest sequence it has positions for.
/// With <see cref="TieWeights"/> the output projection reuses the token embedding.
/// </summary>
public sealed record GptConfig(int Vocabulary, int Layers = 2, int Heads = 4, int Width = 128, int Context = 128, double Dropout = 0.1, bool TieWeights = true)
{
    public int HeadDim => Width / Heads;

    /// <summary>Every configuration problem at once (empty when valid).</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (Vocabulary < 5)
        {
            problems.Add($"vocabulary {Vocabulary} must be at least 5 (4 special tokens and one more)");
        }

        if (Layers is < 1 or > 48)
        {
            problems.Add($"layers {Layers} must be in [1, 48]");
        }

        if (Heads < 1 || Width < 1 || Width % Heads != 0)
        {
            problems.Add($"width {Width} must be a positive multiple of heads {Heads}");
        }

        if (Context is < 2 or > 4096)
        {
            problems.Add($"context {Context} must be in [2, 4096]");
        }

        if (Dropout is < 0 or >= 1 || double.IsNaN(Dropout))
        {
            problems.Add($"dropout {Dropout} must be in [0, 1)");
        }

        return problems;
    }
}
