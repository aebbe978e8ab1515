using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.Imaging;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Evaluation.Extractors;
using RetrainDaemon.Evaluation.Images;
using RetrainDaemon.Evaluation.Text;

namespace RetrainDaemon.Cli;

/// <summary>
/// <c>eval</c>: scores a model — a registry version (verified first) or an ONNX file — by the configured
/// evaluation protocol through ONNX Runtime, and prints every metric with its signature. Image generators
/// use <see cref="ImageEvaluator"/>; a model configured with <c>Modality = text</c> (a <c>gpt</c> export) uses
/// <see cref="TextEvaluator"/> on the model's holdout and training texts in the store.
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "The model (a name under Models in the configuration; also the registry folder).", Required = true };
        var version = new Option<int?>("--version") { Description = "A registry version of the model (verified before it is scored)." };
        var onnx = new Option<string?>("--onnx") { Description = "An ONNX generator file instead of a registry version." };
        var family = new Option<string?>("--family") { Description = "dcgan (tanh output) or vae (sigmoid output); default: the version's recorded family, else dcgan." };
        family.AcceptOnlyFromAmong("dcgan", "vae");
        var reference = new Option<string>("--reference") { Description = "store: the model's holdout/training samples in the store; fashion-mnist: Debian's t10k/train (images only).", DefaultValueFactory = _ => "store" };
        reference.AcceptOnlyFromAmong("store", "fashion-mnist");
        var samples = new Option<int?>("--samples") { Description = "Generated samples (default Evaluation:SampleCount; text language models: Evaluation:Text:SampleCount)." };
        var seed = new Option<int?>("--seed") { Description = "Latent seed (default Evaluation:Seed); for text models the sampling seed (default Evaluation:Text:Seed)." };
        var decoding = new Option<string?>("--decoding") { Description = "Text, conditional models: greedy or beam:k (default Evaluation:Text:Decoding)." };
        var maxNewTokens = new Option<int?>("--max-new-tokens") { Description = "Text models: new tokens per output at most (default Evaluation:Text:MaxNewTokens)." };
        var registry = new Option<string?>("--registry") { Description = "Registry root (default Registry:Root)." };
        var json = new Option<bool>("--json") { Description = "Print the metrics as JSON." };
        var command = new Command("eval", "Score a model (registry version or ONNX file) through ONNX Runtime — image generators: FID, IS, KID, coverage, diversity, novelty, MiFID; text models: BLEU, chrF, ROUGE or perplexity, Test-BLEU, Self-BLEU, distinct-n, copy share — each with its signature.");
        foreach (var o in new Option[] { model, version, onnx, family, reference, samples, seed, decoding, maxNewTokens, registry, json })
        {
            command.Options.Add(o);
        }

        command.Validators.Add(result =>
        {
            if ((result.GetValue(version) is null) == (result.GetValue(onnx) is null))
            {
                result.AddError("give exactly one of --version and --onnx");
            }
        });

        command.SetAction(async (parse, cancellationToken) =>
        {
            var configuration = RetrainCli.Configuration(parse);
            var failures = new List<string>();
            var evaluation = RetrainCli.Bind(configuration, EvaluationOptions.Section, new EvaluationOptionsValidator(), failures);
            var registryOptions = RetrainCli.Bind(configuration, RegistryOptions.Section, new RegistryOptionsValidator(), failures);
            var storeOptions = RetrainCli.Bind(configuration, StoreOptions.Section, RetrainCli.StoreValidator(), failures);
            var models = RetrainCli.BindModels(configuration, failures);
            var textOptions = RetrainCli.Bind(configuration, TextEvaluationOptions.Section, new TextEvaluationOptionsValidator(), failures);
            if (failures.Count > 0)
            {
                throw new ConfigurationInvalidException(failures);
            }

            if (models.TryGet(parse.GetValue(model)!, out var textModel) && textModel.ParsedModality == Modality.Text)
            {
                var overrides = new TextOverrides(parse.GetValue(samples), parse.GetValue(seed), parse.GetValue(decoding), parse.GetValue(maxNewTokens));
                if (parse.GetValue(reference) != "store" || parse.GetValue(family) is not null)
                {
                    Console.Error.WriteLine("retrain-daemon: --reference fashion-mnist and --family are for image generators; a text model is scored on its own texts in the store");
                    return 2;
                }

                return await EvaluateTextAsync(parse.GetValue(model)!, textModel, parse.GetValue(version), parse.GetValue(onnx), parse.GetValue(registry),
                    registryOptions, storeOptions, evaluation.Threads, textOptions, overrides, parse.GetValue(json), cancellationToken);
            }

            if (parse.GetValue(decoding) is not null || parse.GetValue(maxNewTokens) is not null)
            {
                Console.Error.WriteLine("retrain-daemon: --decoding and --max-new-tokens are for text models (Models:<name>:Modality = text)");
                return 2;
            }

            evaluation.SampleCount = parse.GetValue(samples) ?? evaluation.SampleCount;
            evaluation.Seed = parse.GetValue(seed) ?? evaluation.Seed;
            if (evaluation.SampleCount < Math.Max(2, evaluation.Splits))
            {
                Console.Error.WriteLine($"retrain-daemon: --samples must be at least {Math.Max(2, evaluation.Splits)} (the IS splits)");
                return 2;
            }

            string modelName = parse.GetValue(model)!;
            string generator;
            string? recordedFamily = null;
            string subject;
            if (parse.GetValue(version) is int v)
            {
                var repository = new ModelRegistry(parse.GetValue(registry) ?? registryOptions.Root, registryOptions.KeepLast);
                if (!repository.TryVerify(modelName, v, out var verified, out var problem))
                {
                    Console.Error.WriteLine($"retrain-daemon: {modelName} v{v} is refused: {problem}");
                    return 1;
                }

                generator = verified.ModelPath;
                recordedFamily = verified.Manifest.Hyperparameters.GetValueOrDefault("family");
                subject = $"{modelName} v{v}";
            }
            else
            {
                generator = parse.GetValue(onnx)!;
                if (!File.Exists(generator))
                {
                    Console.Error.WriteLine($"retrain-daemon: '{generator}' does not exist");
                    return 1;
                }

                subject = generator;
            }

            string fam = parse.GetValue(family) ?? recordedFamily ?? "dcgan";
            var range = fam == "vae" ? GeneratorRange.Unit : GeneratorRange.Tanh;
            ImageReferenceSet set;
            if (parse.GetValue(reference) == "fashion-mnist")
            {
                set = ReferenceSets.FashionMnist(evaluation.MaxReferenceSamples, evaluation.MaxTrainingSamples);
            }
            else
            {
                await using var store = SampleStores.Open(storeOptions);
                long watermark = await store.GetWatermarkAsync(cancellationToken);
                set = await ReferenceSets.FromStoreAsync(store, modelName, watermark, evaluation.MaxReferenceSamples, evaluation.MaxTrainingSamples, cancellationToken);
                if (set.Holdout.Count < 2 || set.Training.Count < 2)
                {
                    Console.Error.WriteLine($"retrain-daemon: the store has {set.Holdout.Count} holdout and {set.Training.Count} training images of '{modelName}' (need 2 of each); publish data first or use --reference fashion-mnist");
                    return 1;
                }
            }

            Console.Error.WriteLine($"scoring {subject} ({fam}) against {set.Name}: {evaluation.SampleCount} samples, seed {evaluation.Seed}, {set.Holdout.Count} holdout / {set.Training.Count} training images");
            using var extractor = new OnnxFeatureExtractor(evaluation.Extractor, evaluation.Threads);
            var result = new ImageEvaluator(evaluation, extractor).Evaluate(generator, range, set, cancellationToken);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    subject,
                    generator_sha256 = result.GeneratorSha256,
                    samples = result.Samples,
                    seed = result.Seed,
                    metrics = result.Metrics.Select(m => new { metric = m.Metric, slice = m.Slice, value = m.Value, signature = m.Signature }),
                }, new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                foreach (var metric in result.Metrics)
                {
                    string name = metric.Slice is null ? metric.Metric : $"{metric.Metric}[{metric.Slice}]";
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-24} {metric.Value,14:G10}  {metric.Signature}"));
                }

                Console.Error.WriteLine($"scored in {result.Elapsed.TotalSeconds:0.0} s");
            }

            return 0;
        });
        return command;
    }

    /// <summary>Command-line overrides of the text protocol (null = the configured value).</summary>
    internal sealed record TextOverrides(int? Samples, int? Seed, string? Decoding, int? MaxNewTokens)
    {
        /// <summary>Applies the overrides; returns a problem for the operator, or null.</summary>
        public string? ApplyTo(TextEvaluationOptions options)
        {
            if (Seed is < 0)
            {
                return "--seed must not be negative for a text model";
            }

            options.SampleCount = Samples ?? options.SampleCount;
            options.Seed = Seed is int s ? (ulong)s : options.Seed;
            options.Decoding = Decoding ?? options.Decoding;
            options.MaxNewTokens = MaxNewTokens ?? options.MaxNewTokens;
            var result = new TextEvaluationOptionsValidator().Validate(null, options);
            return result.Failed ? string.Join("; ", result.Failures) : null;
        }
    }

    private static async Task<int> EvaluateTextAsync(string modelName, ModelOptions modelOptions, int? version, string? onnx, string? registryRoot,
        RegistryOptions registryOptions, StoreOptions storeOptions, int threads, TextEvaluationOptions textOptions, TextOverrides overrides, bool json, CancellationToken cancellationToken)
    {
        if (overrides.ApplyTo(textOptions) is { } problem)
        {
            Console.Error.WriteLine($"retrain-daemon: {problem}");
            return 2;
        }

        string file;
        string subject;
        if (version is int v)
        {
            var repository = new ModelRegistry(registryRoot ?? registryOptions.Root, registryOptions.KeepLast);
            if (!repository.TryVerify(modelName, v, out var verified, out var refused))
            {
                Console.Error.WriteLine($"retrain-daemon: {modelName} v{v} is refused: {refused}");
                return 1;
            }

            file = verified.ModelPath;
            subject = $"{modelName} v{v}";
        }
        else
        {
            file = onnx!;
            if (!File.Exists(file))
            {
                Console.Error.WriteLine($"retrain-daemon: '{file}' does not exist");
                return 1;
            }

            subject = file;
        }

        if (TaskMismatch(modelName, modelOptions, file) is { } mismatch)
        {
            Console.Error.WriteLine($"retrain-daemon: {mismatch}");
            return 2;
        }

        var (set, _) = await LoadTextReferenceAsync(modelName, modelOptions, storeOptions, textOptions, cancellationToken);
        if (set is null)
        {
            return 1;
        }

        string protocol = modelOptions.Text.Conditional
            ? $"decoding {textOptions.Decoding}"
            : string.Create(CultureInfo.InvariantCulture, $"{textOptions.SampleCount} samples, seed {textOptions.Seed}");
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"scoring {subject} against {set.Name}: {set.Holdout.Count} holdout / {set.Training.Count} training texts, max {textOptions.MaxNewTokens} new tokens, {protocol}"));
        var result = new TextEvaluator(textOptions, threads).Evaluate(file, set, cancellationToken);
        PrintMetrics(json, result.Metrics, new { subject, model_sha256 = result.ModelSha256, task = result.Task, vocabulary_sha256 = result.VocabularySha256, outputs = result.Outputs.Count });
        if (!json)
        {
            Console.Error.WriteLine($"scored in {result.Elapsed.TotalSeconds:0.0} s");
        }

        return 0;
    }

    /// <summary>
    /// A problem when the file's task metadata contradicts <c>Models:&lt;name&gt;:Text:Conditional</c> (the holdout
    /// would be read the wrong way); null when they agree or when the file has no task (the evaluator refuses it with the full list).
    /// </summary>
    internal static string? TaskMismatch(string modelName, ModelOptions modelOptions, string file)
    {
        OnnxModelInfo info;
        try
        {
            info = OnnxModelReader.Read(file);
        }
        catch (InvalidDataException)
        {
            return null;
        }

        if (!info.Metadata.TryGetValue(GptGraph.TaskKey, out string? task) || !GptTasks.All.Contains(task))
        {
            return null;
        }

        string expected = modelOptions.Text.Conditional ? GptTasks.Conditional : GptTasks.Lm;
        return task == expected ? null
            : $"'{file}' is a {task} model, but Models:{modelName}:Text:Conditional = {modelOptions.Text.Conditional.ToString().ToLowerInvariant()} makes '{modelName}' a {expected} model";
    }

    /// <summary>The model's holdout (and training) texts from the store; null (after telling the operator why) when there is nothing to score on.</summary>
    internal static async Task<(TextReferenceSet? Set, long Watermark)> LoadTextReferenceAsync(string modelName, ModelOptions modelOptions, StoreOptions storeOptions,
        TextEvaluationOptions textOptions, CancellationToken cancellationToken)
    {
        await using var store = SampleStores.Open(storeOptions);
        long watermark = await store.GetWatermarkAsync(cancellationToken);
        var set = await TextReferenceSet.FromStoreAsync(store, modelName, watermark, modelOptions.Text.Conditional, textOptions.MaxHoldout, textOptions.MaxTraining, cancellationToken);
        if (set.Holdout.Count == 0)
        {
            Console.Error.WriteLine($"retrain-daemon: the store has no holdout texts of '{modelName}' ({set.Training.Count} training); publish data first");
            return (null, watermark);
        }

        return (set, watermark);
    }

    internal static void PrintMetrics(bool json, IReadOnlyList<MetricValue> metrics, object header)
    {
        if (json)
        {
            var document = JsonSerializer.SerializeToNode(header)!.AsObject();
            document["metrics"] = JsonSerializer.SerializeToNode(metrics.Select(m => new { metric = m.Metric, slice = m.Slice, value = m.Value, signature = m.Signature }));
            // Signatures hold '+' and '<'; the relaxed encoder prints them as written (console output, never HTML).
            Console.WriteLine(document.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            return;
        }

        foreach (var metric in metrics)
        {
            string name = metric.Slice is null ? metric.Metric : $"{metric.Metric}[{metric.Slice}]";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-24} {metric.Value,14:G10}  {metric.Signature}"));
        }
    }
}
