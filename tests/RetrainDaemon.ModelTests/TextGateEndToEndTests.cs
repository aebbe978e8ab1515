using RetrainDaemon.Core.Gate;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Evaluation.Gating;
using RetrainDaemon.Evaluation.Text;
using RetrainDaemon.Export.Exporters;
using RetrainDaemon.Training.Checkpoints;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Trainers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RetrainDaemon.ModelTests;

/// <summary>
/// The text gate end to end on real English → German gettext pairs: a conditional gpt trained for a
/// few hundred steps, a random-init one, and a candidate trained to copy its source, each exported to
/// ONNX and scored through ONNX Runtime by the evaluator the fine-tune job uses, against the registry champion.
/// </summary>
public sealed class TextGateEndToEndTests(ITestOutputHelper output) : IDisposable
{
    private const string Model = "en-de";
    private readonly string directory = Directory.CreateTempSubdirectory("rd-text-gate-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static readonly GateOptions Gate = new()
    {
        Checks =
        [
            // The floor rules out an untrained model (BLEU ~0); the regression check stops a candidate worse
            // than the champion. Echoing the English source keeps placeholders and names and so scores some
            // BLEU on UI strings; source_copy_share names a copier outright.
            new GateCheckOptions { Metric = "bleu", Min = 3, MaxRegressionRelative = 0.1 },
            new GateCheckOptions { Metric = "source_copy_share", Max = 0.2 },
            new GateCheckOptions { Metric = "rougeL", MaxRegressionRelative = 0.2 },
        ],
    };

    /// <summary>Value thresholds only, so the random-init model can become the first champion.</summary>
    private static readonly GateOptions Admit = new() { Checks = [new GateCheckOptions { Metric = "bleu", Min = 0 }] };

    [Fact]
    public void Trained_conditional_model_passes_over_a_random_init_champion_and_a_source_copier_fails_readably()
    {
        var pairs = TextTrainingTests.Pairs(0, 3200);
        var train = pairs.Take(3000).ToList();
        var holdout = pairs.Skip(3000).ToList();
        var options = new TrainingOptions
        {
            Optimizer = OptimizerKind.AdamW, LearningRate = 2e-3, Beta1 = 0.9, Beta2 = 0.99, WeightDecay = 0.1,
            Schedule = ScheduleKind.Cosine, WarmupSteps = 50, Steps = 600, BatchSize = 32, GradientClip = 1.0, EvalEvery = 0, Seed = 3,
        };
        var request = new TextRunRequest(GptTasks.Conditional, Path.Combine(directory, "trained"), options, Layers: 2, Heads: 4, Width: 128, Context: 64, Dropout: 0.1, VocabularySize: 4096);
        var trained = TextTrainingRun.Run(request, train, holdout);
        var vocabulary = trained.Vocabulary;

        // A copier: the trained model fine-tuned on a broken feed whose targets are the sources (source ⇒ source).
        var copies = train.Select(p => new TextPair(p.Source!, p.Source)).ToList();
        var copier = TextTrainingRun.Run(request with { OutputDirectory = Path.Combine(directory, "copier"), FromCheckpoint = trained.CheckpointDirectory, Options = options with { Steps = 900, WarmupSteps = 20, LearningRate = 3e-3 } }, copies, [], null);

        using var trainedGpt = Restore(trained);
        string trainedOnnx = Export(trainedGpt, vocabulary, "trained.onnx");
        manual_seed(9);
        using var untrainedGpt = new Gpt(trained.Config);
        Initialization.Apply(untrainedGpt, InitScheme.Normal002);
        string untrainedOnnx = Export(untrainedGpt, vocabulary, "untrained.onnx");
        using var copierGpt = Restore(copier);
        string copierOnnx = Export(copierGpt, vocabulary, "copier.onnx");

        var reference = new TextReferenceSet("en-de-test", [.. holdout.Select(p => new ReferenceText(p.Source, p.Text))], [.. train.Select(p => p.Text)]);
        var registry = new ModelRegistry(Path.Combine(directory, "registry"));
        var gate = new TextCandidateGate(new TextEvaluationOptions { MaxNewTokens = 48 }, 2, registry);
        var hyperparameters = new Dictionary<string, string> { ["family"] = "gpt", ["task"] = GptTasks.Conditional };

        var random = gate.Evaluate(Model, untrainedOnnx, reference, Admit);
        Assert.True(random.Report.Passed, random.Report.ToText());
        var championVersion = gate.Publish(Model, new Dictionary<string, string> { ["model.onnx"] = untrainedOnnx }, random, hyperparameters).Version;

        var passing = gate.Evaluate(Model, trainedOnnx, reference, Gate);
        output.WriteLine(passing.Report.ToText());
        Assert.Equal(championVersion, passing.ChampionVersion);
        Assert.True(passing.Report.Passed, passing.Report.ToText());
        double bleu = passing.Candidate.Metrics.Single(m => m.Metric == "bleu").Value;
        Assert.True(bleu > passing.Champion!.Metrics.Single(m => m.Metric == "bleu").Value + 2, "the trained model is not clearly better than random");
        var promoted = gate.Publish(Model, new Dictionary<string, string> { ["model.onnx"] = trainedOnnx }, passing, hyperparameters);
        Assert.Equal(promoted.Version, registry.ResolveServable(Model).Version);

        // The copier: check it really copies — its outputs score far higher against the sources than against the German references.
        var sources = holdout.Take(100).ToList();
        var outputs = sources.Select(p => vocabulary.Decode(GptDecoding.Greedy(copierGpt, [TextVocabulary.Bos, .. vocabulary.Encode(p.Source!), TextVocabulary.Sep], 48))).ToList();
        double againstSources = Bleu.Corpus(outputs, [.. sources.Select(p => (IReadOnlyList<string?>)[p.Source])]).Score;
        double againstReferences = Bleu.Corpus(outputs, [.. sources.Select(p => (IReadOnlyList<string?>)[p.Text])]).Score;
        for (int i = 0; i < 5; i++)
        {
            output.WriteLine($"copier: {sources[i].Source} => {outputs[i]} (reference {sources[i].Text})");
        }

        output.WriteLine($"copier BLEU against the sources {againstSources:0.00}, against the references {againstReferences:0.00}");
        Assert.True(againstSources > 2 * againstReferences, "the copy candidate does not copy its sources; it is not the candidate this test means");

        // ... then gate it against the trained champion: BLEU low, fails with a readable report, recorded as rejected.
        var failing = gate.Evaluate(Model, copierOnnx, reference, Gate);
        string text = failing.Report.ToText();
        output.WriteLine(text);
        Assert.False(failing.Report.Passed);
        Assert.StartsWith("GATE FAILED", text, StringComparison.Ordinal);
        Assert.Contains(failing.Report.Rows, r => r.Metric == "source_copy_share" && r.Verdict == GateVerdict.Fail);
        Assert.Contains("source_copy_share", text, StringComparison.Ordinal);
        double copierBleu = failing.Candidate.Metrics.Single(m => m.Metric == "bleu").Value;
        output.WriteLine($"source_copy_share: champion {passing.Candidate.Metrics.Single(m => m.Metric == "source_copy_share").Value:0.000}, copier {failing.Candidate.Metrics.Single(m => m.Metric == "source_copy_share").Value:0.000}");
        output.WriteLine($"BLEU on the holdout: champion {bleu:0.00}, copier {copierBleu:0.00}");
        var rejected = gate.Publish(Model, new Dictionary<string, string> { ["model.onnx"] = copierOnnx }, failing, hyperparameters);
        Assert.Equal(VersionStatus.Rejected, rejected.Status);
        Assert.Equal(promoted.Version, registry.ResolveServable(Model).Version);
    }

    private string Export(Gpt gpt, TextVocabulary vocabulary, string name)
    {
        string path = Path.Combine(directory, name);
        File.WriteAllBytes(path, ModelExporter.Export(new GptExporter(gpt, GptTasks.Conditional, vocabulary), gpt).Onnx);
        return path;
    }

    private static Gpt Restore(TextRunResult result)
    {
        var gpt = new Gpt(result.Config);
        TrainingCheckpoint.Restore(result.LastCheckpoint!, new Dictionary<string, nn.Module> { ["gpt"] = gpt }, null);
        gpt.eval();
        return gpt;
    }
}
