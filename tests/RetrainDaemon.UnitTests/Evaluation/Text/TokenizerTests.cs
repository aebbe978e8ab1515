using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using RetrainDaemon.Evaluation.Text;

namespace RetrainDaemon.UnitTests.Evaluation.Text;

public class TokenizerTests
{
    private static readonly JsonElement Cases = ReferenceData.Load("tokenizers.json");

    // The four regexes of sacreBLEU's tokenizer_re.py, run by .NET's Regex: the oracle the hand-written
    // scanners are checked against. CultureInvariant and not ECMAScript, as docs/metrics.md §1.2 says.
    private static readonly (Regex Pattern, string Replacement)[] Rules =
    [
        (new Regex(@"([\{-\~\[-\` -\&\(-\+\:-\@\/])", RegexOptions.CultureInvariant), " $1 "),
        (new Regex(@"([^0-9])([\.,])", RegexOptions.CultureInvariant), "$1 $2 "),
        (new Regex(@"([\.,])([^0-9])", RegexOptions.CultureInvariant), " $1 $2"),
        (new Regex(@"([0-9])(-)", RegexOptions.CultureInvariant), "$1 $2 "),
    ];

    [Fact]
    public void Tokenizer13a_MatchesSacreBleuOnEveryReferenceCase()
    {
        var failures = new List<string>();
        int count = 0;
        foreach (var c in Cases.EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            string expected = c.GetProperty("13a").GetString()!;
            string actual = Tokenizer13a.Tokenize(text);
            count++;
            if (actual != expected)
            {
                failures.Add($"{ReferenceData.Show(text)}: expected {ReferenceData.Show(expected)}, got {ReferenceData.Show(actual)}");
            }
        }

        ReferenceData.AssertNoFailures(failures, count);
    }

    [Theory]
    [InlineData("none", TextTokenizer.None)]
    [InlineData("char", TextTokenizer.Char)]
    public void NoneAndCharTokenizers_MatchSacreBleuOnEveryReferenceCase(string field, TextTokenizer tokenizer)
    {
        var failures = new List<string>();
        int count = 0;
        foreach (var c in Cases.EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            string joined = c.GetProperty(field).GetString()!;
            string[] expected = tokenizer == TextTokenizer.Char
                ? joined.EnumerateRunes().Select(r => r.ToString()).ToArray() // stored concatenated: one code point each
                : joined.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var actual = TextTokenizers.Tokenize(text, tokenizer);
            count++;
            if (!expected.SequenceEqual(actual, StringComparer.Ordinal))
            {
                failures.Add($"{ReferenceData.Show(text)}: expected {ReferenceData.Show(expected)}, got {ReferenceData.Show(actual)}");
            }
        }

        ReferenceData.AssertNoFailures(failures, count);
    }

    [Fact]
    public void Tokenizer13a_ScannersEqualTheRegexesOnRandomInputs()
    {
        string[] alphabet =
        [
            "a", "Z", "0", "5", "9", ".", ",", "-", "&", "quot;", "amp;", "<skipped>", "\n", " ", "\t", "'", "(", "é",
            "İ", "😀", "\u00a0", "\u001c", "$", "/", ":", "@", "[", "`", "{", "~", "_", "|", "\\", "!", ";", "—", "<",
            "..", ",,", "5.", ".5", "5-", "-5", "x-", "\u0661", "\uff11", "\ud835\udc00",
        ];
        var random = new Random(20250611);
        var inputs = Cases.EnumerateArray().Select(c => c.GetProperty("text").GetString()!).ToList();
        for (int i = 0; i < 20_000; i++)
        {
            var sb = new StringBuilder();
            for (int k = random.Next(0, 30); k > 0; k--)
            {
                sb.Append(alphabet[random.Next(alphabet.Length)]);
            }

            inputs.Add(sb.ToString());
        }

        var failures = new List<string>();
        foreach (string text in inputs)
        {
            string expected = RegexTokenize(text);
            string actual = Tokenizer13a.Tokenize(text);
            if (actual != expected)
            {
                failures.Add($"{ReferenceData.Show(text)}: regex {ReferenceData.Show(expected)}, scanner {ReferenceData.Show(actual)}");
            }
        }

        ReferenceData.AssertNoFailures(failures, inputs.Count);
    }

    [Theory]
    [InlineData("U.S.A.", "U . S . A .")]
    [InlineData("3.14 and 12,000", "3.14 and 12,000")]
    [InlineData(".5 5. x,1", ". 5 5 . x , 1")]
    [InlineData("pages 10-20, a-b", "pages 10 - 20 , a-b")]
    [InlineData("&quot;hi&quot; &amp; &#39;x&#39;", "\" hi \" & & # 39 ; x & # 39 ;")]
    [InlineData("&amp;quot;", "& quot ;")] // unescaped once, in order: &amp; after &quot;
    [InlineData("hyphen-\nated line\nbreak", "hyphenated line break")]
    [InlineData("a<skipped>b", "ab")]
    [InlineData("„Zitat“ «x» — … ’s €5", "„Zitat“ «x» — … ’s €5")] // non-ASCII punctuation stays attached
    [InlineData("", "")]
    [InlineData("?!", "? !")]
    public void Tokenizer13a_HandlesDocumentedCases(string input, string expected)
    {
        Assert.Equal(expected, Tokenizer13a.Tokenize(input));
    }

    [Fact]
    public void CharTokenizer_KeepsSurrogatePairsTogether()
    {
        Assert.Equal(["😀", "a", "𝐀"], TextTokenizers.Tokenize("😀 a\u001c𝐀", TextTokenizer.Char));
    }

    [Fact]
    public void Tokenize_RejectsNull()
    {
        Assert.Throws<ArgumentNullException>(() => Tokenizer13a.Tokenize(null!));
        Assert.Throws<ArgumentNullException>(() => TextTokenizers.Tokenize(null!, TextTokenizer.None));
    }

    private static string RegexTokenize(string line)
    {
        line = line.Replace("<skipped>", "", StringComparison.Ordinal).Replace("-\n", "", StringComparison.Ordinal)
            .Replace("\n", " ", StringComparison.Ordinal);
        if (line.Contains('&', StringComparison.Ordinal))
        {
            line = line.Replace("&quot;", "\"", StringComparison.Ordinal).Replace("&amp;", "&", StringComparison.Ordinal)
                .Replace("&lt;", "<", StringComparison.Ordinal).Replace("&gt;", ">", StringComparison.Ordinal);
        }

        line = " " + line + " ";
        foreach (var (pattern, replacement) in Rules)
        {
            line = pattern.Replace(line, replacement);
        }

        return string.Join(' ', PythonText.Split(line));
    }
}
