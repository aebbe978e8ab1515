namespace RetrainDaemon.Evaluation.Text;

/// <summary>
/// NLTK 3.8's <c>PorterStemmer()</c> in its default mode, <c>NLTK_EXTENSIONS</c> — the stemmer rouge-score
/// uses with <c>use_stemmer=True</c>. Written from Porter (1980) and the NLTK extensions listed in
/// docs/metrics.md §2.6; the tests compare it with NLTK on several thousand real words.
/// </summary>
/// <remarks>
/// This is neither Martin Porter's original algorithm nor Snowball's English ("Porter2") stemmer. The NLTK
/// extensions: an irregular-forms pool checked first; words of at most two code points returned lowercased;
/// <c>ies</c>→<c>ie</c> and <c>ied</c>→<c>ie</c> for four-letter words; *o also true for a two-letter
/// vowel-consonant stem; step 1c turns <c>y</c> into <c>i</c> only after a consonant in a stem longer than one
/// letter; step 2 handles <c>alli</c> recursively, uses <c>bli</c>→<c>ble</c>, and adds <c>fulli</c>→<c>ful</c>
/// and <c>logi</c>→<c>log</c>. As in NLTK, a rule list is decided by the first rule whose suffix matches: if
/// its condition fails the word is left unchanged. Lengths count code points, as Python's <c>len</c> does.
/// Pure and thread-safe.
/// </remarks>
public static class PorterStemmer
{
    private static readonly Dictionary<string, string> Irregular = new(StringComparer.Ordinal)
    {
        ["sky"] = "sky", ["skies"] = "sky", ["dying"] = "die", ["lying"] = "lie", ["tying"] = "tie",
        ["news"] = "news", ["innings"] = "inning", ["inning"] = "inning", ["outings"] = "outing",
        ["outing"] = "outing", ["cannings"] = "canning", ["canning"] = "canning", ["howe"] = "howe",
        ["proceed"] = "proceed", ["exceed"] = "exceed", ["succeed"] = "succeed",
    };

    private static readonly Rule[] Step1aRules =
    [
        new("sses", "ss", Condition.None), new("ies", "i", Condition.None), new("ss", "ss", Condition.None), new("s", "", Condition.None),
    ];

    private static readonly Rule[] Step1bRules =
    [
        new("at", "ate", Condition.None), new("bl", "ble", Condition.None), new("iz", "ize", Condition.None),
        new("*d", "", Condition.DoubleConsonant), new("", "e", Condition.MeasureOneAndCvc),
    ];

    private static readonly Rule[] Step1cRules = [new("y", "i", Condition.ConsonantBeforeLongStem)];

    private static readonly Rule[] Step2Rules =
    [
        new("ational", "ate", Condition.MeasureAbove0), new("tional", "tion", Condition.MeasureAbove0),
        new("enci", "ence", Condition.MeasureAbove0), new("anci", "ance", Condition.MeasureAbove0),
        new("izer", "ize", Condition.MeasureAbove0), new("bli", "ble", Condition.MeasureAbove0),
        new("alli", "al", Condition.MeasureAbove0), new("entli", "ent", Condition.MeasureAbove0),
        new("eli", "e", Condition.MeasureAbove0), new("ousli", "ous", Condition.MeasureAbove0),
        new("ization", "ize", Condition.MeasureAbove0), new("ation", "ate", Condition.MeasureAbove0),
        new("ator", "ate", Condition.MeasureAbove0), new("alism", "al", Condition.MeasureAbove0),
        new("iveness", "ive", Condition.MeasureAbove0), new("fulness", "ful", Condition.MeasureAbove0),
        new("ousness", "ous", Condition.MeasureAbove0), new("aliti", "al", Condition.MeasureAbove0),
        new("iviti", "ive", Condition.MeasureAbove0), new("biliti", "ble", Condition.MeasureAbove0),
        new("fulli", "ful", Condition.MeasureAbove0), new("logi", "log", Condition.MeasureAbove0OfWordMinus3),
    ];

    private static readonly Rule[] Step3Rules =
    [
        new("icate", "ic", Condition.MeasureAbove0), new("ative", "", Condition.MeasureAbove0),
        new("alize", "al", Condition.MeasureAbove0), new("iciti", "ic", Condition.MeasureAbove0),
        new("ical", "ic", Condition.MeasureAbove0), new("ful", "", Condition.MeasureAbove0),
        new("ness", "", Condition.MeasureAbove0),
    ];

