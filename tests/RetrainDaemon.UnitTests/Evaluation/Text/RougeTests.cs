using System.Text.Json;
using RetrainDaemon.Evaluation.Text;

namespace RetrainDaemon.UnitTests.Evaluation.Text;

public class RougeTests
{
    private const double Tolerance = 1e-9;
    private static readonly JsonElement Data = ReferenceData.Load("rouge.json");
    private static readonly string[] AllTypes = ["rouge1", "rouge2", "rouge3", "rouge4", "rouge9", "rougeL", "rougeLsum"];

    [Fact]
    public void ScoreAndScoreMulti_MatchRougeScoreOnEveryReferenceCase()
    {
        var scorers = new Dictionary<bool, RougeScorer> { [false] = new(AllTypes), [true] = new(AllTypes, useStemmer: true) };
        var failures = new List<string>();
        int count = 0;
        foreach (var c in Data.GetProperty("cases").EnumerateArray())
        {
            var scorer = scorers[c.GetProperty("stemmer").GetBoolean()];
            var targets = ReferenceData.Strings(c.GetProperty("targets"));
            string prediction = c.GetProperty("prediction").GetString()!;
            var result = c.GetProperty("kind").GetString() == "multi"
                ? scorer.ScoreMulti(targets, prediction)
                : scorer.Score(targets[0], prediction);
            count++;
            Compare($"{ReferenceData.Show(targets)} | {ReferenceData.Show(prediction)} stem={scorer.UseStemmer}", c.GetProperty("expected"), result, failures);
        }

        ReferenceData.AssertNoFailures(failures, count);
    }

    [Fact]
    public void Corpus_IsThePlainMeanOfPairScores()
    {
        var failures = new List<string>();
        int count = 0;
        foreach (var c in Data.GetProperty("corpus").EnumerateArray())
        {
            var scorer = new RougeScorer(AllTypes, c.GetProperty("stemmer").GetBoolean());
            var result = scorer.Corpus(ReferenceData.Strings(c.GetProperty("targets")), ReferenceData.Strings(c.GetProperty("predictions")));
            count++;
            Compare("corpus", c.GetProperty("expected"), result, failures);
        }

        ReferenceData.AssertNoFailures(failures, count);
    }

    [Fact]
    public void Tokenizer_MatchesRougeScoreDefaultTokenizer()
    {
        var failures = new List<string>();
        int count = 0;
        foreach (var c in Data.GetProperty("tokens").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            bool stem = c.GetProperty("stemmer").GetBoolean();
            var expected = ReferenceData.Strings(c.GetProperty("tokens"));
            var actual = RougeTokenizer.Tokenize(text, stem);
            count++;
            if (!expected.SequenceEqual(actual, StringComparer.Ordinal))
            {
                failures.Add($"{ReferenceData.Show(text)} stem={stem}: expected {ReferenceData.Show(expected)}, got {ReferenceData.Show(actual)}");
            }
        }

        ReferenceData.AssertNoFailures(failures, count);
    }

    [Theory]
    [InlineData("café", new[] { "caf" })]
    [InlineData("São", new[] { "s", "o" })]
    [InlineData("naïve", new[] { "na", "ve" })]
    [InlineData("ﬁne", new[] { "ne" })]
    [InlineData("İstanbul", new[] { "i", "stanbul" })]
    [InlineData("\u212A", new[] { "k" })] // Kelvin sign lowercases to ASCII k
    [InlineData("o'neil 3:15 e.g.", new[] { "o", "neil", "3", "15", "e", "g" })]
    public void Tokenizer_TreatsEveryNonAsciiLetterAsASeparator(string text, string[] expected)
    {
        Assert.Equal(expected, RougeTokenizer.Tokenize(text));
    }

    [Fact]
    public void Rouge1_TestingOneTwoExampleFromMetricsDoc()
    {
        var score = new RougeScorer(["rouge1"]).Score("testing one two", "testing")["rouge1"];
        Assert.Equal(1.0, score.Precision);
        Assert.Equal(1.0 / 3, score.Recall, 15);
        Assert.Equal(0.5, score.FMeasure, 15);
    }

    [Fact]
    public void RougeLsum_BacktrackingPicksTheLastMatchingIndex()
    {
        // docs/metrics.md §2.5: against [w1], the reference [w1, w2, w1] yields index 2; with [w1, w2] the
        // union is then {0, 1, 2} and all three target tokens are hits. Index 0 would give only two.
        var score = new RougeScorer(["rougeLsum"]).Score("w1 w2 w1", "w1\nw1 w2")["rougeLsum"];
        Assert.Equal(1.0, score.Recall);
        Assert.Equal(1.0, score.Precision);

        // On a mismatch between equal cells it moves up, not left: [a, b] against [b, a] yields index 0 ("a"),
        // so with the second line [a] the union is {0} and only one of the two target tokens is a hit.
        var tie = new RougeScorer(["rougeLsum"]).Score("a b", "b a\na")["rougeLsum"];
        Assert.Equal(0.5, tie.Recall);
        Assert.Equal(1.0 / 3, tie.Precision, 15);
    }

    [Fact]
    public void RougeLsum_WithoutNewlinesEqualsRougeL()
    {
        var scorer = new RougeScorer(["rougeL", "rougeLsum"]);
        var result = scorer.Score("the cat sat on the mat today", "today the cat was on a mat");
        Assert.Equal(result["rougeL"], result["rougeLsum"]);
    }

    [Theory]
    [InlineData("rouge0")]
    [InlineData("rouge10")]
    [InlineData("rougen")]
    [InlineData("rougel")]
    [InlineData("")]
    public void Constructor_RejectsInvalidTypes(string type)
    {
        Assert.Throws<ArgumentException>(() => new RougeScorer([type]));
    }

    [Fact]
    public void BadInput_GivesClearErrors()
    {
        var scorer = new RougeScorer(["rouge1"]);
        Assert.Throws<ArgumentNullException>(() => scorer.Score(null!, "a"));
        Assert.Throws<ArgumentNullException>(() => scorer.Score("a", null!));
        Assert.Throws<ArgumentException>(() => scorer.ScoreMulti([], "a"));
        var mismatch = Assert.Throws<ArgumentException>(() => scorer.Corpus(["a", "b"], ["a"]));
        Assert.Contains("2 targets and 1 predictions", mismatch.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => scorer.Corpus([], []));
        Assert.Throws<ArgumentException>(() => new RougeScorer([]));
    }

    private static void Compare(string name, JsonElement expected, IReadOnlyDictionary<string, RougeScore> actual, List<string> failures)
    {
        foreach (var property in expected.EnumerateObject())
        {
            var want = ReferenceData.Doubles(property.Value);
            if (!actual.TryGetValue(property.Name, out var got))
            {
                failures.Add($"{name}: {property.Name} missing");
                continue;
            }

            if (!ReferenceData.Close(got.Precision, want[0], Tolerance) || !ReferenceData.Close(got.Recall, want[1], Tolerance)
                || !ReferenceData.Close(got.FMeasure, want[2], Tolerance))
            {
                failures.Add($"{name}: {property.Name} got ({got.Precision}, {got.Recall}, {got.FMeasure}) expected ({want[0]}, {want[1]}, {want[2]})");
            }
        }
    }
}
