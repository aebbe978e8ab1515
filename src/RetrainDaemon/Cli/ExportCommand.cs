using System.CommandLine;
using RetrainDaemon.Export.Exporters;
using RetrainDaemon.Training.Checkpoints;
using RetrainDaemon.Training.Models;
using static TorchSharp.torch;
using RetrainDaemon.Core.IO;

namespace RetrainDaemon.Cli;

/// <summary><c>export</c>: a trained checkpoint to ONNX, with the parity check that must pass before the file is written.</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "A run's checkpoints directory (the newest verifying checkpoint is used).", Required = true };
        var family = new Option<string?>("--family") { Description = "dcgan (exports the generator), vae (decoder and encoder), classifier, gpt (one graph with a KV cache); default: what the checkpoint records." };
        family.AcceptOnlyFromAmong("dcgan", "vae", "classifier", "gpt");
        var conditional = new Option<bool>("--conditional") { Description = "For checkpoints that do not record it: the model was trained class-conditioned." };
        var output = new Option<string>("--out") { Description = "Output file (for vae: <out> is the decoder, <out without .onnx>.encoder.onnx the encoder).", Required = true };
        var command = new Command("export", "Export a checkpoint to ONNX (IR 8 / opset 17) and prove it: TorchSharp and ONNX Runtime must agree within 1e-5 on 100 random inputs at batch 1 and 64 (gpt: prefill and decode steps at batch 1 and 8, and a 200-token greedy generation with the same tokens).");
        foreach (var o in new Option[] { checkpoint, family, conditional, output })
        {
            command.Options.Add(o);
        }

        command.SetAction(parse =>
        {
            if (!Directory.Exists(parse.GetValue(checkpoint)))
            {
                Console.Error.WriteLine($"retrain-daemon: checkpoint directory '{parse.GetValue(checkpoint)}' does not exist");
                return 1;
            }

            var store = new CheckpointStore(parse.GetValue(checkpoint)!);
            var rejected = new List<string>();
            var latest = store.LoadLatest(rejected);
            foreach (var reason in rejected)
            {
                Console.Error.WriteLine($"skipped checkpoint {reason}");
            }

            if (latest is null)
            {
                Console.Error.WriteLine($"retrain-daemon: no verifying checkpoint under '{store.Root}'");
                return 1;
            }

            // The architecture comes from the checkpoint (recorded by the run); options only fill gaps of older checkpoints.
            TrainingState recorded;
            using (var stream = latest.Open(TrainingCheckpoint.StatePart))
            {
                recorded = System.Text.Json.JsonSerializer.Deserialize<TrainingState>(stream)!;
            }

            var extra = recorded.Extra ?? new Dictionary<string, string>();
            string fam = extra.GetValueOrDefault("family") ?? parse.GetValue(family) ?? "dcgan";
            if (parse.GetValue(family) is { } asked && asked != fam)
            {
                Console.Error.WriteLine($"retrain-daemon: the checkpoint is a {fam} model, not {asked}");
                return 2;
            }

            int classes = extra.TryGetValue("classes", out var c) ? int.Parse(c, System.Globalization.CultureInfo.InvariantCulture) : parse.GetValue(conditional) ? 10 : 0;
            int width = extra.TryGetValue("width", out var w) ? int.Parse(w, System.Globalization.CultureInfo.InvariantCulture) : Training.Trainers.ImageRunRequest.DefaultWidth(fam);
            double dropout = extra.TryGetValue("dropout", out var d) ? double.Parse(d, System.Globalization.CultureInfo.InvariantCulture) : new ClassifierConfig().Dropout;
            string outPath = parse.GetValue(output)!;
            if (fam == Training.Trainers.TextTrainingRun.Family)
            {
                var (config, vocabulary) = Training.Trainers.TextTrainingRun.ReadArchitecture(latest);
                string task = Training.Trainers.TextTrainingRun.ReadTask(latest);
                using var gpt = new Gpt(config);
                TrainingCheckpoint.Restore(latest, new Dictionary<string, nn.Module> { ["gpt"] = gpt }, null);
                var exported = ModelExporter.Export(new GptExporter(gpt, task, vocabulary), gpt);
                Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outPath))!);
                DurableFiles.ReplaceFile(outPath, s => s.Write(exported.Onnx));
                Console.WriteLine($"gpt ({task}, {config.Layers} layers, width {config.Width}, context {config.Context}, vocabulary {vocabulary.Count}) from step {latest.Step} → {outPath} ({exported.Onnx.Length} bytes); " +
                    $"parity max |diff| {exported.Parity.MaxAbsDiff:E2} over {exported.Parity.Cases} prefill/decode inputs; {exported.Parity.GreedyTokens}-token greedy generation identical, logits within {exported.Parity.GreedyMaxAbsDiff:E2}");
                return 0;
            }

            var exports = new List<(nn.Module Module, string Path)>();
            switch (fam)
            {
                case "dcgan":
                    var generator = new DcganGenerator(new DcganConfig(Classes: classes, Width: width));
                    TrainingCheckpoint.Restore(latest, new Dictionary<string, nn.Module> { ["generator"] = generator }, null);
                    exports.Add((generator, outPath));
                    break;
                case "vae":
                    var decoder = new VaeDecoder(new VaeConfig(Classes: classes, Width: width));
                    var encoder = new VaeEncoder(new VaeConfig(Classes: classes, Width: width));
                    TrainingCheckpoint.Restore(latest, new Dictionary<string, nn.Module> { ["decoder"] = decoder, ["encoder"] = encoder }, null);
                    exports.Add((decoder, outPath));
                    exports.Add((encoder, Path.ChangeExtension(outPath, null) + ".encoder.onnx"));
                    break;
                default:
                    var classifier = new FashionClassifier(new ClassifierConfig(Width: width, Dropout: dropout));
                    TrainingCheckpoint.Restore(latest, new Dictionary<string, nn.Module> { ["classifier"] = classifier }, null);
                    exports.Add((classifier, outPath));
                    break;
            }

            foreach (var (module, path) in exports)
            {
                var result = ModelExporter.Export(module);
                Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
                DurableFiles.ReplaceFile(path, s => s.Write(result.Onnx));
                Console.WriteLine($"{module.GetName()} from step {latest.Step} → {path} ({result.Onnx.Length} bytes); parity max |diff| {result.Parity.MaxAbsDiff:E2}, mean {result.Parity.MeanAbsDiff:E2} over {result.Parity.Cases} inputs");
            }

            return 0;
        });
        return command;
    }
}
