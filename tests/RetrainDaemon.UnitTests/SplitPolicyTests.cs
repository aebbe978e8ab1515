using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Policies;

namespace RetrainDaemon.UnitTests;

public class SplitPolicyTests
{
    [Fact]
    public void Assign_IsDeterministic_ForTheSameId()
    {
        for (int i = 0; i < 1000; i++)
        {
            string id = $"fashion-mnist/train/{i:D5}";
            Assert.Equal(SplitPolicy.Assign(id, 0.2), SplitPolicy.Assign(id, 0.2));
        }
    }

    [Theory]
    [InlineData(Splits.Train)]
    [InlineData(Splits.Holdout)]
    public void Assign_ExplicitSplitWins(string split)
    {
        Assert.All(Enumerable.Range(0, 200), i => Assert.Equal(split, SplitPolicy.Assign($"id-{i}", split == Splits.Train ? 0.99 : 0.0, split)));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.1)]
    [InlineData(0.5)]
    public void Assign_HoldoutShare_MatchesTheFraction(double fraction)
    {
        const int n = 20_000;
        int holdout = Enumerable.Range(0, n).Count(i => SplitPolicy.Assign($"sample-{i}", fraction) == Splits.Holdout);
        // Binomial standard deviation at n = 20,000 is at most 0.0035; allow 4 sigma.
        Assert.InRange(holdout / (double)n, fraction - 0.014, fraction + 0.014);
    }

    [Fact]
    public void UnitInterval_IsTheFirst53BitsOfSha256()
    {
        // SHA-256("abc") = ba7816bf8f01cfea..., first 8 bytes 0xba7816bf8f01cfea >> 11, scaled by 2^-53.
        double expected = (0xba7816bf8f01cfeaUL >> 11) / (double)(1UL << 53);
        Assert.Equal(expected, SplitPolicy.UnitInterval("abc"));
    }
}
