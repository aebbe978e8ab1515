using System.Text;
using RetrainDaemon.Core.Gate;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Evaluation.Gating;
using RetrainDaemon.Evaluation.Text;
using RetrainDaemon.Evaluation.Text.Generation;
using RetrainDaemon.Export.Exporters;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Trainers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RetrainDaemon.ModelTests;

/// <summary>
/// Two tiny GPTs (2 layers, 4 heads, width 32, context 24) over a vocabulary built from short fortunes,
/// each trained a few hundred AdamW steps so their logits are far from flat and they learn to stop: an
/// <c>lm</c> model on fortunes ([BOS] text [EOS]) and a <c>conditional</c> one that reverses the words of
/// its source ([BOS] source [SEP] target [EOS]). Both are exported with <see cref="GptExporter"/>.
/// </summary>
public sealed class TextModelFixture : IDisposable
{
    public const int Context = 24;

    private readonly int torchThreads;

    public TextModelFixture()
    {
        // One libtorch thread while these tests run: the models are tiny, and on a shared 2-core machine
        // OpenMP workers spin-waiting for each other cost minutes instead of seconds. Restored in Dispose.
        torchThreads = get_num_threads();
        set_num_threads(1);

        var texts = Fortunes.Read().Select(f => f.Text.Trim())
            .Where(t => t.Length is > 0 and <= 80 && !t.Contains('\b', StringComparison.Ordinal)).Take(420).ToList();
        Training = texts[..360];
        Holdout = texts[360..];
        Vocabulary = TextVocabulary.Build(Training, maxSize: 1024, minCount: 1);

        Lm = Train(GptTasks.Lm, [.. Training.Select(t => TextExample.Lm(Vocabulary, t))], seed: 5);
        LmOnnx = new GptExporter(Lm, GptTasks.Lm, Vocabulary).Export();

        Pairs = [.. texts.Select(t => string.Join(' ', t.Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(4)))
            .Where(s => s.Length > 0).Select(s => new ReferenceText(s, string.Join(' ', s.Split(' ').Reverse())))];
        Conditional = Train(GptTasks.Conditional, [.. Pairs.Take(360).Select(p => TextExample.Conditional(Vocabulary, p.Source!, p.Text))], seed: 6);
        ConditionalOnnx = new GptExporter(Conditional, GptTasks.Conditional, Vocabulary).Export();
    }

    public IReadOnlyList<string> Training { get; }

    public IReadOnlyList<string> Holdout { get; }

    public IReadOnlyList<ReferenceText> Pairs { get; }

    public TextVocabulary Vocabulary { get; }

    public Gpt Lm { get; }

    public byte[] LmOnnx { get; }

    public Gpt Conditional { get; }

    public byte[] ConditionalOnnx { get; }

    public void Dispose()
    {
        Lm.Dispose();
        Conditional.Dispose();
        set_num_threads(torchThreads);
    }

    private Gpt Train(string task, IReadOnlyList<TextExample> examples, int seed, int steps = 300)
    {
        manual_seed(seed);
        var gpt = new Gpt(new GptConfig(Vocabulary.Count, Layers: 2, Heads: 4, Width: 32, Context: Context, Dropout: 0.0));
        Initialization.Apply(gpt, InitScheme.Normal002);
        var batches = new TextBatches(examples, Context);
        gpt.train();
        using (var optimizer = optim.AdamW(gpt.parameters(), 1e-2))
        {
            for (int step = 0; step < steps; step++)
            {
                using var scope = NewDisposeScope();
                var (inputs, targets) = batches.Batch(seed, step, 32);
                var logits = gpt.forward(inputs);
                var loss = nn.functional.cross_entropy(logits.reshape(-1, Vocabulary.Count), targets.reshape(-1), ignore_index: TextBatches.IgnoreIndex);
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
            }
        }

        gpt.eval();
        _ = task;
        return gpt;
    }
}

