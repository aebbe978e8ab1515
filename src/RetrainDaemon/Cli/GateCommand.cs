using System.CommandLine;
using System.Globalization;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Imaging;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Evaluation.Extractors;
using RetrainDaemon.Evaluation.Gating;
using RetrainDaemon.Evaluation.Images;
using RetrainDaemon.Evaluation.Text;
using RetrainDaemon.Messaging.Events;

namespace RetrainDaemon.Cli;

/// <summary>
/// <c>gate</c>: scores a candidate (ONNX: an image generator, or a <c>gpt</c> export for a model configured
/// with <c>Modality = text</c>) and the model's champion by the same protocol,
/// applies the model's configured gate, prints the report, and with <c>--publish</c> records the
/// outcome in the registry (passed → new version and champion; failed → rejected candidate) and then
/// announces it on <c>retrain.events</c> (<c>model.promoted</c> / <c>model.rejected</c>; a warning if no broker takes it).
/// Exit codes: 0 passed, 3 failed the gate, 1 error, 2 invalid configuration.
/// </summary>
internal static class GateCommand
{
    public const int ExitRejected = 3;

    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "The model (its Gate comes from Models:<model>:Gate).", Required = true };
        var onnx = new Option<string>("--onnx") { Description = "The candidate (exported ONNX file: a generator, or a gpt model for a text model).", Required = true };
        var family = new Option<string?>("--family") { Description = "dcgan (tanh output) or vae (sigmoid output); default: the champion's recorded family, else dcgan." };
        family.AcceptOnlyFromAmong("dcgan", "vae");
        var reference = new Option<string>("--reference") { Description = "store or fashion-mnist (see eval; text models: store only).", DefaultValueFactory = _ => "store" };
        reference.AcceptOnlyFromAmong("store", "fashion-mnist");
        var publish = new Option<bool>("--publish") { Description = "Record the outcome in the registry (passed: new champion; failed: rejected candidate with its report)." };
        var parity = new Option<double?>("--parity-max-abs-diff") { Description = "The export parity measured for the candidate, recorded in its manifest." };
        var json = new Option<bool>("--json") { Description = "Print the gate report as JSON." };
        var command = new Command("gate", "Gate a candidate (image generator or text model) against the model's champion (same protocol, same seeds) and optionally publish the outcome to the registry.");
        foreach (var o in new Option[] { model, onnx, family, reference, publish, parity, json })
        {
            command.Options.Add(o);
        }

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

            string modelName = parse.GetValue(model)!;
            if (!models.TryGet(modelName, out var modelOptions))
            {
                Console.Error.WriteLine($"retrain-daemon: '{modelName}' is not a configured model (Models: {string.Join(", ", models.Models.Keys)})");
                return 2;
            }

            if (modelOptions.Gate.Checks.Count == 0)
            {
                Console.Error.WriteLine($"retrain-daemon: Models:{modelName}:Gate has no checks; configure the gate first (a model without checks never passes)");
                return 2;
            }

            string candidate = parse.GetValue(onnx)!;
            if (!File.Exists(candidate))
            {
                Console.Error.WriteLine($"retrain-daemon: '{candidate}' does not exist");
                return 1;
            }

            if (modelOptions.ParsedModality == Modality.Text)
            {
                if (parse.GetValue(reference) != "store" || parse.GetValue(family) is not null)
                {
                    Console.Error.WriteLine("retrain-daemon: --reference fashion-mnist and --family are for image generators; a text model is gated on its own texts in the store");
                    return 2;
                }

                return await GateTextAsync(parse, modelName, modelOptions, candidate, registryOptions, storeOptions, evaluation.Threads, textOptions,
                    parse.GetValue(publish), parse.GetValue(parity), parse.GetValue(json), cancellationToken);
            }

            ImageReferenceSet set;
            long? watermark = null;
            if (parse.GetValue(reference) == "fashion-mnist")
            {
                set = ReferenceSets.FashionMnist(evaluation.MaxReferenceSamples, evaluation.MaxTrainingSamples);
            }
            else
            {
                await using var store = SampleStores.Open(storeOptions);
                watermark = await store.GetWatermarkAsync(cancellationToken);
                set = await ReferenceSets.FromStoreAsync(store, modelName, watermark.Value, evaluation.MaxReferenceSamples, evaluation.MaxTrainingSamples, cancellationToken);
                if (set.Holdout.Count < 2 || set.Training.Count < 2)
                {
                    Console.Error.WriteLine($"retrain-daemon: the store has {set.Holdout.Count} holdout and {set.Training.Count} training images of '{modelName}' (need 2 of each); publish data first or use --reference fashion-mnist");
                    return 1;
                }
            }

            var registry = new ModelRegistry(registryOptions);
            // Candidate and champion are decoded with one pixel range, so they must be of one family.
            string? championFamily = registry.ResolveServable(modelName).Verified?.Manifest.Hyperparameters.GetValueOrDefault("family");
            string fam = parse.GetValue(family) ?? championFamily ?? "dcgan";
            if (championFamily is not null && championFamily != fam)
            {
                Console.Error.WriteLine($"retrain-daemon: the champion of '{modelName}' is a {championFamily} model; a {fam} candidate cannot be compared with it");
                return 2;
            }

            using var extractor = new OnnxFeatureExtractor(evaluation.Extractor, evaluation.Threads);
            var gate = new ImageCandidateGate(evaluation, extractor, registry);
            Console.Error.WriteLine($"gating {candidate} for '{modelName}' against {set.Name} ({evaluation.SampleCount} samples, seed {evaluation.Seed})");
            var gated = gate.Evaluate(modelName, candidate, fam == "vae" ? GeneratorRange.Unit : GeneratorRange.Tanh, set, modelOptions.Gate, cancellationToken);
            if (gated.ChampionProblem is { } problem)
            {
                Console.Error.WriteLine($"warning: the champion was not compared with: {problem}");
            }

            Console.WriteLine(parse.GetValue(json) ? gated.Report.ToJson() : gated.Report.ToText());
            if (parse.GetValue(publish))
            {
                var result = gate.Publish(modelName, new Dictionary<string, string> { [RegistryLayout.ModelFileName] = candidate }, gated,
                    new Dictionary<string, string> { ["family"] = fam },
                    parse.GetValue(parity) is double diff ? new ExportParity(diff, 1e-5, 0) : null, dataWatermark: watermark);
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"published {modelName} v{result.Version} ({result.Status}); champion {result.Aliases.Champion?.ToString(CultureInfo.InvariantCulture) ?? "none"}"));
                // Announced after the registry holds the outcome; a broker that is down only costs a warning.
                var announcement = gated.Report.Passed
                    ? ModelEventCodec.EncodePromoted(new ModelPromotedData(modelName, result.Version, result.Aliases.Previous, result.Aliases.History.Count > 0 ? result.Aliases.History[^1].Reason : "passed the gate"))
                    : ModelEventCodec.EncodeRejected(new ModelRejectedData(modelName, result.Version, result.Aliases.Champion, gated.Report.Headline()));
                await ModelsCommands.AnnounceAsync(parse, announcement, cancellationToken);
            }

            return gated.Report.Passed ? 0 : ExitRejected;
        });
        return command;
    }

    private static async Task<int> GateTextAsync(ParseResult parse, string modelName, ModelOptions modelOptions, string candidate, RegistryOptions registryOptions,
        StoreOptions storeOptions, int threads, TextEvaluationOptions textOptions, bool publish, double? parity, bool json, CancellationToken cancellationToken)
    {
        if (EvalCommand.TaskMismatch(modelName, modelOptions, candidate) is { } mismatch)
        {
            Console.Error.WriteLine($"retrain-daemon: {mismatch}");
            return 2;
        }

        var (set, watermark) = await EvalCommand.LoadTextReferenceAsync(modelName, modelOptions, storeOptions, textOptions, cancellationToken);
        if (set is null)
        {
            return 1;
        }

        var registry = new ModelRegistry(registryOptions);
        var gate = new TextCandidateGate(textOptions, threads, registry);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"gating {candidate} for '{modelName}' against {set.Name} ({set.Holdout.Count} holdout / {set.Training.Count} training texts)"));
        var gated = gate.Evaluate(modelName, candidate, set, modelOptions.Gate, cancellationToken);
        if (gated.ChampionProblem is { } problem)
        {
            Console.Error.WriteLine($"warning: the champion was not compared with: {problem}");
        }

        Console.WriteLine(json ? gated.Report.ToJson() : gated.Report.ToText());
        if (publish)
        {
            var result = gate.Publish(modelName, new Dictionary<string, string> { [RegistryLayout.ModelFileName] = candidate }, gated,
                new Dictionary<string, string> { ["family"] = "gpt", ["task"] = gated.Candidate.Task, ["vocabulary_sha256"] = gated.Candidate.VocabularySha256 },
                parity is double diff ? new ExportParity(diff, 1e-5, 0) : null, dataWatermark: watermark);
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"published {modelName} v{result.Version} ({result.Status}); champion {result.Aliases.Champion?.ToString(CultureInfo.InvariantCulture) ?? "none"}"));
            var announcement = gated.Report.Passed
                ? ModelEventCodec.EncodePromoted(new ModelPromotedData(modelName, result.Version, result.Aliases.Previous, result.Aliases.History.Count > 0 ? result.Aliases.History[^1].Reason : "passed the gate"))
                : ModelEventCodec.EncodeRejected(new ModelRejectedData(modelName, result.Version, result.Aliases.Champion, gated.Report.Headline()));
            await ModelsCommands.AnnounceAsync(parse, announcement, cancellationToken);
        }

        return gated.Report.Passed ? 0 : ExitRejected;
    }
}
