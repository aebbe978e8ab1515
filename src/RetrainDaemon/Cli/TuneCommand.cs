using System.CommandLine;
using System.Globalization;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Tuning;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Runtime;
using RetrainDaemon.Training.Trainers;

namespace RetrainDaemon.Cli;

/// <summary><c>tune</c>: hyperparameter search (grid, random, Bayesian/TPE) of short trainings, scored on holdout.</summary>
internal static class TuneCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "The configured image model whose samples to use.", DefaultValueFactory = _ => "fashion-mnist" };
        var family = new Option<string>("--family") { Description = "dcgan, vae or classifier.", DefaultValueFactory = _ => "vae" };
        family.AcceptOnlyFromAmong([.. ImageTrainingRun.Families]);
        var method = new Option<string>("--method") { Description = "grid, random or bayesian (TPE).", DefaultValueFactory = _ => "bayesian" };
        method.AcceptOnlyFromAmong("grid", "random", "bayesian");
        var trials = new Option<int>("--trials") { Description = "Trial budget.", DefaultValueFactory = _ => 12 };
        var minutes = new Option<double>("--minutes") { Description = "Wall-time budget.", DefaultValueFactory = _ => 30 };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps per trial.", DefaultValueFactory = _ => 200 };
        var conditional = new Option<bool>("--conditional") { Description = "Condition on the class label." };
        var threads = new Option<int?>("--threads") { Description = "libtorch threads (default: Training:Threads from the configuration)." };
        var seed = new Option<long>("--seed") { Description = "Seed of the search and the trainings.", DefaultValueFactory = _ => 1 };
        var output = new Option<string?>("--out") { Description = "Directory for trials.jsonl and one directory per trial." };
        var command = new Command("tune", "Search learning rate, batch size, weight decay (and β for VAEs) with short trainings on a store snapshot; every trial recorded in trials.jsonl.");
        foreach (var o in new Option[] { model, family, method, trials, minutes, steps, conditional, threads, seed, output })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, cancellationToken) =>
        {
            var configuration = RetrainCli.Configuration(parse);
            var failures = new List<string>();
            var storeOptions = RetrainCli.Bind(configuration, StoreOptions.Section, RetrainCli.StoreValidator(), failures);
            var trainingHost = RetrainCli.Bind(configuration, TrainingHostOptions.Section, new TrainingHostOptionsValidator(), failures);
            if (failures.Count > 0)
            {
                throw new ConfigurationInvalidException(failures);
            }

            int threadCount = parse.GetValue(threads) ?? trainingHost.Threads;
            TorchRuntime.SetThreads(threadCount);
            string name = parse.GetValue(model)!, fam = parse.GetValue(family)!;
            string directory = parse.GetValue(output) ?? Path.Combine("state", "tuning", $"{name}-{fam}-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
            await using var store = SampleStores.Open(storeOptions);
            long watermark = await store.GetWatermarkAsync(cancellationToken);
            var (train, holdout, counts) = await ImageSnapshot.LoadAsync(store, name, 28, watermark, cancellationToken: cancellationToken);
            Console.Error.WriteLine($"tuning {fam} on '{name}': {counts.Fresh} training, {counts.Holdout} holdout samples (watermark {watermark}); {parse.GetValue(method)} search, {parse.GetValue(trials)} trials of {parse.GetValue(steps)} steps; {Path.GetFullPath(directory)}");
            var result = ImageTuning.Run(fam, directory, new TrainingOptions { Steps = parse.GetValue(steps), Seed = parse.GetValue(seed) }, parse.GetValue(conditional), train, holdout,
                ImageTuning.DefaultSpace(fam), Enum.Parse<SearchMethod>(parse.GetValue(method)!, ignoreCase: true), parse.GetValue(trials), TimeSpan.FromMinutes(parse.GetValue(minutes)),
                trial => Console.Error.WriteLine(string.Format(CultureInfo.InvariantCulture, "  trial {0,3}: {1,-60} holdout {2,10:0.0000}  {3:0.0} s{4}",
                    trial.Number, ImageTuning.Describe(trial.Parameters), trial.Score, trial.Duration.TotalSeconds, trial.Failure is null ? "" : "  failed: " + trial.Failure)), cancellationToken);
            Console.WriteLine(result.Best is { } best
                ? $"best: trial {best.Number} ({ImageTuning.Describe(best.Parameters)}) holdout {best.Score:0.0000}; {result.StopReason}"
                : $"no trial succeeded; {result.StopReason}");
            return result.Best is null ? 1 : 0;
        });
        return command;
    }
}
