using System.Globalization;
using System.Text;

namespace RetrainDaemon.Evaluation.Text;

/// <summary>
/// The few Python 3 string semantics the reference metrics (sacreBLEU, rouge-score, NLTK) depend on,
/// reproduced in .NET: <c>str.lower()</c>, <c>str.isspace()</c>, <c>str.split()</c> and <c>str.rstrip()</c>.
/// The tests compare these against CPython 3.11 (Unicode 14.0) for every code point.
/// </summary>
/// <remarks>
/// Why not the .NET built-ins: <see cref="string.ToLowerInvariant()"/> uses simple case mapping, so
/// U+0130 (İ) does not become "i̇" and a word-final Σ does not become ς; <see cref="char.IsWhiteSpace(char)"/>
/// misses U+001C..U+001F, which Python splits on. Either difference changes tokens and therefore scores.
/// For code points that Unicode 14.0 leaves unassigned, .NET's own (newer) tables decide. All members are
/// pure and thread-safe.
/// </remarks>
public static class PythonText
{
    /// <summary>True for the code points Python's <c>str.isspace()</c> accepts (bidi class WS/B/S or category Zs).</summary>
    public static bool IsWhiteSpace(char c)
    {
        if (c <= ' ')
        {
            // \t \n \v \f \r, the four information separators U+001C..U+001F, and space.
            return c is >= '\t' and <= '\r' or >= '\u001C';
        }

        if (c < '\u0085')
        {
            return false;
        }

        return c is '\u0085' or '\u00A0' or '\u1680' or >= '\u2000' and <= '\u200A'
            or '\u2028' or '\u2029' or '\u202F' or '\u205F' or '\u3000';
    }

    /// <summary>Python's <c>text.rstrip()</c>: removes trailing whitespace as defined by <see cref="IsWhiteSpace(char)"/>.</summary>
    public static string RStrip(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int end = RStripLength(text);
        return end == text.Length ? text : text[..end];
    }

    /// <summary>Python's <c>text.split()</c> without arguments: runs of whitespace separate tokens; no empty tokens.</summary>
    public static string[] Split(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new List<string>();
        int i = 0;
        while (i < text.Length)
        {
            while (i < text.Length && IsWhiteSpace(text[i]))
            {
                i++;
            }

            int start = i;
            while (i < text.Length && !IsWhiteSpace(text[i]))
            {
                i++;
            }

            if (i > start)
            {
                tokens.Add(text[start..i]);
            }
        }

        return [.. tokens];
    }

    /// <summary>
    /// Python's <c>text.lower()</c>: full Unicode lowercasing, including U+0130 → "i\u0307" (two code points)
    /// and the Final_Sigma context rule (Σ → ς at the end of a word, σ elsewhere).
    /// </summary>
    public static string Lower(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int i = 0;
        while (i < text.Length && text[i] < 0x80 && text[i] is not (>= 'A' and <= 'Z'))
        {
            i++;
        }

        if (i == text.Length)
        {
            return text; // nothing to lower: no allocation on the common all-lowercase ASCII path
        }

        var sb = new StringBuilder(text.Length + 4);
        sb.Append(text, 0, i);
        while (i < text.Length)
        {
            char c = text[i];
            if (c < 0x80)
            {
                sb.Append(c is >= 'A' and <= 'Z' ? (char)(c + 32) : c);
                i++;
            }
            else if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                sb.Append(Rune.ToLowerInvariant(new Rune(c, text[i + 1])).ToString());
                i += 2;
            }
            else
            {
                switch (c)
                {
                    case '\u0130':
                        sb.Append("i\u0307"); // SpecialCasing.txt: the only unconditional multi-code-point lowercase
                        break;
                    case '\u03A3':
                        sb.Append(IsFinalSigma(text, i) ? '\u03C2' : '\u03C3');
                        break;
                    default:
                        sb.Append(char.ToLowerInvariant(c));
                        break;
                }

                i++;
            }
        }

