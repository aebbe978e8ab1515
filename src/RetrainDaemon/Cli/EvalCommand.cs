using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using RetrainDaemon.Core.Imaging;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Evaluation.Extractors;
using RetrainDaemon.Evaluation.Images;

namespace RetrainDaemon.Cli;

/// <summary>
/// <c>eval</c>: scores an image generator — a registry version (verified first) or an ONNX file — by
/// the configured evaluation protocol through ONNX Runtime, and prints every metric with its signature.
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
        var reference = new Option<string>("--reference") { Description = "store: the model's holdout/training samples in the store; fashion-mnist: Debian's t10k/train.", DefaultValueFactory = _ => "store" };
        reference.AcceptOnlyFromAmong("store", "fashion-mnist");
        var samples = new Option<int?>("--samples") { Description = "Generated samples (default Evaluation:SampleCount)." };
        var seed = new Option<int?>("--seed") { Description = "Latent seed (default Evaluation:Seed)." };
        var registry = new Option<string?>("--registry") { Description = "Registry root (default Registry:Root)." };
        var json = new Option<bool>("--json") { Description = "Print the metrics as JSON." };
        var command = new Command("eval", "Score an image generator (registry version or ONNX file) through ONNX Runtime: FID, IS, KID, coverage, diversity, novelty, MiFID — each with its signature.");
        foreach (var o in new Option[] { model, version, onnx, family, reference, samples, seed, registry, json })
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
            var storeOptions = RetrainCli.Bind(configuration, StoreOptions.Section, new StoreOptionsValidator(), failures);
            if (failures.Count > 0)
            {
                throw new ConfigurationInvalidException(failures);
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
                await using var store = new SqliteSampleStore(storeOptions);
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
}
