using Prometheus;
using TorchSharp;
using static TorchSharp.torch;

namespace RetrainDaemon.Training.Runtime;

/// <summary>
/// Where tensors live and how many threads libtorch uses. CUDA when the loaded libtorch can use a
/// GPU, CPU otherwise; the choice is returned so callers log it and export it as a metric label.
/// libtorch's default thread count is the core count and is not clamped (PLATFORM.md): on 2 cores
/// shared with the broker and serving, the count is set explicitly.
/// </summary>
public static class TorchRuntime
{
    private static readonly Gauge TrainingDevice = Metrics.CreateGauge(
        "retrain_training_device", "1 for the device TorchSharp trains on (cpu or cuda).", new GaugeConfiguration { LabelNames = ["device"] });

    public static Device SelectDevice(bool allowCuda = true)
    {
        var device = allowCuda && cuda.is_available() ? CUDA : CPU;
        TrainingDevice.WithLabels(device.type == DeviceType.CUDA ? "cuda" : "cpu").Set(1);
        return device;
    }

    /// <summary>
    /// Sets libtorch's intra-op threads; safe to call again. The inter-op pool is left alone on purpose:
    /// libtorch aborts the whole process (c10::Error inside terminate) when set_num_interop_threads is
    /// called a second time or after any parallel work — CI caught exactly that.
    /// </summary>
    public static void SetThreads(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        set_num_threads(threads);
    }
}
