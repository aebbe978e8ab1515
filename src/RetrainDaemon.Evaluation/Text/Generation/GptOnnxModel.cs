using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Core.Text;

namespace RetrainDaemon.Evaluation.Text.Generation;

/// <summary>Why a generated sequence ended.</summary>
public enum GenerationStop
{
    /// <summary>The model produced the end-of-sequence token (not included in the tokens).</summary>
    Eos,

    /// <summary>The requested number of new tokens was reached.</summary>
    MaxNewTokens,

    /// <summary>The sequence filled the model's context.</summary>
    Context,
}

/// <summary>
/// One generated continuation: its tokens (without the EOS), why it ended, and the sum of the natural-log
/// probabilities of the chosen tokens under the untempered model (the EOS included when it ended the sequence).
/// </summary>
public sealed record GeneratedSequence(int[] Tokens, GenerationStop Stop, double LogProbability);

/// <summary>Teacher-forced log-likelihood of one sequence: Σ ln p(token | prefix) over the scored tokens, and how many were scored.</summary>
public readonly record struct SequenceLikelihood(double LogProbability, int Tokens);

/// <summary>
/// An exported <c>gpt</c> model (contract: <see cref="GptGraph"/>) run through ONNX Runtime on the CPU:
/// what is gated is what is served. Loading refuses a file that is not a complete gpt export — wrong or
/// missing family, task, shape or vocabulary metadata, a vocabulary whose sha256 does not match its
/// JSON, or a vocabulary whose size differs from the shape metadata or from the graph's logits — with an
/// <see cref="InvalidDataException"/> that names every problem.
/// <para>Generation is batched: prompts are left-padded (<see cref="TextVocabulary.Pad"/>, attention mask 0,
/// position 0), prefilled in one run, then decoded one token per row per run with the key/value cache;
/// rows that finish are dropped from the cache. Greedy, beam search and seeded sampling are supported
/// (conventions: <see cref="DecodingStrategy"/>). A sequence ends at the EOS, after the requested number of
/// new tokens, or at the context: the token predicted from position context − 1 is the last one (a sequence
/// holds at most context + 1 tokens, as training windows predict the token after a full window).</para>
/// <para>Log-likelihoods are teacher-forced, as training computes its loss: the first <c>context</c> tokens are
/// fed and predict tokens 1 … context, so a sequence of up to context + 1 tokens is one window. A longer
/// sequence continues in further windows of up to <c>context</c> inputs, window w starting with the token
/// window w − 1 predicted last, positions restarting at 0: each token after the first is predicted exactly
/// once, from the tokens of its own window (a perplexity's signature records the window).</para>
/// Every <see cref="OrtValue"/> and result collection is disposed. Thread-safe (no mutable state).
/// </summary>
public sealed class GptOnnxModel : IDisposable
{
    /// <summary>The <see cref="GptGraph.FamilyKey"/> value of a gpt export.</summary>
    public const string Family = "gpt";

    // Logits of one run are rows × tokens × vocabulary floats; batches are cut to stay near this many.
    private const long LogitBudget = 4L << 20;

    private static readonly JsonSerializerOptions ShapeJsonOptions = new(JsonSerializerDefaults.Web);

    private readonly InferenceSession session;
    private readonly string[] inputNames;
    private readonly string[] outputNames;

    private GptOnnxModel(InferenceSession session, int batchRows, string sha256, string task, GptShape shape, TextVocabulary vocabulary, string vocabularySha256)
    {
        BatchRows = batchRows;
        this.session = session;
        Sha256 = sha256;
        Task = task;
        Shape = shape;
        Vocabulary = vocabulary;
        VocabularySha256 = vocabularySha256;
        inputNames = [GptGraph.InputIds, GptGraph.PositionIds, GptGraph.AttentionMask, .. PastNames(shape.Layers, GptGraph.PastKey, GptGraph.PastValue)];
        outputNames = [GptGraph.Logits, .. PastNames(shape.Layers, GptGraph.PresentKey, GptGraph.PresentValue)];
    }

    /// <summary>sha256 (hex) of the model file.</summary>
    public string Sha256 { get; }