    private static readonly Rule[] Step4Rules =
    [
        new("al", "", Condition.MeasureAbove1), new("ance", "", Condition.MeasureAbove1), new("ence", "", Condition.MeasureAbove1),
        new("er", "", Condition.MeasureAbove1), new("ic", "", Condition.MeasureAbove1), new("able", "", Condition.MeasureAbove1),
        new("ible", "", Condition.MeasureAbove1), new("ant", "", Condition.MeasureAbove1), new("ement", "", Condition.MeasureAbove1),
        new("ment", "", Condition.MeasureAbove1), new("ent", "", Condition.MeasureAbove1), new("ion", "", Condition.MeasureAbove1AndSOrT),
        new("ou", "", Condition.MeasureAbove1), new("ism", "", Condition.MeasureAbove1), new("ate", "", Condition.MeasureAbove1),
        new("iti", "", Condition.MeasureAbove1), new("ous", "", Condition.MeasureAbove1), new("ive", "", Condition.MeasureAbove1),
        new("ize", "", Condition.MeasureAbove1),
    ];

    private static readonly Rule[] Step5bRules = [new("ll", "l", Condition.MeasureAbove1OfWordMinus1)];

    private enum Condition
    {
        None,
        MeasureAbove0,
        MeasureAbove1,
        MeasureAbove1AndSOrT,
        MeasureOneAndCvc,
        ConsonantBeforeLongStem,
        MeasureAbove0OfWordMinus3,
        MeasureAbove1OfWordMinus1,
        DoubleConsonant,
    }

    /// <summary>NLTK's <c>PorterStemmer().stem(word)</c> (which lowercases with Python's <c>str.lower()</c>).</summary>
    public static string Stem(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        string lower = PythonText.Lower(word);

        // NLTK looks the *original* word up in the pool, so "Sky" is not irregular and stems to "ski".
        if (Irregular.TryGetValue(word, out string? irregular))
        {
            return irregular;
        }

        if (CodePointCount(word) <= 2)
        {
            return lower;
        }

        var w = new Word(lower);
        Step1a(w);
        Step1b(w);
        ApplyRules(w, Step1cRules);
        Step2(w);
        ApplyRules(w, Step3Rules);
        ApplyRules(w, Step4Rules);
        Step5a(w);
        ApplyRules(w, Step5bRules);
        return w.ToString();
    }

    private static int CodePointCount(string s)
    {
        int count = 0;
        for (int i = 0; i < s.Length; count++)
        {
            PythonText.CodePointAt(s, i, out int width);
            i += width;
        }

        return count;
    }

    private static void Step1a(Word w)
    {
        if (w.Length == 4 && w.EndsWith("ies"))
        {
            w.ReplaceSuffix(3, "ie"); // NLTK: "dies" → "die", "ties" → "tie"
            return;
        }

        ApplyRules(w, Step1aRules);
    }

    private static void Step1b(Word w)
    {
        if (w.EndsWith("ied"))
        {
            w.ReplaceSuffix(3, w.Length == 4 ? "ie" : "i"); // NLTK: "died" → "die", "spied" → "spi"
            return;
        }

        if (w.EndsWith("eed"))
        {
            if (w.Measure(w.Length - 3) > 0)
            {
                w.ReplaceSuffix(3, "ee");
            }

            return;
        }

        int suffix = w.EndsWith("ed") && w.ContainsVowel(w.Length - 2) ? 2
            : w.EndsWith("ing") && w.ContainsVowel(w.Length - 3) ? 3
            : 0;
        if (suffix == 0)
        {
            return;
        }

        w.ReplaceSuffix(suffix, string.Empty);
        ApplyRules(w, Step1bRules);
    }

    private static void Step2(Word w)
    {
        // NLTK: "alli" → "al" (when m > 0) and step 2 runs again on the result.
        while (w.EndsWith("alli") && w.Measure(w.Length - 4) > 0)
        {
            w.ReplaceSuffix(4, "al");
        }

        ApplyRules(w, Step2Rules);
    }

    private static void Step5a(Word w)
    {
        if (!w.EndsWith("e"))
        {
            return;
        }

        int stem = w.Length - 1;
        int m = w.Measure(stem);
        if (m > 1 || (m == 1 && !w.EndsCvc(stem)))
        {
            w.ReplaceSuffix(1, string.Empty);
        }
    }

    /// <summary>
    /// NLTK's <c>_apply_rule_list</c>: the first rule whose suffix matches decides; if its condition fails the
    /// word stays as it is. The "*d" pseudo-suffix means "ends in a double consonant" — and, as in NLTK, when
    /// that test fails the literal suffix "*d" is tried next (it only ever matches words containing '*').
    /// </summary>
    private static void ApplyRules(Word w, Rule[] rules)
    {
        foreach (var rule in rules)
        {
            if (rule.Condition == Condition.DoubleConsonant && w.EndsDoubleConsonant())
            {
                Apply(w, rule, 2);
                return;
            }

            if (w.EndsWith(rule.Suffix))
            {
                Apply(w, rule, rule.Suffix.Length);
                return;
            }
        }
    }

