using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Evaluation.Text.Generation;

namespace RetrainDaemon.Evaluation.Text;

/// <summary>One real text record: the source of a conditional pair (null for plain text) and the text (the target, the reference).</summary>
public sealed record ReferenceText(string? Source, string Text);

/// <summary>
/// The real texts a text model is scored against: holdout records (references, perplexity texts) and
/// training records (the copy check), each in a fixed order.
/// </summary>
public sealed record TextReferenceSet(string Name, IReadOnlyList<ReferenceText> Holdout, IReadOnlyList<string> Training)
{
    /// <summary>
    /// <paramref name="name"/>, count and the first 12 hex digits of a sha256 over the length-prefixed sources
    /// and texts: equal only for the same records in the same order.
    /// </summary>
    public static string Describe(string name, IReadOnlyList<ReferenceText> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Append(string? text)
        {
            // Length-prefixed (−1 = null), so ("ab","c") and ("a","bc") hash differently.
            var bytes = text is null ? [] : Encoding.UTF8.GetBytes(text);
            hash.AppendData(BitConverter.GetBytes(text is null ? -1 : bytes.Length));
            hash.AppendData(bytes);
        }

        foreach (var record in records)
        {
            Append(record.Source);
            Append(record.Text);
        }

        return string.Create(CultureInfo.InvariantCulture, $"{name}:{records.Count}:{Convert.ToHexStringLower(hash.GetHashAndReset())[..12]}");
    }

    /// <summary>The model's text samples in the store up to <paramref name="watermark"/>: holdout pairs and training texts, in sequence order.</summary>
    /// <exception cref="InvalidDataException">A sample is not text, or a conditional model's holdout sample has no source.</exception>
    public static async Task<TextReferenceSet> FromStoreAsync(ISampleStore store, string model, long watermark, bool conditional, int maxHoldout, int maxTraining, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        var holdout = new List<ReferenceText>();
        var training = new List<string>();
        await foreach (var sample in store.ReadSamplesAsync(model, 0, watermark, null, cancellationToken).ConfigureAwait(false))
        {
            var record = sample.Record;
            if (record.Text is null)
            {
                throw new InvalidDataException($"sample {record.EventId} of model '{model}' has no text");
            }

            if (record.Split == Splits.Holdout && holdout.Count < maxHoldout)
            {
                if (conditional && record.SourceText is null)
                {
                    throw new InvalidDataException($"sample {record.EventId} of the conditional model '{model}' has no source_text");
                }

                holdout.Add(new ReferenceText(conditional ? record.SourceText : null, record.Text));
            }
            else if (record.Split != Splits.Holdout && training.Count < maxTraining)
            {
                training.Add(record.Text);
            }
        }

        return new TextReferenceSet($"store-{model}@{watermark.ToString(CultureInfo.InvariantCulture)}", holdout, training);
    }
}

/// <summary>Every metric of one text evaluation, the outputs they were computed from, and the protocol.</summary>
/// <param name="Metrics">Catalog-named values, each with its signature.</param>
/// <param name="ModelSha256">sha256 of the scored ONNX file.</param>
/// <param name="Task"><see cref="GptTasks.Lm"/> or <see cref="GptTasks.Conditional"/>.</param>
/// <param name="VocabularySha256">sha256 of the model's vocabulary JSON.</param>
/// <param name="Outputs">The decoded outputs: one per holdout pair (conditional), or the samples (language model).</param>
/// <param name="References">For conditional models the holdout targets aligned with <paramref name="Outputs"/>; for language models the holdout texts scored for perplexity.</param>
/// <param name="Elapsed">Wall time of the evaluation.</param>
public sealed record TextEvaluation(IReadOnlyList<MetricValue> Metrics, string ModelSha256, string Task, string VocabularySha256,
    IReadOnlyList<string> Outputs, IReadOnlyList<string> References, TimeSpan Elapsed);

