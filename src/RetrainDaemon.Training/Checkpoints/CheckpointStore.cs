using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using RetrainDaemon.Core.IO;

namespace RetrainDaemon.Training.Checkpoints;

/// <summary>One file of a checkpoint, as recorded in its manifest.</summary>
public sealed record CheckpointFile(string Name, long Bytes, string Sha256);

/// <summary>Written last: a checkpoint is valid exactly when its manifest verifies.</summary>
public sealed record CheckpointManifest(int Format, long Step, DateTimeOffset CreatedAt, IReadOnlyList<CheckpointFile> Files);

/// <summary>A verified checkpoint on disk.</summary>
public sealed record Checkpoint(string Directory, CheckpointManifest Manifest)
{
    public long Step => Manifest.Step;

    public Stream Open(string part) => File.OpenRead(Path.Combine(Directory, part));
}

/// <summary>
/// Checkpoints as directories <c>&lt;root&gt;/&lt;step:D10&gt;/</c>. Saving writes every part into a temp
/// directory (each file fsynced), then <c>manifest.json</c> last (with size and SHA-256 of every part),
/// fsyncs the temp directory, renames it into place and fsyncs the root — so a crash at any instant
/// leaves either the old set or the new one, never a half checkpoint that looks whole. Loading takes
/// the newest checkpoint whose manifest verifies; torn or corrupt ones are skipped (and reported).
/// Older checkpoints beyond the last <c>keep</c> are deleted only after the new one is durable.
/// Not thread-safe: one writer (the training run) per root.
/// </summary>
public sealed class CheckpointStore
{
    public const string ManifestName = "manifest.json";
    private const string TempPrefix = ".tmp-";
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    private readonly string root;
    private readonly int keep;

    public CheckpointStore(string root, int keep = 3)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(keep, 1);
        this.root = Path.GetFullPath(root);
        this.keep = keep;
        System.IO.Directory.CreateDirectory(this.root);
    }

    public string Root => root;

    /// <summary>Saves <paramref name="parts"/> (file name → writer) as the checkpoint of <paramref name="step"/>.</summary>
    public Checkpoint Save(long step, IReadOnlyDictionary<string, Action<Stream>> parts)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        if (parts.Keys.Any(name => name == ManifestName || name.Contains('/', StringComparison.Ordinal) || name.StartsWith('.')))
        {
            throw new ArgumentException($"checkpoint part names must be plain file names other than {ManifestName}");
        }

        string final = Path.Combine(root, step.ToString("D10", CultureInfo.InvariantCulture));
        if (System.IO.Directory.Exists(final))
        {
            throw new InvalidOperationException($"a checkpoint for step {step} already exists at {final}");
        }

        string temp = Path.Combine(root, $"{TempPrefix}{step}-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(temp);
        try
        {
            var files = new List<CheckpointFile>();
            foreach (var (name, write) in parts.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                string path = Path.Combine(temp, name);
                DurableFiles.WriteNewFile(path, write);
                files.Add(new CheckpointFile(name, new FileInfo(path).Length, HashFile(path)));
            }

            var manifest = new CheckpointManifest(1, step, DateTimeOffset.UtcNow, files);
            DurableFiles.WriteNewFile(Path.Combine(temp, ManifestName), s => JsonSerializer.Serialize(s, manifest, Json));
            DurableFiles.SyncDirectory(temp);
            System.IO.Directory.Move(temp, final);
            DurableFiles.SyncDirectory(root);
            Prune();
            return new Checkpoint(final, manifest);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>The newest checkpoint that verifies, or null; <paramref name="rejected"/> lists what was skipped and why.</summary>
    public Checkpoint? LoadLatest(List<string>? rejected = null)
    {
        foreach (var directory in StepDirectories().OrderByDescending(d => d.Step))
        {
            if (Verify(directory.Path, out var manifest, out var problem))
            {
                return new Checkpoint(directory.Path, manifest!);
            }

            rejected?.Add($"{directory.Path}: {problem}");
        }

        return null;
    }

    /// <summary>Removes temp directories a crash left behind; returns how many.</summary>
    public int RemoveOrphans()
    {
        int removed = 0;
        foreach (var temp in System.IO.Directory.EnumerateDirectories(root, TempPrefix + "*"))
        {
            TryDelete(temp);
            removed++;
        }

        return removed;
    }

    public static bool Verify(string directory, out CheckpointManifest? manifest, out string? problem)
    {
        manifest = null;
        string manifestPath = Path.Combine(directory, ManifestName);
        if (!File.Exists(manifestPath))
        {
            problem = "no manifest (torn write)";
            return false;
        }

        try
        {
            using var stream = File.OpenRead(manifestPath);
            manifest = JsonSerializer.Deserialize<CheckpointManifest>(stream);
        }
        catch (JsonException ex)
        {
            problem = $"unreadable manifest: {ex.Message}";
            return false;
        }

        if (manifest is null || manifest.Files is null)
        {
            problem = "empty manifest";
            return false;
        }

        foreach (var file in manifest.Files)
        {
            string path = Path.Combine(directory, file.Name);
            if (!File.Exists(path))
            {
                problem = $"{file.Name} is missing";
                return false;
            }

            long bytes = new FileInfo(path).Length;
            if (bytes != file.Bytes)
            {
                problem = $"{file.Name} has {bytes} bytes, the manifest says {file.Bytes}";
                return false;
            }

            if (!string.Equals(HashFile(path), file.Sha256, StringComparison.Ordinal))
            {
                problem = $"{file.Name} does not match its SHA-256";
                return false;
            }
        }

        problem = null;
        return true;
    }

    private IEnumerable<(string Path, long Step)> StepDirectories()
    {
        foreach (var directory in System.IO.Directory.EnumerateDirectories(root))
        {
            if (long.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out long step))
            {
                yield return (directory, step);
            }
        }
    }

    private void Prune()
    {
        var valid = StepDirectories().OrderByDescending(d => d.Step).ToList();
        foreach (var old in valid.Skip(keep))
        {
            TryDelete(old.Path);
        }
    }

    private static string HashFile(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private static void TryDelete(string directory)
    {
        try
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