    private static void Apply(Word w, Rule rule, int suffixLength)
    {
        int stem = w.Length - suffixLength;
        bool holds = rule.Condition switch
        {
            Condition.None => true,
            Condition.MeasureAbove0 => w.Measure(stem) > 0,
            Condition.MeasureAbove1 => w.Measure(stem) > 1,
            Condition.MeasureAbove1AndSOrT => w.Measure(stem) > 1 && w[stem - 1] is 's' or 't',
            Condition.MeasureOneAndCvc => w.Measure(stem) == 1 && w.EndsCvc(stem),
            Condition.ConsonantBeforeLongStem => stem > 1 && w.IsConsonant(stem - 1),
            Condition.MeasureAbove0OfWordMinus3 => w.Measure(w.Length - 3) > 0,
            Condition.MeasureAbove1OfWordMinus1 => w.Measure(w.Length - 1) > 1,
            Condition.DoubleConsonant => w[w.Length - 1] is not ('l' or 's' or 'z'),
            _ => throw new InvalidOperationException("unknown condition"),
        };
        if (!holds)
        {
            return;
        }

        if (rule.Condition == Condition.DoubleConsonant)
        {
            // Keeps the last letter once: "hopp" → "hop" (and NLTK's literal "*d" case: "x*d" → "xd").
            int last = w[w.Length - 1];
            w.ReplaceSuffix(suffixLength, string.Empty);
            w.Append(last);
            return;
        }

        w.ReplaceSuffix(suffixLength, rule.Replacement);
    }

    private readonly record struct Rule(string Suffix, string Replacement, Condition Condition);

    /// <summary>A word as code points, edited in place from its end.</summary>
    private sealed class Word
    {
        private int[] _cps;

        public Word(string text)
        {
            _cps = new int[text.Length + 4];
            for (int i = 0; i < text.Length;)
            {
                _cps[Length++] = PythonText.CodePointAt(text, i, out int width);
                i += width;
            }
        }

        public int Length { get; private set; }

        public int this[int index] => _cps[index];

        public bool EndsWith(string suffix)
        {
            if (suffix.Length > Length)
            {
                return false;
            }

            for (int i = 0, start = Length - suffix.Length; i < suffix.Length; i++)
            {
                if (_cps[start + i] != suffix[i])
                {
                    return false;
                }
            }

            return true;
        }

        public void ReplaceSuffix(int suffixLength, string replacement)
        {
            Length -= suffixLength;
            if (_cps.Length < Length + replacement.Length)
            {
                Array.Resize(ref _cps, Length + replacement.Length + 4);
            }

            foreach (char c in replacement)
            {
                _cps[Length++] = c;
            }
        }

        public void Append(int codePoint)
        {
            if (_cps.Length == Length)
            {
                Array.Resize(ref _cps, Length + 4);
            }

            _cps[Length++] = codePoint;
        }

        /// <summary>Porter's consonant: not a vowel, and a 'y' only when it follows a vowel (or starts the word).</summary>
        public bool IsConsonant(int i)
        {
            // y's alternate: a run of y's after a consonant reads vowel, consonant, vowel, ...
            bool consonant = true;
            int start = i;
            while (start > 0 && _cps[start] == 'y')
            {
                start--;
            }

            for (int j = start; j <= i; j++)
            {
                int c = _cps[j];
                consonant = c is not ('a' or 'e' or 'i' or 'o' or 'u') && (c != 'y' || j == 0 || !consonant);
            }

            return consonant;
        }

        /// <summary>m in [C](VC)^m[V] for the first <paramref name="length"/> code points.</summary>
        public int Measure(int length)
        {
            int m = 0;
            bool previousVowel = false;
            for (int i = 0; i < length; i++)
            {
                bool consonant = IsConsonant(i);
                if (consonant && previousVowel)
                {
                    m++;
                }

                previousVowel = !consonant;
            }

            return m;
        }

        public bool ContainsVowel(int length)
        {
            for (int i = 0; i < length; i++)
            {
                if (!IsConsonant(i))
                {
                    return true;
                }
            }

            return false;
        }

        /// <summary>*d: ends with two equal consonants.</summary>
        public bool EndsDoubleConsonant() =>
            Length >= 2 && _cps[Length - 1] == _cps[Length - 2] && IsConsonant(Length - 1);

        /// <summary>*o for the first <paramref name="length"/> code points: c-v-c with the last not w, x or y; NLTK also accepts a two-letter v-c.</summary>
        public bool EndsCvc(int length) =>
            (length >= 3 && IsConsonant(length - 3) && !IsConsonant(length - 2) && IsConsonant(length - 1)
                && _cps[length - 1] is not ('w' or 'x' or 'y'))
            || (length == 2 && !IsConsonant(0) && IsConsonant(1));

        public override string ToString()
        {
            var sb = new System.Text.StringBuilder(Length + 2);
            for (int i = 0; i < Length; i++)
            {
                int cp = _cps[i];
                if (cp <= 0xFFFF)
                {
                    sb.Append((char)cp); // includes a lone surrogate, kept as it came in
                }
                else
                {
                    sb.Append(char.ConvertFromUtf32(cp));
                }
            }

            return sb.ToString();
        }
    }
}
