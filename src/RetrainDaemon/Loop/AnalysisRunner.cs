using System.Globalization;
using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Evaluation.Analysis;
using RetrainDaemon.Evaluation.Extractors;
using RetrainDaemon.Evaluation.Text;
using RetrainDaemon.Messaging.Events;

namespace RetrainDaemon.Loop;

/// <summary>How an error analysis ended.</summary>
public sealed record AnalysisOutcome(string RunId, string Model, string Status, string Detail, AnalysisResult? Result);

/// <summary>
/// One error analysis of a model's champion (what the <c>ErrorAnalysisJob</c> and <c>analyze</c> run):
/// the champion's registry file on the recent holdout and the champion's rated generations, per slice;
/// drift of the data since the champion's watermark; sampling weights for the next fine-tune. Recorded in
/// the run ledger (kind <c>analysis</c>, the report's directory as the run directory) and announced as
/// <c>analysis.completed</c>. The next fine-tune of the same champion reads the weights back.
/// </summary>
public sealed partial class AnalysisRunner(
    IOptions<ModelCatalogOptions> catalog,
    IOptions<LoopOptions> loopOptions,
    IOptions<EvaluationOptions> evaluationOptions,
    IOptions<TextEvaluationOptions> textOptions,
    ISampleStore store,
    IRunLedger ledger,
    ModelRegistry registry,
    LoopMetrics metrics,
    ILogger<AnalysisRunner> logger,
    ModelEventPublisher? events = null,
    LoopState? state = null,
    TimeProvider? clock = null)
{
    private readonly TimeProvider time = clock ?? TimeProvider.System;

    public async Task<AnalysisOutcome> RunAsync(string model, string trigger, CancellationToken cancellationToken)
    {
        if (!catalog.Value.TryGet(model, out var options))
        {
            throw new ArgumentException($"'{model}' is not a configured model (Models: {string.Join(", ", catalog.Value.Models.Keys)})");
        }

        string runId = string.Create(CultureInfo.InvariantCulture, $"{model}-analysis-{time.GetUtcNow():yyyyMMdd-HHmmss}-{Guid.NewGuid():N}")[..(model.Length + 31)];
        string directory = Path.GetFullPath(Path.Combine(loopOptions.Value.AnalysisDirectory, model, runId));
        await ledger.StartRunAsync(new RunStart(runId, model, RunKinds.Analysis, trigger, time.GetUtcNow(), directory), cancellationToken).ConfigureAwait(false);
        var champion = registry.ResolveServable(model).Verified;
        if (champion is null)
        {
            const string none = "no champion to analyse yet";
            await ledger.FinishRunAsync(runId, RunStatuses.Skipped, null, none, CancellationToken.None).ConfigureAwait(false);
            metrics.Analyses.WithLabels(model, RunStatuses.Skipped).Inc();
            return new AnalysisOutcome(runId, model, RunStatuses.Skipped, none, null);
        }

        var heavy = (state ?? new LoopState()).HeavyWork;
        await heavy.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            long watermark = await store.GetWatermarkAsync(cancellationToken).ConfigureAwait(false);
            long trained = champion.Manifest.DataWatermark ?? 0;
            await ledger.SetSnapshotAsync(runId, watermark, trained, champion.Version, cancellationToken).ConfigureAwait(false);
            await ledger.BeginStageAsync(runId, 1, RunStages.Analyze, cancellationToken).ConfigureAwait(false);
            string family = champion.Manifest.Hyperparameters.GetValueOrDefault("family") ?? options.ResolvedFamily;
            var feedback = await RatingsAsync(model, champion.Version, options, cancellationToken).ConfigureAwait(false);
            using var extractor = family == ModelFamilies.Gpt ? null : new OnnxFeatureExtractor(evaluationOptions.Value.Extractor, evaluationOptions.Value.Threads);
            var request = new AnalysisRequest(model, options, family, champion.ModelPath, store, trained, watermark, directory, (int)(options.Training.Seed & int.MaxValue))
            {
                Dataset = options.ResolvedDataset(model),
                Evaluation = evaluationOptions.Value,
                Extractor = extractor,
                TextEvaluation = textOptions.Value,
                Feedback = feedback,
                ChampionVersion = champion.Version,
            };
            var result = await Task.Factory.StartNew(() => ErrorAnalysis.RunAsync(request, cancellationToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
                .Unwrap().ConfigureAwait(false);
            string drift = result.Drift.Value is double d ? string.Create(CultureInfo.InvariantCulture, $"{result.Drift.Metric} {d:0.###}") : $"drift {result.Drift.Status}";
            string detail = $"v{champion.Version}: {drift}; worst {string.Join(", ", result.Worst)}; {feedback.Count} rated generations";
            await ledger.EndStageAsync(runId, 1, RunStages.Analyze, StageOutcomes.Ok, detail, CancellationToken.None).ConfigureAwait(false);
            await ledger.FinishRunAsync(runId, RunStatuses.Completed, champion.Version, detail, CancellationToken.None).ConfigureAwait(false);
            metrics.Analyses.WithLabels(model, RunStatuses.Completed).Inc();
            if (result.Drift.Value is double value)
            {
                metrics.Drift.WithLabels(model).Set(value);
            }

            LogAnalysed(logger, model, runId, detail);
            if (events is not null)
            {
                var announced = await events.PublishAsync(ModelEventCodec.EncodeAnalysisCompleted(
                    new AnalysisCompletedData(model, runId, champion.Version, result.Drift.Value, result.Worst, result.JsonPath)), CancellationToken.None).ConfigureAwait(false);
                if (!announced.Published)
                {
                    LogEventLost(logger, model, announced.Problem);
                }
            }

            return new AnalysisOutcome(runId, model, RunStatuses.Completed, detail, result);
        }
        catch (Exception ex)
        {
            // Cancelled or broken, an analysis is cheap to redo: the run is closed, never resumed.
            string detail = ex is OperationCanceledException ? "interrupted by shutdown" : $"{ex.GetType().Name}: {ex.Message.Split('\n', 2)[0].Trim()}";
            await ledger.FinishRunAsync(runId, RunStatuses.Failed, null, detail, CancellationToken.None).ConfigureAwait(false);
            metrics.Analyses.WithLabels(model, RunStatuses.Failed).Inc();
            if (ex is OperationCanceledException)
            {
                throw;
            }

            LogFailed(logger, model, runId, ex);
            return new AnalysisOutcome(runId, model, RunStatuses.Failed, detail, null);
        }
        finally
        {
            heavy.Release();
        }
    }

    /// <summary>
    /// The champion's rated generations as slice ratings: images by the class the generation was made
    /// with; text by the length bucket of the prompt or source the journal recorded.
    /// </summary>
    private async Task<IReadOnlyList<SliceRating>> RatingsAsync(string model, int version, ModelOptions options, CancellationToken cancellationToken)
    {
        var ratings = new List<SliceRating>();
        await foreach (var row in store.ReadFeedbackAsync(model, 0, cancellationToken).ConfigureAwait(false))
        {
            if (row.Rating is not int rating || row.Version != version)
            {
                continue;
            }

            string? slice = row.Slice is { Length: > 0 } s
                ? (s.StartsWith(SliceKeys.ClassPrefix, StringComparison.Ordinal) || !int.TryParse(s, CultureInfo.InvariantCulture, out int label) ? s : SliceKeys.Class(label))
                : options.ParsedModality == Modality.Text && await store.GetGenerationAsync(row.GenerationId, cancellationToken).ConfigureAwait(false) is { Input: { } input }
                    ? SliceKeys.LengthBucket(input)
                    : null;
            if (slice is not null)
            {
                ratings.Add(new SliceRating(slice, rating));
            }
        }

        return ratings;
    }

    /// <summary>
    /// The slice weights a fine-tune of <paramref name="model"/> should use: those of the newest completed
    /// analysis of the current champion, or null (no analysis of it yet, or its report is gone).
    /// </summary>
    public static async Task<(SliceWeights Weights, string RunId)?> LatestWeightsAsync(IRunLedger ledger, string model, int? champion, CancellationToken cancellationToken)
    {
        if (champion is null)
        {
            return null;
        }

        foreach (var run in await ledger.ListRunsAsync(model, RunKinds.Analysis, 20, cancellationToken).ConfigureAwait(false))
        {
            if (run.Status == RunStatuses.Completed && run.Version == champion && run.Directory is { } directory
                && File.Exists(Path.Combine(directory, ErrorAnalysis.JsonFileName)))
            {
                return (SliceWeights.Read(Path.Combine(directory, ErrorAnalysis.JsonFileName), model), run.RunId);
            }
        }

        return null;
    }

    [LoggerMessage(EventId = 850, Level = LogLevel.Information, Message = "Error analysis of {Model} ({RunId}): {Detail}")]
    private static partial void LogAnalysed(ILogger logger, string model, string runId, string detail);

    [LoggerMessage(EventId = 851, Level = LogLevel.Error, Message = "Error analysis of {Model} ({RunId}) failed")]
    private static partial void LogFailed(ILogger logger, string model, string runId, Exception exception);

    [LoggerMessage(EventId = 852, Level = LogLevel.Warning, Message = "The analysis.completed event of {Model} was not published: {Problem}")]
    private static partial void LogEventLost(ILogger logger, string model, string? problem);
}
