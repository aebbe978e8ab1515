using Microsoft.ML.OnnxRuntime;

namespace RetrainDaemon.Serving.Generation;

/// <summary>
/// <see cref="InferenceSession.Run(RunOptions, IReadOnlyCollection{string}, IReadOnlyCollection{OrtValue}, IReadOnlyCollection{string})"/>
/// with cancellation: a cancelled token sets <see cref="RunOptions.Terminate"/>, which ONNX Runtime
/// checks between graph nodes, and the run's failure is reported as <see cref="OperationCanceledException"/>.
/// </summary>
internal static class OnnxRunner
{
    /// <summary>Runs the session; the caller disposes the returned values.</summary>
    public static IDisposableReadOnlyCollection<OrtValue> Run(
        InferenceSession session,
        IReadOnlyCollection<string> inputNames,
        IReadOnlyCollection<OrtValue> inputs,
        IReadOnlyCollection<string> outputNames,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(session);
        cancellationToken.ThrowIfCancellationRequested();
        using var runOptions = new RunOptions();
        // Disposed before runOptions (reverse order): Dispose waits for a callback that is running,
        // so Terminate is never set on a released handle.
        using var registration = cancellationToken.Register(static state => ((RunOptions)state!).Terminate = true, runOptions);
        try
        {
            return session.Run(runOptions, inputNames, inputs, outputNames);
        }
        catch (OnnxRuntimeException ex) when (cancellationToken.IsCancellationRequested)
        {
            // "Exiting due to terminate flag being set to true": the run stopped because we asked it to.
            throw new OperationCanceledException("the ONNX Runtime run was terminated", ex, cancellationToken);
        }
    }

    /// <summary>True for ONNX Runtime's "invalid argument" failures (bad shapes or values from the request), which are the client's fault.</summary>
    public static bool IsInvalidArgument(OnnxRuntimeException exception) =>
        exception?.Message.StartsWith("[ErrorCode:InvalidArgument]", StringComparison.Ordinal) == true;
}
