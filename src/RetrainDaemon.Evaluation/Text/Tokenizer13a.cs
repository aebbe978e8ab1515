namespace RetrainDaemon.Evaluation.Text;

/// <summary>The sacreBLEU tokenizers this project reproduces exactly (sacreBLEU's <c>tokenize=</c> names in brackets).</summary>
public enum TextTokenizer
{
    /// <summary><c>none</c>: no tokenization; the text is split on Python whitespace only.</summary>
    None,

    /// <summary><c>13a</c>: mteval-v13a.pl's tokenizer, sacreBLEU's default (<see cref="Tokenizer13a"/>).</summary>
    Mteval13a,

    /// <summary><c>char</c>: every non-whitespace code point is a token.</summary>
    Char,
}

/// <summary>Tokenization entry points shared by BLEU, Self-BLEU and distinct-n. Pure and thread-safe.</summary>
public static class TextTokenizers
{
    /// <summary>sacreBLEU's name for <paramref name="tokenizer"/>, as it appears in signatures (<c>tok:13a</c>).</summary>
    public static string SignatureName(TextTokenizer tokenizer) => tokenizer switch
    {
        TextTokenizer.None => "none",
        TextTokenizer.Mteval13a => "13a",
        TextTokenizer.Char => "char",
        _ => throw new ArgumentOutOfRangeException(nameof(tokenizer), tokenizer, "unknown tokenizer"),
    };

    /// <summary>
    /// The tokens sacreBLEU's BLEU sees for <paramref name="text"/>: the tokenizer's output split on
    /// Python whitespace. No lowercasing and no <c>rstrip</c> (BLEU applies those first; see <see cref="Bleu"/>).
    /// </summary>
    public static string[] Tokenize(string text, TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(text);
        var scratch = new TokenScratch();
        scratch.Tokenize(text, text.Length, tokenizer);
        var tokens = new string[scratch.Count];
        for (int i = 0; i < tokens.Length; i++)
        {
            tokens[i] = scratch.Token(i).ToString();
        }

        return tokens;
    }
}

/// <summary>
/// sacreBLEU's <c>13a</c> tokenizer (mteval-v13a.pl), reproduced exactly: entity unescaping, then the four
/// regular expressions of <c>tokenizer_re.py</c> applied in order over the whole line, then whitespace collapse.
/// </summary>
/// <remarks>
/// The regexes are replaced by hand-written scanners, one per rule, each emulating Python's <c>re.sub</c>
/// (leftmost, non-overlapping matches, scanning resumes after a match). Rules 2–4 match two characters, and
/// their interaction is what keeps <c>3.14</c> but splits <c>U.S.A.</c>; running them as separate passes in
/// the regex order keeps that exact. A UTF-16 surrogate pair is never split, because the scanners only insert
/// spaces next to ASCII characters. The unit tests check the scanners against the four regexes (with .NET's
/// Regex) and against sacreBLEU's output on thousands of inputs.
/// </remarks>
public static class Tokenizer13a
{
    /// <summary>sacreBLEU's <c>Tokenizer13a()(line)</c>: the tokenized line, tokens joined by single spaces.</summary>
    public static string Tokenize(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        return string.Join(' ', TextTokenizers.Tokenize(line, TextTokenizer.Mteval13a));
    }

    /// <summary>Rule 1's character class <c>[\{-\~\[-\` -\&amp;\(-\+\:-\@\/]</c>: ASCII punctuation that always splits.</summary>
    internal static bool IsSplitPunctuation(char c) =>
        c is (>= '{' and <= '~') or (>= '[' and <= '`') or (>= ' ' and <= '&') or (>= '(' and <= '+')
            or (>= ':' and <= '@') or '/';

    /// <summary>
    /// The text replacements mteval applies before the regexes. Returns <paramref name="line"/> itself when
    /// none applies, which is the common case, so clean text costs no allocation.
    /// </summary>
    internal static string Unescape(string line)
    {
        if (line.Contains("<skipped>", StringComparison.Ordinal))
        {
            line = line.Replace("<skipped>", string.Empty, StringComparison.Ordinal);
        }

        if (line.Contains('\n', StringComparison.Ordinal))
        {
            // Order matters: "-\n" first joins hyphenated line breaks, then the remaining newlines become spaces.
            line = line.Replace("-\n", string.Empty, StringComparison.Ordinal).Replace('\n', ' ');
        }

        if (line.Contains('&', StringComparison.Ordinal))
        {
            // Only these four, in this order (so "&amp;quot;" becomes "&quot;", not a quote).
            line = line.Replace("&quot;", "\"", StringComparison.Ordinal)
                .Replace("&amp;", "&", StringComparison.Ordinal)
                .Replace("&lt;", "<", StringComparison.Ordinal)
                .Replace("&gt;", ">", StringComparison.Ordinal);
        }

        return line;
    }

