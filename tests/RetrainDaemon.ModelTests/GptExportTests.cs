using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Export.Exporters;
using RetrainDaemon.Training.Models;
using Xunit.Abstractions;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace RetrainDaemon.ModelTests;

/// <summary>
/// Tiny GPTs (2 layers, 4 heads, width 64, context 256) over a vocabulary built from real fortunes, shared
/// by the tests: "random" models keep their N(0, 0.02) init, "trained" ones took a few AdamW steps on the
/// same fortunes so their logits are far from flat and greedy decoding means something.
/// </summary>
public sealed class GptExportFixture : IDisposable
{
    public const int Context = 256;

    private readonly Dictionary<string, (Gpt Model, byte[] Onnx, InferenceSession Session)> models = [];
    private readonly SessionOptions options = new() { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = 2 };

    public GptExportFixture()
    {
        // Overstruck records (backspaces) are the ingest's business; a few hundred clean ones are plenty here.
        Texts = [.. Fortunes.Read().Select(f => f.Text.Trim()).Where(t => t.Length > 0 && !t.Contains('\b', StringComparison.Ordinal)).Take(400)];
        Vocabulary = TextVocabulary.Build(Texts);
    }

    public IReadOnlyList<string> Texts { get; }

    public TextVocabulary Vocabulary { get; }

    /// <summary>"random-tied", "random-untied", "trained-tied" or "trained-untied", built once.</summary>
    public (Gpt Model, byte[] Onnx, InferenceSession Session) Get(string variant)
    {
        lock (models)
        {
            if (!models.TryGetValue(variant, out var entry))
            {
                var gpt = Build(variant);
                var onnx = new GptExporter(gpt, GptTasks.Lm, Vocabulary).Export();
                entry = (gpt, onnx, new InferenceSession(onnx, options));
                models[variant] = entry;
            }

            return entry;
        }
    }

    public void Dispose()
    {
        foreach (var (model, _, session) in models.Values)
        {
            session.Dispose();
            model.Dispose();
        }

        options.Dispose();
    }

    private Gpt Build(string variant)
    {
        bool tie = variant.EndsWith("-tied", StringComparison.Ordinal);
        manual_seed(tie ? 41 : 43);
        var gpt = new Gpt(new GptConfig(Vocabulary.Count, Layers: 2, Heads: 4, Width: 64, Context: Context, Dropout: 0.1, TieWeights: tie));
        Initialization.Apply(gpt, InitScheme.Normal002);
        if (variant.StartsWith("trained", StringComparison.Ordinal))
        {
            Train(gpt);
        }

        gpt.eval();
        return gpt;
    }

    /// <summary>Next-token cross-entropy on random 64-token windows of the fortunes, [BOS] text [EOS] each.</summary>
    private void Train(Gpt gpt, int steps = 300, int batch = 16, int window = 64)
    {
        long[] stream = [.. Texts.SelectMany(t => (int[])[TextVocabulary.Bos, .. Vocabulary.Encode(t), TextVocabulary.Eos]).Select(t => (long)t)];
        var random = new Random(7);
        gpt.train();
        using var optimizer = optim.AdamW(gpt.parameters(), 3e-3);
        for (int step = 0; step < steps; step++)
        {
            using var scope = NewDisposeScope();
            var rows = new long[batch * (window + 1)];
            for (int b = 0; b < batch; b++)
            {
                Array.Copy(stream, random.Next(stream.Length - window - 1), rows, b * (window + 1), window + 1);
            }

            var data = tensor(rows, [batch, window + 1]);                                          // (B, T+1)
            var logits = gpt.forward(data[.., ..window]);                                          // (B, T, V)
            var loss = nn.functional.cross_entropy(logits.reshape(-1, Vocabulary.Count), data[.., 1..].reshape(-1));
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
        }
    }
}

