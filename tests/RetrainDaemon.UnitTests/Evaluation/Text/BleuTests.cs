using System.Globalization;
using System.Text.Json;
using RetrainDaemon.Evaluation.Text;

namespace RetrainDaemon.UnitTests.Evaluation.Text;

public class BleuTests
{
    private const double ScoreTolerance = 1e-6; // on the 0–100 scale (docs/metrics.md §8)
    private static readonly JsonElement Data = ReferenceData.Load("bleu.json");

    [Fact]
    public void Corpus_MatchesSacreBleuOnEveryReferenceCase()
    {
        var failures = new List<string>();
        int count = 0;
        foreach (var c in Data.GetProperty("cases").EnumerateArray())
        {
            var options = ReferenceData.BleuOptions(c.GetProperty("options"));
            var hyps = ReferenceData.Strings(c.GetProperty("hyps"));
            var refs = c.GetProperty("refs").EnumerateArray().Select(r => (IReadOnlyList<string?>)ReferenceData.NullableStrings(r)).ToList();
            var result = c.GetProperty("kind").GetString() == "sentence"
                ? Bleu.Sentence(hyps[0], refs[0], options)
                : Bleu.Corpus(hyps, refs, options);
            count++;
            Compare(c.GetProperty("name").GetString()!, c.GetProperty("expected"), result, options, failures);
        }

        ReferenceData.AssertNoFailures(failures, count);
    }

    [Fact]
    public void CorpusStreamMajor_GivesTheSameResultAsSegmentMajor()
    {
        int count = 0;
        foreach (var c in Data.GetProperty("cases").EnumerateArray())
        {
            var options = ReferenceData.BleuOptions(c.GetProperty("options"));
            var hyps = ReferenceData.Strings(c.GetProperty("hyps"));
            var refs = c.GetProperty("refs").EnumerateArray().Select(r => ReferenceData.NullableStrings(r)).ToList();
            int width = refs.Max(r => r.Length);
            var streams = Enumerable.Range(0, width)
                .Select(k => (IReadOnlyList<string?>)refs.Select(r => k < r.Length ? r[k] : null).ToArray()).ToList();
            var segmentMajor = Bleu.Corpus(hyps, refs.Select(r => (IReadOnlyList<string?>)r).ToList(), options);
            var streamMajor = Bleu.CorpusStreamMajor(hyps, streams, options);
            Assert.Equal(segmentMajor.Score, streamMajor.Score);
            Assert.Equal(segmentMajor.Counts, streamMajor.Counts);
            Assert.Equal(segmentMajor.RefLen, streamMajor.RefLen);
            Assert.Equal(segmentMajor.Signature, streamMajor.Signature);
            count++;
        }

        Assert.True(count > 300);
    }

    [Fact]
    public void FromStatistics_MatchesSacreBleuComputeBleu()
    {
        var failures = new List<string>();
        int count = 0;
        foreach (var c in Data.GetProperty("statistics").EnumerateArray())
        {
            var options = ReferenceData.BleuOptions(c.GetProperty("options"));
            var correct = c.GetProperty("correct").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var total = c.GetProperty("total").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var stats = new BleuStatistics(c.GetProperty("sys_len").GetInt64(), c.GetProperty("ref_len").GetInt64(), correct, total, 1);
            var result = Bleu.FromStatistics(stats, options);
            count++;
            Compare($"statistics [{string.Join(',', correct)}]/[{string.Join(',', total)}]", c.GetProperty("expected"), result, options, failures);
        }

        ReferenceData.AssertNoFailures(failures, count);
    }

    [Fact]
    public void Corpus_IdenticalIs100AndDisjointIs0()
    {
        Assert.Equal(100.0, Bleu.Corpus(["the cat sat on the mat"], [["the cat sat on the mat"]]).Score, 12);
        Assert.Equal(0.0, Bleu.Corpus(["a b c d e"], [["v w x y z"]]).Score);
    }

    [Fact]
    public void Corpus_ReadmeExampleMatchesSacreBleuDocumentation()
    {
        // sacreBLEU's README / test_bleu.py: 48.530827 with default settings, stream-major references.
        string[] hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."];
        IReadOnlyList<string?>[] streams =
        [
            ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
            ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
        ];
        var result = Bleu.CorpusStreamMajor(hyps, streams);
        Assert.Equal(48.530827, result.Score, 6);
        Assert.Equal("nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0", result.Signature);
        Assert.Equal("BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)", result.ToString());
    }

