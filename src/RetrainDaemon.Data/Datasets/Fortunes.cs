using System.Text;

namespace RetrainDaemon.Data.Datasets;

/// <summary>One fortune cookie: which file it came from, its index there, and its text as written.</summary>
public sealed record Fortune(string File, int Index, string Text);

/// <summary>
/// Reads Debian's <c>fortunes</c> databases: text files whose records are separated by a line
/// holding only <c>%</c>. The <c>.dat</c> index files and <c>.u8</c> links are skipped.
/// Text is returned raw (overstrikes included); normalization is the ingest's job.
/// </summary>
public static class Fortunes
{
    public const string DefaultDirectory = "/usr/share/games/fortunes";

    public static IEnumerable<Fortune> Read(string directory = DefaultDirectory)
    {
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"fortunes directory '{directory}' not found; install it with: apt-get install fortunes fortunes-min");
        }

        var files = Directory.EnumerateFiles(directory)
            .Where(f => !f.EndsWith(".dat", StringComparison.Ordinal) && !f.EndsWith(".u8", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal);
        foreach (var file in files)
        {
            int index = 0;
            var record = new StringBuilder();
            foreach (var line in File.ReadLines(file, Encoding.UTF8))
            {
                if (line == "%")
                {
                    if (record.Length > 0)
                    {
                        yield return new Fortune(Path.GetFileName(file), index++, record.ToString());
                        record.Clear();
                    }

                    continue;
                }

                record.Append(line).Append('\n');
            }

            if (record.ToString().Trim().Length > 0)
            {
                yield return new Fortune(Path.GetFileName(file), index, record.ToString());
            }
        }
    }
}