public sealed class GptExportTests(GptExportFixture fixture, ITestOutputHelper output) : IClassFixture<GptExportFixture>, IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("rd-gpt-export-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private GptExporter Exporter(Gpt gpt) => new(gpt, GptTasks.Lm, fixture.Vocabulary);

    [Theory]
    [InlineData("random-tied")]
    [InlineData("random-untied")]
    [InlineData("trained-tied")]
    public void Prefill_MatchesTorchSharp_OnLogitsAndPresents_AtBatch1And8(string variant)
    {
        var (gpt, _, session) = fixture.Get(variant);
        var exporter = Exporter(gpt);
        var random = new Generator(11);
        double max = 0;
        foreach (var (batch, length) in new[] { (1, 1), (1, 7), (1, 64), (1, GptExportFixture.Context), (8, 5), (8, 33), (8, 100) })
        {
            using var scope = NewDisposeScope();

            // Batch 8 rows get different true lengths through left padding.
            var inputs = exporter.Inputs(random, batch, pastLength: 0, seqLength: length, padRows: batch > 1);
            max = Math.Max(max, ModelExporter.MaxAbsDiff(session, exporter, inputs));
        }

        output.WriteLine($"{variant}: prefill max |TorchSharp − ORT| over logits and presents {max:E2}");
        Assert.True(max <= ModelExporter.Tolerance, $"prefill max |diff| {max:E2}");
    }

    [Theory]
    [InlineData("random-tied")]
    [InlineData("random-untied")]
    [InlineData("trained-tied")]
    public void DecodeStep_MatchesTorchSharp_ForPastLengths1To100(string variant)
    {
        var (gpt, _, session) = fixture.Get(variant);
        var exporter = Exporter(gpt);
        var random = new Generator(12);
        double max = 0;
        for (int past = 1; past <= 100; past++)
        {
            using var scope = NewDisposeScope();
            var inputs = exporter.Inputs(random, batch: 3, pastLength: past, seqLength: 1, padRows: true);
            max = Math.Max(max, ModelExporter.MaxAbsDiff(session, exporter, inputs));
        }

        output.WriteLine($"{variant}: decode (past 1..100, batch 3, padded rows) max |diff| {max:E2}");
        Assert.True(max <= ModelExporter.Tolerance, $"decode max |diff| {max:E2}");
    }

    /// <summary>
    /// Real prompts of different lengths, left-padded into one batch as serving does: the graph matches
    /// TorchSharp on the padded batch through prefill and decode steps, and each row's real-token logits
    /// equal what the graph gives for that row alone — the padding is invisible.
    /// </summary>
    [Theory]
    [InlineData(0.0, 0.0, true)]
    [InlineData(1e-5, 0.0, true)]          // the absolute part
    [InlineData(1.2e-5, 0.0, false)]
    [InlineData(40.0004, 40.0, true)]      // 4e-4 ≤ 1e-5 + 1e-5·40 = 4.1e-4
    [InlineData(40.0005, 40.0, false)]
    [InlineData(double.NaN, 1.0, false)]
    public void Parity_rule_is_numpy_allclose_with_atol_and_rtol_1e_5(double actual, double reference, bool within)
    {
        Assert.Equal(within, ModelExporter.Within(actual, reference));
    }

    [Fact]
    public void LeftPaddedBatch_MatchesTorchSharp_AndEachRowAlone()
    {
        var (gpt, _, session) = fixture.Get("trained-tied");
        var exporter = Exporter(gpt);
        int[][] prompts = [.. fixture.Texts.Take(5).Select(t => (int[])[TextVocabulary.Bos, .. fixture.Vocabulary.Encode(t).Take(40)])];
        int batch = prompts.Length, longest = prompts.Max(p => p.Length);
        Assert.True(prompts.Select(p => p.Length).Distinct().Count() > 1, "the prompts should have different lengths");

        var tokens = new long[batch * longest];
        var positions = new long[batch * longest];
        var mask = new long[batch * longest];
        for (int b = 0; b < batch; b++)
        {
            int pad = longest - prompts[b].Length;
            for (int t = 0; t < prompts[b].Length; t++)
            {
                tokens[(b * longest) + pad + t] = prompts[b][t];
                positions[(b * longest) + pad + t] = t;
                mask[(b * longest) + pad + t] = 1;
            }
        }

        double paddedMax = 0, aloneMax = 0;
        using (var scope = NewDisposeScope())
        {
            var inputs = Inputs(gpt, tensor(tokens, [batch, longest]), tensor(positions, [batch, longest]), tensor(mask, [batch, longest]), gpt.EmptyPast(batch));
            paddedMax = ModelExporter.MaxAbsDiff(session, exporter, inputs);
            var padded = Run(session, inputs);
            for (int b = 0; b < batch; b++)
            {
                long[] row = [.. prompts[b].Select(t => (long)t)];
                var alone = Run(session, Inputs(gpt, tensor(row, [1, row.Length]), arange(row.Length, dtype: ScalarType.Int64).unsqueeze(0), ones([1, row.Length], dtype: ScalarType.Int64), gpt.EmptyPast(1)));
                int pad = longest - row.Length;
                var inBatch = padded[GptGraph.Logits][b, pad..];                                   // (real, V)
                aloneMax = Math.Max(aloneMax, (inBatch - alone[GptGraph.Logits][0]).abs().max().item<float>());
            }

            // Decode steps on the padded batch: each row continues from its own length; the new token is real.
            var past = Enumerable.Range(0, gpt.Config.Layers).Select(l => (padded[GptGraph.PresentKey(l)], padded[GptGraph.PresentValue(l)])).ToList();
            var rowLengths = tensor(prompts.Select(p => (long)p.Length).ToArray());                   // (B)
            var stepMask = tensor(mask, [batch, longest]);
            var random = new Generator(13);
            for (int step = 0; step < 20; step++)
            {
                stepMask = cat([stepMask, ones([batch, 1], dtype: ScalarType.Int64)], 1);             // (B, P+1)
                var next = randint(4, gpt.Config.Vocabulary, [batch, 1], generator: random);
                var stepInputs = Inputs(gpt, next, (rowLengths + step).unsqueeze(1), stepMask, past);
                paddedMax = Math.Max(paddedMax, ModelExporter.MaxAbsDiff(session, exporter, stepInputs));
                var result = Run(session, stepInputs);
                past = [.. Enumerable.Range(0, gpt.Config.Layers).Select(l => (result[GptGraph.PresentKey(l)], result[GptGraph.PresentValue(l)]))];
            }
        }

        output.WriteLine($"left-padded batch of {batch} (lengths {string.Join("/", prompts.Select(p => p.Length))}), prefill + 20 decode steps: " +
            $"max |TorchSharp − ORT| {paddedMax:E2}; padded row vs row alone (ORT) {aloneMax:E2}");
        Assert.True(paddedMax <= ModelExporter.Tolerance, $"padded batch max |diff| {paddedMax:E2}");
        Assert.True(aloneMax <= ModelExporter.Tolerance, $"padded row vs alone max |diff| {aloneMax:E2}");
    }

    [Theory]
    [InlineData("trained-tied")]
    [InlineData("trained-untied")]
    public void GreedyGeneration_200Tokens_IdenticalInTorchSharpAndOnnxRuntime(string variant)
    {
        var (gpt, onnx, _) = fixture.Get(variant);
        int[] prompt = [TextVocabulary.Bos, .. fixture.Vocabulary.Encode("The trouble with")];
        var watch = Stopwatch.StartNew();
        var greedy = GptParity.Greedy(gpt, onnx, prompt, 200);
        output.WriteLine($"{variant}: {greedy.Steps} greedy tokens in {watch.Elapsed.TotalSeconds:0.0} s, matched {greedy.Matched}, max |logit diff| {greedy.MaxAbsLogitDiff:E2}, " +
            $"{greedy.TorchTokens.Distinct().Count()} distinct tokens");
        output.WriteLine(fixture.Vocabulary.Decode([.. prompt, .. greedy.TorchTokens]));

        Assert.Equal(200, greedy.Steps);
        Assert.True(greedy.Matched, $"diverged at {greedy.FirstDivergence} (margin {greedy.MarginAtDivergence:E2})");
        Assert.Equal(greedy.TorchTokens, greedy.OnnxTokens);
        Assert.True(greedy.MaxAbsLogitDiff <= ModelExporter.Tolerance, $"greedy max |logit diff| {greedy.MaxAbsLogitDiff:E2}");

        // Trained logits are far from flat (random N(0, 0.02) weights give a spread of ~0.1 over the vocabulary),
        // and greedy picks more than a handful of different tokens: the argmax is decided, not a coin toss.
        double spread = LogitSpread(gpt, prompt);
        output.WriteLine($"{variant}: std of the next-token logits after the prompt {spread:0.00} (random init: {LogitSpread(fixture.Get("random-tied").Model, prompt):0.000})");
        Assert.True(spread > 1.0, $"logits are nearly flat (std {spread:0.000}); the check would prove little");
        Assert.True(greedy.TorchTokens.Distinct().Count() >= 5, "greedy output is degenerate; the check would prove little");
    }

    [Fact]
    public void GreedyCheck_CatchesAGraphOfOtherWeights()
    {
        var (trained, _, _) = fixture.Get("trained-tied");
        var (_, otherOnnx, _) = fixture.Get("random-tied");
        var greedy = GptParity.Greedy(trained, otherOnnx, [TextVocabulary.Bos], 20);
        Assert.False(greedy.Matched && greedy.MaxAbsLogitDiff <= ModelExporter.Tolerance);
        var result = new ExportResult(otherOnnx, new ParityReport(0, 0, 0, []));
        Assert.Throws<ParityException>(() => ModelExporter.VerifyGreedy(result, Exporter(trained)));
    }

    /// <summary>The full export path: random-input Verify, the 200-token greedy check, Debian's checker, and the metadata read back.</summary>
    [Theory]
    [InlineData("trained-tied")]
    [InlineData("trained-untied")]
    public void Export_RecordsGreedyParity_PassesTheChecker_AndCarriesItsVocabulary(string variant)
    {
        var (gpt, _, _) = fixture.Get(variant);
        var watch = Stopwatch.StartNew();
        var result = ModelExporter.Export(new GptExporter(gpt, GptTasks.Conditional, fixture.Vocabulary), gpt, casesPerBatchSize: 20, batchSizes: [1, 8]);
        output.WriteLine($"{variant}: {result.Onnx.Length} bytes; verify max |diff| {result.Parity.MaxAbsDiff:E2}, mean {result.Parity.MeanAbsDiff:E2} over {result.Parity.Cases} cases; " +
            $"greedy {result.Parity.GreedyTokens} tokens matched {result.Parity.GreedyMatched}, max |logit diff| {result.Parity.GreedyMaxAbsDiff:E2} ({watch.Elapsed.TotalSeconds:0.0} s)");
        Assert.Equal(40, result.Parity.Cases);
        Assert.True(result.Parity.MaxAbsDiff <= ModelExporter.Tolerance);
        Assert.Equal(ModelExporter.GreedyParityTokens, result.Parity.GreedyTokens);
        Assert.True(result.Parity.GreedyMatched);

        string path = Path.Combine(directory, $"gpt-{variant}.onnx");
        File.WriteAllBytes(path, result.Onnx);
        var (exit, text) = OnnxChecker(path);
        Assert.True(exit == 0, $"Debian's onnx checker refused {path}: {text}");

        using var stream = new MemoryStream(result.Onnx);
        var info = OnnxModelReader.Read(stream);
        Assert.Equal(8, info.IrVersion);
        Assert.Equal(17, info.Opset);
        Assert.Equal("gpt", info.Metadata[GptGraph.FamilyKey]);
        Assert.Equal(GptTasks.Conditional, info.Metadata[GptGraph.TaskKey]);
        Assert.Equal(fixture.Vocabulary.ToJson(), info.Metadata[GptGraph.VocabularyKey]);
        Assert.Equal(fixture.Vocabulary.Sha256, info.Metadata[GptGraph.VocabularySha256Key]);
        Assert.Equal(fixture.Vocabulary.Sha256, TextVocabulary.FromJson(info.Metadata[GptGraph.VocabularyKey]).Sha256);
        var shape = JsonSerializer.Deserialize<GptShape>(info.Metadata[GptGraph.ShapeKey], GptExporter.ShapeJsonOptions);
        Assert.Equal(new GptShape(2, 4, 64, GptExportFixture.Context, fixture.Vocabulary.Count), shape);

        string[] inputs = [GptGraph.InputIds, GptGraph.PositionIds, GptGraph.AttentionMask, .. Enumerable.Range(0, 2).SelectMany(l => new[] { GptGraph.PastKey(l), GptGraph.PastValue(l) })];
        string[] outputs = [GptGraph.Logits, .. Enumerable.Range(0, 2).SelectMany(l => new[] { GptGraph.PresentKey(l), GptGraph.PresentValue(l) })];
        Assert.Equal(inputs, info.Inputs.Select(i => i.Name));
        Assert.Equal(outputs, info.Outputs.Select(o => o.Name));
        Assert.Equal([-1L, -1, fixture.Vocabulary.Count], info.Outputs[0].Shape);
        Assert.Equal([-1L, 4, -1, 16], info.Inputs[3].Shape);
    }

    [Fact]
    public void VocabularyOfAnotherSize_BadTask_AndBareGpt_AreRefused()
    {
        var (gpt, _, _) = fixture.Get("random-tied");
        var smaller = TextVocabulary.Build(fixture.Texts.Take(20));
        Assert.NotEqual(gpt.Config.Vocabulary, smaller.Count);
        var ex = Assert.Throws<ArgumentException>(() => new GptExporter(gpt, GptTasks.Lm, smaller));
        Assert.Contains($"{smaller.Count}", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new GptExporter(gpt, "translate", fixture.Vocabulary));
        var bare = Assert.Throws<NotSupportedException>(() => ModelExporter.Export(gpt));
        Assert.Contains(nameof(GptExporter), bare.Message, StringComparison.Ordinal);
    }

    /// <summary>Training (fused causal attention, no cache) and export (the Cached path the graph copies) compute the same function.</summary>
    [Theory]
    [InlineData("random-tied")]
    [InlineData("random-untied")]
    [InlineData("trained-tied")]
    public void TrainingForward_EqualsCachedPrefill(string variant)
    {
        var (gpt, _, _) = fixture.Get(variant);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var random = new Generator(14);
        double max = 0;
        foreach (int length in new[] { 1, 17, GptExportFixture.Context })
        {
            var tokens = randint(0, gpt.Config.Vocabulary, [4, length], generator: random);           // (B, T)
            var forward = gpt.forward(tokens);                                                      // (B, T, V)
            var positions = arange(length, dtype: ScalarType.Int64).unsqueeze(0).expand(4, length).contiguous();
            var (cached, _) = gpt.Cached(tokens, positions, ones([4, length], dtype: ScalarType.Int64), gpt.EmptyPast(4));
            max = Math.Max(max, (forward - cached).abs().max().item<float>());
        }

        output.WriteLine($"{variant}: forward vs Cached prefill max |diff| {max:E2}");
        Assert.True(max <= ModelExporter.Tolerance, $"forward vs Cached max |diff| {max:E2}");
    }

    /// <summary>Standard deviation over the vocabulary of the logits that follow <paramref name="prompt"/>.</summary>
    private static double LogitSpread(Gpt gpt, int[] prompt)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var tokens = tensor(prompt.Select(t => (long)t).ToArray(), [1, prompt.Length]);
        var (logits, _) = gpt.Cached(tokens, arange(prompt.Length, dtype: ScalarType.Int64).unsqueeze(0), ones([1, prompt.Length], dtype: ScalarType.Int64), gpt.EmptyPast(1));
        return logits[0, -1].std().item<float>();
    }

    private static List<(string Name, Tensor Value)> Inputs(Gpt gpt, Tensor tokens, Tensor positions, Tensor mask, IReadOnlyList<(Tensor Key, Tensor Value)> past)
    {
        var inputs = new List<(string, Tensor)> { (GptGraph.InputIds, tokens), (GptGraph.PositionIds, positions), (GptGraph.AttentionMask, mask) };
        for (int layer = 0; layer < gpt.Config.Layers; layer++)
        {
            inputs.Add((GptGraph.PastKey(layer), past[layer].Key.contiguous()));
            inputs.Add((GptGraph.PastValue(layer), past[layer].Value.contiguous()));
        }

        return inputs;
    }

    /// <summary>Runs the graph and returns its outputs as TorchSharp tensors (in the caller's dispose scope).</summary>
    private static Dictionary<string, Tensor> Run(InferenceSession session, IReadOnlyList<(string Name, Tensor Value)> inputs)
    {
        // TorchSharp's accessor throws on empty tensors (a prefill's zero-length past).
        var values = inputs.Select(i => i.Value.dtype == ScalarType.Int64
            ? OrtValue.CreateTensorValueFromMemory(i.Value.numel() == 0 ? [] : i.Value.contiguous().data<long>().ToArray(), [.. i.Value.shape])
            : OrtValue.CreateTensorValueFromMemory(i.Value.numel() == 0 ? [] : i.Value.contiguous().data<float>().ToArray(), [.. i.Value.shape])).ToList();
        try
        {
            using var runOptions = new RunOptions();
            using var results = session.Run(runOptions, [.. inputs.Select(i => i.Name)], values, session.OutputNames);
            return session.OutputNames.Zip(results).ToDictionary(
                p => p.First,
                p => tensor(p.Second.GetTensorDataAsSpan<float>().ToArray(), [.. p.Second.GetTensorTypeAndShape().Shape]));
        }
        finally
        {
            foreach (var value in values)
            {
                value.Dispose();
            }
        }
    }

    /// <summary>onnx.checker from Debian's python3-onnx, full check with shape inference (as ExportTests).</summary>
    private static (int Exit, string Output) OnnxChecker(string path)
    {
        var info = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print('ok')");
        info.ArgumentList.Add(path);
        using var process = Process.Start(info) ?? throw new InvalidOperationException("cannot start /usr/bin/python3");
        string text = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (text.Contains("No module named 'onnx'", StringComparison.Ordinal))
        {
            throw new InvalidOperationException("Debian's python3-onnx is not installed (apt-get install python3-onnx); the export check needs it");
        }

        return (process.ExitCode, text);
    }
}
