using System.Text.Json;
using RetrainDaemon.Evaluation.Text;

namespace RetrainDaemon.UnitTests.Evaluation.Text;

public class SelfBleuTests
{
    private const double Tolerance = 1e-9;
    private static readonly JsonElement Data = ReferenceData.Load("self-bleu.json");

    [Fact]
    public void Compute_MatchesTexygenWithNltkOnEveryReferenceCase()
    {
        var failures = new List<string>();
        int count = 0;
        foreach (var c in Data.GetProperty("cases").EnumerateArray())
        {
            var options = new SelfBleuOptions
            {
                NgramOrder = c.GetProperty("gram").GetInt32(),
                MaxSentences = c.GetProperty("cap").ValueKind == JsonValueKind.Null ? null : c.GetProperty("cap").GetInt32(),
                SubsampleSeed = c.GetProperty("seed").ValueKind == JsonValueKind.Null ? null : c.GetProperty("seed").GetUInt64(),
            };
            var result = SelfBleu.Compute(ReferenceData.Sentences(c.GetProperty("sentences")), options);
            double expected = c.GetProperty("expected").GetDouble();
            count++;
            if (!ReferenceData.Close(result.Score, expected, Tolerance) || result.SentencesUsed != c.GetProperty("used").GetInt32())
            {
                failures.Add($"{c.GetProperty("name").GetString()}: {result.Score:R} on {result.SentencesUsed} vs {expected:R} on {c.GetProperty("used")}");
            }
        }

        ReferenceData.AssertNoFailures(failures, count);
    }

    [Fact]
    public void Subsample_IsTheDocumentedSplitMix64FisherYates()
    {
        foreach (var c in Data.GetProperty("subsets").EnumerateArray())
        {
            var expected = c.GetProperty("indices").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            Assert.Equal(expected, SelfBleu.Subsample(c.GetProperty("count").GetInt32(), c.GetProperty("size").GetInt32(), c.GetProperty("seed").GetUInt64()));
        }
    }

    [Fact]
    public void Compute_AllDuplicatesIsOne()
    {
        var sentences = Enumerable.Repeat<IReadOnlyList<string>>(["a", "b", "c", "d"], 4).ToList();
        Assert.Equal(1.0, SelfBleu.Compute(sentences).Score, 12);
    }

    [Fact]
    public void SentenceBleu_OneMatchingTokenWithBigramsIsSqrtOfPointOne()
    {
        // docs/metrics.md §5.2: p1 = 1, p2 = 0.1/1 (method1 with max(1, ·) denominator), BP = 1 (c == r).
        Assert.Equal(Math.Sqrt(0.1), SelfBleu.SentenceBleu([["a"]], ["a"], 2), 15);
    }

    [Fact]
    public void Compute_RecordsCapAndSeedInTheSignature()
    {
        var sentences = Enumerable.Range(0, 30).Select(i => (IReadOnlyList<string>)[$"w{i % 7}", $"v{i % 5}", "x"]).ToList();
        var first = SelfBleu.Compute(sentences, new SelfBleuOptions { MaxSentences = 10 });
        Assert.Equal("ngram:3|smooth:method1|cap:10|sample:first|used:10/30|tok:given|version:nltk-3.8", first.Signature);
        var seeded = SelfBleu.Compute(sentences, new SelfBleuOptions { MaxSentences = 10, SubsampleSeed = 42 });
        Assert.Equal("ngram:3|smooth:method1|cap:10|sample:seed=42|used:10/30|tok:given|version:nltk-3.8", seeded.Signature);
        var expected = SelfBleu.Compute(SelfBleu.Subsample(30, 10, 42).Select(i => sentences[i]).ToList(), new SelfBleuOptions { MaxSentences = null });
        Assert.Equal(expected.Score, seeded.Score);
        var texts = SelfBleu.Compute(["a b c", "a b d", "x y z"], TextTokenizer.Mteval13a);
        Assert.Contains("tok:13a", texts.Signature, StringComparison.Ordinal);
    }

    [Fact]
    public void Compute_RejectsTooFewSentencesAndBadOptions()
    {
        Assert.Throws<ArgumentException>(() => SelfBleu.Compute([["a"]]));
        Assert.Throws<ArgumentNullException>(() => SelfBleu.Compute((IReadOnlyList<IReadOnlyList<string>>)null!));
        Assert.Throws<ArgumentException>(() => SelfBleu.Compute([["a"], null!]));
        Assert.Throws<ArgumentOutOfRangeException>(() => SelfBleu.Compute([["a"], ["b"]], new SelfBleuOptions { NgramOrder = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => SelfBleu.Compute([["a"], ["b"]], new SelfBleuOptions { MaxSentences = 1 }));
        Assert.Throws<ArgumentException>(() => SelfBleu.SentenceBleu([], ["a"], 2));
    }
}
