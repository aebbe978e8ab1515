using System.CommandLine;
using System.Globalization;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Runtime;
using RetrainDaemon.Training.Trainers;

namespace RetrainDaemon.Cli;

/// <summary><c>train</c>: one training run of an image model (dcgan, vae, classifier) or a text model (gpt) on a snapshot of the store.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "The configured model whose samples to train on (image: fashion-mnist; text: fortunes, en-de).", DefaultValueFactory = _ => "fashion-mnist" };
        var family = new Option<string>("--family") { Description = "dcgan, vae or classifier for image models; gpt for text models (default: dcgan, or gpt for a text model)." };
        family.AcceptOnlyFromAmong([.. ImageTrainingRun.Families, TextTrainingRun.Family]);
        var steps = new Option<int>("--steps") { Description = "Optimizer steps.", DefaultValueFactory = _ => 1000 };
        var batch = new Option<int>("--batch-size") { Description = "Samples per step.", DefaultValueFactory = _ => 64 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate.", DefaultValueFactory = _ => 2e-4 };
        var optimizer = new Option<string>("--optimizer") { Description = "sgd, adam or adamw.", DefaultValueFactory = _ => "adam" };
        optimizer.AcceptOnlyFromAmong("sgd", "adam", "adamw");
        var weightDecay = new Option<double>("--weight-decay") { Description = "L2 / decoupled weight decay.", DefaultValueFactory = _ => 0 };
        var cosine = new Option<bool>("--cosine") { Description = "Warm-up + cosine learning-rate schedule instead of constant." };
        var clip = new Option<double>("--clip") { Description = "Gradient-norm clip (0: off).", DefaultValueFactory = _ => 0 };
        var patience = new Option<int>("--patience") { Description = "Holdout evaluations without improvement before stopping (0: off).", DefaultValueFactory = _ => 0 };
        var from = new Option<string?>("--from") { Description = "Warm start: a checkpoint directory (transfer learning)." };
        var freeze = new Option<string[]>("--freeze") { Description = "Layers to keep fixed when warm-starting, e.g. --freeze up1 up2.", AllowMultipleArgumentsPerToken = true };
        var conditional = new Option<bool>("--conditional") { Description = "Condition on the class label." };
        var since = new Option<long>("--since") { Description = "The previous run's watermark: train on samples after it, plus replay of older ones.", DefaultValueFactory = _ => 0 };
        var replay = new Option<double>("--replay") { Description = "Old samples replayed per fresh one when --since is set.", DefaultValueFactory = _ => 1.0 };
        var threads = new Option<int?>("--threads") { Description = "libtorch threads (default: Training:Threads from the configuration)." };
        var seed = new Option<long>("--seed") { Description = "Seed for initialization and batches.", DefaultValueFactory = _ => 1 };
        var output = new Option<string?>("--out") { Description = "Run directory (default state/runs/<model>-<family>-<time>). A directory with checkpoints is resumed." };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Checkpoint interval in steps (default: 5 per run)." };
        var keep = new Option<int>("--keep") { Description = "Checkpoints kept.", DefaultValueFactory = _ => 3 };
        var width = new Option<int?>("--width") { Description = "Base channel width (default: the family's: dcgan 64, vae 32, classifier 32) or the gpt embedding width (128)." };
        var layers = new Option<int>("--layers") { Description = "gpt: transformer blocks.", DefaultValueFactory = _ => 2 };
        var heads = new Option<int>("--heads") { Description = "gpt: attention heads (width must be a multiple).", DefaultValueFactory = _ => 4 };
        var context = new Option<int>("--context") { Description = "gpt: context length in tokens.", DefaultValueFactory = _ => 128 };
        var dropout = new Option<double>("--dropout") { Description = "gpt: dropout.", DefaultValueFactory = _ => 0.1 };
        var vocabularySize = new Option<int>("--vocab-size") { Description = "gpt: the compact vocabulary's size cap (4 special + 256 byte tokens + the most frequent GPT-2 tokens).", DefaultValueFactory = _ => 4096 };
        var untied = new Option<bool>("--untied") { Description = "gpt: a separate output projection instead of reusing the token embedding." };
        var command = new Command("train", "Train an image model (dcgan, vae, classifier) or a text model (gpt: lm on fortunes, conditional on en-de pairs) with TorchSharp on a snapshot of the store; writes checkpoints, samples (png or txt), loss.png and loss.csv.");
        foreach (var o in new Option[] { model, family, steps, batch, lr, optimizer, weightDecay, cosine, clip, patience, from, freeze, conditional, since, replay, threads, seed, output, checkpointEvery, keep, width, layers, heads, context, dropout, vocabularySize, untied })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, cancellationToken) =>
        {
            var configuration = RetrainCli.Configuration(parse);
            var failures = new List<string>();
            var storeOptions = RetrainCli.Bind(configuration, StoreOptions.Section, RetrainCli.StoreValidator(), failures);
            var trainingHost = RetrainCli.Bind(configuration, TrainingHostOptions.Section, new TrainingHostOptionsValidator(), failures);
            var models = RetrainCli.BindModels(configuration, failures);
            if (failures.Count > 0)
            {
                throw new ConfigurationInvalidException(failures);
            }

            string modelName = parse.GetValue(model)!;
            if (models.TryGet(modelName, out var textModel) && textModel.ParsedModality == Core.Contracts.Modality.Text)
            {
                if (parse.GetValue(family) is { } f && f != TextTrainingRun.Family)
                {
                    Console.Error.WriteLine($"retrain-daemon: '{modelName}' is a text model; it trains with --family gpt, not {f}");
                    return 2;
                }

                return await TrainTextAsync(parse, modelName, textModel, storeOptions, trainingHost, cancellationToken);
            }

            if (parse.GetValue(family) == TextTrainingRun.Family)
            {
                Console.Error.WriteLine($"retrain-daemon: --family gpt trains text models; '{modelName}' is not a configured text model (Models: {string.Join(", ", models.Models.Keys)})");
                return 2;
            }

            if (!models.TryGet(modelName, out var modelOptions) || modelOptions.ParsedModality != Core.Contracts.Modality.Image
                || modelOptions.Image.Width != 28 || modelOptions.Image.Height != 28 || modelOptions.Image.Channels != 1)
            {
                Console.Error.WriteLine($"retrain-daemon: '{modelName}' is not a configured 28x28 grayscale image model (Models: {string.Join(", ", models.Models.Keys)})");
                return 2;
            }

            var options = new TrainingOptions
            {
                Optimizer = Enum.Parse<OptimizerKind>(parse.GetValue(optimizer)!, ignoreCase: true),
                LearningRate = parse.GetValue(lr),
                WeightDecay = parse.GetValue(weightDecay),
                Schedule = parse.GetValue(cosine) ? ScheduleKind.Cosine : ScheduleKind.Constant,
                WarmupSteps = parse.GetValue(cosine) ? Math.Min(100, parse.GetValue(steps) / 10) : 0,
                Steps = parse.GetValue(steps),
                BatchSize = parse.GetValue(batch),
                GradientClip = parse.GetValue(clip),
                Patience = parse.GetValue(patience),
                EvalEvery = Math.Max(1, Math.Min(200, parse.GetValue(steps) / 10)),
                CheckpointEvery = parse.GetValue(checkpointEvery) > 0 ? parse.GetValue(checkpointEvery) : Math.Max(1, parse.GetValue(steps) / 5),
                Seed = parse.GetValue(seed),
                Freeze = parse.GetValue(freeze) ?? [],
            };
            int threadCount = parse.GetValue(threads) ?? trainingHost.Threads;
            TorchRuntime.SetThreads(threadCount);
            var device = TorchRuntime.SelectDevice(trainingHost.AllowCuda);
            string familyName = parse.GetValue(family) ?? "dcgan";
            string runDirectory = parse.GetValue(output)
                ?? Path.Combine("state", "runs", $"{modelName}-{familyName}-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
            Directory.CreateDirectory(runDirectory);

            await using var store = SampleStores.Open(storeOptions);
            long watermark = await store.GetWatermarkAsync(cancellationToken);
            var (train, holdout, counts) = await ImageSnapshot.LoadAsync(store, modelName, 28, watermark, parse.GetValue(since), parse.GetValue(replay), parse.GetValue(seed), cancellationToken);
            Console.Error.WriteLine($"training {familyName} on '{modelName}' ({device.type}, {threadCount} threads): watermark {counts.Watermark}, " +
                $"{counts.Fresh} fresh + {counts.Replayed} replayed training samples, {counts.Holdout} holdout; run directory {Path.GetFullPath(runDirectory)}");

            if (new Training.Checkpoints.CheckpointStore(Path.Combine(runDirectory, "checkpoints")).LoadLatest() is { } resumeFrom)
            {
                Console.Error.WriteLine($"resuming the interrupted run from its checkpoint at step {resumeFrom.Step}");
            }

            var progress = Progress();
            var request = new ImageRunRequest(familyName, runDirectory, options, parse.GetValue(conditional), parse.GetValue(from),
                familyName == "dcgan" ? InitScheme.Normal002 : InitScheme.He, KeepCheckpoints: Math.Max(1, parse.GetValue(keep)), Width: parse.GetValue(width));
            var result = ImageTrainingRun.Run(request, train, holdout, progress, cancellationToken);
            Console.WriteLine($"checkpoint {result.LastCheckpoint?.Directory ?? "(none)"}; samples {result.SamplesPng}; losses {result.LossPng}");
            return Outcome(result.Training);
        });

        async Task<int> TrainTextAsync(ParseResult parse, string modelName, ModelOptions modelOptions, StoreOptions storeOptions, TrainingHostOptions trainingHost, CancellationToken cancellationToken)
        {
            // Text defaults follow the GPT-2/nanoGPT recipe unless the command line says otherwise.
            T Pick<T>(Option<T> option, T textDefault) => parse.GetResult(option) is { Implicit: false } ? parse.GetValue(option)! : textDefault;
            int stepCount = parse.GetValue(steps);
            var options = new TrainingOptions
            {
                Optimizer = Enum.Parse<OptimizerKind>(Pick(optimizer, "adamw"), ignoreCase: true),
                LearningRate = Pick(lr, 1e-3),
                WeightDecay = Pick(weightDecay, 0.1),
                Beta1 = 0.9,
                Beta2 = 0.99,
                Schedule = ScheduleKind.Cosine,
                WarmupSteps = Math.Min(100, stepCount / 10),
                Steps = stepCount,
                BatchSize = Pick(batch, 32),
                GradientClip = Pick(clip, 1.0),
                Patience = parse.GetValue(patience),
                EvalEvery = Math.Max(1, Math.Min(200, stepCount / 10)),
                CheckpointEvery = parse.GetValue(checkpointEvery) > 0 ? parse.GetValue(checkpointEvery) : Math.Max(1, stepCount / 5),
                Seed = parse.GetValue(seed),
                Freeze = parse.GetValue(freeze) ?? [],
            };
            int threadCount = parse.GetValue(threads) ?? trainingHost.Threads;
            TorchRuntime.SetThreads(threadCount);
            var device = TorchRuntime.SelectDevice(trainingHost.AllowCuda);
            string runDirectory = parse.GetValue(output) ?? Path.Combine("state", "runs", $"{modelName}-gpt-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
            Directory.CreateDirectory(runDirectory);

            await using var store = SampleStores.Open(storeOptions);
            long watermark = await store.GetWatermarkAsync(cancellationToken);
            string task = modelOptions.Text.Conditional ? Core.Text.GptTasks.Conditional : Core.Text.GptTasks.Lm;
            var (train, holdout, counts) = await TextSnapshot.LoadAsync(store, modelName, modelOptions.Text.Conditional, watermark, parse.GetValue(since), cancellationToken);
            Console.Error.WriteLine($"training gpt ({task}) on '{modelName}' ({device.type}, {threadCount} threads): {counts}; run directory {Path.GetFullPath(runDirectory)}");
            var request = new TextRunRequest(task, runDirectory, options, parse.GetValue(layers), parse.GetValue(heads), parse.GetValue(width) ?? 128,
                parse.GetValue(context), parse.GetValue(dropout), !parse.GetValue(untied), parse.GetValue(vocabularySize), FromCheckpoint: parse.GetValue(from),
                KeepCheckpoints: Math.Max(1, parse.GetValue(keep)));
            var result = TextTrainingRun.Run(request, train, holdout, Progress(), cancellationToken);
            Console.Error.WriteLine($"vocabulary {result.Vocabulary.Count} tokens; model {result.Config}; {result.SkippedTooLong} pairs longer than the context skipped; holdout loss before training {result.InitialHoldoutLoss:0.0000}");
            Console.WriteLine($"checkpoint {result.LastCheckpoint?.Directory ?? "(none)"}; samples {result.SamplesText}; losses {result.LossPng}");
            return Outcome(result.Training);
        }

        return command;
    }

    private static Progress<TrainingProgress> Progress() => new(p => Console.Error.WriteLine(string.Format(CultureInfo.InvariantCulture,
        "  step {0,6}/{1}  {2}  {3:0.0} steps/s  ETA {4:hh\\:mm\\:ss}", p.Step, p.Steps,
        string.Join("  ", p.Losses.Select(l => $"{l.Key} {l.Value:0.0000}")), p.StepsPerSecond, p.Remaining)));

    private static int Outcome(TrainingResult training)
    {
        Console.WriteLine($"{training.Outcome} after {training.Steps} steps" + (training.BestHoldoutLoss is { } best ? $"; best holdout loss {best:0.0000}" : "")
            + (training.Reason is null ? "" : $"; {training.Reason}"));
        return training.Outcome switch
        {
            TrainingOutcome.NonFiniteLoss => 3,
            TrainingOutcome.Cancelled => 130,
            _ => 0,
        };
    }
}