/// <summary>
/// Scores an exported <c>gpt</c> model (its ONNX file, through ONNX Runtime: what is gated is what is
/// served) by one fixed protocol, so a candidate and its champion are comparable.
/// <para><b>Conditional models</b> translate every holdout source (<c>[BOS] source [SEP]</c>, the source cut to
/// its first tokens when the prompt would exceed half the context) with <see cref="TextEvaluationOptions.Decoding"/>
/// and are scored against the holdout targets: corpus BLEU (<see cref="Bleu"/>, sacreBLEU defaults), chrF
/// (<see cref="Chrf"/>, sacreBLEU defaults), ROUGE-1/2/L/Lsum F-measures (<see cref="RougeScorer"/>, no stemming, plain mean).</para>
/// <para><b>Language models</b>: <c>perplexity</c> = exp(−Σ ln p / N) over the holdout texts encoded
/// <c>[BOS] text [EOS]</c>, where the sum and N run over every predicted token — the text tokens and the EOS,
/// never the BOS (windowed beyond the context as <see cref="GptOnnxModel"/> describes). Then
/// <see cref="TextEvaluationOptions.SampleCount"/> texts are sampled from [BOS] (sample i seeded with seed + i) and
/// scored: <c>test_bleu</c> (Texygen's <c>Bleu</c> in fast mode: the mean over samples of NLTK sentence BLEU-n,
/// method1 smoothing, against the first <see cref="TextEvaluationOptions.TestBleuReferences"/> holdout texts all
/// as references — <see cref="SelfBleu.SentenceBleu"/>, which is that function), <c>self_bleu</c>
/// (<see cref="SelfBleu"/>), <c>distinct_1</c>/<c>distinct_2</c> (<see cref="DistinctN"/>), and <c>copy_share</c>
/// (<see cref="CopyDetector"/> against the training texts). Word-level metrics tokenize with sacreBLEU's 13a
/// (Texygen's nltk.word_tokenize is not ported); the signatures say so.</para>
/// Every value's signature names the task, the vocabulary hash, the holdout set (name, count, content hash),
/// the decoding and its limits, and the metric's own conventions — never the model's hash, since candidate
/// and champion must compare.
/// </summary>
public sealed class TextEvaluator
{
    private readonly TextEvaluationOptions options;
    private readonly int threads;

    // The copy index of the last training set, keyed by its description (one immutable pair, so a shared
    // evaluator — candidate then champion — builds it once and never pairs one set's key with another's index).
    private (string Key, CopyDetector Detector)? copyIndex;