    /// <summary><see cref="GptTasks.Lm"/> or <see cref="GptTasks.Conditional"/>.</summary>
    public string Task { get; }

    public bool IsConditional => Task == GptTasks.Conditional;

    public GptShape Shape { get; }

    public TextVocabulary Vocabulary { get; }

    /// <summary>sha256 (hex, lowercase) of the vocabulary JSON the file carries, as checked at load.</summary>
    public string VocabularySha256 { get; }

    /// <summary>Rows per run (beams count as rows). Larger batches are cut further to bound the logits' memory.</summary>
    public int BatchRows { get; }

    /// <summary>Loads and checks an exported gpt model file; <paramref name="batchRows"/> rows go into one run (beams count as rows).</summary>
    /// <exception cref="InvalidDataException">The file is not a complete gpt export (the message lists every problem).</exception>
    public static GptOnnxModel Load(string path, int threads = 1, int batchRows = 16)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Load(File.ReadAllBytes(path), threads, batchRows, $"'{path}'");
    }

    /// <summary>Loads and checks an exported gpt model from its bytes.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a complete gpt export (the message lists every problem).</exception>
    public static GptOnnxModel Load(byte[] onnx, int threads = 1, int batchRows = 16, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(onnx);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchRows, 1);
        string source = name ?? "the model";
        OnnxModelInfo info;
        try
        {
            using var stream = new MemoryStream(onnx, writable: false);
            info = OnnxModelReader.Read(stream);
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"{source} is not a well-formed ONNX model: {ex.Message}", ex);
        }

        var (task, shape, vocabulary, vocabularySha) = ReadContract(info, source);
        InferenceSession session;
        using (var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL })
        {
            try
            {
                session = new InferenceSession(onnx, options);
            }
            catch (OnnxRuntimeException ex)
            {
                throw new InvalidDataException($"{source}: ONNX Runtime cannot load the graph: {ex.Message}", ex);
            }
        }

        var model = new GptOnnxModel(session, batchRows, Convert.ToHexStringLower(SHA256.HashData(onnx)), task, shape, vocabulary, vocabularySha);
        try
        {
            model.Probe(source);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Continues every prompt (model ids, usually starting with <see cref="TextVocabulary.Bos"/>) and returns
    /// the new tokens per prompt, in prompt order.
    /// </summary>
    /// <param name="prompts">Each 1 ≤ length ≤ context.</param>
    /// <param name="decoding">Greedy, beam or seeded sampling.</param>
    /// <param name="maxNewTokens">At most this many new tokens per prompt (the EOS not counted), ≥ 1.</param>
    /// <param name="cancellationToken">Checked before every run.</param>
    /// <exception cref="InvalidDataException">The model produced a non-finite logit (it has diverged).</exception>
    public IReadOnlyList<GeneratedSequence> Generate(IReadOnlyList<int[]> prompts, DecodingStrategy decoding, int maxNewTokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(decoding);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxNewTokens, 1);
        for (int i = 0; i < prompts.Count; i++)
        {
            CheckTokens(prompts[i], $"prompts[{i}]");
            if (prompts[i].Length > Shape.Context)
            {
                throw new ArgumentException($"prompts[{i}] has {prompts[i].Length} tokens, more than the context of {Shape.Context}", nameof(prompts));
            }
        }

        var results = new GeneratedSequence[prompts.Count];
        // Longest first, so a batch pads little; results go back to prompt order.
        int[] order = [.. Enumerable.Range(0, prompts.Count).OrderByDescending(i => prompts[i].Length).ThenBy(i => i)];
        int beams = decoding.BeamWidth;
        for (int start = 0; start < order.Length;)
        {
            int longest = prompts[order[start]].Length;
            int count = Math.Max(1, Math.Min(BatchRows / beams, (int)Math.Min(int.MaxValue, LogitBudget / ((long)longest * Shape.Vocabulary))));
            count = Math.Min(count, order.Length - start);
            var batch = order.AsSpan(start, count).ToArray();
            var generated = decoding.Kind == DecodingKind.Beam
                ? BeamSearch(prompts, batch, decoding.BeamWidth, maxNewTokens, cancellationToken)
                : Decode(prompts, batch, decoding, maxNewTokens, cancellationToken);
            for (int i = 0; i < batch.Length; i++)
            {
                results[batch[i]] = generated[i];
            }

            start += count;
        }

        return results;
    }

    /// <summary>
    /// Teacher-forced log-likelihood of each sequence: Σ ln p(s[t] | s[..t]) over t ≥ <paramref name="firstScored"/>[i]
    /// (default 1: everything after the first token). Longer-than-context sequences are windowed as the class
    /// summary describes.
    /// </summary>
    /// <exception cref="InvalidDataException">The model produced a non-finite logit.</exception>
    public IReadOnlyList<SequenceLikelihood> LogLikelihood(IReadOnlyList<int[]> sequences, IReadOnlyList<int>? firstScored = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        if (firstScored is not null && firstScored.Count != sequences.Count)
        {
            throw new ArgumentException($"{firstScored.Count} first-scored positions for {sequences.Count} sequences", nameof(firstScored));
        }

        // Inputs [start, end) of every window; they predict tokens start+1 … end. Window w starts with the token window w−1 predicted last.
        var windows = new List<(int Sequence, int Start, int End)>();
        for (int s = 0; s < sequences.Count; s++)
        {
            CheckTokens(sequences[s], $"sequences[{s}]");
            int from = firstScored?[s] ?? 1;
            if (from < 1)
            {
                throw new ArgumentOutOfRangeException(nameof(firstScored), from, $"firstScored[{s}] must be ≥ 1: the first token has no prefix to be predicted from");
            }

            int length = sequences[s].Length;
            for (int begin = 0; begin < length - 1; begin += Shape.Context)
            {
                windows.Add((s, begin, Math.Min(begin + Shape.Context, length - 1)));
            }
        }

        var windowSums = new double[windows.Count];
        var windowCounts = new int[windows.Count];
        int[] order = [.. Enumerable.Range(0, windows.Count).OrderByDescending(w => windows[w].End - windows[w].Start).ThenBy(w => w)];
        for (int start = 0; start < order.Length;)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var first = windows[order[start]];
            int longest = first.End - first.Start;
            int count = Math.Max(1, Math.Min(BatchRows, (int)Math.Min(int.MaxValue, LogitBudget / ((long)longest * Shape.Vocabulary))));
            count = Math.Min(count, order.Length - start);
            var rows = new int[count][];
            for (int r = 0; r < count; r++)
            {
                var (s, begin, end) = windows[order[start + r]];
                rows[r] = sequences[s][begin..end];
            }

            using var empty = KeyValueCache.Empty(Shape, count);
            var feed = Prefill(rows, out int width);
            using var results = Run(feed, count, width, empty);
            var logits = results[0].GetTensorDataAsSpan<float>();
            int vocabulary = Shape.Vocabulary;
            for (int r = 0; r < count; r++)
            {
                int w = order[start + r];
                var (s, begin, _) = windows[w];
                int from = firstScored?[s] ?? 1;
                int pad = width - rows[r].Length;
                double sum = 0;
                int scored = 0;
                for (int j = 0; j < rows[r].Length; j++)
                {
                    int target = begin + j + 1;
                    if (target < from)
                    {
                        continue;
                    }

                    // Logits at column pad+j (input token begin+j) predict token begin+j+1.
                    var row = logits.Slice(((r * width) + pad + j) * vocabulary, vocabulary);
                    sum += row[sequences[s][target]] - LogSumExp(row);
                    scored++;
                }

                windowSums[w] = sum;
                windowCounts[w] = scored;
            }

            start += count;
        }

        // Summed per sequence in window order, so the result does not depend on how windows were batched.
        var totals = new double[sequences.Count];
        var counts = new int[sequences.Count];
        for (int w = 0; w < windows.Count; w++)
        {
            totals[windows[w].Sequence] += windowSums[w];
            counts[windows[w].Sequence] += windowCounts[w];
        }

        return [.. Enumerable.Range(0, sequences.Count).Select(s => new SequenceLikelihood(totals[s], counts[s]))];
    }

    public void Dispose() => session.Dispose();

    private static IEnumerable<string> PastNames(int layers, Func<int, string> key, Func<int, string> value) =>
        Enumerable.Range(0, layers).SelectMany(l => new[] { key(l), value(l) });

    private void CheckTokens(int[]? tokens, string name)
    {
        if (tokens is null || tokens.Length == 0)
        {
            throw new ArgumentException($"{name} is empty", name);
        }

        foreach (int token in tokens)
        {
            if ((uint)token >= (uint)Shape.Vocabulary)
            {
                throw new ArgumentException($"{name} holds token {token}, outside the vocabulary 0..{Shape.Vocabulary - 1}", name);
            }
        }
    }

    /// <summary>Reads and checks the metadata contract; every problem is reported at once.</summary>
    private static (string Task, GptShape Shape, TextVocabulary Vocabulary, string VocabularySha256) ReadContract(OnnxModelInfo info, string source)
    {
        var problems = new List<string>();
        var metadata = info.Metadata;
        string? Get(string key)
        {
            if (metadata.TryGetValue(key, out string? value) && value.Length > 0)
            {
                return value;
            }

            problems.Add($"metadata '{key}' is missing");
            return null;
        }

        if (Get(GptGraph.FamilyKey) is { } family && family != Family)
        {
            problems.Add($"metadata '{GptGraph.FamilyKey}' is '{family}', not '{Family}'");
        }

        string? task = Get(GptGraph.TaskKey);
        if (task is not null && !GptTasks.All.Contains(task))
        {
            problems.Add($"metadata '{GptGraph.TaskKey}' is '{task}', not one of {string.Join(", ", GptTasks.All)}");
        }

        GptShape? shape = null;
        if (Get(GptGraph.ShapeKey) is { } shapeJson)
        {
            try
            {
                shape = JsonSerializer.Deserialize<GptShape>(shapeJson, ShapeJsonOptions);
                if (shape is null || shape.Layers < 1 || shape.Heads < 1 || shape.Width < 1 || shape.Width % shape.Heads != 0 || shape.Context < 2 || shape.Vocabulary < TextVocabulary.SpecialCount + 1)
                {
                    problems.Add($"metadata '{GptGraph.ShapeKey}' is not a usable shape: {shapeJson}");
                    shape = null;
                }
            }
            catch (JsonException ex)
            {
                problems.Add($"metadata '{GptGraph.ShapeKey}' is not shape JSON ({ex.Message}): {Abbreviate(shapeJson)}");
            }
        }

        TextVocabulary? vocabulary = null;
        string? vocabularyJson = Get(GptGraph.VocabularyKey);
        string? declaredSha = Get(GptGraph.VocabularySha256Key);
        string? actualSha = null;
        if (vocabularyJson is not null)
        {
            actualSha = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(vocabularyJson)));
            if (declaredSha is not null && !string.Equals(declaredSha, actualSha, StringComparison.OrdinalIgnoreCase))
            {
                problems.Add($"the vocabulary does not match its checksum: metadata '{GptGraph.VocabularySha256Key}' says {declaredSha}, the vocabulary JSON hashes to {actualSha}");
            }

            try
            {
                vocabulary = TextVocabulary.FromJson(vocabularyJson);
            }
            catch (InvalidDataException ex)
            {
                problems.Add($"metadata '{GptGraph.VocabularyKey}': {ex.Message}");
            }
        }

        if (vocabulary is not null && shape is not null && vocabulary.Count != shape.Vocabulary)
        {
            problems.Add($"the vocabulary has {vocabulary.Count} tokens but the shape metadata says the logits cover {shape.Vocabulary}");
        }

        CheckGraph(info, shape, vocabulary, problems);
        if (problems.Count > 0)
        {
            throw new InvalidDataException($"{source} is refused as a gpt model: {string.Join("; ", problems)}");
        }

        return (task!, shape!, vocabulary!, actualSha!);
    }

    /// <summary>The graph's inputs and outputs against the contract and the shape (static dimensions only; the probe checks the rest).</summary>
    private static void CheckGraph(OnnxModelInfo info, GptShape? shape, TextVocabulary? vocabulary, List<string> problems)
    {
        var inputs = info.Inputs.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var outputs = info.Outputs.ToDictionary(o => o.Name, StringComparer.Ordinal);
        foreach (string name in new[] { GptGraph.InputIds, GptGraph.PositionIds, GptGraph.AttentionMask })
        {
            if (!inputs.TryGetValue(name, out var spec))
            {
                problems.Add($"the graph has no input '{name}'");
            }
            else if (spec.ElementType != "int64")
            {
                problems.Add($"input '{name}' is {spec.ElementType}, not int64");
            }
        }

        if (!outputs.TryGetValue(GptGraph.Logits, out var logits))
        {
            problems.Add($"the graph has no output '{GptGraph.Logits}'");
        }
        else if (vocabulary is not null && logits.Shape.Count == 3 && logits.Shape[2] > 0 && logits.Shape[2] != vocabulary.Count)
        {
            problems.Add($"the vocabulary has {vocabulary.Count} tokens but the graph's logits have {logits.Shape[2]}");
        }
        else if (logits.Shape.Count != 3)
        {
            problems.Add($"output '{GptGraph.Logits}' has rank {logits.Shape.Count}, not 3 (batch, seq, vocabulary)");
        }

        if (shape is null)
        {
            return;
        }

        for (int layer = 0; layer < shape.Layers; layer++)
        {
            foreach (var (name, table, kind) in new[]
            {
                (GptGraph.PastKey(layer), inputs, "input"), (GptGraph.PastValue(layer), inputs, "input"),
                (GptGraph.PresentKey(layer), outputs, "output"), (GptGraph.PresentValue(layer), outputs, "output"),
            })
            {
                if (!table.TryGetValue(name, out var spec))
                {
                    problems.Add($"the shape metadata says {shape.Layers} layers but the graph has no {kind} '{name}'");
                }
                else if (spec.Shape.Count != 4 || (spec.Shape[1] > 0 && spec.Shape[1] != shape.Heads) || (spec.Shape[3] > 0 && spec.Shape[3] != shape.HeadDim))
                {
                    problems.Add($"{kind} '{name}' has shape ({string.Join(", ", spec.Shape)}), not (batch, {shape.Heads}, length, {shape.HeadDim}) as the shape metadata says");
                }
            }
        }

        if (inputs.ContainsKey(GptGraph.PastKey(shape.Layers)))
        {
            problems.Add($"the graph has more layers than the {shape.Layers} of its shape metadata");
        }
    }

    private static string Abbreviate(string text) => text.Length <= 200 ? text : text[..200] + "…";

    /// <summary>One prefill of [BOS]: the graph must run and its outputs must have the shapes the metadata promises.</summary>
    private void Probe(string source)
    {
        using var empty = KeyValueCache.Empty(Shape, 1);
        var feed = Prefill([[TextVocabulary.Bos]], out int width);
        using var results = Run(feed, 1, width, empty);
        var logitsShape = results[0].GetTensorTypeAndShape().Shape;
        if (logitsShape.Length != 3 || logitsShape[2] != Vocabulary.Count)
        {
            throw new InvalidDataException($"{source} is refused as a gpt model: the vocabulary has {Vocabulary.Count} tokens but the graph's logits come out as ({string.Join(", ", logitsShape)})");
        }

        for (int i = 1; i < results.Count; i++)
        {
            var presentShape = results[i].GetTensorTypeAndShape().Shape;
            if (presentShape is not [1, var heads, 1, var headDim] || heads != Shape.Heads || headDim != Shape.HeadDim)
            {
                throw new InvalidDataException($"{source} is refused as a gpt model: output '{outputNames[i]}' comes out as ({string.Join(", ", presentShape)}), not (1, {Shape.Heads}, 1, {Shape.HeadDim})");
            }
        }
    }

    /// <summary>The feeds of a prefill: rows left-padded to the longest (pad id, position 0, mask 0).</summary>
    private static (long[] Ids, long[] Positions, long[] Mask) Prefill(IReadOnlyList<int[]> rows, out int width)
    {
        width = rows.Max(r => r.Length);
        var ids = new long[rows.Count * width];
        var positions = new long[rows.Count * width];
        var mask = new long[rows.Count * width];
        for (int r = 0; r < rows.Count; r++)
        {
            int pad = width - rows[r].Length;
            for (int j = 0; j < rows[r].Length; j++)
            {
                int i = (r * width) + pad + j;
                ids[i] = rows[r][j];
                positions[i] = j;
                mask[i] = 1;
            }
        }

        return (ids, positions, mask);
    }

    /// <summary>One graph run; <paramref name="feed"/> holds <paramref name="rows"/> × <paramref name="seq"/> new tokens after the cache.</summary>
    private IDisposableReadOnlyCollection<OrtValue> Run((long[] Ids, long[] Positions, long[] Mask) feed, int rows, int seq, KeyValueCache past)
    {
        using var ids = OrtValue.CreateTensorValueFromMemory(feed.Ids, [rows, seq]);
        using var positions = OrtValue.CreateTensorValueFromMemory(feed.Positions, [rows, seq]);
        using var mask = OrtValue.CreateTensorValueFromMemory(feed.Mask, [rows, past.Length + seq]);
        using var runOptions = new RunOptions();
        OrtValue[] inputs = [ids, positions, mask, .. past.Values];
        return session.Run(runOptions, inputNames, inputs, outputNames);
    }

    /// <summary>The state of one row during decoding.</summary>
    private sealed class Row(int slot, int promptLength, int pad, List<int> tokens, double logProbability)
    {
        /// <summary>Index of the prompt in the batch.</summary>
        public int Slot { get; } = slot;

        public int PromptLength { get; } = promptLength;

        /// <summary>Left padding of this row in the batch's cache.</summary>
        public int Pad { get; } = pad;

        public List<int> Tokens { get; } = tokens;

        public double LogProbability { get; set; } = logProbability;

        public TokenSampler? Sampler { get; init; }
    }

    /// <summary>The feeds of one decode step: each row's last token at its next position, mask over cache + 1.</summary>
    private (long[] Ids, long[] Positions, long[] Mask) Step(IReadOnlyList<Row> rows, int cacheLength)
    {
        int total = cacheLength + 1;
        var ids = new long[rows.Count];
        var positions = new long[rows.Count];
        var mask = new long[rows.Count * total];
        for (int r = 0; r < rows.Count; r++)
        {
            var row = rows[r];
            ids[r] = row.Tokens[^1];
            positions[r] = row.PromptLength + row.Tokens.Count - 1;
            mask.AsSpan((r * total) + row.Pad, total - row.Pad).Fill(1);
        }

        return (ids, positions, mask);
    }

    /// <summary>Greedy or sampled decoding of one batch of prompts.</summary>
    private GeneratedSequence[] Decode(IReadOnlyList<int[]> prompts, int[] batch, DecodingStrategy decoding, int maxNewTokens, CancellationToken cancellationToken)
    {
        var results = new GeneratedSequence[batch.Length];
        var batchPrompts = batch.Select(i => prompts[i]).ToList();
        var feed = Prefill(batchPrompts, out int width);
        var rows = new List<Row>(batch.Length);
        for (int b = 0; b < batch.Length; b++)
        {
            rows.Add(new Row(b, batchPrompts[b].Length, width - batchPrompts[b].Length, [], 0)
            {
                Sampler = decoding.Kind == DecodingKind.Sample ? new TokenSampler(decoding.Sampling!, unchecked(decoding.Seed + (ulong)batch[b])) : null,
            });
        }

        int seq = width;
        KeyValueCache cache = KeyValueCache.Empty(Shape, rows.Count);
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var previous = cache;
                cache = KeyValueCache.FromResults(Run(feed, rows.Count, seq, previous), rows.Count, previous.Length + seq);
                previous.Dispose();
                var logits = cache.Logits.GetTensorDataAsSpan<float>();
                var survivors = new List<int>(rows.Count);
                for (int r = 0; r < rows.Count; r++)
                {
                    var row = rows[r];
                    var next = logits.Slice(((r * seq) + seq - 1) * Shape.Vocabulary, Shape.Vocabulary);
                    double logSumExp = LogSumExp(next);
                    int token = row.Sampler?.Next(next) ?? ArgMax(next);
                    row.LogProbability += next[token] - logSumExp;
                    var stop = Advance(row, token, maxNewTokens);
                    if (stop is { } reason)
                    {
                        results[row.Slot] = new GeneratedSequence([.. row.Tokens], reason, row.LogProbability);
                    }
                    else
                    {
                        survivors.Add(r);
                    }
                }

                if (survivors.Count == 0)
                {
                    return results;
                }

                if (survivors.Count < rows.Count)
                {
                    var gathered = cache.Gather(survivors);
                    cache.Dispose();
                    cache = gathered;
                    rows = [.. survivors.Select(r => rows[r])];
                }

                feed = Step(rows, cache.Length);
                seq = 1;
            }
        }
        finally
        {
            cache.Dispose();
        }
    }

    /// <summary>Appends <paramref name="token"/> unless it is the EOS; returns why the row ends, or null.</summary>
    private GenerationStop? Advance(Row row, int token, int maxNewTokens)
    {
        if (token == TextVocabulary.Eos)
        {
            return GenerationStop.Eos;
        }

        row.Tokens.Add(token);
        if (row.Tokens.Count >= maxNewTokens)
        {
            return GenerationStop.MaxNewTokens;
        }

        // The last position fed must be < context: a row of context + 1 tokens cannot be continued (its last
        // token was predicted from the full window, as training predicts it, but has no position of its own).
        return row.PromptLength + row.Tokens.Count > Shape.Context ? GenerationStop.Context : null;
    }

    /// <summary>Beam search over one batch of prompts (convention: <see cref="DecodingStrategy"/>).</summary>
    private GeneratedSequence[] BeamSearch(IReadOnlyList<int[]> prompts, int[] batch, int width, int maxNewTokens, CancellationToken cancellationToken)
    {
        var results = new GeneratedSequence[batch.Length];
        var finished = new List<(GeneratedSequence Sequence, double Score)>[batch.Length];
        var batchPrompts = batch.Select(i => prompts[i]).ToList();
        var feed = Prefill(batchPrompts, out int padded);
        var rows = new List<Row>(batch.Length);
        for (int b = 0; b < batch.Length; b++)
        {
            finished[b] = [];
            rows.Add(new Row(b, batchPrompts[b].Length, padded - batchPrompts[b].Length, [], 0));
        }

        int seq = padded;
        int candidatesPerBeam = Math.Min(2 * width, Shape.Vocabulary);
        var top = new (double Logit, int Token)[candidatesPerBeam];
        KeyValueCache cache = KeyValueCache.Empty(Shape, rows.Count);
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var previous = cache;
                cache = KeyValueCache.FromResults(Run(feed, rows.Count, seq, previous), rows.Count, previous.Length + seq);
                previous.Dispose();
                var logits = cache.Logits.GetTensorDataAsSpan<float>();

                // Candidates of every live beam, grouped by prompt (a prompt's beams are adjacent rows).
                var next = new List<Row>();
                var sources = new List<int>();
                for (int first = 0; first < rows.Count;)
                {
                    int slot = rows[first].Slot;
                    int end = first;
                    var candidates = new List<(double Score, int Beam, int Token, double LogProbability)>();
                    for (; end < rows.Count && rows[end].Slot == slot; end++)
                    {
                        var row = logits.Slice(((end * seq) + seq - 1) * Shape.Vocabulary, Shape.Vocabulary);
                        int kept = TopTokens(row, top);
                        double logSumExp = LogSumExp(row);
                        for (int c = 0; c < kept; c++)
                        {
                            double logProbability = top[c].Logit - logSumExp;
                            candidates.Add((rows[end].LogProbability + logProbability, end, top[c].Token, logProbability));
                        }
                    }

                    candidates.Sort((x, y) => x.Score != y.Score ? y.Score.CompareTo(x.Score) : x.Beam != y.Beam ? x.Beam.CompareTo(y.Beam) : x.Token.CompareTo(y.Token));
                    var beams = new List<Row>(width);
                    int limit = Math.Min(candidates.Count, 2 * width);
                    for (int rank = 0; rank < limit && beams.Count < width; rank++)
                    {
                        var (score, beam, token, _) = candidates[rank];
                        var parent = rows[beam];
                        if (token == TextVocabulary.Eos)
                        {
                            // Only an EOS among the first k candidates finishes a hypothesis (so width 1 is greedy).
                            // There are at most k EOS candidates (one per beam), so a step always yields a new beam
                            // or a finished hypothesis, and the pool Best() picks from is never empty.
                            if (rank < width)
                            {
                                finished[slot].Add((new GeneratedSequence([.. parent.Tokens], GenerationStop.Eos, score), score / (parent.Tokens.Count + 1)));
                            }

                            continue;
                        }

                        beams.Add(new Row(slot, parent.PromptLength, parent.Pad, [.. parent.Tokens, token], score));
                        sources.Add(beam);
                    }

                    bool done = finished[slot].Count >= width || beams.Count == 0;
                    GenerationStop? limitReached = beams.Count == 0 ? null
                        : beams[0].Tokens.Count >= maxNewTokens ? GenerationStop.MaxNewTokens
                        : beams[0].PromptLength + beams[0].Tokens.Count > Shape.Context ? GenerationStop.Context
                        : null;
                    if (done || limitReached is not null)
                    {
                        if (!done)
                        {
                            foreach (var beam in beams)
                            {
                                finished[slot].Add((new GeneratedSequence([.. beam.Tokens], limitReached!.Value, beam.LogProbability), beam.LogProbability / beam.Tokens.Count));
                            }
                        }

                        sources.RemoveRange(sources.Count - beams.Count, beams.Count);
                        results[slot] = Best(finished[slot]);
                    }
                    else
                    {
                        next.AddRange(beams);
                    }

                    first = end;
                }

                if (next.Count == 0)
                {
                    return results;
                }

                var gathered = cache.Gather(sources);
                cache.Dispose();
                cache = gathered;
                rows = next;
                feed = Step(rows, cache.Length);
                seq = 1;
            }
        }
        finally
        {
            cache.Dispose();
        }
    }

    private static GeneratedSequence Best(List<(GeneratedSequence Sequence, double Score)> pool)
    {
        var best = pool[0];
        foreach (var entry in pool)
        {
            if (entry.Score > best.Score)
            {
                best = entry; // strictly better only: on a tie the hypothesis that finished first stays
            }
        }

        return best.Sequence;
    }

    /// <summary>
    /// The <paramref name="top"/>.Length largest logits of a row, descending, ties to the lower id; returns how many
    /// were kept (fewer only for a tiny vocabulary).
    /// </summary>
    private static int TopTokens(ReadOnlySpan<float> logits, (double Logit, int Token)[] top)
    {
        int kept = 0;
        for (int id = 0; id < logits.Length; id++)
        {
            double value = logits[id];
            if (kept == top.Length && value <= top[kept - 1].Logit)
            {
                continue; // a tie with the smallest kept one loses to its lower id
            }

            int position = kept < top.Length ? kept++ : kept - 1;
            while (position > 0 && top[position - 1].Logit < value)
            {
                top[position] = top[position - 1];
                position--;
            }

            top[position] = (value, id);
        }

        return kept;
    }

    /// <summary>The argmax of a row (the lowest id among equal maxima), as <see cref="TokenSampler"/> picks at temperature 0.</summary>
    private static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
            {
                best = i;
            }
        }

        return best;
    }

    /// <summary>ln Σ exp(logit) in double; a NaN or infinite logit means the model has diverged.</summary>
    private static double LogSumExp(ReadOnlySpan<float> logits)
    {
        double max = double.NegativeInfinity;
        foreach (float logit in logits)
        {
            if (!float.IsFinite(logit))
            {
                throw new InvalidDataException($"the model produced a non-finite logit ({logit}): it has diverged");
            }

            max = Math.Max(max, logit);
        }

        double sum = 0;
        foreach (float logit in logits)
        {
            sum += Math.Exp(logit - max);
        }

        return max + Math.Log(sum);
    }
}
