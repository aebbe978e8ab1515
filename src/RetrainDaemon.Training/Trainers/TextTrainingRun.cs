using System.Globalization;
using System.Text;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Training.Checkpoints;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using static TorchSharp.torch;

namespace RetrainDaemon.Training.Trainers;

/// <summary>
/// What to train for a <c>gpt</c> model: the task (<see cref="GptTasks"/>), the architecture (defaults
/// fit 2 CPU cores), where to write, how, and optionally the checkpoint to warm-start from. A warm start
/// keeps that checkpoint's vocabulary and architecture (the weights only fit them); otherwise the
/// vocabulary is built from the training texts (<see cref="VocabularySize"/>, <see cref="MinTokenCount"/>).
/// </summary>
public sealed record TextRunRequest(
    string Task,
    string OutputDirectory,
    TrainingOptions Options,
    int Layers = 2,
    int Heads = 4,
    int Width = 128,
    int Context = 128,
    double Dropout = 0.1,
    bool TieWeights = true,
    int VocabularySize = 4096,
    int MinTokenCount = 2,
    string? FromCheckpoint = null,
    InitScheme Init = InitScheme.Normal002,
    int KeepCheckpoints = 3,
    int SampleCount = 8);

/// <summary>The outcome of a text run: the loop's result, the holdout loss before the first step, the vocabulary and the run's files.</summary>
public sealed record TextRunResult(
    TrainingResult Training,
    double InitialHoldoutLoss,
    GptConfig Config,
    TextVocabulary Vocabulary,
    int SkippedTooLong,
    string CheckpointDirectory,
    Checkpoint? LastCheckpoint,
    string SamplesText,
    string LossPng);

/// <summary>
/// One training run of the <c>gpt</c> family (lm or conditional): vocabulary, examples, model (fresh
/// or warm-started from a checkpoint with optionally frozen lower blocks), the shared
/// <see cref="TrainingLoop"/> with checkpoints and early stopping, then greedy samples and the loss
/// curve next to the checkpoints. An interrupted run directory is resumed exactly.
/// </summary>
public static class TextTrainingRun
{
    public const string Family = "gpt";