    public TextEvaluator(TextEvaluationOptions options, int threads = 2)
    {
        ArgumentNullException.ThrowIfNull(options);
        var validation = new TextEvaluationOptionsValidator().Validate(null, options);
        if (validation.Failed)
        {
            throw new ArgumentException("invalid text evaluation options: " + string.Join("; ", validation.Failures), nameof(options));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        this.options = options;
        this.threads = threads;
    }

    /// <summary>Loads (and checks) <paramref name="modelOnnx"/>, then scores it.</summary>
    /// <exception cref="InvalidDataException">The file is not a complete gpt export, or the model diverged.</exception>
    public TextEvaluation Evaluate(string modelOnnx, TextReferenceSet reference, CancellationToken cancellationToken = default)
    {
        if (!File.Exists(modelOnnx))
        {
            throw new FileNotFoundException($"model '{modelOnnx}' does not exist", modelOnnx);
        }

        using var model = GptOnnxModel.Load(modelOnnx, threads, options.BatchSize);
        return Evaluate(model, reference, cancellationToken);
    }

    /// <summary>Scores a loaded model (with the batch size it was loaded with).</summary>
    public TextEvaluation Evaluate(GptOnnxModel model, TextReferenceSet reference, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(reference);
        var clock = Stopwatch.StartNew();
        var holdout = reference.Holdout.Take(options.MaxHoldout).ToList();
        if (holdout.Count == 0)
        {
            throw new ArgumentException($"reference set '{reference.Name}' has no holdout record");
        }

        string holdoutId = TextReferenceSet.Describe(reference.Name, holdout);
        string modelBasis = $"gpt:{model.Task}|vocab:{model.VocabularySha256[..12]}";
        return model.IsConditional
            ? EvaluateConditional(model, reference, holdout, holdoutId, modelBasis, clock, cancellationToken)
            : EvaluateLanguageModel(model, reference, holdout, holdoutId, modelBasis, clock, cancellationToken);
    }

    /// <summary>
    /// BLEU, chrF and ROUGE of <paramref name="hypotheses"/> against one reference each — the exact functions the
    /// evaluator uses, public so a test can check the evaluator's numbers against them.
    /// </summary>
    public static IReadOnlyList<MetricValue> TranslationMetrics(IReadOnlyList<string> hypotheses, IReadOnlyList<string> references, string basis)
    {
        ArgumentNullException.ThrowIfNull(hypotheses);
        ArgumentNullException.ThrowIfNull(references);
        var referenceLists = references.Select(r => (IReadOnlyList<string?>)[r]).ToList();
        var bleu = Bleu.Corpus(hypotheses, referenceLists);
        var chrf = Chrf.Corpus(hypotheses, referenceLists);
        var rouge = new RougeScorer(RougeTypes);
        var rougeScores = rouge.Corpus(references, hypotheses);
        var metrics = new List<MetricValue>
        {
            new("bleu", null, bleu.Score, $"{basis}|{bleu.Signature}"),
            new("chrf", null, chrf.Score, $"{basis}|{chrf.Name}:{chrf.Signature}"),
        };
        foreach (string type in RougeTypes)
        {
            metrics.Add(new MetricValue(type, null, rougeScores[type].FMeasure, $"{basis}|{rouge.Signature}|f-measure"));
        }

        return metrics;
    }

    private static readonly string[] RougeTypes = ["rouge1", "rouge2", "rougeL", "rougeLsum"];

    /// <summary>Character similarity at or above which an output counts as (nearly) its source.</summary>
    public const double NearCopySimilarity = 0.7;

    /// <summary>
    /// source_copy_share: among holdout pairs whose reference is not itself (nearly) the source, the share of
    /// outputs that are (nearly) their source: character similarity 1 − Levenshtein / max(length) ≥
    /// <see cref="NearCopySimilarity"/>, whitespace collapsed. UI strings keep placeholders, option names and
    /// product names untranslated, so echoing the English source scores BLEU ~18 on the German catalogs —
    /// more than a small trained model — and BLEU cannot tell a copier from a translator; this metric can
    /// (a translator ~0, a copier ~1, a model that garbles its source while echoing it in between).
    /// Pairs whose reference is close to the source are left out: copying is right there.
    /// </summary>
    public static MetricValue SourceCopyShare(IReadOnlyList<string> hypotheses, IReadOnlyList<string> sources, IReadOnlyList<string> references, string basis)
    {
        ArgumentNullException.ThrowIfNull(hypotheses);
        ArgumentNullException.ThrowIfNull(sources);
        ArgumentNullException.ThrowIfNull(references);
        int eligible = 0, copied = 0;
        for (int i = 0; i < hypotheses.Count; i++)
        {
            string source = Collapse(sources[i]);
            if (Similarity(source, Collapse(references[i])) >= NearCopySimilarity)
            {
                continue;
            }

            eligible++;
            copied += Similarity(Collapse(hypotheses[i]), source) >= NearCopySimilarity ? 1 : 0;
        }

        return new MetricValue("source_copy_share", null, eligible == 0 ? 0 : (double)copied / eligible,
            string.Create(CultureInfo.InvariantCulture, $"{basis}|copy:levenshtein-sim>={NearCopySimilarity},ws-collapsed,ref-not-near-src|n:{eligible}"));
    }

    /// <summary>1 − Levenshtein distance / the longer length, over UTF-16 code units; 1 for two empty strings.</summary>
    public static double Similarity(string a, string b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        int longer = Math.Max(a.Length, b.Length);
        if (longer == 0)
        {
            return 1;
        }

        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j], current[j - 1]) + 1);
            }

            (previous, current) = (current, previous);
        }

        return 1 - (double)previous[b.Length] / longer;
    }

    private static string Collapse(string text) => string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));

    private TextEvaluation EvaluateConditional(GptOnnxModel model, TextReferenceSet reference, List<ReferenceText> holdout, string holdoutId, string modelBasis, Stopwatch clock, CancellationToken cancellationToken)
    {
        var decoding = options.ConditionalDecoding();
        int maxPrompt = Math.Min(model.Shape.Context, Math.Max(3, model.Shape.Context / 2));
        var prompts = new List<int[]>(holdout.Count);
        for (int i = 0; i < holdout.Count; i++)
        {
            string source = holdout[i].Source
                ?? throw new ArgumentException($"the model is conditional, but holdout record {i} of '{reference.Name}' has no source text");
            var tokens = model.Vocabulary.Encode(source);
            int keep = Math.Min(tokens.Length, maxPrompt - 2);
            prompts.Add([TextVocabulary.Bos, .. tokens.AsSpan(0, keep), TextVocabulary.Sep]);
        }

        var generated = model.Generate(prompts, decoding, options.MaxNewTokens, cancellationToken);
        var hypotheses = generated.Select(g => model.Vocabulary.Decode(g.Tokens)).ToList();
        var references = holdout.Select(p => p.Text).ToList();
        string basis = string.Create(CultureInfo.InvariantCulture,
            $"{modelBasis}|holdout:{holdoutId}|decode:{decoding.Signature}|max_new:{options.MaxNewTokens}|prompt:bos+src[<={maxPrompt - 2}]+sep");
        var metrics = TranslationMetrics(hypotheses, references, basis).ToList();
        metrics.Add(SourceCopyShare(hypotheses, holdout.Select(p => p.Source!).ToList(), references, basis));
        return new TextEvaluation(metrics, model.Sha256, model.Task, model.VocabularySha256, hypotheses, references, clock.Elapsed);
    }

    private TextEvaluation EvaluateLanguageModel(GptOnnxModel model, TextReferenceSet reference, List<ReferenceText> holdout, string holdoutId, string modelBasis, Stopwatch clock, CancellationToken cancellationToken)
    {
        var texts = holdout.Select(p => p.Text).ToList();
        var metrics = new List<MetricValue>();

        // Perplexity: every predicted token of [BOS] text [EOS] — the text and the EOS, not the BOS.
        var sequences = texts.Select(t => (int[])[TextVocabulary.Bos, .. model.Vocabulary.Encode(t), TextVocabulary.Eos]).ToList();
        var likelihoods = model.LogLikelihood(sequences, null, cancellationToken);
        double logProbability = 0;
        long tokens = 0;
        foreach (var likelihood in likelihoods)
        {
            logProbability += likelihood.LogProbability;
            tokens += likelihood.Tokens;
        }

        metrics.Add(new MetricValue("perplexity", null, Math.Exp(-logProbability / tokens), string.Create(CultureInfo.InvariantCulture,
            $"{modelBasis}|holdout:{holdoutId}|ppl:exp-mean-nll,eos:in,bos:out|window:{model.Shape.Context},stride:{model.Shape.Context}")));

        cancellationToken.ThrowIfCancellationRequested();
        var decoding = options.SampleDecoding();
        var prompts = Enumerable.Range(0, options.SampleCount).Select(_ => new[] { TextVocabulary.Bos }).ToList();
        var samples = model.Generate(prompts, decoding, options.MaxNewTokens, cancellationToken)
            .Select(g => model.Vocabulary.Decode(g.Tokens)).ToList();
        string sampleBasis = string.Create(CultureInfo.InvariantCulture,
            $"{modelBasis}|decode:{decoding.Signature}|n:{samples.Count}|max_new:{options.MaxNewTokens}");

        var training = reference.Training.Take(options.MaxTraining).ToList();
        string trainingId = TextReferenceSet.Describe(reference.Name + "-train", training.Select(t => new ReferenceText(null, t)).ToList());
        metrics.AddRange(SampleMetrics(samples, texts, CopyIndex(training, trainingId), $"{reference.Name}", sampleBasis, trainingId, cancellationToken));
        return new TextEvaluation(metrics, model.Sha256, model.Task, model.VocabularySha256, samples, texts, clock.Elapsed);
    }

    /// <summary>
    /// test_bleu, self_bleu, distinct_1, distinct_2 and copy_share of <paramref name="samples"/> — the exact
    /// functions and conventions the evaluator uses, public so a test can check them against the metric classes.
    /// </summary>
    public IReadOnlyList<MetricValue> SampleMetrics(IReadOnlyList<string> samples, IReadOnlyList<string> holdoutTexts, CopyDetector copies,
        string referenceName, string sampleBasis, string trainingId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(holdoutTexts);
        ArgumentNullException.ThrowIfNull(copies);
        var metrics = new List<MetricValue>();
        var tokenized = samples.Select(s => (IReadOnlyList<string>)TextTokenizers.Tokenize(s, TextTokenizer.Mteval13a)).ToList();

        // Texygen's Bleu (fast mode): each sample against the first K holdout texts, all as references.
        var pool = holdoutTexts.Take(options.TestBleuReferences).ToList();
        var poolTokens = pool.Select(t => (IReadOnlyList<string>)TextTokenizers.Tokenize(t, TextTokenizer.Mteval13a)).ToList();
        var sentence = new double[tokenized.Count];
        Parallel.For(0, tokenized.Count, new ParallelOptions { MaxDegreeOfParallelism = threads, CancellationToken = cancellationToken },
            i => sentence[i] = SelfBleu.SentenceBleu(poolTokens, tokenized[i], options.BleuNgramOrder));
        double sum = 0;
        foreach (double value in sentence)
        {
            sum += value; // in sample order, as Texygen adds its pool results
        }

        string poolId = TextReferenceSet.Describe(referenceName, pool.Select(t => new ReferenceText(null, t)).ToList());
        metrics.Add(new MetricValue("test_bleu", null, sum / tokenized.Count, string.Create(CultureInfo.InvariantCulture,
            $"{sampleBasis}|refs:{poolId}|ngram:{options.BleuNgramOrder}|smooth:method1|tok:13a|version:nltk-3.8")));

        var selfBleu = SelfBleu.Compute(tokenized, new SelfBleuOptions { NgramOrder = options.BleuNgramOrder, MaxSentences = options.SelfBleuMaxSentences });
        metrics.Add(new MetricValue("self_bleu", null, selfBleu.Score, $"{sampleBasis}|{selfBleu.Signature.Replace("tok:given", "tok:13a", StringComparison.Ordinal)}"));

        for (int n = 1; n <= 2; n++)
        {
            var distinct = DistinctN.Compute(tokenized, n);
            metrics.Add(new MetricValue($"distinct_{n}", null, distinct.Value, string.Create(CultureInfo.InvariantCulture, $"{sampleBasis}|tok:13a|corpus-level|n:{n}")));
        }

        cancellationToken.ThrowIfCancellationRequested();
        metrics.Add(new MetricValue("copy_share", null, copies.CopyShare(samples), $"{sampleBasis}|train:{trainingId}|{copies.Signature}"));
        return metrics;
    }

    private CopyDetector CopyIndex(List<string> training, string key)
    {
        if (copyIndex is { } cached && cached.Key == key)
        {
            return cached.Detector;
        }

        var detector = new CopyDetector(training, options.CopyNgram, options.CopyMinShare);
        copyIndex = (key, detector);
        return detector;
    }
}