/// <summary>
/// <see cref="GptOnnxModel"/> and <see cref="TextEvaluator"/> on exported tiny GPTs through ONNX Runtime,
/// checked against TorchSharp (greedy tokens, cross-entropy), against the metric classes (the evaluator's
/// numbers), and against hand-edited files (refused at load).
/// </summary>
public sealed class TextEvaluationTests(TextModelFixture fixture, ITestOutputHelper output) : IClassFixture<TextModelFixture>, IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("rd-text-eval-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    /// <summary>Prompts of many lengths (so one batch is left-padded), up to a full context.</summary>
    private List<int[]> Prompts()
    {
        var prompts = new List<int[]> { new[] { TextVocabulary.Bos } };
        foreach (var (text, take) in fixture.Holdout.Take(8).Zip(new[] { 1, 2, 3, 5, 8, 12, 16, 20 }))
        {
            var tokens = fixture.Vocabulary.Encode(text);
            prompts.Add([TextVocabulary.Bos, .. tokens.Take(take)]);
        }

        var longText = fixture.Vocabulary.Encode(string.Join(' ', fixture.Holdout));
        prompts.Add([TextVocabulary.Bos, .. longText.Take(TextModelFixture.Context - 1)]);    // a full context: one token fits
        prompts.Add([TextVocabulary.Bos, .. longText.Skip(50).Take(TextModelFixture.Context - 4)]);
        return prompts;
    }

    [Theory]
    [InlineData(16)]
    [InlineData(3)]
    public void Greedy_ThroughOnnxRuntime_EqualsTorchSharpGreedyOverTheKeyValueCache(int batchRows)
    {
        using var model = GptOnnxModel.Load(fixture.LmOnnx, threads: 2, batchRows: batchRows);
        var prompts = Prompts();
        var stops = new HashSet<GenerationStop>();
        foreach (int maxNew in new[] { 30, 4 })
        {
            var generated = model.Generate(prompts, DecodingStrategy.Greedy, maxNew);
            for (int i = 0; i < prompts.Count; i++)
            {
                var expected = GptDecoding.Greedy(fixture.Lm, prompts[i], maxNew);
                Assert.True(expected.SequenceEqual(generated[i].Tokens),
                    $"prompt {i} (length {prompts[i].Length}, max {maxNew}): TorchSharp [{string.Join(",", expected)}] vs ONNX Runtime [{string.Join(",", generated[i].Tokens)}] ({generated[i].Stop})");
                stops.Add(generated[i].Stop);
                var expectedStop = expected.Length == maxNew ? GenerationStop.MaxNewTokens
                    : prompts[i].Length + expected.Length > TextModelFixture.Context ? GenerationStop.Context
                    : GenerationStop.Eos;
                Assert.Equal(expectedStop, generated[i].Stop);
            }

            output.WriteLine(string.Join("\n", generated.Take(4).Select(g => $"{g.Stop}: {fixture.Vocabulary.Decode(g.Tokens)}")));
        }

        // Every way of ending is exercised, so the comparison covers EOS, the token limit and the context limit.
        Assert.Equal([GenerationStop.Eos, GenerationStop.MaxNewTokens, GenerationStop.Context], stops.Order());
    }

    [Theory]
    [InlineData(16)]
    [InlineData(3)]
    public void BeamSearchOfWidthOne_IsGreedy(int batchRows)
    {
        using var model = GptOnnxModel.Load(fixture.LmOnnx, threads: 2, batchRows: batchRows);
        var prompts = Prompts();
        var greedy = model.Generate(prompts, DecodingStrategy.Greedy, 30);
        var beam = model.Generate(prompts, DecodingStrategy.Beam(1), 30);
        for (int i = 0; i < prompts.Count; i++)
        {
            Assert.Equal(greedy[i].Tokens, beam[i].Tokens);
            Assert.Equal(greedy[i].Stop, beam[i].Stop);
            Assert.Equal(greedy[i].LogProbability, beam[i].LogProbability, 9);
        }
    }

    [Fact]
    public void ReportedLogProbabilities_EqualTheTeacherForcedLikelihood_ForGreedyBeamAndSampling()
    {
        // Beam search reorders and drops cache rows every step: if a row ever read another beam's cache, its
        // reported score would differ from the likelihood of its tokens scored from scratch.
        using var model = GptOnnxModel.Load(fixture.ConditionalOnnx, threads: 2, batchRows: 8);
        var prompts = fixture.Pairs.Skip(360).Take(12).Select(p => (int[])[TextVocabulary.Bos, .. fixture.Vocabulary.Encode(p.Source!).Take(12), TextVocabulary.Sep]).ToList();
        foreach (var decoding in new[] { DecodingStrategy.Greedy, DecodingStrategy.Beam(4), DecodingStrategy.Sample(new SamplingOptions(1.0), 3) })
        {
            var generated = model.Generate(prompts, decoding, 12);
            var sequences = prompts.Select((p, i) => (int[])[.. p, .. generated[i].Tokens, .. generated[i].Stop == GenerationStop.Eos ? new[] { TextVocabulary.Eos } : []]).ToList();
            var likelihoods = model.LogLikelihood(sequences, [.. prompts.Select(p => p.Length)]);
            for (int i = 0; i < prompts.Count; i++)
            {
                Assert.Equal(sequences[i].Length - prompts[i].Length, likelihoods[i].Tokens);
                Assert.True(Math.Abs(likelihoods[i].LogProbability - generated[i].LogProbability) < 1e-4,
                    $"{decoding}: prompt {i}: reported {generated[i].LogProbability:R}, teacher-forced {likelihoods[i].LogProbability:R}");
            }

            output.WriteLine($"{decoding}: {string.Join(" | ", generated.Take(3).Select(g => fixture.Vocabulary.Decode(g.Tokens)))}");
        }

        // Beam search finds hypotheses at least as likely per token as greedy on most prompts (not a theorem with early stopping).
        var greedyScores = MeanLogProbabilities(model.Generate(prompts, DecodingStrategy.Greedy, 12));
        var beamScores = MeanLogProbabilities(model.Generate(prompts, DecodingStrategy.Beam(4), 12));
        Assert.True(beamScores.Zip(greedyScores).Count(p => p.First >= p.Second - 1e-9) >= prompts.Count * 3 / 4);
    }

    private static double[] MeanLogProbabilities(IReadOnlyList<GeneratedSequence> generated) =>
        [.. generated.Select(g => g.LogProbability / (g.Tokens.Length + (g.Stop == GenerationStop.Eos ? 1 : 0)))];

    [Fact]
    public void Sampling_IsSeeded_AndASampleDoesNotDependOnTheBatch()
    {
        var prompts = Enumerable.Range(0, 10).Select(_ => new[] { TextVocabulary.Bos }).ToList();
        var sampling = DecodingStrategy.Sample(new SamplingOptions(1.0), 42);
        using var wide = GptOnnxModel.Load(fixture.LmOnnx, threads: 2, batchRows: 16);
        using var narrow = GptOnnxModel.Load(fixture.LmOnnx, threads: 2, batchRows: 3);
        var a = wide.Generate(prompts, sampling, 20);
        var b = narrow.Generate(prompts, sampling, 20);
        var c = wide.Generate(prompts, DecodingStrategy.Sample(new SamplingOptions(1.0), 43), 20);
        Assert.Equal(a.Select(g => g.Tokens), b.Select(g => g.Tokens));
        Assert.NotEqual(a.Select(g => g.Tokens), c.Select(g => g.Tokens));
        Assert.True(a.Select(g => string.Join(",", g.Tokens)).Distinct().Count() > 5, "samples from one prompt should differ");
    }

    [Fact]
    public void Perplexity_IsExpOfTheMeanCrossEntropyOfTorchSharpForward()
    {
        // Holdout fortunes of up to ~80 characters: some fit one window (≤ context + 1 tokens), longer
        // sequences are windowed; both sides window the same way (inputs begin, begin + C, …).
        var texts = fixture.Holdout.Concat([string.Join(' ', fixture.Holdout.Take(6))]).ToList();
        var sequences = texts.Select(t => (int[])[TextVocabulary.Bos, .. fixture.Vocabulary.Encode(t), TextVocabulary.Eos]).ToList();
        Assert.Contains(sequences, s => s.Length > 2 * TextModelFixture.Context + 1);
        Assert.Contains(sequences, s => s.Length <= TextModelFixture.Context + 1);

        double crossEntropy = 0;
        long predicted = 0;
        using (no_grad())
        {
            foreach (var sequence in sequences)
            {
                for (int begin = 0; begin < sequence.Length - 1; begin += TextModelFixture.Context)
                {
                    using var scope = NewDisposeScope();
                    int end = Math.Min(begin + TextModelFixture.Context, sequence.Length - 1);
                    var inputs = tensor(sequence[begin..end].Select(t => (long)t).ToArray(), [1, end - begin]);
                    var targets = tensor(sequence[(begin + 1)..(end + 1)].Select(t => (long)t).ToArray(), [end - begin]);
                    var logits = fixture.Lm.forward(inputs).to_type(ScalarType.Float64).reshape(end - begin, -1);
                    crossEntropy += nn.functional.cross_entropy(logits, targets, reduction: nn.Reduction.Sum).item<double>();
                    predicted += end - begin;
                }
            }
        }

        double torchPerplexity = Math.Exp(crossEntropy / predicted);
        using var model = GptOnnxModel.Load(fixture.LmOnnx, threads: 2, batchRows: 5);
        var likelihoods = model.LogLikelihood(sequences);
        Assert.Equal(predicted, likelihoods.Sum(l => (long)l.Tokens));
        double onnxPerplexity = Math.Exp(-likelihoods.Sum(l => l.LogProbability) / predicted);

        var evaluation = new TextEvaluator(Options(), threads: 2).Evaluate(model, new TextReferenceSet("fortunes-test", [.. texts.Select(t => new ReferenceText(null, t))], fixture.Training));
        double evaluated = Assert.Single(evaluation.Metrics, m => m.Metric == "perplexity").Value;
        output.WriteLine($"perplexity: TorchSharp {torchPerplexity:R}, ONNX Runtime {onnxPerplexity:R}, evaluator {evaluated:R} over {predicted} tokens");
        Assert.True(Math.Abs(onnxPerplexity - torchPerplexity) <= 1e-4 * torchPerplexity);
        Assert.True(Math.Abs(evaluated - torchPerplexity) <= 1e-4 * torchPerplexity);
        Assert.True(torchPerplexity < fixture.Vocabulary.Count / 4.0, $"the trained model should beat a uniform guess by far ({torchPerplexity})");
    }

    [Fact]
    public void Evaluate_Conditional_ReportsExactlyBleuChrfAndRougeOfItsOwnDecodedOutputs()
    {
        var reference = new TextReferenceSet("pairs-test", [.. fixture.Pairs.Skip(360)], []);
        foreach (string decoding in new[] { "greedy", "beam:3" })
        {
            var options = Options();
            options.Decoding = decoding;
            var evaluation = new TextEvaluator(options, threads: 2).Evaluate(Write("cond.onnx", fixture.ConditionalOnnx), reference);
            Assert.Equal(GptTasks.Conditional, evaluation.Task);
            Assert.Equal(reference.Holdout.Count, evaluation.Outputs.Count);
            Assert.Equal(reference.Holdout.Select(p => p.Text), evaluation.References);

            var refs = evaluation.References.Select(r => (IReadOnlyList<string?>)[r]).ToList();
            var rouge = new RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"]).Corpus(evaluation.References, evaluation.Outputs);
            Assert.Equal(Bleu.Corpus(evaluation.Outputs, refs).Score, Value(evaluation, "bleu"));
            Assert.Equal(Chrf.Corpus(evaluation.Outputs, refs).Score, Value(evaluation, "chrf"));
            Assert.Equal(rouge["rouge1"].FMeasure, Value(evaluation, "rouge1"));
            Assert.Equal(rouge["rouge2"].FMeasure, Value(evaluation, "rouge2"));
            Assert.Equal(rouge["rougeL"].FMeasure, Value(evaluation, "rougeL"));
            Assert.Equal(TextEvaluator.SourceCopyShare(evaluation.Outputs, [.. reference.Holdout.Select(p => p.Source!)], evaluation.References, "").Value, Value(evaluation, "source_copy_share"));

            // The outputs are the model's own decode of [BOS] source [SEP].
            using var model = GptOnnxModel.Load(fixture.ConditionalOnnx, threads: 2);
            Assert.True(DecodingStrategy.TryParse(decoding, out var strategy, out _));
            // Sources longer than half the context are cut to their first C/2 − 2 tokens.
            var prompts = reference.Holdout.Select(p => (int[])[TextVocabulary.Bos, .. fixture.Vocabulary.Encode(p.Source!).Take((TextModelFixture.Context / 2) - 2), TextVocabulary.Sep]).ToList();
            Assert.Contains(reference.Holdout, p => fixture.Vocabulary.Encode(p.Source!).Length > (TextModelFixture.Context / 2) - 2);
            Assert.Equal(model.Generate(prompts, strategy, options.MaxNewTokens).Select(g => fixture.Vocabulary.Decode(g.Tokens)), evaluation.Outputs);

            string signature = evaluation.Metrics.Single(m => m.Metric == "bleu").Signature;
            Assert.Contains($"gpt:conditional|vocab:{fixture.Vocabulary.Sha256[..12]}|holdout:{TextReferenceSet.Describe("pairs-test", reference.Holdout)}|decode:{strategy.Signature}|max_new:{options.MaxNewTokens}", signature, StringComparison.Ordinal);
            Assert.EndsWith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0", signature, StringComparison.Ordinal);
            output.WriteLine($"{decoding}: {string.Join(", ", evaluation.Metrics.Select(m => $"{m.Metric} {m.Value:G6}"))}; e.g. '{reference.Holdout[0].Source}' → '{evaluation.Outputs[0]}'");
        }
    }

    [Fact]
    public void Evaluate_LanguageModel_ReportsExactlyTestBleuSelfBleuDistinctAndCopyShareOfItsOwnSamples()
    {
        var options = Options();
        var reference = new TextReferenceSet("fortunes-test", [.. fixture.Holdout.Select(t => new ReferenceText(null, t))], fixture.Training);
        var evaluation = new TextEvaluator(options, threads: 2).Evaluate(Write("lm.onnx", fixture.LmOnnx), reference);
        Assert.Equal(options.SampleCount, evaluation.Outputs.Count);
        Assert.Equal(["perplexity", "test_bleu", "self_bleu", "distinct_1", "distinct_2", "copy_share"], evaluation.Metrics.Select(m => m.Metric));

        var samples = evaluation.Outputs;
        var tokens = samples.Select(s => (IReadOnlyList<string>)TextTokenizers.Tokenize(s, TextTokenizer.Mteval13a)).ToList();
        var pool = fixture.Holdout.Take(options.TestBleuReferences).Select(s => (IReadOnlyList<string>)TextTokenizers.Tokenize(s, TextTokenizer.Mteval13a)).ToList();
        double testBleu = tokens.Aggregate(0.0, (sum, t) => sum + SelfBleu.SentenceBleu(pool, t, 3)) / tokens.Count;
        Assert.Equal(testBleu, Value(evaluation, "test_bleu"));
        Assert.Equal(SelfBleu.Compute(tokens, new SelfBleuOptions { NgramOrder = 3, MaxSentences = 500 }).Score, Value(evaluation, "self_bleu"));
        Assert.Equal(DistinctN.Compute(samples, 1, TextTokenizer.Mteval13a).Value, Value(evaluation, "distinct_1"));
        Assert.Equal(DistinctN.Compute(samples, 2, TextTokenizer.Mteval13a).Value, Value(evaluation, "distinct_2"));
        Assert.Equal(new CopyDetector(fixture.Training).CopyShare(samples), Value(evaluation, "copy_share"));

        // The samples are the model's own: sample i from [BOS] with seed + i.
        using var model = GptOnnxModel.Load(fixture.LmOnnx, threads: 2);
        var again = model.Generate([.. Enumerable.Range(0, options.SampleCount).Select(_ => new[] { TextVocabulary.Bos })], options.SampleDecoding(), options.MaxNewTokens);
        Assert.Equal(again.Select(g => fixture.Vocabulary.Decode(g.Tokens)), samples);
        Assert.All(evaluation.Metrics.Skip(1), m => Assert.Contains($"decode:sample:t=1,top_k=0,top_p=1,seed={options.Seed}+i|n:{options.SampleCount}|max_new:{options.MaxNewTokens}", m.Signature, StringComparison.Ordinal));
        output.WriteLine(string.Join(", ", evaluation.Metrics.Select(m => $"{m.Metric} {m.Value:G6}")));
        output.WriteLine(string.Join("\n", samples.Take(5)));
    }

    [Fact]
    public void CopyShare_IsOneForTextsCopiedFromTraining_AndNearZeroForRandomTexts()
    {
        var options = Options();
        var evaluator = new TextEvaluator(options, threads: 2);
        var detector = new CopyDetector(fixture.Training, options.CopyNgram, options.CopyMinShare);
        var copied = fixture.Training.Skip(100).Take(50).ToList();
        var random = new Random(9);
        var words = fixture.Training.SelectMany(t => t.Split(' ')).Distinct().ToList();
        var shuffled = Enumerable.Range(0, 50).Select(_ => string.Join(' ', Enumerable.Range(0, 12).Select(_ => words[random.Next(words.Count)]))).ToList();

        double Share(IReadOnlyList<string> samples) =>
            evaluator.SampleMetrics(samples, fixture.Holdout, detector, "fortunes-test", "basis", "train").Single(m => m.Metric == "copy_share").Value;

        Assert.Equal(1.0, Share(copied));
        Assert.True(Share(shuffled) <= 0.02, $"copy share of random word salads {Share(shuffled)}");
    }

    [Fact]
    public void Load_RefusesFilesWhoseVocabularyOrGptMetadataIsMissingOrInconsistent()
    {
        var other = TextVocabulary.Build(fixture.Training.Take(40), maxSize: 300);
        Assert.NotEqual(fixture.Vocabulary.Count, other.Count);
        string shape = GptExporter.ShapeJson(new GptShape(2, 4, 32, TextModelFixture.Context, fixture.Vocabulary.Count));
        var cases = new (string Name, Action<List<KeyValuePair<string, string>>> Edit, string Expected)[]
        {
            ("no vocabulary", m => Remove(m, GptGraph.VocabularyKey), $"metadata '{GptGraph.VocabularyKey}' is missing"),
            ("no vocabulary checksum", m => Remove(m, GptGraph.VocabularySha256Key), $"metadata '{GptGraph.VocabularySha256Key}' is missing"),
            ("vocabulary edited, checksum kept", m => Set(m, GptGraph.VocabularyKey, other.ToJson()), "the vocabulary does not match its checksum"),
            ("another vocabulary with its own checksum", m => { Set(m, GptGraph.VocabularyKey, other.ToJson()); Set(m, GptGraph.VocabularySha256Key, other.Sha256); },
                $"the vocabulary has {other.Count} tokens but the shape metadata says the logits cover {fixture.Vocabulary.Count}"),
            ("shape claims another vocabulary size", m => Set(m, GptGraph.ShapeKey, shape.Replace($"\"vocabulary\":{fixture.Vocabulary.Count}", $"\"vocabulary\":{fixture.Vocabulary.Count + 1}", StringComparison.Ordinal)),
                $"the vocabulary has {fixture.Vocabulary.Count} tokens but the shape metadata says the logits cover {fixture.Vocabulary.Count + 1}"),
            ("shape claims three layers", m => Set(m, GptGraph.ShapeKey, shape.Replace("\"layers\":2", "\"layers\":3", StringComparison.Ordinal)), "the graph has no input 'past_key_2'"),
            ("no shape", m => Remove(m, GptGraph.ShapeKey), $"metadata '{GptGraph.ShapeKey}' is missing"),
            ("broken shape", m => Set(m, GptGraph.ShapeKey, "{\"layers\":"), $"metadata '{GptGraph.ShapeKey}' is not shape JSON"),
            ("not gpt", m => Set(m, GptGraph.FamilyKey, "dcgan"), $"metadata '{GptGraph.FamilyKey}' is 'dcgan', not 'gpt'"),
            ("no family", m => Remove(m, GptGraph.FamilyKey), $"metadata '{GptGraph.FamilyKey}' is missing"),
            ("unknown task", m => Set(m, GptGraph.TaskKey, "translate"), $"metadata '{GptGraph.TaskKey}' is 'translate', not one of lm, conditional"),
            ("no metadata at all", m => m.Clear(), $"metadata '{GptGraph.FamilyKey}' is missing"),
        };

        Assert.Equal(shape, Metadata(fixture.LmOnnx).Single(e => e.Key == GptGraph.ShapeKey).Value); // the surgery starts from what the exporter wrote
        using (GptOnnxModel.Load(EditMetadata(fixture.LmOnnx, _ => { }), threads: 1))
        {
            // Rewriting the metadata unchanged keeps a loadable model: the refusals below are the edits'.
        }

        foreach (var (name, edit, expected) in cases)
        {
            string path = Write($"{name.Replace(' ', '-')}.onnx", EditMetadata(fixture.LmOnnx, edit));
            var ex = Assert.Throws<InvalidDataException>(() => GptOnnxModel.Load(path));
            output.WriteLine($"{name}: {ex.Message}");
            Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
            Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        }

        var garbage = Assert.Throws<InvalidDataException>(() => GptOnnxModel.Load(Encoding.UTF8.GetBytes("not a model at all"), name: "garbage"));
        Assert.Contains("garbage is not a well-formed ONNX model", garbage.Message, StringComparison.Ordinal);

        // The evaluator and the gate load through the same check.
        var refused = Assert.Throws<InvalidDataException>(() => new TextEvaluator(Options()).Evaluate(Write("novocab.onnx", EditMetadata(fixture.LmOnnx, m => Remove(m, GptGraph.VocabularyKey))),
            new TextReferenceSet("t", [new ReferenceText(null, "x")], [])));
        Assert.Contains("is refused as a gpt model", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Gate_ScoresTheChampionByTheSameProtocol_AndFailsClosedOnAChampionWithAnotherVocabulary()
    {
        var registry = new ModelRegistry(Path.Combine(directory, "registry"));
        var gate = new TextCandidateGate(Options(), 2, registry);
        var checks = new GateOptions
        {
            Checks =
            [
                new GateCheckOptions { Metric = "perplexity", Max = 1000, MaxRegressionRelative = 0.05 },
                new GateCheckOptions { Metric = "distinct_2", Min = 0.05 },
                new GateCheckOptions { Metric = "copy_share", Max = 0.9 },
            ],
        };
        var reference = new TextReferenceSet("fortunes-test", [.. fixture.Holdout.Select(t => new ReferenceText(null, t))], fixture.Training);
        string candidate = Write("lm.onnx", fixture.LmOnnx);

        var first = gate.Evaluate("fortunes", candidate, reference, checks);
        output.WriteLine(first.Report.ToText());
        Assert.True(first.Report.Passed, first.Report.ToText());
        Assert.Null(first.Champion);
        var published = gate.Publish("fortunes", new Dictionary<string, string> { [RegistryLayout.ModelFileName] = candidate }, first, new Dictionary<string, string> { ["family"] = "gpt" });
        Assert.Equal(VersionStatus.Passed, published.Status);

        // The same model against itself as champion: every change check compares equal signatures and passes.
        var second = gate.Evaluate("fortunes", candidate, reference, checks);
        Assert.True(second.Report.Passed, second.Report.ToText());
        Assert.Equal(published.Version, second.ChampionVersion);
        Assert.Equal(first.Candidate.Metrics, second.Champion!.Metrics);

        // A candidate over another vocabulary is not comparable with the champion: the gate fails closed.
        var other = TextVocabulary.Build(fixture.Training.Take(40), maxSize: 300);
        manual_seed(3);
        using var gpt = new Gpt(new GptConfig(other.Count, Layers: 1, Heads: 2, Width: 16, Context: TextModelFixture.Context, Dropout: 0));
        var foreign = gate.Evaluate("fortunes", Write("other.onnx", new GptExporter(gpt, GptTasks.Lm, other).Export()), reference, checks);
        output.WriteLine(foreign.Report.ToText());
        Assert.False(foreign.Report.Passed);
        Assert.Contains("signatures differ", foreign.Report.ToText(), StringComparison.Ordinal);
    }

    private static TextEvaluationOptions Options() => new()
    {
        SampleCount = 24,
        MaxNewTokens = 20,
        TestBleuReferences = 30,
        BatchSize = 8,
    };

    private static double Value(TextEvaluation evaluation, string metric) => Assert.Single(evaluation.Metrics, m => m.Metric == metric && m.Slice is null).Value;

    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(directory, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static void Remove(List<KeyValuePair<string, string>> metadata, string key) => metadata.RemoveAll(e => e.Key == key);

    private static void Set(List<KeyValuePair<string, string>> metadata, string key, string value)
    {
        int index = metadata.FindIndex(e => e.Key == key);
        metadata[index] = new(key, value);
    }

    private static List<KeyValuePair<string, string>> Metadata(byte[] model)
    {
        var entries = new List<KeyValuePair<string, string>>();
        EditMetadata(model, m => entries.AddRange(m));
        return entries;
    }

    /// <summary>
    /// Rewrites an ONNX file's <c>metadata_props</c> (ModelProto field 14) and leaves every other top-level field
    /// byte for byte: the fields are walked in the protobuf wire format, the metadata entries parsed, edited and
    /// written back at the end (field order does not matter to protobuf readers).
    /// </summary>
    private static byte[] EditMetadata(byte[] model, Action<List<KeyValuePair<string, string>>> edit)
    {
        var kept = new MemoryStream();
        var metadata = new List<KeyValuePair<string, string>>();
        int position = 0;
        while (position < model.Length)
        {
            int start = position;
            ulong tag = ReadVarint(model, ref position);
            int field = (int)(tag >> 3), wire = (int)(tag & 7);
            int payload = position;
            switch (wire)
            {
                case 0:
                    ReadVarint(model, ref position);
                    break;
                case 1:
                    position += 8;
                    break;
                case 5:
                    position += 4;
                    break;
                case 2:
                    int length = checked((int)ReadVarint(model, ref position));
                    payload = position;
                    position += length;
                    break;
                default:
                    throw new InvalidDataException($"wire type {wire} at byte {start}");
            }

            if (field == 14 && wire == 2)
            {
                metadata.Add(ReadEntry(model.AsSpan(payload, position - payload)));
            }
            else
            {
                kept.Write(model, start, position - start);
            }
        }

        edit(metadata);
        foreach (var (key, value) in metadata)
        {
            var entry = new MemoryStream();
            WriteString(entry, 1, key);
            WriteString(entry, 2, value);
            WriteVarint(kept, (14 << 3) | 2);
            WriteVarint(kept, (ulong)entry.Length);
            entry.WriteTo(kept);
        }

        return kept.ToArray();
    }

    private static KeyValuePair<string, string> ReadEntry(ReadOnlySpan<byte> entry)
    {
        string key = "", value = "";
        int position = 0;
        var bytes = entry.ToArray();
        while (position < bytes.Length)
        {
            ulong tag = ReadVarint(bytes, ref position);
            int length = checked((int)ReadVarint(bytes, ref position));
            string text = Encoding.UTF8.GetString(bytes, position, length);
            position += length;
            if (tag >> 3 == 1)
            {
                key = text;
            }
            else
            {
                value = text;
            }
        }

        return new(key, value);
    }

    private static ulong ReadVarint(byte[] bytes, ref int position)
    {
        ulong value = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte b = bytes[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }
    }

    private static void WriteVarint(Stream stream, ulong value)
    {
        while (value >= 0x80)
        {
            stream.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }

        stream.WriteByte((byte)value);
    }

    private static void WriteString(Stream stream, int field, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        WriteVarint(stream, ((ulong)field << 3) | 2);
        WriteVarint(stream, (ulong)bytes.Length);
        stream.Write(bytes);
    }
}