    public static TextRunResult Run(TextRunRequest request, IReadOnlyList<TextPair> train, IReadOnlyList<TextPair> holdout, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (!GptTasks.All.Contains(request.Task))
        {
            throw new ArgumentException($"unknown gpt task '{request.Task}' (expected {string.Join(" or ", GptTasks.All)})");
        }

        bool conditional = request.Task == GptTasks.Conditional;
        (train, int skippedTrain) = TextSnapshot.Clean(train, conditional);
        (holdout, int skippedHoldout) = TextSnapshot.Clean(holdout, conditional);
        manual_seed(request.Options.Seed);

        var store = new CheckpointStore(Path.Combine(request.OutputDirectory, "checkpoints"), request.KeepCheckpoints);
        store.RemoveOrphans();
        Checkpoint? last = store.LoadLatest();

        // The vocabulary and architecture of a resumed or warm-started run are the checkpoint's.
        var source = last ?? (request.FromCheckpoint is null ? null : new CheckpointStore(request.FromCheckpoint).LoadLatest()
            ?? throw new FileNotFoundException($"no verifying checkpoint under '{request.FromCheckpoint}'"));
        var (config, vocabulary) = source is null
            ? (null, TextVocabulary.Build(train.SelectMany(p => p.Source is null ? [p.Text] : new[] { p.Source, p.Text }), request.VocabularySize, request.MinTokenCount))
            : ReadArchitecture(source);
        config ??= new GptConfig(vocabulary.Count, request.Layers, request.Heads, request.Width, request.Context, request.Dropout, request.TieWeights);

        var (trainExamples, tooLongTrain) = Examples(train, vocabulary, conditional, config.Context);
        var (holdoutExamples, tooLongHoldout) = Examples(holdout, vocabulary, conditional, config.Context);
        if (trainExamples.Count == 0)
        {
            throw new InvalidOperationException($"no usable training texts ({skippedTrain} empty or missing a side, {tooLongTrain} longer than the context of {config.Context} tokens); refusing to train");
        }

        var gpt = new Gpt(config);
        if (source is null)
        {
            Initialization.Apply(gpt, request.Init);
        }
        else if (last is null)
        {
            TrainingCheckpoint.Restore(source, new Dictionary<string, nn.Module> { ["gpt"] = gpt }, optimizers: null);
        }

        Freeze(gpt, request.Options.Freeze);
        var step = new GptStep(gpt, request.Options);
        long startStep = last is null ? 0 : TrainingCheckpoint.Restore(last, step.Modules, step.Optimizers).Step;

        var trainBatches = new TextBatches(trainExamples, config.Context);
        var holdoutBatches = holdoutExamples.Count > 0 ? new TextBatches(holdoutExamples, config.Context) : null;
        double initial = double.NaN;
        if (holdoutBatches is not null)
        {
            step.SetTraining(false);
            using var scope = NewDisposeScope();
            var (tokens, targets) = holdoutBatches.Head(TrainingLoop.HoldoutEvalSize);
            initial = step.HoldoutLoss(tokens, targets);
        }

        var architecture = Architecture(request.Task, config, vocabulary);
        var result = TrainingLoop.Run(step, trainBatches, holdoutBatches, request.Options, startStep, progress: progress, cancellationToken: cancellationToken,
            checkpoint: s => last = TrainingCheckpoint.Save(store, step.Modules, step.Optimizers, s, s * request.Options.BatchSize, 0, LearningRateSchedule.At(request.Options, s), architecture));

        string samples = Path.Combine(request.OutputDirectory, "samples.txt");
        string loss = Path.Combine(request.OutputDirectory, "loss.png");
        File.WriteAllText(samples, Samples(gpt, vocabulary, conditional, holdout, request.SampleCount));
        File.WriteAllBytes(loss, TrainingArtifacts.LossCurve(result.Losses));
        File.WriteAllText(Path.Combine(request.OutputDirectory, "loss.csv"), TrainingArtifacts.LossCsv(result.Losses));
        return new TextRunResult(result, initial, config, vocabulary, tooLongTrain + tooLongHoldout, store.Root, last, samples, loss);
    }

    /// <summary>What a checkpoint records so that export, a resume or a warm start rebuild the same model.</summary>
    public static IReadOnlyDictionary<string, string> Architecture(string task, GptConfig config, TextVocabulary vocabulary) => new Dictionary<string, string>
    {
        ["family"] = Family,
        ["task"] = task,
        ["layers"] = config.Layers.ToString(CultureInfo.InvariantCulture),
        ["heads"] = config.Heads.ToString(CultureInfo.InvariantCulture),
        ["width"] = config.Width.ToString(CultureInfo.InvariantCulture),
        ["context"] = config.Context.ToString(CultureInfo.InvariantCulture),
        ["dropout"] = config.Dropout.ToString("R", CultureInfo.InvariantCulture),
        ["tie_weights"] = config.TieWeights ? "true" : "false",
        ["vocabulary"] = vocabulary.ToJson(),
    };

    /// <summary>Rebuilds the configuration, task and vocabulary a gpt checkpoint recorded.</summary>
    public static (GptConfig Config, TextVocabulary Vocabulary) ReadArchitecture(Checkpoint checkpoint)
    {
        var extra = ReadExtra(checkpoint);
        if (extra.GetValueOrDefault("family") != Family || !extra.TryGetValue("vocabulary", out var json))
        {
            throw new InvalidDataException($"checkpoint {checkpoint.Directory} is not a gpt checkpoint with a vocabulary (family '{extra.GetValueOrDefault("family") ?? "(none)"}')");
        }

        var vocabulary = TextVocabulary.FromJson(json);
        int Int(string key) => int.Parse(extra[key], CultureInfo.InvariantCulture);
        var config = new GptConfig(vocabulary.Count, Int("layers"), Int("heads"), Int("width"), Int("context"),
            double.Parse(extra["dropout"], CultureInfo.InvariantCulture), extra["tie_weights"] == "true");
        return (config, vocabulary);
    }

