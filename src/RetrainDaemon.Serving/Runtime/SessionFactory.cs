using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Options;

namespace RetrainDaemon.Serving.Runtime;

/// <summary>A new ONNX Runtime session and the execution provider it actually runs on. The caller owns (disposes) the session.</summary>
public sealed record LoadedSession(InferenceSession Session, string Provider);

/// <summary>
/// Builds ONNX Runtime sessions for served versions with the options of section <c>Serving</c>:
/// intra-op threads, one inter-op thread (a generator graph is a chain; parallel branches buy
/// nothing on 2 cores), the CPU arena and the graph-optimization level. With
/// <see cref="ServingOptions.UseCuda"/> it appends the CUDA execution provider and falls back to CPU
/// when that fails — which is the only reliable test: <c>GetAvailableProviders()</c> lists CUDA on
/// machines without a GPU (PLATFORM.md). The GPU package without CUDA 13/cuDNN 9 throws
/// <see cref="OnnxRuntimeException"/> when the provider is appended; the CPU package has no CUDA
/// entry point (<see cref="EntryPointNotFoundException"/>). The first failure is remembered, so
/// later loads go straight to CPU. Thread-safe.
/// </summary>
public sealed partial class SessionFactory
{
    /// <summary>The provider name ONNX Runtime uses for CUDA.</summary>
    public const string CudaProvider = "CUDAExecutionProvider";

    /// <summary>The provider name ONNX Runtime uses for the default CPU provider.</summary>
    public const string CpuProvider = "CPUExecutionProvider";

    private readonly ServingOptions options;
    private readonly ILogger logger;

    // Why CUDA cannot be used on this host (null until a failure has been seen).
    private volatile string? cudaProblem;

    /// <summary>A factory with the given serving options.</summary>
    public SessionFactory(ServingOptions options, ILogger<SessionFactory>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.options = options;
        this.logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>Why the CUDA provider could not be used, once an attempt has failed; null otherwise.</summary>
    public string? CudaProblem => cudaProblem;

    /// <summary>
    /// A session over <paramref name="model"/>, the exact bytes that were verified (no second read
    /// from disk between the hash check and the load). Not for models with external data: ONNX
    /// Runtime would resolve their relative locations against the working directory; use
    /// <see cref="CreateFromFile"/> for those.
    /// </summary>
    /// <exception cref="OnnxRuntimeException">The model cannot be loaded (malformed graph, type errors, unsupported operators).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled while loading.</exception>
    public LoadedSession Create(byte[] model, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Build(o => new InferenceSession(model, o), cancellationToken);
    }

    /// <summary>A session over the file at <paramref name="path"/> (external data resolved next to it).</summary>
    /// <exception cref="OnnxRuntimeException">The model cannot be loaded.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled while loading.</exception>
    public LoadedSession CreateFromFile(string path, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return Build(o => new InferenceSession(path, o), cancellationToken);
    }

    /// <summary>The configured graph-optimization level (validated names: disable, basic, extended, all).</summary>
    public static GraphOptimizationLevel OptimizationLevel(string name) => name.ToLowerInvariant() switch
    {
        "disable" => GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic" => GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended" => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all" => GraphOptimizationLevel.ORT_ENABLE_ALL,
        _ => throw new ArgumentException($"unknown graph optimization '{name}' (expected disable, basic, extended or all)", nameof(name)),
    };

    private LoadedSession Build(Func<SessionOptions, InferenceSession> open, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        OnnxRuntimeException? cudaSessionError = null;
        if (options.UseCuda && cudaProblem is null)
        {
            var cuda = TryCudaOptions();
            if (cuda is not null)
            {
                try
                {
                    return new LoadedSession(Open(open, cuda, cancellationToken), CudaProvider);
                }
                catch (OnnxRuntimeException ex) when (!cancellationToken.IsCancellationRequested)
                {
                    // The provider appended but the session could not be created with it: a driver without
                    // a device, an exhausted GPU — or a broken model. The CPU attempt below tells which.
                    cudaSessionError = ex;
                }
                finally
                {
                    cuda.Dispose();
                }
            }
        }

        using var cpu = CpuOptions();
        var session = Open(open, cpu, cancellationToken); // a broken model fails here too, with its own error
        if (cudaSessionError is not null)
        {
            // The model is fine on CPU, so CUDA was the problem: later loads go straight to CPU.
            RememberCudaFailure($"a session could not be created with it: {cudaSessionError.Message}");
        }

        return new LoadedSession(session, CpuProvider);
    }

    private static InferenceSession Open(Func<SessionOptions, InferenceSession> open, SessionOptions sessionOptions, CancellationToken cancellationToken)
    {
        // ORT checks this flag while it loads and optimizes the graph: a stop during a long load
        // does not wait for it to finish. The registration is disposed before the options are.
        using var registration = cancellationToken.Register(static o => ((SessionOptions)o!).SetLoadCancellationFlag(true), sessionOptions);
        try
        {
            return open(sessionOptions);
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("the session load was cancelled", cancellationToken);
        }
    }

    /// <summary>Options with CUDA appended, or null (with the reason remembered) when this host cannot run it.</summary>
    private SessionOptions? TryCudaOptions()
    {
        var cuda = CpuOptions();
        try
        {
            cuda.AppendExecutionProvider_CUDA(0);
            return cuda;
        }
        catch (Exception ex) when (ex is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
        {
            // OnnxRuntimeException: GPU package, CUDA/cuDNN libraries absent. EntryPointNotFoundException:
            // CPU package. DllNotFoundException: a provider library removed from the output. The options
            // may be half-configured after a failed append, so they are thrown away, not reused.
            cuda.Dispose();
            RememberCudaFailure(ex.Message);
            return null;
        }
    }

    private SessionOptions CpuOptions() => new()
    {
        IntraOpNumThreads = options.IntraOpThreads,
        InterOpNumThreads = 1,
        EnableCpuMemArena = options.CpuArena,
        GraphOptimizationLevel = OptimizationLevel(options.GraphOptimization),
        ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
    };

    private void RememberCudaFailure(string message)
    {
        string reason = FirstLine(message);
        if (Interlocked.CompareExchange(ref cudaProblem, reason, null) is null)
        {
            LogCudaUnavailable(logger, reason);
        }
    }

    private static string FirstLine(string message)
    {
        int newline = message.IndexOfAny(['\r', '\n']);
        return newline < 0 ? message : message[..newline];
    }

    [LoggerMessage(EventId = 610, Level = LogLevel.Warning, Message = "The CUDA execution provider cannot be used on this host ({Reason}); sessions run on CPUExecutionProvider")]
    private static partial void LogCudaUnavailable(ILogger logger, string reason);
}
