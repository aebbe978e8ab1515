using System.Diagnostics;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Runtime;
using RetrainDaemon.Training.Trainers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RetrainDaemon.ModelTests;

/// <summary>The classifier (the future pinned FID/IS extractor) learns Fashion-MNIST: ≥ 90% on t10k within a CI budget.</summary>
public sealed class ClassifierAccuracyTests(ITestOutputHelper output)
{
    [Fact]
    public void Classifier_TrainedOnFashionMnistTrain_ReachesNinetyPercentOnT10k()
    {
        TorchRuntime.SetThreads(2);
        manual_seed(2026);
        var trainImages = FashionMnist.Read("train");
        var test = FashionMnist.Read("t10k");
        var train = new ImageDataset(trainImages.Select(i => i.Pixels).ToList(), trainImages.Select(i => i.Label).ToList(), 28);
        var model = new FashionClassifier(new ClassifierConfig());
        Initialization.Apply(model, InitScheme.He);
        var options = new TrainingOptions
        {
            Optimizer = OptimizerKind.AdamW, LearningRate = 3e-3, Beta1 = 0.9, WeightDecay = 1e-4,
            Schedule = ScheduleKind.Cosine, WarmupSteps = 100, Steps = 1800, BatchSize = 128, EvalEvery = 0, Seed = 7,
        };
        var watch = Stopwatch.StartNew();
        var result = TrainingLoop.Run(new ClassifierStep(model, options), train, null, options);
        Assert.Equal(TrainingOutcome.Completed, result.Outcome);

        model.eval();
        int correct = 0;
        foreach (var chunk in test.Chunk(1000))
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var (x, y) = ImageTensors.FashionMnistBatch(chunk, symmetric: false);
            correct += (int)(model.forward(x).argmax(1) == y).sum().item<long>();
        }

        double accuracy = correct / (double)test.Count;
        output.WriteLine($"t10k accuracy {accuracy:P2} after {options.Steps} steps of {options.BatchSize} ({options.Steps * options.BatchSize / 60000.0:0.0} epochs) in {watch.Elapsed.TotalSeconds:0} s");
        Assert.True(accuracy >= 0.90, $"t10k accuracy {accuracy:P2}");
    }
}
