using System.Text;
using RetrainDaemon.Data.Preprocessing;

namespace RetrainDaemon.UnitTests;

public class TextNormalizerTests
{
    [Theory]
    [InlineData("B\bBo\bol\bld\bd", "Bold")] // bold overstrike as in old fortunes
    [InlineData("_\bu_\bn_\bd_\be_\br", "under")] // underline overstrike
    [InlineData("line one\r\nline two\rthree", "line one\nline two\nthree")]
    [InlineData("tab\tkept\u0007bell\u001bgone", "tab\tkeptbellgone")]
    [InlineData("  padded  \n", "padded")]
    [InlineData("\b\b\b", "")]
    [InlineData("zero\u200Bwidth", "zerowidth")] // a format character
    public void Normalize_ResolvesOverstrikesAndControls(string raw, string expected)
    {
        Assert.Equal(expected, TextNormalizer.Normalize(raw));
    }

    [Fact]
    public void Normalize_ComposesToNfc()
    {
        string decomposed = "Gro\u0308\u00DFe"; // o + combining diaeresis
        string result = TextNormalizer.Normalize(decomposed);
        Assert.Equal("Gr\u00F6\u00DFe", result);
        Assert.True(result.IsNormalized(NormalizationForm.FormC));
    }
}