    /// <summary>The task (<see cref="GptTasks"/>) a gpt checkpoint was trained for.</summary>
    public static string ReadTask(Checkpoint checkpoint) => ReadExtra(checkpoint).GetValueOrDefault("task")
        ?? throw new InvalidDataException($"checkpoint {checkpoint.Directory} records no task");

    private static IReadOnlyDictionary<string, string> ReadExtra(Checkpoint checkpoint)
    {
        using var stream = checkpoint.Open(TrainingCheckpoint.StatePart);
        var state = System.Text.Json.JsonSerializer.Deserialize<TrainingState>(stream);
        return state?.Extra ?? new Dictionary<string, string>();
    }

    private static (List<TextExample> Examples, int TooLong) Examples(IReadOnlyList<TextPair> pairs, TextVocabulary vocabulary, bool conditional, int context)
    {
        var examples = new List<TextExample>(pairs.Count);
        int tooLong = 0;
        foreach (var pair in pairs)
        {
            var example = conditional ? TextExample.Conditional(vocabulary, pair.Source!, pair.Text) : TextExample.Lm(vocabulary, pair.Text);
            // A pair whose source and target do not fit cannot be learned from a window: skip it.
            // An lm text of any length trains on windows of the context.
            if (conditional && example.Tokens.Length - 1 > context)
            {
                tooLong++;
                continue;
            }

            examples.Add(example);
        }

        return (examples, tooLong);
    }

    private static void Freeze(Gpt gpt, IReadOnlyList<string> freeze)
    {
        var names = gpt.named_parameters().Select(p => p.name).ToList();
        foreach (var name in freeze)
        {
            if (!names.Any(p => p == name || p.StartsWith(name + ".", StringComparison.Ordinal)))
            {
                throw new ArgumentException($"cannot freeze '{name}': no such layer in gpt (layers: {string.Join(", ", names.Select(p => p.Split('.') is [ "blocks", var i, ..] ? $"blocks.{i}" : p.Split('.')[0]).Distinct())})");
            }
        }

        Freezing.Apply(gpt, [.. freeze]);
    }

    private static string Samples(Gpt gpt, TextVocabulary vocabulary, bool conditional, IReadOnlyList<TextPair> holdout, int count)
    {
        var text = new StringBuilder();
        if (conditional)
        {
            foreach (var pair in holdout.Take(count))
            {
                int[] prompt = [TextVocabulary.Bos, .. vocabulary.Encode(pair.Source!), TextVocabulary.Sep];
                if (prompt.Length >= gpt.Config.Context)
                {
                    continue;
                }

                text.Append("source:    ").AppendLine(pair.Source)
                    .Append("reference: ").AppendLine(pair.Text)
                    .Append("greedy:    ").AppendLine(vocabulary.Decode(GptDecoding.Greedy(gpt, prompt, gpt.Config.Context - prompt.Length)))
                    .AppendLine("%");
            }
        }
        else
        {
            text.AppendLine(vocabulary.Decode(GptDecoding.Greedy(gpt, [TextVocabulary.Bos], gpt.Config.Context - 1))).AppendLine("%");
            foreach (var pair in holdout.Take(count - 1))
            {
                var words = pair.Text.Split(' ', 4);
                string start = string.Join(' ', words.Take(Math.Min(3, words.Length - 1)));
                if (start.Length == 0)
                {
                    continue;
                }

                int[] prompt = [TextVocabulary.Bos, .. vocabulary.Encode(start)];
                if (prompt.Length >= gpt.Config.Context)
                {
                    continue;
                }

                text.Append(start).Append(vocabulary.Decode(GptDecoding.Greedy(gpt, prompt, gpt.Config.Context - prompt.Length))).AppendLine().AppendLine("%");
            }
        }

        return text.ToString();
    }
}
