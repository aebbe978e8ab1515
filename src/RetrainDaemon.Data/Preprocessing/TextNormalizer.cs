using System.Globalization;
using System.Text;

namespace RetrainDaemon.Data.Preprocessing;

/// <summary>
/// Canonical text: backspace overstrikes resolved (old fortunes print bold as <c>X\bX</c> and
/// underline as <c>_\bX</c>), line endings as <c>\n</c>, other control characters removed, Unicode
/// NFC, surrounding whitespace trimmed.
/// </summary>
public static class TextNormalizer
{
    public static string Normalize(string text)
    {
        var builder = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            switch (c)
            {
                case '\b':
                    // An overstrike: the character after the backspace replaces the one before it.
                    if (builder.Length > 0)
                    {
                        builder.Length--;
                    }

                    break;
                case '\r':
                    if (i + 1 >= text.Length || text[i + 1] != '\n')
                    {
                        builder.Append('\n');
                    }

                    break;
                case '\n' or '\t':
                    builder.Append(c);
                    break;
                default:
                    var category = CharUnicodeInfo.GetUnicodeCategory(c);
                    if (category != UnicodeCategory.Control && category != UnicodeCategory.Format || c == '\u200D')
                    {
                        builder.Append(c);
                    }

                    break;
            }
        }

        var result = builder.ToString().Trim();
        return result.IsNormalized(NormalizationForm.FormC) ? result : result.Normalize(NormalizationForm.FormC);
    }
}
