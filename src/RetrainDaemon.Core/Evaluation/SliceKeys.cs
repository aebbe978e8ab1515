using System.Globalization;
using System.Text;

namespace RetrainDaemon.Core.Evaluation;

/// <summary>
/// The names of the slices error analysis reports and the next fine-tune weights, in one place so
/// the analysis (Evaluation) and the snapshots (Training) assign a sample to the same slice:
/// <list type="bullet">
/// <item><c>class=k</c>: an image's integer label (the gate's per-class slices use the same form).</item>
/// <item><c>len=a-b</c> / <c>len=128+</c>: a text's length bucket, on the number of Unicode code points of the
/// conditional source (of the text itself for a language model), with the fixed bounds
/// 0–15, 16–31, 32–63, 64–127, 128+.</item>
/// <item><c>catalog=name</c>: where a text came from — the sample's label when it has one (the publisher puts the
/// gettext catalog, e.g. <c>git</c>, or the fortunes file there), else its CloudEvent <c>source</c>, which is the
/// same for every gettext pair (<c>/retrain-daemon/publish/gettext</c>) and so cannot tell catalogs apart.</item>
/// <item><c>rating=r</c>: feedback ratings 1–5 (reported, never weighted: they are not training data).</item>
/// </list>
/// </summary>
public static class SliceKeys
{
    public const string ClassPrefix = "class=";
    public const string LengthPrefix = "len=";
    public const string CatalogPrefix = "catalog=";
    public const string RatingPrefix = "rating=";

    /// <summary>Lower bounds (code points) of the length buckets after the first: 0–15, 16–31, 32–63, 64–127, 128+.</summary>
    public static IReadOnlyList<int> LengthBucketStarts { get; } = [16, 32, 64, 128];

    /// <summary>Every length bucket, shortest first (initialized after <see cref="LengthBucketStarts"/>, which it reads).</summary>
    public static IReadOnlyList<string> LengthBuckets { get; } = BuildLengthBuckets();

    public static string Class(int label) => ClassPrefix + label.ToString(CultureInfo.InvariantCulture);

    public static string Rating(int rating) => RatingPrefix + rating.ToString(CultureInfo.InvariantCulture);

    /// <summary>The bucket of a text of <paramref name="codePoints"/> Unicode code points.</summary>
    public static string LengthBucket(int codePoints)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(codePoints);
        int bucket = 0;
        while (bucket < LengthBucketStarts.Count && codePoints >= LengthBucketStarts[bucket])
        {
            bucket++;
        }

        return LengthBuckets[bucket];
    }

    /// <summary>The bucket of <paramref name="text"/> by its code points (a surrogate pair counts once; a lone surrogate counts once).</summary>
    public static string LengthBucket(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int count = 0;
        foreach (Rune _ in text.EnumerateRunes())
        {
            count++;
        }

        return LengthBucket(count);
    }

    /// <summary>The length bucket of a text sample: its source for conditional models, else the text.</summary>
    public static string TextLengthBucket(string text, string? source, bool conditional) =>
        LengthBucket(conditional ? source ?? "" : text);

    /// <summary>The catalog slice: the label when it is not blank, else the CloudEvent source.</summary>
    public static string Catalog(string? label, string source) =>
        CatalogPrefix + (string.IsNullOrWhiteSpace(label) ? source : label.Trim());

    private static string[] BuildLengthBuckets()
    {
        int[] starts = [0, .. LengthBucketStarts];
        var names = new string[starts.Length];
        for (int i = 0; i < starts.Length; i++)
        {
            names[i] = i + 1 < starts.Length
                ? string.Create(CultureInfo.InvariantCulture, $"{LengthPrefix}{starts[i]}-{starts[i + 1] - 1}")
                : string.Create(CultureInfo.InvariantCulture, $"{LengthPrefix}{starts[i]}+");
        }

        return names;
    }
}
