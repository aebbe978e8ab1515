using RetrainDaemon.Evaluation.Text;

namespace RetrainDaemon.UnitTests.Evaluation.Text;

public class DistinctNTests
{
    [Fact]
    public void Compute_MatchesTheCorpusLevelDefinition()
    {
        int count = 0;
        foreach (var c in ReferenceData.Load("distinct.json").EnumerateArray())
        {
            var result = DistinctN.Compute(ReferenceData.Sentences(c.GetProperty("sentences")), c.GetProperty("n").GetInt32());
            var expected = c.GetProperty("expected");
            Assert.Equal(expected.GetProperty("distinct").GetInt64(), result.Distinct);
            Assert.Equal(expected.GetProperty("total").GetInt64(), result.Total);
            Assert.Equal(expected.GetProperty("value").GetDouble(), result.Value, 1e-12);
            count++;
        }

        Assert.True(count > 20);
    }

    [Fact]
    public void Compute_NgramsNeverCrossSentenceBoundaries()
    {
        // "a b" + "c d": bigrams (a,b) and (c,d) only — (b,c) would cross the boundary.
        var result = DistinctN.Compute([["a", "b"], ["c", "d"]], 2);
        Assert.Equal(new DistinctNResult(2, 2, 1.0), result);
        Assert.Equal(new DistinctNResult(2, 4, 0.5), DistinctN.Compute(["a b a b", "a b"], 2));
    }

    [Fact]
    public void Compute_NoNgramsIsZero()
    {
        Assert.Equal(new DistinctNResult(0, 0, 0.0), DistinctN.Compute(Array.Empty<IReadOnlyList<string>>(), 1));
        Assert.Equal(new DistinctNResult(0, 0, 0.0), DistinctN.Compute([["a"]], 2));
    }

    [Fact]
    public void Compute_RejectsBadInput()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => DistinctN.Compute([["a"]], 0));
        Assert.Throws<ArgumentException>(() => DistinctN.Compute([null!], 1));
        Assert.Throws<ArgumentNullException>(() => DistinctN.Compute((IReadOnlyList<string>)null!, 1));
    }
}
