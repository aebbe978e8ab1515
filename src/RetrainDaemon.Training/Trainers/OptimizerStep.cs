using System.Runtime;
using static TorchSharp.torch;

namespace RetrainDaemon.Training.Trainers;

/// <summary>
/// Runs <c>optimizer.step()</c> inside a no-GC region. TorchSharp 0.107's Adam/AdamW pass scalars
/// converted implicitly from doubles straight into native calls (<c>param.addcdiv_(…, value: -step_size)</c>)
/// without keeping the managed <c>Scalar</c> alive; a garbage collection during that call can finalize
/// it and free the native scalar in use. We saw it as an intermittent
/// "Expected false to be true … toFloat at c10/core/Scalar.h" (a freed scalar's tag no longer valid)
/// in CI. Inside a no-GC region no collection, hence no such finalization, can happen.
/// See dotnet/TorchSharp#1434 and #1496 on implicitly created scalars.
/// </summary>
public static class OptimizerStep
{
    // Managed allocations of one step (tensor and scalar wrappers, state lookups) stay far below this.
    private const long AllocationBudget = 16L * 1024 * 1024;

    public static void Run(optim.Optimizer optimizer)
    {
        bool noGc = false;
        try
        {
            noGc = GCSettings.LatencyMode != GCLatencyMode.NoGCRegion && GC.TryStartNoGCRegion(AllocationBudget);
        }
        catch (InvalidOperationException)
        {
            // Another region is active on this process; step without one.
        }

        try
        {
            optimizer.step();
        }
        finally
        {
            if (noGc && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion)
            {
                GC.EndNoGCRegion();
            }
        }
    }
}
