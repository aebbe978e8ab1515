using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.Gate;
using RetrainDaemon.Core.Imaging;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Evaluation.Extractors;
using RetrainDaemon.Evaluation.Gating;
using RetrainDaemon.Evaluation.Images;
using RetrainDaemon.Evaluation.Text;
using RetrainDaemon.Export.Exporters;
using RetrainDaemon.Messaging.Events;
using RetrainDaemon.Training.Checkpoints;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Runtime;
using RetrainDaemon.Training.Trainers;

namespace RetrainDaemon.Loop;

/// <summary>How a fine-tune ended.</summary>
/// <param name="Status">A <see cref="RunStatuses"/> value; <see cref="RunStatuses.Running"/> means interrupted (resumed at the next start).</param>
public sealed record FineTuneOutcome(string RunId, string Model, string Status, int? Version, string Detail, IReadOnlyDictionary<string, TimeSpan> Stages);

/// <summary>
/// One fine-tune of one model, stage by stage, every stage in the run ledger: snapshot at a watermark →
/// train (from the champion's checkpoint, or from scratch with the family's init when there is none) →
/// export + parity → candidate and champion scored on their ONNX files by one protocol → gate →
/// registry (passing: new version and champion; failing: rejected candidate) → <c>model.promoted</c> /
/// <c>model.rejected</c>. A run interrupted by SIGTERM leaves a checkpoint and stays "running" in the
/// ledger; <see cref="RunAsync"/> with its id resumes it from that checkpoint on the same snapshot. The
/// registry publish is the one step that changes what is served, and it is atomic: an interruption before
/// it leaves nothing, after it the resumed run finds its version by run id and only finishes the books.
/// </summary>
public sealed partial class FineTuneRunner(
    IOptions<ModelCatalogOptions> catalog,
    IOptions<LoopOptions> loopOptions,
    IOptions<EvaluationOptions> evaluationOptions,
    IOptions<TextEvaluationOptions> textOptions,
    IOptions<TrainingHostOptions> trainingHost,
    ISampleStore store,
    IRunLedger ledger,
    ModelRegistry registry,
    LoopMetrics metrics,
    ILogger<FineTuneRunner> logger,
    ModelEventPublisher? events = null,
    LoopState? state = null,
    TimeProvider? clock = null)
{
    private readonly TimeProvider time = clock ?? TimeProvider.System;

    /// <summary>A new run id: model, UTC start time and a random suffix (sortable, unique, readable).</summary>
    public string NewRunId(string model) =>
        string.Create(CultureInfo.InvariantCulture, $"{model}-{time.GetUtcNow():yyyyMMdd-HHmmss}-{Guid.NewGuid():N}")[..(model.Length + 22)];

    /// <summary>Starts a new run (<paramref name="resumeRunId"/> null) or resumes an interrupted one.</summary>
    public async Task<FineTuneOutcome> RunAsync(string model, string trigger, string? resumeRunId, CancellationToken cancellationToken)
    {
        if (!catalog.Value.TryGet(model, out var options))
        {
            throw new ArgumentException($"'{model}' is not a configured model (Models: {string.Join(", ", catalog.Value.Models.Keys)})");
        }

        RunRecord? resumed = null;
        string runId;
        int attempt;
        if (resumeRunId is not null)
        {
            resumed = await ledger.GetRunAsync(resumeRunId, cancellationToken).ConfigureAwait(false)
                ?? throw new ArgumentException($"run '{resumeRunId}' is not in the ledger");
            runId = resumed.RunId;
            attempt = await ledger.ResumeRunAsync(runId, cancellationToken).ConfigureAwait(false);
            LogResuming(logger, model, runId, attempt);
        }
        else
        {
            runId = NewRunId(model);
            attempt = 1;
            await ledger.StartRunAsync(new RunStart(runId, model, RunKinds.FineTune, trigger, time.GetUtcNow(),
                Path.GetFullPath(Path.Combine(loopOptions.Value.RunsDirectory, runId))), cancellationToken).ConfigureAwait(false);
            LogStarting(logger, model, runId, trigger);
        }

        var run = new RunContext(model, options, runId, attempt, resumed?.Directory ?? Path.GetFullPath(Path.Combine(loopOptions.Value.RunsDirectory, runId)));
        var heavy = (state ?? new LoopState()).HeavyWork;
        await heavy.WaitAsync(cancellationToken).ConfigureAwait(false);
        using var release = new Release(heavy);
        using var running = metrics.Running(model);
        try
        {
            var outcome = await RunStagesAsync(run, resumed, cancellationToken).ConfigureAwait(false);
            if (outcome.Status != RunStatuses.Running)
            {
                await ledger.FinishRunAsync(runId, outcome.Status, outcome.Version, outcome.Detail, CancellationToken.None).ConfigureAwait(false);
                metrics.Finished(model, outcome.Status, time.GetUtcNow());
                metrics.ShowChampion(registry, model, options);
                LogFinished(logger, model, runId, outcome.Status, outcome.Version, outcome.Detail);
            }
            else
            {
                LogInterrupted(logger, model, runId, outcome.Detail);
            }

            return outcome;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Shutting down outside training (snapshot, export, scoring): the run stays "running" and is
            // resumed at the next start; its checkpoints make that cheap.
            if (run.OpenStage is { } open)
            {
                await ledger.EndStageAsync(runId, attempt, open, StageOutcomes.Interrupted, "shutdown", CancellationToken.None).ConfigureAwait(false);
            }

            LogInterrupted(logger, model, runId, "shutdown");
            return new FineTuneOutcome(runId, model, RunStatuses.Running, null, "interrupted by shutdown; resumed at the next start", run.Timings);
        }
        catch (Exception ex)
        {
            // The first line only: libtorch appends a native stack trace that belongs in the log, not the ledger.
            string detail = $"{run.OpenStage ?? "run"} failed: {ex.GetType().Name}: {ex.Message.Split('\n', 2)[0].Trim()}";
            metrics.StageFailures.WithLabels(model, run.OpenStage ?? "run").Inc();
            if (ex is ParityException)
            {
                metrics.ParityFailures.WithLabels(model).Inc();
            }

            if (run.OpenStage is { } open)
            {
                await ledger.EndStageAsync(runId, attempt, open, StageOutcomes.Failed, detail, CancellationToken.None).ConfigureAwait(false);
            }

            await ledger.FinishRunAsync(runId, RunStatuses.Failed, null, detail, CancellationToken.None).ConfigureAwait(false);
            metrics.Finished(model, RunStatuses.Failed, time.GetUtcNow());
            LogFailed(logger, model, runId, ex);
            return new FineTuneOutcome(runId, model, RunStatuses.Failed, null, detail, run.Timings);
        }
    }

    private async Task<FineTuneOutcome> RunStagesAsync(RunContext run, RunRecord? resumed, CancellationToken cancellationToken)
    {
        // A resumed run that already reached the registry only finishes its books: the publish was atomic.
        if (resumed is not null && FindPublished(run.Model, run.RunId) is { } published)
        {
            await AnnounceAsync(run, published.Version, published.Status == VersionStatus.Passed, published.Reason, cancellationToken).ConfigureAwait(false);
            return run.Outcome(published.Status == VersionStatus.Passed ? RunStatuses.Promoted : RunStatuses.Rejected, published.Version,
                $"v{published.Version} was published before the interruption");
        }

        var champion = registry.ResolveServable(run.Model).Verified;
        string? championCheckpoints = champion?.Manifest.Hyperparameters.GetValueOrDefault(ManifestKeys.Checkpoints);
        if (championCheckpoints is not null && new CheckpointStore(championCheckpoints).LoadLatest() is null)
        {
            // The champion's training run directory is gone (cleaned up, other machine): no transfer
            // learning possible, so the run is from scratch — said in the ledger, not hidden.
            LogNoChampionCheckpoint(logger, run.Model, champion!.Version, championCheckpoints);
            championCheckpoints = null;
        }

        string family = run.Options.ResolvedFamily;
        string dataset = run.Options.ResolvedDataset(run.Model);
        long previousWatermark = resumed?.PreviousWatermark ?? champion?.Manifest.DataWatermark ?? 0;
        long watermark = resumed?.Watermark ?? await store.GetWatermarkAsync(cancellationToken).ConfigureAwait(false);
        await ledger.SetSnapshotAsync(run.RunId, watermark, previousWatermark, champion?.Version, cancellationToken).ConfigureAwait(false);

        Directory.CreateDirectory(run.Directory);
        var training = run.Options.Training;
        // The newest error analysis of this champion up-weights its worst slices in the training draw.
        var weighting = await AnalysisRunner.LatestWeightsAsync(ledger, run.Model, champion?.Version, cancellationToken).ConfigureAwait(false);
        string weighted = weighting is { } w ? $"; slices weighted by analysis {w.RunId}" : "";
        bool fineTune = championCheckpoints is not null;
        string? skip;
        Func<CancellationToken, TrainingResultSummary> train;

        await run.BeginAsync(ledger, RunStages.Snapshot, cancellationToken).ConfigureAwait(false);
        if (family == ModelFamilies.Gpt)
        {
            var (trainTexts, holdoutTexts, counts) = await TextSnapshot.LoadAsync(store, dataset, run.Options.Text.Conditional, watermark, previousWatermark,
                weighting?.Weights, training.Seed, cancellationToken).ConfigureAwait(false);
            skip = TooSmall(trainTexts.Count, holdoutTexts.Count, training, dataset, previousWatermark, watermark);
            await run.EndAsync(ledger, RunStages.Snapshot, skip is null ? StageOutcomes.Ok : StageOutcomes.Skipped, skip ?? counts.ToString() + weighted, cancellationToken).ConfigureAwait(false);
            run.Used = TextTrainingOptions(training, fineTune);
            var request = new TextRunRequest(run.Options.Text.Conditional ? Core.Text.GptTasks.Conditional : Core.Text.GptTasks.Lm, run.Directory,
                run.Used, training.Layers, training.Heads, training.Width ?? 128, training.Context, training.Dropout,
                !training.Untied, training.VocabularySize, FromCheckpoint: championCheckpoints, KeepCheckpoints: 2);
            train = ct =>
            {
                var result = TextTrainingRun.Run(request, trainTexts, holdoutTexts, Progress(run), ct);
                return new TrainingResultSummary(result.Training, result.LastCheckpoint, result.SamplesText);
            };
        }
        else
        {
            var (trainImages, holdoutImages, counts) = await ImageSnapshot.LoadAsync(store, dataset, 28, watermark, previousWatermark,
                fineTune ? training.Replay : 0, training.Seed, weighting?.Weights, cancellationToken).ConfigureAwait(false);
            skip = TooSmall(counts.Fresh, counts.Holdout, training, dataset, previousWatermark, watermark);
            await run.EndAsync(ledger, RunStages.Snapshot, skip is null ? StageOutcomes.Ok : StageOutcomes.Skipped,
                skip ?? string.Create(CultureInfo.InvariantCulture, $"watermark {watermark} (previous {previousWatermark}): {counts.Fresh} fresh + {counts.Replayed} replayed training, {counts.Holdout} holdout{weighted}"),
                cancellationToken).ConfigureAwait(false);
            var imageOptions = ImageTrainingOptions(training, fineTune);
            int? width = training.Width;
            double? dropout = null;
            if (skip is null && !fineTune && training.Tune.Trials > 0)
            {
                (imageOptions, width, dropout) = await TuneAsync(run, family, imageOptions, width, trainImages, holdoutImages, cancellationToken).ConfigureAwait(false);
            }

            run.Used = imageOptions;
            var request = new ImageRunRequest(family, run.Directory, imageOptions, training.Conditional, championCheckpoints,
                family == ModelFamilies.Dcgan ? InitScheme.Normal002 : InitScheme.He, KeepCheckpoints: 2, Width: width, Dropout: dropout);
            train = ct =>
            {
                var result = ImageTrainingRun.Run(request, trainImages, holdoutImages, Progress(run), ct);
                return new TrainingResultSummary(result.Training, result.LastCheckpoint, result.SamplesPng);
            };
        }

        if (skip is not null)
        {
            return run.Outcome(RunStatuses.Skipped, null, skip);
        }

        // Training: the CPU-heavy part, on a thread of its own rather than a pool thread.
        await run.BeginAsync(ledger, RunStages.Train, cancellationToken).ConfigureAwait(false);
        TorchRuntime.SetThreads(trainingHost.Value.Threads);
        var trained = await Task.Factory.StartNew(() => TrainWithOneRetry(train, run, cancellationToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
        string how = fineTune ? "fine-tuned from the champion" : "from scratch";
        string why = trained.Training.Reason is null ? "" : $": {trained.Training.Reason}";
        string trainDetail = string.Create(CultureInfo.InvariantCulture, $"{trained.Training.Outcome} after {trained.Training.Steps} steps ({how}){why}");
        switch (trained.Training.Outcome)
        {
            case TrainingOutcome.Cancelled:
                await run.EndAsync(ledger, RunStages.Train, StageOutcomes.Interrupted, trainDetail, CancellationToken.None).ConfigureAwait(false);
                return run.Outcome(RunStatuses.Running, null, $"interrupted at step {trained.Training.Steps}; checkpoint written, resumed at the next start");
            case TrainingOutcome.NonFiniteLoss:
                await run.EndAsync(ledger, RunStages.Train, StageOutcomes.Failed, trainDetail, cancellationToken).ConfigureAwait(false);
                metrics.StageFailures.WithLabels(run.Model, RunStages.Train).Inc();
                return run.Outcome(RunStatuses.Failed, null, trainDetail);
        }

        if (trained.Checkpoint is null)
        {
            throw new InvalidOperationException("training finished without a checkpoint");
        }

        await run.EndAsync(ledger, RunStages.Train, StageOutcomes.Ok, trainDetail, cancellationToken).ConfigureAwait(false);

        await run.BeginAsync(ledger, RunStages.Export, cancellationToken).ConfigureAwait(false);
        string onnx = Path.Combine(run.Directory, "candidate", RegistryLayout.ModelFileName);
        var exported = CheckpointExport.Export(trained.Checkpoint, onnx, family);
        await run.EndAsync(ledger, RunStages.Export, StageOutcomes.Ok,
            string.Create(CultureInfo.InvariantCulture, $"{exported.Files.Count} file(s) from step {exported.Step}; parity max |diff| {exported.MaxAbsDiff:E2}"), cancellationToken).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();

        var files = exported.Files.ToDictionary(f => f.Role == "model" ? RegistryLayout.ModelFileName : Path.GetFileName(f.Path), f => f.Path, StringComparer.Ordinal);
        if (trained.Samples is { } samples && File.Exists(samples))
        {
            files[Path.GetFileName(samples)] = samples;
        }

        var hyperparameters = Hyperparameters(run, family, dataset, fineTune, trained.Checkpoint, championCheckpoints);
        var parity = new ExportParity(exported.MaxAbsDiff, ModelExporter.Tolerance, exported.Files.Sum(f => f.Parity.Cases));
        int threads = evaluationOptions.Value.Threads;

        await run.BeginAsync(ledger, RunStages.Evaluate, cancellationToken).ConfigureAwait(false);
        GateReport report;
        Func<PublishResult> publish;
        if (family == ModelFamilies.Gpt)
        {
            var set = await TextReferenceSet.FromStoreAsync(store, dataset, watermark, run.Options.Text.Conditional, textOptions.Value.MaxHoldout, textOptions.Value.MaxTraining, cancellationToken).ConfigureAwait(false);
            var gate = new TextCandidateGate(textOptions.Value, threads, registry);
            var gated = await Task.Factory.StartNew(() => gate.Evaluate(run.Model, onnx, set, run.Options.Gate, cancellationToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
            report = gated.Report;
            await run.EndAsync(ledger, RunStages.Evaluate, StageOutcomes.Ok, Scored(gated.Candidate.Metrics, gated.ChampionVersion, gated.ChampionProblem), cancellationToken).ConfigureAwait(false);
            var textHyperparameters = new Dictionary<string, string>(hyperparameters) { ["task"] = gated.Candidate.Task, ["vocabulary_sha256"] = gated.Candidate.VocabularySha256 };
            publish = () => gate.Publish(run.Model, files, gated, textHyperparameters, parity, run.RunId, watermark);
        }
        else
        {
            var set = await ReferenceSets.FromStoreAsync(store, dataset, watermark, evaluationOptions.Value.MaxReferenceSamples, evaluationOptions.Value.MaxTrainingSamples, cancellationToken).ConfigureAwait(false);
            using var extractor = new OnnxFeatureExtractor(evaluationOptions.Value.Extractor, threads);
            var gate = new ImageCandidateGate(evaluationOptions.Value, extractor, registry);
            var range = family == ModelFamilies.Vae ? GeneratorRange.Unit : GeneratorRange.Tanh;
            var gated = await Task.Factory.StartNew(() => gate.Evaluate(run.Model, onnx, range, set, run.Options.Gate, cancellationToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
            report = gated.Report;
            await run.EndAsync(ledger, RunStages.Evaluate, StageOutcomes.Ok, Scored(gated.Candidate.Metrics, gated.ChampionVersion, gated.ChampionProblem), cancellationToken).ConfigureAwait(false);
            publish = () => gate.Publish(run.Model, files, gated, hyperparameters, parity, run.RunId, watermark);
        }

        // Past this point nothing is cancelled: the registry write is short and atomic, and the
        // announcement follows it (a crash in between is finished by the resumed run above).
        await run.BeginAsync(ledger, RunStages.Publish, CancellationToken.None).ConfigureAwait(false);
        var result = publish();
        string verdict = report.Passed ? "passed the gate" : report.Headline();
        await run.EndAsync(ledger, RunStages.Publish, StageOutcomes.Ok,
            string.Create(CultureInfo.InvariantCulture, $"v{result.Version} {result.Status}; champion {result.Aliases.Champion?.ToString(CultureInfo.InvariantCulture) ?? "none"}; {verdict}"), CancellationToken.None).ConfigureAwait(false);
        await AnnounceAsync(run, result.Version, report.Passed, report.Passed ? "passed the gate" : report.Headline(), CancellationToken.None).ConfigureAwait(false);
        return run.Outcome(report.Passed ? RunStatuses.Promoted : RunStatuses.Rejected, result.Version, verdict);
    }

    /// <summary>
    /// The tuner budget of a first run: short trainings over the family's search space, scored on the
    /// holdout, every trial in <c>tuning/trials.jsonl</c> of the run; the best parameters train the run.
    /// A resumed run repeats the search (same seed, same trials) — cheaper than recording half a search.
    /// </summary>
    private async Task<(TrainingOptions Options, int? Width, double? Dropout)> TuneAsync(RunContext run, string family, TrainingOptions options, int? width,
        ImageDataset train, ImageDataset holdout, CancellationToken cancellationToken)
    {
        var tune = run.Options.Training.Tune;
        await run.BeginAsync(ledger, RunStages.Tune, cancellationToken).ConfigureAwait(false);
        var result = await Task.Factory.StartNew(() => ImageTuning.Run(family, Path.Combine(run.Directory, "tuning"), options with { Steps = tune.TrialSteps },
            run.Options.Training.Conditional, train, holdout, ImageTuning.DefaultSpace(family), Enum.Parse<Core.Tuning.SearchMethod>(tune.Method, ignoreCase: true),
            tune.Trials, tune.MaxTime, cancellationToken: cancellationToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        if (result.Best is not { } best)
        {
            await run.EndAsync(ledger, RunStages.Tune, StageOutcomes.Failed, $"no trial succeeded ({result.StopReason}); training with the configured hyperparameters", cancellationToken).ConfigureAwait(false);
            return (options, width, null);
        }

        var p = best.Parameters;
        var tuned = options with
        {
            LearningRate = p.GetValueOrDefault("lr", options.LearningRate),
            BatchSize = p.TryGetValue("batch_size", out var batch) ? (int)batch : options.BatchSize,
            WeightDecay = p.GetValueOrDefault("weight_decay", options.WeightDecay),
            Beta = p.GetValueOrDefault("beta", options.Beta),
        };
        await run.EndAsync(ledger, RunStages.Tune, StageOutcomes.Ok, string.Create(CultureInfo.InvariantCulture,
            $"best of {result.Trials.Count} trials: {ImageTuning.Describe(p)} (holdout {best.Score:0.0000}); {result.StopReason}"), cancellationToken).ConfigureAwait(false);
        return (tuned, p.TryGetValue("width", out var w) ? (int)w : width, p.TryGetValue("dropout", out var d) ? d : null);
    }

    /// <summary>
    /// Trains; if libtorch throws from native code, trains once more, resuming from the run's last
    /// checkpoint. Seen once in the daemon (not in the CLI): "Expected false to be true" from
    /// c10::Scalar::toLong inside BatchNorm's counter update while ingestion was allocating heavily — a
    /// native Scalar freed under the call, a TorchSharp-level race. A second failure fails the run.
    /// </summary>
    private TrainingResultSummary TrainWithOneRetry(Func<CancellationToken, TrainingResultSummary> train, RunContext run, CancellationToken cancellationToken)
    {
        try
        {
            return train(cancellationToken);
        }
        catch (System.Runtime.InteropServices.ExternalException ex)
        {
            LogNativeRetry(logger, run.Model, run.RunId, ex.Message.Split('\n', 2)[0].Trim());
            return train(cancellationToken);
        }
    }

    private async Task AnnounceAsync(RunContext run, int version, bool promoted, string reason, CancellationToken cancellationToken)
    {
        await run.BeginAsync(ledger, RunStages.Announce, cancellationToken).ConfigureAwait(false);
        if (events is null)
        {
            await run.EndAsync(ledger, RunStages.Announce, StageOutcomes.Skipped, "no broker configured for events", cancellationToken).ConfigureAwait(false);
            return;
        }

        var aliases = registry.ReadAliases(run.Model);
        var published = promoted
            ? await events.PublishPromotedAsync(new ModelPromotedData(run.Model, version, aliases?.Previous, $"run {run.RunId}: {reason}"), cancellationToken).ConfigureAwait(false)
            : await events.PublishRejectedAsync(new ModelRejectedData(run.Model, version, aliases?.Champion, reason), cancellationToken).ConfigureAwait(false);
        // The registry already holds the outcome and serving watches it: a broker that is down costs the
        // event, not the promotion, so the stage records the problem and the run still succeeds.
        await run.EndAsync(ledger, RunStages.Announce, published.Published ? StageOutcomes.Ok : StageOutcomes.Failed,
            published.Published ? $"{published.Message.Type} {published.Message.EventId}" : published.Problem, cancellationToken).ConfigureAwait(false);
    }

    private (int Version, VersionStatus Status, string Reason)? FindPublished(string model, string runId)
    {
        foreach (var entry in registry.List(model).Versions)
        {
            if (entry.Manifest is { } manifest && manifest.RunId == runId)
            {
                return (entry.Version, manifest.Status, manifest.Status == VersionStatus.Passed ? "passed the gate" : "failed the gate");
            }
        }

        return null;
    }

    private static string? TooSmall(int train, int holdout, ModelTrainingOptions training, string dataset, long previousWatermark, long watermark)
    {
        if (train < training.MinTrainingSamples)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"snapshot too small: {train} fresh training samples of '{dataset}' between watermarks {previousWatermark} and {watermark} (Training:MinTrainingSamples = {training.MinTrainingSamples})");
        }

        return holdout < training.MinHoldoutSamples
            ? string.Create(CultureInfo.InvariantCulture, $"snapshot too small: {holdout} holdout samples of '{dataset}' up to watermark {watermark} (Training:MinHoldoutSamples = {training.MinHoldoutSamples})")
            : null;
    }

    private static string Scored(IReadOnlyList<MetricValue> metrics, int? championVersion, string? championProblem) =>
        string.Join(", ", metrics.Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.Metric}{(m.Slice is null ? "" : $"[{m.Slice}]")} {m.Value:0.####}")))
        + (championVersion is int v ? $"; champion v{v} scored by the same protocol" : championProblem is null ? "; no champion" : $"; champion not compared: {championProblem}");

    private static Dictionary<string, string> Hyperparameters(RunContext run, string family, string dataset, bool fineTune, Checkpoint checkpoint, string? from)
    {
        var t = run.Options.Training;
        var values = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["family"] = family,
            ["dataset"] = dataset,
            ["steps"] = checkpoint.Step.ToString(CultureInfo.InvariantCulture),
            ["seed"] = t.Seed.ToString(CultureInfo.InvariantCulture),
            ["optimizer"] = run.Used?.Optimizer.ToString().ToLowerInvariant() ?? "",
            ["lr"] = run.Used?.LearningRate.ToString("R", CultureInfo.InvariantCulture) ?? "",
            ["batch_size"] = run.Used?.BatchSize.ToString(CultureInfo.InvariantCulture) ?? "",
            ["weight_decay"] = run.Used?.WeightDecay.ToString("R", CultureInfo.InvariantCulture) ?? "",
            ["warm_start"] = fineTune ? "champion" : "init",
            [ManifestKeys.Checkpoints] = Path.GetFullPath(Path.Combine(run.Directory, "checkpoints")),
        };
        if (from is not null)
        {
            values["from_checkpoints"] = from;
        }

        if (t.Freeze.Count > 0)
        {
            values["freeze"] = string.Join(' ', t.Freeze);
        }

        return values;
    }

    /// <summary>
    /// The training options of a run, with the family's defaults where the configuration names none — the
    /// same ones <c>train</c> uses: images Adam 2e-4, batch 64, constant rate unless <c>Cosine</c>; text (the
    /// GPT-2/nanoGPT recipe) AdamW 1e-3, wd 0.1, β 0.9/0.99, warm-up + cosine, clip 1, batch 32. Fine-tunes
    /// use <see cref="ModelTrainingOptions.FineTuneSteps"/> and freeze the configured layers.
    /// </summary>
    internal static TrainingOptions ImageTrainingOptions(ModelTrainingOptions t, bool fineTune) => Options(t, fineTune, text: false);

    internal static TrainingOptions TextTrainingOptions(ModelTrainingOptions t, bool fineTune) => Options(t, fineTune, text: true);

    private static TrainingOptions Options(ModelTrainingOptions t, bool fineTune, bool text)
    {
        int steps = t.StepsFor(fineTune);
        bool cosine = text || t.Cosine;
        var options = new TrainingOptions
        {
            Optimizer = Enum.Parse<OptimizerKind>(t.Optimizer ?? (text ? "adamw" : "adam"), ignoreCase: true),
            LearningRate = t.LearningRate ?? (text ? 1e-3 : 2e-4),
            WeightDecay = t.WeightDecay ?? (text ? 0.1 : 0),
            Schedule = cosine ? ScheduleKind.Cosine : ScheduleKind.Constant,
            WarmupSteps = cosine ? Math.Min(100, steps / 10) : 0,
            Steps = steps,
            BatchSize = t.BatchSize ?? (text ? 32 : 64),
            GradientClip = t.GradientClip ?? (text ? 1.0 : 0),
            Patience = t.Patience,
            EvalEvery = Math.Max(1, Math.Min(200, steps / 10)),
            CheckpointEvery = t.CheckpointEvery ?? Math.Max(1, steps / 5),
            Seed = t.Seed,
            Freeze = fineTune ? [.. t.Freeze] : [],
        };
        return text ? options with { Beta1 = 0.9, Beta2 = 0.99 } : options;
    }

    private Progress<TrainingProgress> Progress(RunContext run)
    {
        // The loop reports about once a second at whatever step it reached: log each tenth of the run once.
        long lastTenth = -1;
        return new Progress<TrainingProgress>(p =>
        {
            long tenth = p.Steps > 0 ? p.Step * 10 / p.Steps : 0;
            if (tenth > Interlocked.Read(ref lastTenth))
            {
                Interlocked.Exchange(ref lastTenth, tenth);
                LogProgress(logger, run.Model, run.RunId, p.Step, p.Steps, string.Join(" ", p.Losses.Select(l => string.Create(CultureInfo.InvariantCulture, $"{l.Key} {l.Value:0.0000}"))), p.StepsPerSecond);
            }
        });
    }

    private sealed class Release(SemaphoreSlim semaphore) : IDisposable
    {
        public void Dispose() => semaphore.Release();
    }

    private sealed record TrainingResultSummary(TrainingResult Training, Checkpoint? Checkpoint, string? Samples);

    /// <summary>The run being executed: identity, the open stage, and stage timings for the outcome.</summary>
    private sealed class RunContext(string model, ModelOptions options, string runId, int attempt, string directory)
    {
        private readonly Dictionary<string, long> started = new(StringComparer.Ordinal);

        public string Model { get; } = model;

        public ModelOptions Options { get; } = options;

        public string RunId { get; } = runId;

        public int Attempt { get; } = attempt;

        public string Directory { get; } = directory;

        public string? OpenStage { get; private set; }

        /// <summary>The training options the run trains with (after tuning), for the manifest.</summary>
        public TrainingOptions? Used { get; set; }

        public Dictionary<string, TimeSpan> Timings { get; } = new(StringComparer.Ordinal);

        public async Task BeginAsync(IRunLedger ledger, string stage, CancellationToken cancellationToken)
        {
            await ledger.BeginStageAsync(RunId, Attempt, stage, cancellationToken).ConfigureAwait(false);
            OpenStage = stage;
            started[stage] = Stopwatch.GetTimestamp();
        }

        public async Task EndAsync(IRunLedger ledger, string stage, string outcome, string? detail, CancellationToken cancellationToken)
        {
            await ledger.EndStageAsync(RunId, Attempt, stage, outcome, detail, cancellationToken).ConfigureAwait(false);
            Timings[stage] = Stopwatch.GetElapsedTime(started[stage]);
            OpenStage = null;
        }

        public FineTuneOutcome Outcome(string status, int? version, string detail) => new(RunId, Model, status, version, detail, Timings);
    }

    [LoggerMessage(EventId = 800, Level = LogLevel.Information, Message = "Fine-tune of {Model} started: run {RunId} ({Trigger})")]
    private static partial void LogStarting(ILogger logger, string model, string runId, string trigger);

    [LoggerMessage(EventId = 801, Level = LogLevel.Information, Message = "Fine-tune of {Model}: resuming interrupted run {RunId} (attempt {Attempt})")]
    private static partial void LogResuming(ILogger logger, string model, string runId, int attempt);

    [LoggerMessage(EventId = 802, Level = LogLevel.Information, Message = "Fine-tune of {Model} run {RunId} finished: {Status} (version {Version}): {Detail}")]
    private static partial void LogFinished(ILogger logger, string model, string runId, string status, int? version, string detail);

    [LoggerMessage(EventId = 803, Level = LogLevel.Warning, Message = "Fine-tune of {Model} run {RunId} interrupted: {Detail}")]
    private static partial void LogInterrupted(ILogger logger, string model, string runId, string detail);

    [LoggerMessage(EventId = 804, Level = LogLevel.Error, Message = "Fine-tune of {Model} run {RunId} failed; nothing was promoted")]
    private static partial void LogFailed(ILogger logger, string model, string runId, Exception exception);

    [LoggerMessage(EventId = 805, Level = LogLevel.Information, Message = "Fine-tune of {Model} run {RunId}: step {Step}/{Steps} {Losses} ({StepsPerSecond:0.0} steps/s)")]
    private static partial void LogProgress(ILogger logger, string model, string runId, long step, long steps, string losses, double stepsPerSecond);

    [LoggerMessage(EventId = 807, Level = LogLevel.Warning, Message = "Fine-tune of {Model} run {RunId}: libtorch failed in native code ({Problem}); training once more from the last checkpoint")]
    private static partial void LogNativeRetry(ILogger logger, string model, string runId, string problem);

    [LoggerMessage(EventId = 806, Level = LogLevel.Warning, Message = "The champion v{Version} of {Model} records checkpoints at {Path} that no longer verify; this run trains from scratch")]
    private static partial void LogNoChampionCheckpoint(ILogger logger, string model, int version, string path);
}

/// <summary>The stages of a fine-tune as the ledger names them.</summary>
public static class RunStages
{
    public const string Snapshot = "snapshot";
    public const string Tune = "tune";
    public const string Train = "train";
    public const string Export = "export";
    public const string Evaluate = "evaluate";
    public const string Publish = "publish";
    public const string Announce = "announce";
    public const string Analyze = "analyze";
}

/// <summary>Manifest hyperparameter keys the loop reads back.</summary>
public static class ManifestKeys
{
    /// <summary>The run's checkpoints directory: the next fine-tune warm-starts from it.</summary>
    public const string Checkpoints = "checkpoints";
}
