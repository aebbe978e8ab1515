using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Evaluation.Analysis;

namespace RetrainDaemon.UnitTests.Analysis;

/// <summary>Slice assignment (length buckets, catalogs), badness components and token drift, each against hand-computed values.</summary>
public sealed class SliceDefinitionTests
{
    [Theory]
    [InlineData(0, "len=0-15")]
    [InlineData(15, "len=0-15")]
    [InlineData(16, "len=16-31")]
    [InlineData(31, "len=16-31")]
    [InlineData(32, "len=32-63")]
    [InlineData(63, "len=32-63")]
    [InlineData(64, "len=64-127")]
    [InlineData(127, "len=64-127")]
    [InlineData(128, "len=128+")]
    [InlineData(5000, "len=128+")]
    public void Length_buckets_have_fixed_bounds(int codePoints, string bucket) => Assert.Equal(bucket, SliceKeys.LengthBucket(codePoints));

    [Fact]
    public void Length_counts_code_points_not_utf16_units()
    {
        Assert.Equal(["len=0-15", "len=16-31", "len=32-63", "len=64-127", "len=128+"], SliceKeys.LengthBuckets);
        string fifteenEmoji = string.Concat(Enumerable.Repeat("😀", 15)); // 30 UTF-16 units, 15 code points
        Assert.Equal("len=0-15", SliceKeys.LengthBucket(fifteenEmoji));
        Assert.Equal("len=16-31", SliceKeys.LengthBucket(fifteenEmoji + "ä"));
        Assert.Equal("len=0-15", SliceKeys.LengthBucket("Öffnen"));
        // Conditional models bucket by the source, language models by the text.
        Assert.Equal("len=16-31", SliceKeys.TextLengthBucket("kurz", "a source of twenty", conditional: true));
        Assert.Equal("len=0-15", SliceKeys.TextLengthBucket("kurz", "a source of twenty", conditional: false));
    }

    [Fact]
    public void Catalog_is_the_label_else_the_cloudevent_source()
    {
        Assert.Equal("catalog=git", SliceKeys.Catalog("git", "/retrain-daemon/publish/gettext"));
        Assert.Equal("catalog=/retrain-daemon/publish/gettext", SliceKeys.Catalog(null, "/retrain-daemon/publish/gettext"));
        Assert.Equal("catalog=/x", SliceKeys.Catalog("  ", "/x"));
        Assert.Equal("class=7", SliceKeys.Class(7));
        Assert.Equal("rating=2", SliceKeys.Rating(2));
    }

    [Fact]
    public void Badness_components_are_relative_shortfalls_from_the_best_slice()
    {
        Assert.Equal(0.75, SliceBadness.HigherIsBetter(5, 20));
        Assert.Equal(0.0, SliceBadness.HigherIsBetter(20, 20));
        Assert.Null(SliceBadness.HigherIsBetter(0, 0)); // every slice 0: nothing tells them apart
        Assert.Equal(0.5, SliceBadness.LowerIsBetter(80, 40));
        Assert.Equal(0.0, SliceBadness.LowerIsBetter(40, 40));
        Assert.Equal(0.0, SliceBadness.LowerIsBetter(-1e-12, -1e-12)); // round-off below zero
        Assert.Equal(1.0, SliceBadness.LowerIsBetter(3, 0));
        Assert.Equal(1.0, SliceBadness.Coverage(0, 0.1));
        Assert.Equal(0.5, SliceBadness.Coverage(0.05, 0.1)!.Value, 12);
        Assert.Equal(0.0, SliceBadness.Coverage(0.3, 0.1)); // over-represented is not bad
        Assert.Null(SliceBadness.Coverage(0.3, 0));
        Assert.Equal(0.5, SliceBadness.Combine(1.0, null, 0.0));
        Assert.Null(SliceBadness.Combine(null, null));
        Assert.Throws<ArgumentException>(() => SliceBadness.LowerIsBetter(double.NaN, 1));
    }

    [Fact]
    public void Jensen_shannon_divergence_in_bits()
    {
        Assert.Equal(0.0, TokenDrift.JensenShannon([3, 1, 0], [6, 2, 0]), 15); // same distribution, different totals
        Assert.Equal(1.0, TokenDrift.JensenShannon([5, 0], [0, 2]), 15);       // disjoint supports
        // P = (1, 0), Q = (½, ½), M = (¾, ¼): ½·log2(4/3) + ½·(½·log2(2/3) + ½·log2 2).
        double expected = 0.5 * Math.Log2(4.0 / 3) + 0.5 * (0.5 * Math.Log2(2.0 / 3) + 0.5);
        Assert.Equal(expected, TokenDrift.JensenShannon([4, 0], [1, 1]), 15);
        Assert.Equal(TokenDrift.JensenShannon([4, 0], [1, 1]), TokenDrift.JensenShannon([1, 1], [4, 0]), 15); // symmetric
        Assert.Contains("no tokens", Assert.Throws<ArgumentException>(() => TokenDrift.JensenShannon([0, 0], [1, 1])).Message, StringComparison.Ordinal);
        Assert.Contains("same vocabulary", Assert.Throws<ArgumentException>(() => TokenDrift.JensenShannon([1], [1, 1])).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Byte_fallback_share_counts_ids_4_to_259()
    {
        var counts = new long[300];
        counts[3] = 100; // a special: counted in the total only
        counts[4] = 10;
        counts[259] = 10;
        counts[260] = 80;
        Assert.Equal(0.1, TokenDrift.ByteFallbackShare(counts), 15);
    }
}
