using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Evaluation.Analysis;
using RetrainDaemon.Evaluation.Text;
using RetrainDaemon.Export.Exporters;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Trainers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RetrainDaemon.ModelTests.Analysis;

/// <summary>
/// Error analysis of a tiny conditional GPT on real English→German gettext pairs from three catalogs, stored as the
/// publisher stores them (catalog in the label, the one gettext CloudEvent source). The per-slice BLEU and chrF must be
/// exactly the project's <see cref="Bleu"/> and <see cref="Chrf"/> on that slice's outputs, and the outputs exactly
/// TorchSharp's greedy decoding of the same model (so what is scored is the champion's greedy output).
/// </summary>
public sealed class TextErrorAnalysisTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Model = "en-de";
    private const string Source = "/retrain-daemon/publish/gettext";
    private const int Context = 64;
    private const int MaxNewTokens = 24;

    private readonly string root = Directory.CreateTempSubdirectory("rd-analysis-text-").FullName;
    private SqliteSampleStore store = null!;
    private List<TranslationPair> holdout = null!;
    private int torchThreads;

    public async Task InitializeAsync()
    {
        // One libtorch thread: the model is tiny and OpenMP workers spinning on 2 shared cores cost more than they give.
        torchThreads = get_num_threads();
        set_num_threads(1);
        store = new SqliteSampleStore(new StoreOptions { Path = Path.Combine(root, "retrain.db") });
        var byCatalog = GettextCatalog.ReadLanguage("de")
            .Where(p => p.Source.Length is > 3 and <= 30 && p.Target.Length is > 3 and <= 40 && !p.Source.Contains('\n') && !p.Target.Contains('\n'))
            .GroupBy(p => p.Catalog).Where(g => g.Count() >= 40).Select(g => g.Take(40).ToList()).Take(5).ToList();
        Assert.Equal(5, byCatalog.Count);
        holdout = [.. byCatalog.Take(3).SelectMany(c => c.Take(20))];
        IngestItem Item(TranslationPair p, string split) => IngestItem.Of(new SampleRecord($"gettext/de/{p.Catalog}/{p.Index:D6}", Model, Source, null, Modality.Text,
            split, p.Catalog, 0, 0, 0, null, p.Target, p.Source));
        await store.CommitAsync([.. byCatalog[3].Select(p => Item(p, Splits.Train))], CancellationToken.None);   // 1..40: training window
        await store.CommitAsync([.. holdout.Select(p => Item(p, Splits.Holdout))], CancellationToken.None);        // 41..100
        await store.CommitAsync([.. byCatalog[4].Select(p => Item(p, Splits.Train))], CancellationToken.None);   // 101..140: fresh, another catalog
    }

    public async Task DisposeAsync()
    {
        await store.DisposeAsync();
        Directory.Delete(root, recursive: true);
        set_num_threads(torchThreads);
    }

    [Fact]
    public async Task Per_slice_bleu_and_chrf_are_the_metric_classes_on_that_slices_greedy_outputs()
    {
        var vocabulary = TextVocabulary.Build(holdout.SelectMany(p => new[] { p.Source, p.Target }), maxSize: 1024, minCount: 1);
        using var gpt = Train(vocabulary);
        string onnx = Path.Combine(root, "champion.onnx");
        File.WriteAllBytes(onnx, new GptExporter(gpt, GptTasks.Conditional, vocabulary).Export());

        var request = new AnalysisRequest(Model, new ModelOptions { Modality = "text", Text = new TextLimitOptions { Conditional = true } }, "gpt", onnx, store,
            TrainedWatermark: 100, Watermark: 140, Path.Combine(root, "analysis"), Seed: 3)
        {
            TextEvaluation = new TextEvaluationOptions { MaxNewTokens = MaxNewTokens, BatchSize = 8 },
            Options = new AnalysisOptions { MinSliceSamples = 10, MinDriftSamples = 20, ExamplesPerSlice = 3 },
        };
        var result = await ErrorAnalysis.RunAsync(request, CancellationToken.None);
        var report = result.Report;
        foreach (var s in report.Slices)
        {
            output.WriteLine($"{s.Slice,-22} {s.Status,-16} n {s.HoldoutCount,3} {string.Join(" ", s.Metrics.Select(m => $"{m.Key}={m.Value:0.###}"))} badness {s.Badness:0.###} weight {s.Weight:0.###}");
        }

        output.WriteLine($"worst {string.Join(", ", result.Worst)}; drift {report.Drift.Value:0.####} ({report.Drift.FreshCount} fresh, {report.Drift.TrainingCount} training)");

        // The outputs are the model's greedy outputs: TorchSharp's own greedy decoding of the same weights gives the same text.
        Assert.Equal(holdout.Count, result.TextRecords.Count);
        int maxPrompt = Context / 2;
        foreach (var record in result.TextRecords)
        {
            var tokens = vocabulary.Encode(record.Source!);
            int[] prompt = [TextVocabulary.Bos, .. tokens.Take(maxPrompt - 2), TextVocabulary.Sep];
            Assert.Equal(vocabulary.Decode(GptDecoding.Greedy(gpt, prompt, MaxNewTokens)), record.Output);
        }

        // Every judged slice's numbers are exactly Bleu / Chrf on that slice's outputs.
        var judged = report.Slices.Where(s => s.Status == SliceStatus.Ok).ToList();
        Assert.Equal(["catalog=" + holdout[0].Catalog, "catalog=" + holdout[20].Catalog, "catalog=" + holdout[40].Catalog],
            judged.Where(s => s.Kind == SliceKind.Catalog).Select(s => s.Slice));
        Assert.Contains(judged, s => s.Kind == SliceKind.Length);
        foreach (var slice in judged)
        {
            var members = result.TextRecords.Where(r => r.LengthBucket == slice.Slice || r.Catalog == slice.Slice).ToList();
            Assert.Equal(slice.HoldoutCount, members.Count);
            var hypotheses = members.Select(r => r.Output!).ToList();
            var references = members.Select(r => (IReadOnlyList<string?>)[r.Reference]).ToList();
            Assert.Equal(Bleu.Corpus(hypotheses, references).Score, slice.Metrics["bleu"]);
            Assert.Equal(Chrf.Corpus(hypotheses, references).Score, slice.Metrics["chrf"]);
        }

        Assert.Contains(judged, s => s.Metrics["bleu"] > 0); // not a vacuous 0 = 0
        Assert.Equal(Bleu.Corpus(result.TextRecords.Select(r => r.Output!).ToList(), result.TextRecords.Select(r => (IReadOnlyList<string?>)[r.Reference]).ToList()).Score,
            report.Overall.Single(m => m.Metric == "bleu").Value);

        // Buckets with too few texts say so instead of a number; they weigh neutrally.
        var empty = report.Slices.Single(s => s.Slice == "len=128+");
        Assert.Equal(SliceStatus.TooFewHoldout, empty.Status);
        Assert.Empty(empty.Metrics);
        Assert.Null(empty.Badness);

        // Drift: the fresh texts come from another catalog than the training window.
        Assert.Equal(DriftStatus.Ok, report.Drift.Status);
        Assert.Equal("token_jsd", report.Drift.Metric);
        Assert.Equal(40, report.Drift.FreshCount);
        Assert.Equal(100, report.Drift.TrainingCount);
        Assert.InRange(report.Drift.Value!.Value, 0.05, 1.0);
        Assert.NotEmpty(report.Examples);
        Assert.All(report.Examples, e => Assert.Contains(e.Slice, result.Worst));
        Assert.Contains("<svg", await File.ReadAllTextAsync(result.HtmlPath), StringComparison.Ordinal);

        // The next fine-tune's text snapshot: resampled by length-bucket × catalog weight, same size.
        var weights = SliceWeights.Read(result.JsonPath, Model);
        var (plain, _, _) = await TextSnapshot.LoadAsync(store, Model, conditional: true, watermark: 140);
        var (weighted, _, counts) = await TextSnapshot.LoadAsync(store, Model, true, 140, 0, weights, seed: 9);
        Assert.Equal(plain.Count, weighted.Count);
        Assert.Equal(80, counts.Train);
        var heaviest = SliceKeys.LengthBuckets.Where(b => plain.Any(p => SliceKeys.LengthBucket(p.Source!) == b)).MaxBy(weights.WeightOf)!;
        double total = plain.Sum(p => weights.WeightOf(SliceKeys.LengthBucket(p.Source!)));
        double expected = plain.Count * plain.Where(p => SliceKeys.LengthBucket(p.Source!) == heaviest).Sum(p => weights.WeightOf(heaviest)) / total;
        int after = weighted.Count(p => SliceKeys.LengthBucket(p.Source!) == heaviest);
        output.WriteLine($"{heaviest} (weight {weights.WeightOf(heaviest):0.###}): {plain.Count(p => SliceKeys.LengthBucket(p.Source!) == heaviest)} → {after} of {plain.Count} (expected {expected:0.0})");
        Assert.InRange(after, expected - 1, expected + 1);
    }

    private Gpt Train(TextVocabulary vocabulary)
    {
        manual_seed(11);
        var gpt = new Gpt(new GptConfig(vocabulary.Count, Layers: 2, Heads: 4, Width: 48, Context: Context, Dropout: 0.0));
        Initialization.Apply(gpt, InitScheme.Normal002);
        var examples = holdout.Select(p => TextExample.Conditional(vocabulary, p.Source, p.Target)).Where(e => e.Tokens.Length <= Context).ToList();
        var batches = new TextBatches(examples, Context);
        gpt.train();
        using (var optimizer = optim.AdamW(gpt.parameters(), 1e-2))
        {
            for (int step = 0; step < 250; step++)
            {
                using var scope = NewDisposeScope();
                var (inputs, targets) = batches.Batch(11, step, 16);
                var logits = gpt.forward(inputs);
                var loss = nn.functional.cross_entropy(logits.reshape(-1, vocabulary.Count), targets.reshape(-1), ignore_index: TextBatches.IgnoreIndex);
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
            }
        }

        gpt.eval();
        return gpt;
    }
}
