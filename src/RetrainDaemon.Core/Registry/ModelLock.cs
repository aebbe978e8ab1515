using System.Diagnostics;

namespace RetrainDaemon.Core.Registry;

/// <summary>
/// The per-model writer lock: <c>&lt;model&gt;/.lock</c> held open with <see cref="FileShare.None"/>.
/// On Linux .NET implements that with <c>flock(LOCK_EX | LOCK_NB)</c> on the open file description,
/// so it excludes other processes and other opens in this process alike, and the kernel drops it
/// when the holder dies — a SIGKILLed publisher never leaves the model locked. (The environment
/// switch <c>DOTNET_SYSTEM_IO_DISABLEFILELOCKING</c> would turn this off; the no-replace rename of
/// version folders stays as the last line of defence.) The file itself is never deleted: deleting a
/// lock file lets a second writer lock a new inode while the first still holds the old one.
/// </summary>
internal sealed class ModelLock : IDisposable
{
    private readonly FileStream stream;

    private ModelLock(FileStream stream) => this.stream = stream;

    public static ModelLock Acquire(string modelDirectory, TimeSpan timeout)
    {
        string path = Path.Combine(modelDirectory, RegistryLayout.LockName);
        var watch = Stopwatch.StartNew();
        int delayMs = 1;
        while (true)
        {
            try
            {
                return new ModelLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None));
            }
            catch (IOException) when (watch.Elapsed < timeout && File.Exists(path))
            {
                // Held by another writer: poll (1 ms doubling to 8 ms, with jitter so two waiters do not
                // keep colliding). flock has no queue, so a short interval is what keeps a waiter from
                // being starved by a writer that publishes back to back.
                Thread.Sleep(delayMs + Random.Shared.Next(delayMs));
                delayMs = Math.Min(delayMs * 2, 8);
            }
            catch (IOException ex) when (watch.Elapsed >= timeout)
            {
                throw new RegistryException($"could not lock {path} within {timeout.TotalSeconds:0.#} s: another process is writing this model ({ex.Message})", ex);
            }
        }
    }

    public void Dispose() => stream.Dispose();
}
