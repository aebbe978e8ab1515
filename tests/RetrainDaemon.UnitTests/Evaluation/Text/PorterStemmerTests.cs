using RetrainDaemon.Evaluation.Text;

namespace RetrainDaemon.UnitTests.Evaluation.Text;

public class PorterStemmerTests
{
    [Fact]
    public void Stem_MatchesNltkOnEveryReferenceWord()
    {
        var failures = new List<string>();
        int count = 0;
        foreach (var pair in ReferenceData.Load("porter.json").EnumerateArray())
        {
            string word = pair[0].GetString()!, expected = pair[1].GetString()!;
            string actual = PorterStemmer.Stem(word);
            count++;
            if (actual != expected)
            {
                failures.Add($"{ReferenceData.Show(word)}: expected {ReferenceData.Show(expected)}, got {ReferenceData.Show(actual)}");
            }
        }

        Assert.True(count > 5000, $"only {count} words");
        ReferenceData.AssertNoFailures(failures, count);
    }

    [Theory]
    // The irregular pool.
    [InlineData("sky", "sky")]
    [InlineData("skies", "sky")]
    [InlineData("dying", "die")]
    [InlineData("lying", "lie")]
    [InlineData("tying", "tie")]
    [InlineData("news", "news")]
    [InlineData("innings", "inning")]
    [InlineData("inning", "inning")]
    [InlineData("outings", "outing")]
    [InlineData("outing", "outing")]
    [InlineData("cannings", "canning")]
    [InlineData("canning", "canning")]
    [InlineData("howe", "howe")]
    [InlineData("proceed", "proceed")]
    [InlineData("exceed", "exceed")]
    [InlineData("succeed", "succeed")]
    // The other NLTK extensions named in docs/metrics.md §2.6.
    [InlineData("flying", "fli")]
    [InlineData("died", "die")]
    [InlineData("dies", "die")]
    [InlineData("ties", "tie")]
    [InlineData("spied", "spi")]
    [InlineData("happy", "happi")]
    [InlineData("enjoy", "enjoy")]
    [InlineData("Sky", "ski")] // the pool is looked up with the original, not the lowercased, word
    [InlineData("is", "is")]
    public void Stem_AppliesTheNltkExtensions(string word, string expected)
    {
        Assert.Equal(expected, PorterStemmer.Stem(word));
    }

    [Fact]
    public void Stem_RejectsNull()
    {
        Assert.Throws<ArgumentNullException>(() => PorterStemmer.Stem(null!));
    }
}
