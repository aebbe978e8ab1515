using System.CommandLine;
using System.Globalization;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Evaluation.Extractors;
using RetrainDaemon.Evaluation.Images;
using RetrainDaemon.Export.Exporters;
using RetrainDaemon.Training.Checkpoints;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Runtime;
using RetrainDaemon.Training.Trainers;
using static TorchSharp.torch;

namespace RetrainDaemon.Cli;

/// <summary>
/// <c>extractor build</c>: trains the pinned FID/IS feature extractor (the Fashion-MNIST classifier)
/// with a fixed seed on Fashion-MNIST train, exports it with the parity check, measures its t10k
/// accuracy through ONNX Runtime (≥ 90% required) and writes it with its sha256 into the folder that
/// is committed. <c>extractor verify</c> re-checks a shipped extractor.
/// </summary>
internal static class ExtractorCommand
{
    private const string RepositoryFolder = "src/RetrainDaemon.Evaluation/Extractors/pinned";

    public static Command Create()
    {
        var command = new Command("extractor", "The pinned feature extractor FID and IS are computed with.");
        command.Subcommands.Add(Build());
        command.Subcommands.Add(Verify());
        return command;
    }

    private static Command Build()
    {
        var steps = new Option<int>("--steps") { Description = "Training steps.", DefaultValueFactory = _ => 3000 };
        var batch = new Option<int>("--batch") { Description = "Batch size.", DefaultValueFactory = _ => 128 };
        var seed = new Option<int>("--seed") { Description = "The fixed seed (weights, batches, dropout).", DefaultValueFactory = _ => 7 };
        var threads = new Option<int>("--threads") { Description = "TorchSharp threads.", DefaultValueFactory = _ => 2 };
        var dataset = new Option<string>("--dataset-dir") { Description = "Fashion-MNIST IDX files (Debian's dataset-fashion-mnist).", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };
        var output = new Option<string?>("--out") { Description = $"Output folder (default: {RepositoryFolder} when run from the repository root, else ./extractor)." };
        var command = new Command("build", "Train the Fashion-MNIST classifier with a fixed seed, export it to ONNX (parity ≤ 1e-5), require ≥ 90% t10k accuracy, and write it with its sha256.");
        foreach (var o in new Option[] { steps, batch, seed, threads, dataset, output })
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, cancellationToken) => Task.Run(() =>
        {
            string directory = parse.GetValue(output) ?? (Directory.Exists(Path.GetDirectoryName(RepositoryFolder)) ? RepositoryFolder : "extractor");
            string datasetDirectory = parse.GetValue(dataset)!;
            TorchRuntime.SetThreads(parse.GetValue(threads));
            Console.Error.WriteLine($"reading Fashion-MNIST from {datasetDirectory}");
            var train = FashionMnist.Read("train", directory: datasetDirectory);
            var test = FashionMnist.Read("t10k", directory: datasetDirectory);
            // The last 5,000 training images watch the holdout loss; t10k is only used for the final accuracy.
            var fit = new ImageDataset(train.Take(55000).Select(i => i.Pixels).ToList(), train.Take(55000).Select(i => i.Label).ToList(), 28);
            var watch = new ImageDataset(train.Skip(55000).Select(i => i.Pixels).ToList(), train.Skip(55000).Select(i => i.Label).ToList(), 28);
            var options = new TrainingOptions
            {
                Optimizer = OptimizerKind.Adam,
                LearningRate = 1e-3,
                Beta1 = 0.9,
                Schedule = ScheduleKind.Cosine,
                WarmupSteps = 100,
                Steps = parse.GetValue(steps),
                BatchSize = parse.GetValue(batch),
                EvalEvery = Math.Max(1, parse.GetValue(steps) / 10),
                CheckpointEvery = parse.GetValue(steps),
                Seed = parse.GetValue(seed),
            };
            string run = Path.Combine(Path.GetTempPath(), $"retrain-extractor-{Environment.ProcessId}");
            if (Directory.Exists(run))
            {
                Directory.Delete(run, recursive: true);
            }

            try
            {
                var progress = new Progress<TrainingProgress>(p => Console.Error.WriteLine(string.Format(CultureInfo.InvariantCulture,
                    "  step {0,6}/{1}  {2}  {3:0.0} steps/s  ETA {4:hh\\:mm\\:ss}", p.Step, p.Steps,
                    string.Join("  ", p.Losses.Select(l => $"{l.Key} {l.Value:0.0000}")), p.StepsPerSecond, p.Remaining)));
                var request = new ImageRunRequest("classifier", run, options, Init: InitScheme.He, KeepCheckpoints: 1);
                var result = ImageTrainingRun.Run(request, fit, watch, progress, cancellationToken);
                if (result.LastCheckpoint is null || result.Training.Outcome != TrainingOutcome.Completed)
                {
                    Console.Error.WriteLine($"retrain-daemon: training ended {result.Training.Outcome}: {result.Training.Reason}");
                    return 1;
                }

                var classifier = new FashionClassifier(new ClassifierConfig());
                TrainingCheckpoint.Restore(result.LastCheckpoint, new Dictionary<string, nn.Module> { ["classifier"] = classifier }, null);
                var export = ModelExporter.Export(classifier);
                Console.Error.WriteLine($"exported: {export.Onnx.Length} bytes, parity max |diff| {export.Parity.MaxAbsDiff:E2}");

                // Accuracy of the exported file through ONNX Runtime: what FID/IS will actually run.
                string staging = Path.Combine(run, "staging");
                Directory.CreateDirectory(staging);
                string onnxPath = Path.Combine(staging, PinnedExtractor.Name + ".onnx");
                File.WriteAllBytes(onnxPath, export.Onnx);
                double accuracy = TestAccuracy(onnxPath, test, parse.GetValue(threads), cancellationToken);
                Console.Error.WriteLine($"t10k accuracy {accuracy:P2} (required {PinnedExtractor.MinimumAccuracy:P0})");
                if (accuracy < PinnedExtractor.MinimumAccuracy)
                {
                    Console.Error.WriteLine("retrain-daemon: the extractor is not accurate enough; nothing written (train longer with --steps)");
                    return 1;
                }

                var record = new PinnedExtractorRecord(PinnedExtractor.Name, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(export.Onnx)),
                    accuracy, (int)options.Seed, options.Steps, options.BatchSize, new ClassifierConfig().ToString(), "features", "probabilities",
                    export.Parity.MaxAbsDiff, DateTime.UtcNow,
                    $"retrain-daemon extractor build --steps {options.Steps} --batch {options.BatchSize} --seed {options.Seed} --threads {parse.GetValue(threads)}");
                PinnedExtractor.Write(directory, export.Onnx, record);
                Console.WriteLine($"{Path.Combine(directory, PinnedExtractor.Name)}.onnx sha256 {record.Sha256}, t10k accuracy {accuracy:0.0000}");
                return 0;
            }
            finally
            {
                if (Directory.Exists(run))
                {
                    Directory.Delete(run, recursive: true);
                }
            }
        }, cancellationToken));
        return command;
    }

    private static Command Verify()
    {
        var dataset = new Option<string>("--dataset-dir") { Description = "Fashion-MNIST IDX files.", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };
        var command = new Command("verify", "Check the shipped extractor's sha256 against its record and re-measure its t10k accuracy through ONNX Runtime.");
        command.Options.Add(dataset);
        command.SetAction((parse, cancellationToken) => Task.Run(() =>
        {
            var record = PinnedExtractor.Verify();
            var test = FashionMnist.Read("t10k", directory: parse.GetValue(dataset)!);
            double accuracy = TestAccuracy(PinnedExtractor.OnnxPath, test, 2, cancellationToken);
            Console.WriteLine($"{PinnedExtractor.OnnxPath}: sha256 {record.Sha256} verified; t10k accuracy {accuracy:0.0000} (recorded {record.T10kAccuracy:0.0000})");
            return Math.Abs(accuracy - record.T10kAccuracy) < 1e-9 ? 0 : 1;
        }, cancellationToken));
        return command;
    }

    private static double TestAccuracy(string onnxPath, IReadOnlyList<FashionMnistImage> test, int threads, CancellationToken cancellationToken)
    {
        using var extractor = new OnnxFeatureExtractor(new FeatureExtractorOptions { Path = onnxPath, Name = PinnedExtractor.Name }, threads);
        var extracted = extractor.Extract(test.Select(i => i.Pixels).ToList(), 28, 28, 1, "t10k", cancellationToken);
        var predicted = Diversity.PredictedClasses(extracted.Probabilities!);
        return (double)predicted.Where((label, i) => label == test[i].Label).Count() / test.Count;
    }
}
