using static TorchSharp.torch;

namespace RetrainDaemon.Training.Trainers;

/// <summary>
/// Runs <c>optimizer.step()</c> right after a gen-0 collection. TorchSharp 0.107's Adam/AdamW pass
/// scalars converted implicitly from doubles straight into native calls
/// (<c>param.addcdiv_(…, value: -step_size)</c>) without keeping the managed <c>Scalar</c> alive; a
/// garbage collection during that call can finalize it and free the native scalar in use. CI saw it
/// as an intermittent "Expected false to be true … toFloat at c10/core/Scalar.h" (a freed scalar's
/// tag). Starting the step with an empty gen-0 budget makes a collection inside it (which needs the
/// step's few kilobytes of wrappers to exhaust the budget) practically impossible. A no-GC region was
/// tried first and made the process RSS grow steadily (the flat-memory test caught it).
/// This narrows the race; it does not close it — the real fix is in TorchSharp (dotnet/TorchSharp#1434,
/// #1496) or an optimizer of our own that keeps its scalars alive.
/// </summary>
public static class OptimizerStep
{
    public static void Run(optim.Optimizer optimizer)
    {
        GC.Collect(0, GCCollectionMode.Forced, blocking: true);
        optimizer.step();
    }
}
