using System.Text;
using RetrainDaemon.Data.Datasets;

namespace RetrainDaemon.UnitTests;

/// <summary>Readers against the real Debian datasets (installed by .ci/run) and a hand-built .mo file.</summary>
public class DatasetReaderTests
{
    [Fact]
    public void FashionMnist_T10k_Has10000BalancedImages()
    {
        var images = FashionMnist.Read("t10k");
        Assert.Equal(10_000, images.Count);
        Assert.All(images, i => Assert.Equal(784, i.Pixels.Length));
        Assert.All(images.GroupBy(i => i.Label), g => Assert.Equal(1000, g.Count()));
        // The first t10k image is an ankle boot (label 9), as in the original dataset.
        Assert.Equal("Ankle boot", images[0].ClassName);
    }

    [Fact]
    public void FashionMnist_SkipAndTake()
    {
        var images = FashionMnist.Read("train", skip: 59_990, take: 100);
        Assert.Equal(10, images.Count);
        Assert.Equal(59_990, images[0].Index);
    }

    [Fact]
    public void Fortunes_AreSplitOnPercentLines()
    {
        var fortunes = Fortunes.Read().ToList();
        Assert.True(fortunes.Count > 10_000, $"only {fortunes.Count} fortunes");
        Assert.DoesNotContain(fortunes, f => f.Text.Split('\n').Contains("%"));
        Assert.Contains(fortunes, f => f.Text.Contains('\b', StringComparison.Ordinal)); // overstrikes exist in the raw data
    }

    [Fact]
    public void Gettext_ReadsAHandBuiltCatalog_InBothByteOrders()
    {
        var entries = new (string Id, string Str)[]
        {
            ("", "Content-Type: text/plain; charset=UTF-8\n"),
            ("File not found", "Datei nicht gefunden"),
            ("menu\u0004Open", "Öffnen"),
            ("%d file\0%d files", "%d Datei\0%d Dateien"),
            ("untranslated", ""),
        };
        foreach (bool bigEndian in new[] { false, true })
        {
            var path = Path.Combine(Path.GetTempPath(), $"test-{Guid.NewGuid():N}.mo");
            File.WriteAllBytes(path, BuildMo(entries, bigEndian));
            try
            {
                var pairs = GettextCatalog.Read(path).ToDictionary(p => p.Source);
                Assert.Equal(3, pairs.Count);
                Assert.Equal("Datei nicht gefunden", pairs["File not found"].Target);
                Assert.Equal(("menu", "Öffnen"), (pairs["Open"].Context, pairs["Open"].Target));
                Assert.Equal("%d Datei", pairs["%d file"].Target);
            }
            finally
            {
                File.Delete(path);
            }
        }
    }

    [Fact]
    public void Gettext_RejectsAFileThatIsNotACatalog()
    {
        var path = Path.Combine(Path.GetTempPath(), $"test-{Guid.NewGuid():N}.mo");
        File.WriteAllBytes(path, Encoding.ASCII.GetBytes("this is not a gettext catalog at all"));
        try
        {
            Assert.Throws<InvalidDataException>(() => GettextCatalog.Read(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Gettext_GermanCatalogsOnThisMachine_YieldPairs()
    {
        var pairs = GettextCatalog.ReadLanguage("de").Take(5000).ToList();
        Assert.True(pairs.Count > 1000, $"only {pairs.Count} pairs");
        Assert.All(pairs, p => Assert.False(string.IsNullOrEmpty(p.Target)));
    }

    /// <summary>Writes the documented .mo layout: header, two (length, offset) tables, NUL-terminated strings.</summary>
    private static byte[] BuildMo((string Id, string Str)[] entries, bool bigEndian)
    {
        var ordered = entries.OrderBy(e => e.Id, StringComparer.Ordinal).ToArray();
        int n = ordered.Length;
        int originals = 28, translations = originals + n * 8, strings = translations + n * 8;
        using var data = new MemoryStream();
        var blobs = new List<(int Length, int Offset)>();
        var text = new MemoryStream();
        foreach (var s in ordered.Select(e => e.Id).Concat(ordered.Select(e => e.Str)))
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            blobs.Add((bytes.Length, strings + (int)text.Length));
            text.Write(bytes);
            text.WriteByte(0);
        }

        void U32(uint v)
        {
            var b = BitConverter.GetBytes(v);
            if (bigEndian == BitConverter.IsLittleEndian)
            {
                Array.Reverse(b);
            }

            data.Write(b);
        }

        U32(0x950412de);
        U32(0);
        U32((uint)n);
        U32((uint)originals);
        U32((uint)translations);
        U32(0);
        U32(0);
        foreach (var (length, offset) in blobs)
        {
            U32((uint)length);
            U32((uint)offset);
        }

        text.Position = 0;
        text.CopyTo(data);
        return data.ToArray();
    }
}