    [Fact]
    public void Sentence_UsesEffectiveOrderByDefault()
    {
        var result = Bleu.Sentence("hello world", "hello world again");
        Assert.Contains("eff:yes", result.Signature, StringComparison.Ordinal);
        Assert.True(result.Score > 0);
        Assert.Equal(0.0, Bleu.Sentence("hello world", "hello world again", BleuOptions.Default).Score);
    }

    [Fact]
    public void Signature_AddsNgramOrderOnlyWhenNotFour()
    {
        Assert.Equal("nrefs:var|case:lc|eff:yes|tok:char|smooth:floor[0.10]|ngram:2|version:2.6.0",
            Bleu.Signature(new BleuOptions { Lowercase = true, EffectiveOrder = true, Tokenize = TextTokenizer.Char, SmoothMethod = BleuSmoothing.Floor, MaxNgramOrder = 2 }, -1));
        Assert.Equal("nrefs:3|case:mixed|eff:no|tok:none|smooth:add-k[1.00]|version:2.6.0",
            Bleu.Signature(new BleuOptions { Tokenize = TextTokenizer.None, SmoothMethod = BleuSmoothing.AddK }, 3));
    }

    [Fact]
    public void Corpus_ParallelPathEqualsSequentialStatistics()
    {
        // 3,000 segments take the parallel path; chunks of 300 take the sequential one. Integer statistics
        // must add up exactly, whatever the partitioning.
        var random = new Random(7);
        var words = "the a cat dog sat ran on under mat log 3.14 U.S.A. &quot;x&quot; İ Σ café , .".Split(' ');
        var hyps = new List<string>();
        var refs = new List<IReadOnlyList<string?>>();
        for (int i = 0; i < 3000; i++)
        {
            hyps.Add(string.Join(' ', Enumerable.Range(0, random.Next(0, 25)).Select(_ => words[random.Next(words.Length)])));
            refs.Add([string.Join(' ', Enumerable.Range(0, random.Next(0, 25)).Select(_ => words[random.Next(words.Length)])),
                random.Next(3) == 0 ? null : string.Join(' ', Enumerable.Range(0, random.Next(5, 20)).Select(_ => words[random.Next(words.Length)]))]);
        }

        var options = new BleuOptions { Lowercase = true };
        var whole = Bleu.CorpusStatistics(hyps, refs, options);
        long sys = 0, rl = 0;
        var correct = new long[4];
        var total = new long[4];
        for (int start = 0; start < hyps.Count; start += 300)
        {
            var part = Bleu.CorpusStatistics(hyps.GetRange(start, 300), refs.GetRange(start, 300), options);
            sys += part.SysLen;
            rl += part.RefLen;
            for (int n = 0; n < 4; n++)
            {
                correct[n] += part.Correct[n];
                total[n] += part.Total[n];
            }
        }

        Assert.Equal(sys, whole.SysLen);
        Assert.Equal(rl, whole.RefLen);
        Assert.Equal(correct, whole.Correct);
        Assert.Equal(total, whole.Total);
        Assert.Equal(-1, whole.NumRefs);
        Assert.Equal(Bleu.Corpus(hyps, refs, options).Score, Bleu.Corpus(hyps, refs, options).Score);
    }

