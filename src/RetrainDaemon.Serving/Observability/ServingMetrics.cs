using Prometheus;

namespace RetrainDaemon.Serving.Observability;

/// <summary>
/// Serving metrics with Triton-like semantics and Prometheus naming. Labels are bounded: model and
/// version come from the registry, route from the fixed route table, result is ok/error, reason one
/// of a fixed set (<c>bad_request</c>, <c>unauthorized</c>, <c>forbidden</c>, <c>not_found</c>,
/// <c>not_ready</c>, <c>queue_full</c>, <c>timeout</c>, <c>too_large</c>, <c>internal</c>); keys never appear.
/// </summary>
public sealed class ServingMetrics
{
    private static readonly double[] LatencyBuckets = Histogram.ExponentialBuckets(0.0002, 2, 16); // 0.2 ms … 6.5 s

    public Counter Requests { get; } = Metrics.CreateCounter("retrain_serving_requests_total", "Inference requests by model, version, route, result and failure reason.",
        new CounterConfiguration { LabelNames = ["model", "version", "route", "result", "reason"] });

    public Histogram QueueSeconds { get; } = Metrics.CreateHistogram("retrain_serving_queue_seconds", "Time a generation request waited for its batch.",
        new HistogramConfiguration { LabelNames = ["model"], Buckets = LatencyBuckets });

    public Histogram ComputeSeconds { get; } = Metrics.CreateHistogram("retrain_serving_compute_seconds", "ONNX Runtime run time per batch.",
        new HistogramConfiguration { LabelNames = ["model", "version"], Buckets = LatencyBuckets });

    public Histogram RequestSeconds { get; } = Metrics.CreateHistogram("retrain_serving_request_seconds", "Whole request time (queue + compute + encoding).",
        new HistogramConfiguration { LabelNames = ["model", "route"], Buckets = LatencyBuckets });

    public Histogram BatchSize { get; } = Metrics.CreateHistogram("retrain_serving_batch_size", "Samples per ONNX Runtime run.",
        new HistogramConfiguration { LabelNames = ["model"], Buckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] });

    public Gauge Pending { get; } = Metrics.CreateGauge("retrain_serving_pending_requests", "Requests admitted and not yet answered.",
        new GaugeConfiguration { LabelNames = ["model"] });

    public Gauge LoadedVersion { get; } = Metrics.CreateGauge("retrain_serving_loaded_version", "The version serving (value = version number; 0 when none).",
        new GaugeConfiguration { LabelNames = ["model", "provider"] });

    public Gauge Ready { get; } = Metrics.CreateGauge("retrain_serving_model_ready", "1 when a verified, warmed version serves.",
        new GaugeConfiguration { LabelNames = ["model"] });

    public Counter Swaps { get; } = Metrics.CreateCounter("retrain_serving_swaps_total", "Versions swapped in.",
        new CounterConfiguration { LabelNames = ["model"] });

    public Counter SwapFailures { get; } = Metrics.CreateCounter("retrain_serving_swap_failures_total", "Versions refused by verification, loading or warm-up.",
        new CounterConfiguration { LabelNames = ["model", "stage"] });

    public Gauge ExecutionProvider { get; } = Metrics.CreateGauge("retrain_serving_execution_provider", "1 for the execution provider the model's session runs on.",
        new GaugeConfiguration { LabelNames = ["model", "provider"] });
}
