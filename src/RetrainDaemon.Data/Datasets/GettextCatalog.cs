using System.Buffers.Binary;
using System.Text;

namespace RetrainDaemon.Data.Datasets;

/// <summary>One translated message: English source, translation, and where it came from.</summary>
public sealed record TranslationPair(string Catalog, int Index, string? Context, string Source, string Target);

/// <summary>
/// Reads GNU gettext <c>.mo</c> catalogs (the binary table documented in the gettext manual,
/// "The Format of GNU MO Files"): magic 0x950412de in either byte order, then the number of
/// strings N, the offset of the original-string table and of the translation table, each a list of
/// (length, offset) pairs. The header entry (empty msgid) is skipped; for plural entries the
/// singular forms are used; a <c>msgctxt</c> (before an EOT byte) is split off.
/// </summary>
public static class GettextCatalog
{
    public const string DefaultLocaleDirectory = "/usr/share/locale";

    /// <summary>All catalogs of <paramref name="language"/>, in file-name order.</summary>
    public static IEnumerable<TranslationPair> ReadLanguage(string language, string localeDirectory = DefaultLocaleDirectory)
    {
        var directory = Path.Combine(localeDirectory, language, "LC_MESSAGES");
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"no gettext catalogs for '{language}' in '{directory}'");
        }

        foreach (var file in Directory.EnumerateFiles(directory, "*.mo").Order(StringComparer.Ordinal))
        {
            IReadOnlyList<TranslationPair> pairs;
            try
            {
                pairs = Read(file);
            }
            catch (InvalidDataException)
            {
                continue; // a damaged catalog on the system is not our data; skip it
            }

            foreach (var pair in pairs)
            {
                yield return pair;
            }
        }
    }

    public static IReadOnlyList<TranslationPair> Read(string path)
    {
        byte[] data = File.ReadAllBytes(path);
        string catalog = Path.GetFileNameWithoutExtension(path);
        if (data.Length < 28)
        {
            throw new InvalidDataException($"'{path}' is too short to be a .mo file");
        }

        bool bigEndian = BinaryPrimitives.ReadUInt32LittleEndian(data) switch
        {
            0x950412de => false,
            0xde120495 => true,
            _ => throw new InvalidDataException($"'{path}' is not a .mo file (bad magic)"),
        };

        uint U32(int offset)
        {
            if (offset < 0 || offset + 4 > data.Length)
            {
                throw new InvalidDataException($"'{path}' is truncated at offset {offset}");
            }

            return bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(offset)) : BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(offset));
        }

        string Str(int table, int i)
        {
            long length = U32(table + i * 8);
            long offset = U32(table + i * 8 + 4);
            if (offset + length > data.Length)
            {
                throw new InvalidDataException($"'{path}' string {i} runs past the end of the file");
            }

            return Encoding.UTF8.GetString(data, (int)offset, (int)length);
        }

        int count = checked((int)U32(8));
        int originals = checked((int)U32(12));
        int translations = checked((int)U32(16));
        var pairs = new List<TranslationPair>(count);
        for (int i = 0; i < count; i++)
        {
            string original = Str(originals, i);
            if (original.Length == 0)
            {
                continue; // the header entry
            }

            string translation = Str(translations, i);
            string? context = null;
            int eot = original.IndexOf('\u0004', StringComparison.Ordinal);
            if (eot >= 0)
            {
                context = original[..eot];
                original = original[(eot + 1)..];
            }

            // Plural entries hold "singular\0plural"; the translations hold one form per \0.
            original = FirstForm(original);
            translation = FirstForm(translation);
            if (translation.Length == 0 || original.Length == 0)
            {
                continue;
            }

            pairs.Add(new TranslationPair(catalog, i, context, original, translation));
        }

        return pairs;
    }

    private static string FirstForm(string s)
    {
        int nul = s.IndexOf('\0', StringComparison.Ordinal);
        return nul < 0 ? s : s[..nul];
    }
}