    /// <summary>Runs the four rules over " " + <paramref name="line"/> + " "; the result is left in <paramref name="output"/>.</summary>
    internal static int ApplyRules(ReadOnlySpan<char> line, ref char[] output, ref char[] spare)
    {
        // Rule 1: ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 "   (at most triples the length)
        Ensure(ref spare, (line.Length + 2) * 3);
        char[] b = spare;
        int n = 0;
        b[n++] = ' ';
        b[n++] = ' ';
        b[n++] = ' ';
        foreach (char c in line)
        {
            if (IsSplitPunctuation(c))
            {
                b[n++] = ' ';
                b[n++] = c;
                b[n++] = ' ';
            }
            else
            {
                b[n++] = c;
            }
        }

        b[n++] = ' ';
        b[n++] = ' ';
        b[n++] = ' ';

        // Rule 2: ([^0-9])([\.,]) -> "\1 \2 "
        Ensure(ref output, n * 2);
        char[] a = output;
        int m = 0;
        for (int i = 0; i < n;)
        {
            if (i + 1 < n && !char.IsAsciiDigit(b[i]) && b[i + 1] is '.' or ',')
            {
                a[m++] = b[i];
                a[m++] = ' ';
                a[m++] = b[i + 1];
                a[m++] = ' ';
                i += 2;
            }
            else
            {
                a[m++] = b[i++];
            }
        }

        // Rule 3: ([\.,])([^0-9]) -> " \1 \2"
        Ensure(ref spare, m * 2);
        b = spare;
        n = 0;
        for (int i = 0; i < m;)
        {
            if (i + 1 < m && a[i] is '.' or ',' && !char.IsAsciiDigit(a[i + 1]))
            {
                b[n++] = ' ';
                b[n++] = a[i];
                b[n++] = ' ';
                b[n++] = a[i + 1];
                i += 2;
            }
            else
            {
                b[n++] = a[i++];
            }
        }

        // Rule 4: ([0-9])(-) -> "\1 \2 "
        Ensure(ref output, n * 2);
        a = output;
        m = 0;
        for (int i = 0; i < n;)
        {
            if (i + 1 < n && char.IsAsciiDigit(b[i]) && b[i + 1] == '-')
            {
                a[m++] = b[i];
                a[m++] = ' ';
                a[m++] = '-';
                a[m++] = ' ';
                i += 2;
            }
            else
            {
                a[m++] = b[i++];
            }
        }

        return m;
    }

    private static void Ensure(ref char[] buffer, int length)
    {
        if (buffer.Length < length)
        {
            buffer = new char[Math.Max(length, buffer.Length * 2)];
        }
    }
}

/// <summary>
/// Reusable per-thread tokenization state: the tokenized characters and the (start, length) of each token.
/// Not thread-safe; one instance per worker.
/// </summary>
internal sealed class TokenScratch
{
    private char[] _text = new char[256];
    private char[] _spare = new char[256];
    private int[] _starts = new int[64];
    private int[] _lengths = new int[64];

    /// <summary>Number of tokens found by the last <see cref="Tokenize(string, int, TextTokenizer)"/>.</summary>
    public int Count { get; private set; }

    public ReadOnlySpan<char> Token(int index) => _text.AsSpan(_starts[index], _lengths[index]);

    /// <summary>
    /// sacreBLEU's <c>BLEU._preprocess_segment</c> followed by <c>line.split()</c>: optional Python
    /// <c>lower()</c>, <c>rstrip()</c>, the tokenizer, whitespace split.
    /// </summary>
    public void Segment(string segment, bool lowercase, TextTokenizer tokenizer)
    {
        if (lowercase)
        {
            segment = PythonText.Lower(segment);
        }

        // rstrip happens before tokenizing: "word-\n" keeps its hyphen because the newline is gone first.
        Tokenize(segment, PythonText.RStripLength(segment), tokenizer);
    }

    /// <summary>Tokenizes the first <paramref name="length"/> characters of <paramref name="text"/>.</summary>
    public void Tokenize(string text, int length, TextTokenizer tokenizer)
    {
        Count = 0;
        switch (tokenizer)
        {
            case TextTokenizer.None:
                Copy(text.AsSpan(0, length));
                SplitWhitespace(length);
                break;
            case TextTokenizer.Char:
                Copy(text.AsSpan(0, length));
                SplitCodePoints(length);
                break;
            case TextTokenizer.Mteval13a:
                string line = length == text.Length ? text : text[..length];
                line = Tokenizer13a.Unescape(line);
                int n = Tokenizer13a.ApplyRules(line, ref _text, ref _spare);
                SplitWhitespace(n);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(tokenizer), tokenizer, "unknown tokenizer");
        }
    }

    private void Copy(ReadOnlySpan<char> source)
    {
        if (_text.Length < source.Length)
        {
            _text = new char[Math.Max(source.Length, _text.Length * 2)];
        }

        source.CopyTo(_text);
    }

    private void SplitWhitespace(int length)
    {
        var text = _text;
        int i = 0;
        while (i < length)
        {
            while (i < length && PythonText.IsWhiteSpace(text[i]))
            {
                i++;
            }

            int start = i;
            while (i < length && !PythonText.IsWhiteSpace(text[i]))
            {
                i++;
            }

            if (i > start)
            {
                Add(start, i - start);
            }
        }
    }

    private void SplitCodePoints(int length)
    {
        int i = 0;
        while (i < length)
        {
            PythonText.CodePointAt(_text.AsSpan(0, length), i, out int width);
            if (width == 2 || !PythonText.IsWhiteSpace(_text[i]))
            {
                Add(i, width);
            }

            i += width;
        }
    }

    private void Add(int start, int length)
    {
        if (Count == _starts.Length)
        {
            Array.Resize(ref _starts, Count * 2);
            Array.Resize(ref _lengths, Count * 2);
        }

        _starts[Count] = start;
        _lengths[Count] = length;
        Count++;
    }
}