        return sb.ToString();
    }

    /// <summary>Length of <paramref name="text"/> after Python's <c>rstrip()</c>.</summary>
    internal static int RStripLength(ReadOnlySpan<char> text)
    {
        int end = text.Length;
        while (end > 0 && IsWhiteSpace(text[end - 1]))
        {
            end--;
        }

        return end;
    }

    /// <summary>
    /// Final_Sigma as CPython applies it: the Σ at <paramref name="index"/> is preceded by a cased letter
    /// (skipping case-ignorable code points) and not followed by one (again skipping case-ignorables).
    /// The context is read from the original text, not from the partly lowered output.
    /// </summary>
    private static bool IsFinalSigma(string text, int index)
    {
        int j = index;
        int before = -1;
        while (j > 0)
        {
            int cp = CodePointBefore(text, j, out int width);
            j -= width;
            if (!IsCaseIgnorable(cp))
            {
                before = cp;
                break;
            }
        }

        if (before < 0 || !IsCased(before))
        {
            return false;
        }

        j = index + 1;
        while (j < text.Length)
        {
            int cp = CodePointAt(text, j, out int width);
            j += width;
            if (!IsCaseIgnorable(cp))
            {
                return !IsCased(cp);
            }
        }

        return true;
    }

    /// <summary>
    /// Unicode's Case_Ignorable: categories Mn, Me, Cf, Lm, Sk plus Word_Break MidLetter, MidNumLet and
    /// Single_Quote. The explicit list is that word-break part as of Unicode 14.0.
    /// </summary>
    internal static bool IsCaseIgnorable(int cp)
    {
        var category = CharUnicodeInfo.GetUnicodeCategory(cp);
        return category is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.Format
                or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol
            || cp is 0x27 or 0x2E or 0x3A or 0xB7 or 0x387 or 0x55F or 0x5F4 or 0x2018 or 0x2019 or 0x2024
                or 0x2027 or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A;
    }

    /// <summary>
    /// Unicode's Cased: Lu, Ll, Lt plus Other_Lowercase/Other_Uppercase. Only the members of those two
    /// lists that are not also case-ignorable matter here (ordinal indicators, Roman numerals, circled and
    /// squared Latin letters), so only those are listed.
    /// </summary>
    internal static bool IsCased(int cp)
    {
        var category = CharUnicodeInfo.GetUnicodeCategory(cp);
        return category is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            || cp is 0xAA or 0xBA or (>= 0x2160 and <= 0x217F) or (>= 0x24B6 and <= 0x24E9)
                or (>= 0x1F130 and <= 0x1F149) or (>= 0x1F150 and <= 0x1F169) or (>= 0x1F170 and <= 0x1F189);
    }

    /// <summary>The code point starting at <paramref name="index"/>; a lone surrogate counts as itself.</summary>
    internal static int CodePointAt(ReadOnlySpan<char> text, int index, out int width)
    {
        char c = text[index];
        if (char.IsHighSurrogate(c) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]))
        {
            width = 2;
            return char.ConvertToUtf32(c, text[index + 1]);
        }

        width = 1;
        return c;
    }

    private static int CodePointBefore(string text, int end, out int width)
    {
        char c = text[end - 1];
        if (char.IsLowSurrogate(c) && end >= 2 && char.IsHighSurrogate(text[end - 2]))
        {
            width = 2;
            return char.ConvertToUtf32(text[end - 2], c);
        }

        width = 1;
        return c;
    }

    /// <summary>
    /// Python's <c>math.fsum</c>: the correctly rounded sum of finite doubles (Shewchuk's exact partials,
    /// then a round-half-even fix-up of the top partials). NLTK's sentence BLEU sums its weighted logs with it.
    /// </summary>
    internal static double FSum(ReadOnlySpan<double> values)
    {
        // Non-overlapping partials of a finite double sum number at most ~40 (2098 exponent bits / 53).
        Span<double> partials = stackalloc double[64];
        int count = 0;
        foreach (double value in values)
        {
            double x = value;
            int kept = 0;
            for (int j = 0; j < count; j++)
            {
                double y = partials[j];
                if (Math.Abs(x) < Math.Abs(y))
                {
                    (x, y) = (y, x);
                }

                double hi = x + y;
                double lo = y - (hi - x);
                if (lo != 0.0)
                {
                    partials[kept++] = lo;
                }

                x = hi;
            }

            partials[kept] = x;
            count = kept + 1;
        }

        if (count == 0)
        {
            return 0.0;
        }

        double sum = partials[--count];
        double low = 0.0;
        while (count > 0)
        {
            double x = sum;
            double y = partials[--count];
            sum = x + y;
            low = y - (sum - x);
            if (low != 0.0)
            {
                break;
            }
        }

        // If the rest would push the rounded sum across a half-way point, round half to even by hand.
        if (count > 0 && ((low < 0.0 && partials[count - 1] < 0.0) || (low > 0.0 && partials[count - 1] > 0.0)))
        {
            double y = low * 2.0;
            double x = sum + y;
            if (y == x - sum)
            {
                sum = x;
            }
        }

        return sum;
    }

    /// <summary>
    /// Python's <c>f"{value:.2f}"</c>. .NET's "F2" formats the exact binary value too, but rounds an exact
    /// tie away from zero where Python rounds it to even (0.125 → "0.13" vs "0.12"). At two decimals a double
    /// is an exact tie only when 8·value is an odd integer, so only that case is handled separately.
    /// </summary>
    internal static string FormatTwoDecimals(double value)
    {
        double eighths = value * 8.0;
        if (Math.Abs(eighths) < 1e15 && eighths == Math.Floor(eighths) && Math.Abs(eighths % 2.0) == 1.0)
        {
            double rounded = Math.Round(value * 100.0, MidpointRounding.ToEven) / 100.0;
            return rounded.ToString("F2", CultureInfo.InvariantCulture);
        }

        return value.ToString("F2", CultureInfo.InvariantCulture);
    }
}