    [Fact]
    public void Corpus_RejectsMismatchedCountsNamingBoth()
    {
        var error = Assert.Throws<ArgumentException>(() => Bleu.Corpus(["a", "b", "c"], [["a"], ["b"]]));
        Assert.Contains("3 hypotheses", error.Message, StringComparison.Ordinal);
        Assert.Contains("2 reference sets", error.Message, StringComparison.Ordinal);

        var streamError = Assert.Throws<ArgumentException>(() => Bleu.CorpusStreamMajor(["a", "b"], [["a", "b"], ["a"]]));
        Assert.Contains("stream 1 has 1 segments", streamError.Message, StringComparison.Ordinal);
        Assert.Contains("2 hypotheses", streamError.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Corpus_RejectsNullsAndEmptyInputWithClearErrors()
    {
        Assert.Throws<ArgumentNullException>(() => Bleu.Corpus(null!, [["a"]]));
        Assert.Throws<ArgumentNullException>(() => Bleu.Corpus(["a"], null!));
        Assert.Throws<ArgumentNullException>(() => Bleu.Sentence(null!, "a"));
        Assert.Throws<ArgumentNullException>(() => Bleu.Sentence("a", (string)null!));
        var nullHyp = Assert.Throws<ArgumentException>(() => Bleu.Corpus(["a", null!], [["a"], ["b"]]));
        Assert.Contains("hypotheses[1] is null", nullHyp.Message, StringComparison.Ordinal);
        var noRef = Assert.Throws<ArgumentException>(() => Bleu.Corpus(["a", "b"], [["a"], [null, null]]));
        Assert.Contains("segment 1 has no reference", noRef.Message, StringComparison.Ordinal);
        var nullSet = Assert.Throws<ArgumentException>(() => Bleu.Corpus(["a"], [null!]));
        Assert.Contains("references[0] is null", nullSet.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => Bleu.Corpus([], []));
        Assert.Throws<ArgumentException>(() => Bleu.CorpusStreamMajor(["a"], []));
        Assert.Throws<ArgumentOutOfRangeException>(() => Bleu.Corpus(["a"], [["a"]], new BleuOptions { MaxNgramOrder = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => Bleu.Corpus(["a"], [["a"]], new BleuOptions { SmoothValue = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => Bleu.Corpus(["a"], [["a"]], new BleuOptions { SmoothValue = double.NaN }));
        Assert.Throws<ArgumentException>(() => Bleu.FromStatistics(new BleuStatistics(1, 1, [1], [1], 1)));
    }

    private static void Compare(string name, JsonElement expected, BleuResult actual, BleuOptions options, List<string> failures)
    {
        var problems = new List<string>();
        double score = expected.GetProperty("score").GetDouble();
        if (!ReferenceData.Close(actual.Score, score, ScoreTolerance))
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"score {actual.Score:R} vs {score:R}"));
        }

        var precisions = ReferenceData.Doubles(expected.GetProperty("precisions"));
        if (precisions.Length != actual.Precisions.Count || precisions.Zip(actual.Precisions).Any(p => !ReferenceData.Close(p.Second, p.First, 1e-9)))
        {
            problems.Add($"precisions [{string.Join(", ", actual.Precisions)}] vs [{string.Join(", ", precisions)}]");
        }

        if (!ReferenceData.Doubles(expected.GetProperty("counts")).SequenceEqual(actual.Counts)
            || !ReferenceData.Doubles(expected.GetProperty("totals")).SequenceEqual(actual.Totals))
        {
            problems.Add($"counts [{string.Join(", ", actual.Counts)}]/[{string.Join(", ", actual.Totals)}] vs {expected.GetProperty("counts")}/{expected.GetProperty("totals")}");
        }

        if (!ReferenceData.Close(actual.Bp, expected.GetProperty("bp").GetDouble(), 1e-12))
        {
            problems.Add($"bp {actual.Bp} vs {expected.GetProperty("bp")}");
        }

        if (actual.SysLen != expected.GetProperty("sys_len").GetInt64() || actual.RefLen != expected.GetProperty("ref_len").GetInt64())
        {
            problems.Add($"lengths {actual.SysLen}/{actual.RefLen} vs {expected.GetProperty("sys_len")}/{expected.GetProperty("ref_len")}");
        }

        if (expected.GetProperty("signature").GetString() is { } signature)
        {
            // Our one extension to sacreBLEU's signature: the n-gram order when it is not 4.
            if (options.MaxNgramOrder != 4)
            {
                signature = signature.Replace("|version:", string.Create(CultureInfo.InvariantCulture, $"|ngram:{options.MaxNgramOrder}|version:"), StringComparison.Ordinal);
            }

            if (actual.Signature != signature)
            {
                problems.Add($"signature {actual.Signature} vs {signature}");
            }
        }

        if (problems.Count > 0)
        {
            failures.Add($"{name}: {string.Join("; ", problems)}");
        }
    }
}
