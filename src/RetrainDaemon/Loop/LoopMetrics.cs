using Prometheus;

namespace RetrainDaemon.Loop;

/// <summary>Metrics of the continuous loop, labelled by model (and outcome or stage, from fixed sets).</summary>
public sealed class LoopMetrics
{
    public Counter Runs { get; } = Metrics.CreateCounter("retrain_finetune_runs_total", "Fine-tune runs finished, by model and status (promoted, rejected, failed, skipped).",
        new CounterConfiguration { LabelNames = ["model", "status"] });

    public Gauge InProgress { get; } = Metrics.CreateGauge("retrain_finetune_in_progress", "1 while a fine-tune of the model runs.",
        new GaugeConfiguration { LabelNames = ["model"] });

    public Gauge LastPromotion { get; } = Metrics.CreateGauge("retrain_finetune_last_promotion_timestamp_seconds", "Unix time of the model's last fine-tune that promoted a new champion.",
        new GaugeConfiguration { LabelNames = ["model"] });

    public Gauge LastFinished { get; } = Metrics.CreateGauge("retrain_finetune_last_finished_timestamp_seconds", "Unix time the model's last fine-tune finished (any status).",
        new GaugeConfiguration { LabelNames = ["model"] });

    public Counter Rollbacks { get; } = Metrics.CreateCounter("retrain_rollbacks_total", "Automatic rollbacks of a champion to the previous version.",
        new CounterConfiguration { LabelNames = ["model"] });

    public Counter Triggered { get; } = Metrics.CreateCounter("retrain_triggers_fired_total", "Fine-tunes started by the trigger policy, by model and reason kind.",
        new CounterConfiguration { LabelNames = ["model", "reason"] });

    public Counter Analyses { get; } = Metrics.CreateCounter("retrain_analysis_runs_total", "Error analyses finished, by model and status (completed, failed, skipped).",
        new CounterConfiguration { LabelNames = ["model", "status"] });

    public Gauge Drift { get; } = Metrics.CreateGauge("retrain_data_drift", "The latest drift score of fresh data against the champion's training window.",
        new GaugeConfiguration { LabelNames = ["model"] });

    public Gauge ConsecutiveRejections { get; } = Metrics.CreateGauge("retrain_finetune_consecutive_rejections", "Fine-tunes of the model rejected by the gate in a row (0 after a promotion).",
        new GaugeConfiguration { LabelNames = ["model"] });

    public Counter StageFailures { get; } = Metrics.CreateCounter("retrain_finetune_stage_failures_total", "Fine-tune stages that failed, by model and stage (stage export: an export or its parity check failed).",
        new CounterConfiguration { LabelNames = ["model", "stage"] });

    public Counter ParityFailures { get; } = Metrics.CreateCounter("retrain_export_parity_failures_total", "Exports refused because ONNX Runtime and TorchSharp disagreed beyond the tolerance.",
        new CounterConfiguration { LabelNames = ["model"] });

    public Gauge StalenessBound { get; } = Metrics.CreateGauge("retrain_finetune_staleness_bound_seconds", "The model's configured Triggers:MaxStaleness (absent when unset): alert when the last promotion is older.",
        new GaugeConfiguration { LabelNames = ["model"] });

    /// <summary>
    /// Creates every model's series at zero (prometheus-net exports a labelled series only once it is used):
    /// <c>increase()</c> in an alert misses the first failure of a counter that appears with value 1, and a
    /// never-promoted model shows last promotion 0. Values already set (the ledger's last promotion) stay.
    /// </summary>
    public Gauge ChampionVersion { get; } = Metrics.CreateGauge("retrain_champion_version", "The model's champion version in the registry (NaN: none yet).",
        new GaugeConfiguration { LabelNames = ["model"] });

    public Gauge ChampionMetric { get; } = Metrics.CreateGauge("retrain_champion_metric", "The champion's gate metrics as its manifest records them (FID, IS, BLEU, …; whole set, no slice); NaN until a champion has the metric. Plotted over time, the values over versions.",
        new GaugeConfiguration { LabelNames = ["model", "metric"] });

    /// <summary>
    /// Shows the model's champion and its recorded metrics (at start, after a promotion or a rollback): NaN for
    /// the gate's metrics while there is none, so dashboards and alerts always find the series.
    /// </summary>
    public void ShowChampion(Core.Registry.ModelRegistry registry, string model, Core.Options.ModelOptions options)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(options);
        var champion = registry.ResolveServable(model).Verified;
        ChampionVersion.WithLabels(model).Set(champion?.Version ?? double.NaN);
        var recorded = champion?.Manifest.Metrics.Where(m => m.Slice is null).ToDictionary(m => m.Metric, m => m.Value, StringComparer.Ordinal)
            ?? new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (string metric in options.Gate.Checks.Select(c => c.Metric).Concat(recorded.Keys).Distinct(StringComparer.Ordinal))
        {
            ChampionMetric.WithLabels(model, metric).Set(recorded.TryGetValue(metric, out double value) ? value : double.NaN);
        }
    }

    public void Initialize(IEnumerable<string> models)
    {
        ArgumentNullException.ThrowIfNull(models);
        foreach (string model in models)
        {
            foreach (string status in (string[])[Data.Store.RunStatuses.Promoted, Data.Store.RunStatuses.Rejected, Data.Store.RunStatuses.Failed, Data.Store.RunStatuses.Skipped])
            {
                Runs.WithLabels(model, status);
            }

            foreach (string status in (string[])[Data.Store.RunStatuses.Completed, Data.Store.RunStatuses.Failed, Data.Store.RunStatuses.Skipped])
            {
                Analyses.WithLabels(model, status);
            }

            foreach (string stage in (string[])[RunStages.Snapshot, RunStages.Tune, RunStages.Train, RunStages.Export, RunStages.Evaluate, RunStages.Publish, RunStages.Announce])
            {
                StageFailures.WithLabels(model, stage);
            }

            InProgress.WithLabels(model);
            LastPromotion.WithLabels(model);
            ConsecutiveRejections.WithLabels(model);
            ParityFailures.WithLabels(model);
            Rollbacks.WithLabels(model);
        }
    }

    public IDisposable Running(string model)
    {
        var gauge = InProgress.WithLabels(model);
        gauge.Set(1);
        return new Reset(gauge);
    }

    public void Finished(string model, string status, DateTimeOffset at)
    {
        Runs.WithLabels(model, status).Inc();
        LastFinished.WithLabels(model).Set(at.ToUnixTimeMilliseconds() / 1000.0);
        if (status == Data.Store.RunStatuses.Promoted)
        {
            LastPromotion.WithLabels(model).Set(at.ToUnixTimeMilliseconds() / 1000.0);
            ConsecutiveRejections.WithLabels(model).Set(0);
        }
        else if (status == Data.Store.RunStatuses.Rejected)
        {
            ConsecutiveRejections.WithLabels(model).Inc();
        }
    }

    private sealed class Reset(Gauge.Child gauge) : IDisposable
    {
        public void Dispose() => gauge.Set(0);
    }
}
