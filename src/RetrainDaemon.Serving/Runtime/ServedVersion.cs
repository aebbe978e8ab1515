using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Serving.Generation.Text;

namespace RetrainDaemon.Serving.Runtime;

/// <summary>
/// One loaded, warmed registry version: its ONNX Runtime session (Run is thread-safe) and what the
/// manifest says about it. Requests hold a <see cref="Lease"/> while they run; a version swapped
/// out is <see cref="Retire">retired</see> and its session disposed when the last lease ends, so
/// in-flight requests always finish on the session they started on.
/// </summary>
public sealed class ServedVersion
{
    // Leases held plus one for "still current"; the session is disposed when it reaches zero.
    private int references = 1;
    private int retired;
    private int released;

    public ServedVersion(string model, int version, InferenceSession session, string provider, VersionManifest manifest, string manifestSha256, TimeSpan loadTime, TimeSpan warmupTime)
    {
        Model = model;
        Version = version;
        Session = session;
        Provider = provider;
        Manifest = manifest;
        ManifestSha256 = manifestSha256;
        LoadTime = loadTime;
        WarmupTime = warmupTime;
        LoadedAt = DateTimeOffset.UtcNow;
    }

    public string Model { get; }

    public int Version { get; }

    public InferenceSession Session { get; }

    /// <summary>The execution provider the session runs on: <c>CUDAExecutionProvider</c> or <c>CPUExecutionProvider</c>.</summary>
    public string Provider { get; }

    public VersionManifest Manifest { get; }

    public string ManifestSha256 { get; }

    /// <summary>Version number and manifest hash: a re-published number with other content is another identity.</summary>
    public string Identity => $"{Version}:{ManifestSha256}";

    public TimeSpan LoadTime { get; }

    public TimeSpan WarmupTime { get; }

    public DateTimeOffset LoadedAt { get; }

    /// <summary>
    /// For a text (<c>gpt</c>) version: its decode loop, which also describes the model (task, shape,
    /// vocabulary); null for other models. Requests hand their lease to it for the whole generation.
    /// </summary>
    internal TextEngine? Text { get; init; }

    public bool IsRetired => Volatile.Read(ref retired) == 1;

    /// <summary>True once the last reference went and the session was disposed (tests check that retired versions do not leak).</summary>
    internal bool IsReleased => Volatile.Read(ref released) == 1;

    /// <summary>Takes a lease unless the version has already been fully released.</summary>
    public bool TryAcquire(out Lease lease)
    {
        int current = Volatile.Read(ref references);
        while (current > 0)
        {
            int seen = Interlocked.CompareExchange(ref references, current + 1, current);
            if (seen == current)
            {
                lease = new Lease(this);
                return true;
            }

            current = seen;
        }

        lease = default;
        return false;
    }

    /// <summary>Called once when the version stops being current; the session goes when the last lease ends.</summary>
    public void Retire()
    {
        if (Interlocked.Exchange(ref retired, 1) == 0)
        {
            Release();
        }
    }

    internal void Release()
    {
        if (Interlocked.Decrement(ref references) == 0)
        {
            Volatile.Write(ref released, 1);
            // No lease is left, so no generation is running; the idle decode loop ends.
            Text?.Dispose();
            Session.Dispose();
            NativeHeap.TrimSoon();
        }
    }
}

/// <summary>A request's hold on a <see cref="ServedVersion"/>; dispose it when the request is done.</summary>
public readonly struct Lease : IDisposable
{
    internal Lease(ServedVersion version) => Version = version;

    public ServedVersion? Version { get; }

    public void Dispose() => Version?.Release();
}
