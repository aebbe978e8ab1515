using System.Runtime.InteropServices;

namespace RetrainDaemon.Core.IO;

/// <summary>
/// Crash-safe file writes for every store that must survive a kill or a power cut — registry,
/// checkpoints, exports, the pinned extractor, reference statistics: temp + fsync + rename + fsync
/// of the directory (reliability.md §4). The only native calls are into libc (always present on
/// Linux, no package): .NET has no API to fsync a directory, and
/// <see cref="Directory.Move(string, string)"/> checks for an existing target before it renames,
/// which leaves a window in which two writers could both "win" one registry version number.
/// </summary>
public static class DurableFiles
{
    /// <summary>Prefix of temp siblings; recovery code (registry, checkpoints) removes what a crash strands.</summary>
    public const string TempPrefix = ".tmp-";

    private const int OpenReadOnly = 0;
    private const int OpenDirectory = 0x10000; // O_DIRECTORY on Linux
    private const int AtCurrentDirectory = -100; // AT_FDCWD
    private const uint RenameNoReplace = 1; // RENAME_NOREPLACE
    private const int ErrnoExists = 17; // EEXIST
    private const int ErrnoNotEmpty = 39; // ENOTEMPTY

    /// <summary>Set when the kernel or file system refused renameat2; later renames take the checked fallback.</summary>
    private static volatile bool noRenameAt2;

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static extern int Fsync(int fd);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);

    [DllImport("libc", EntryPoint = "renameat2", SetLastError = true)]
    private static extern int RenameAt2(
        int oldDirectory, [MarshalAs(UnmanagedType.LPUTF8Str)] string oldPath,
        int newDirectory, [MarshalAs(UnmanagedType.LPUTF8Str)] string newPath, uint flags);

    /// <summary>fsyncs a directory, so that the renames and creations inside it survive a power cut.</summary>
    public static void SyncDirectory(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        int fd = Open(path, OpenReadOnly | OpenDirectory);
        if (fd < 0)
        {
            throw new IOException($"cannot open directory '{path}' to fsync it (errno {Marshal.GetLastPInvokeError()})");
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"fsync of directory '{path}' failed (errno {Marshal.GetLastPInvokeError()})");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>Creates <paramref name="path"/> (which must not exist), lets <paramref name="write"/> fill it, and fsyncs it.</summary>
    public static void WriteNewFile(string path, Action<Stream> write)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
        write(stream);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>
    /// Replaces <paramref name="target"/> atomically: readers see the old content or the new, never a
    /// mix. The temp file is a <c>.tmp-</c> sibling, which recovery removes if a crash strands it.
    /// </summary>
    public static void ReplaceFile(string target, Action<Stream> write)
    {
        target = Path.GetFullPath(target);
        string directory = Path.GetDirectoryName(target)!;
        string temp = Path.Combine(directory, $"{TempPrefix}{Path.GetFileName(target)}-{Guid.NewGuid():N}");
        try
        {
            WriteNewFile(temp, write);
            File.Move(temp, target, overwrite: true); // rename(2): atomic on POSIX
        }
        catch
        {
            TryDeleteFile(temp);
            throw;
        }

        SyncDirectory(directory);
    }

    /// <summary>
    /// Renames a directory unless the target exists; false when it does. On Linux this is
    /// <c>renameat2(RENAME_NOREPLACE)</c>, which decides in the kernel; elsewhere (or on file systems
    /// without it) an existence check precedes the move, which the registry's lock makes sufficient.
    /// </summary>
    public static bool TryRenameNoReplace(string source, string target)
    {
        if (OperatingSystem.IsLinux() && !noRenameAt2)
        {
            try
            {
                if (RenameAt2(AtCurrentDirectory, source, AtCurrentDirectory, target, RenameNoReplace) == 0)
                {
                    return true;
                }

                int errno = Marshal.GetLastPInvokeError();
                if (errno is ErrnoExists or ErrnoNotEmpty)
                {
                    return false;
                }

                if (errno is not (22 or 38 or 95)) // EINVAL, ENOSYS, EOPNOTSUPP: no RENAME_NOREPLACE here
                {
                    throw new IOException($"cannot rename '{source}' to '{target}' (errno {errno})");
                }
            }
            catch (EntryPointNotFoundException)
            {
                // A libc without renameat2 (glibc < 2.28, older musl).
            }

            noRenameAt2 = true;
        }

        if (Directory.Exists(target) || File.Exists(target))
        {
            return false;
        }

        try
        {
            Directory.Move(source, target);
            return true;
        }
        catch (IOException) when (Directory.Exists(target))
        {
            return false;
        }
    }

    public static void TryDeleteFile(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    public static void TryDeleteDirectory(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
