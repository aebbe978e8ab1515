using System.Globalization;
using System.Text.Json;
using RetrainDaemon.Core.Tuning;
using RetrainDaemon.Training.Data;

namespace RetrainDaemon.Training.Trainers;

/// <summary>
/// Hyperparameter search for an image family: each trial is a short <see cref="ImageTrainingRun"/>
/// in its own directory, scored by its best holdout loss (a run that ends on a non-finite loss
/// scores +∞); every trial is appended to <c>trials.jsonl</c> as it finishes.
/// </summary>
public static class ImageTuning
{
    /// <summary>The default space: learning rate (log), batch size, weight decay, width; β for VAEs; dropout for the classifier.</summary>
    public static IReadOnlyList<Dimension> DefaultSpace(string family)
    {
        var space = new List<Dimension>
        {
            new("lr", 1e-4, 3e-3, Log: true),
            Dimension.Of("batch_size", 32, 64, 128),
            Dimension.Of("weight_decay", 0, 1e-4, 1e-2),
        };
        int width = ImageRunRequest.DefaultWidth(family);
        space.Add(Dimension.Of("width", width / 2, width));
        if (family == "vae")
        {
            space.Add(new Dimension("beta", 0.25, 2.0));
        }

        if (family == "classifier")
        {
            space.Add(new Dimension("dropout", 0.0, 0.5));
        }

        return space;
    }

    public static TuningResult Run(string family, string outputDirectory, TrainingOptions baseOptions, bool conditional, ImageDataset train, ImageDataset holdout,
        IReadOnlyList<Dimension> space, SearchMethod method, int maxTrials, TimeSpan maxTime, Action<Trial>? onTrial = null, CancellationToken cancellationToken = default)
    {
        if (holdout.Count == 0)
        {
            throw new InvalidOperationException("tuning scores trials on holdout data, and the snapshot has none");
        }

        Directory.CreateDirectory(outputDirectory);
        string ledger = Path.Combine(outputDirectory, "trials.jsonl");
        int number = 0;
        return Tuner.Search(space, method, maxTrials, maxTime, baseOptions.Seed, (parameters, ct) =>
        {
            number++;
            var options = baseOptions with
            {
                LearningRate = parameters.GetValueOrDefault("lr", baseOptions.LearningRate),
                BatchSize = (int)parameters.GetValueOrDefault("batch_size", baseOptions.BatchSize),
                WeightDecay = parameters.GetValueOrDefault("weight_decay", baseOptions.WeightDecay),
                Beta = parameters.GetValueOrDefault("beta", baseOptions.Beta),
                EvalEvery = Math.Max(1, baseOptions.Steps / 4),
                CheckpointEvery = 0,
                Patience = 0,
            };
            var request = new ImageRunRequest(family, Path.Combine(outputDirectory, $"trial-{number:D3}"), options, conditional,
                Width: parameters.TryGetValue("width", out var width) ? (int)width : null,
                Dropout: parameters.TryGetValue("dropout", out var dropout) ? dropout : null);
            var run = ImageTrainingRun.Run(request, train, holdout, cancellationToken: ct);
            return run.Training.Outcome == TrainingOutcome.NonFiniteLoss ? double.NaN : run.Training.BestHoldoutLoss ?? double.NaN;
        }, trial =>
        {
            File.AppendAllText(ledger, JsonSerializer.Serialize(new
            {
                trial = trial.Number,
                parameters = trial.Parameters,
                score = double.IsFinite(trial.Score) ? trial.Score : (double?)null,
                seconds = Math.Round(trial.Duration.TotalSeconds, 2),
                failure = trial.Failure,
            }) + "\n");
            onTrial?.Invoke(trial);
        }, cancellationToken);
    }

    public static string Describe(IReadOnlyDictionary<string, double> parameters) =>
        string.Join(", ", parameters.Select(p => $"{p.Key}={p.Value.ToString("G4", CultureInfo.InvariantCulture)}"));
}
