using System.Globalization;
using System.Text.Json;
using RetrainDaemon.Core.IO;
using RetrainDaemon.Training.Checkpoints;
using RetrainDaemon.Training.Models;
using RetrainDaemon.Training.Trainers;
using static TorchSharp.torch;

namespace RetrainDaemon.Export.Exporters;

/// <summary>One exported file: what it holds and how closely ONNX Runtime matched TorchSharp.</summary>
public sealed record ExportedFile(string Role, string Path, long Bytes, ParityReport Parity, string Summary)
{
    public string Describe(long step)
    {
        string greedy = Parity.GreedyTokens is int tokens
            ? string.Create(CultureInfo.InvariantCulture, $"; {tokens}-token greedy generation identical, logits within {Parity.GreedyMaxAbsDiff:E2}")
            : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"{Summary} from step {step} → {Path} ({Bytes} bytes); parity max |diff| {Parity.MaxAbsDiff:E2}, mean {Parity.MeanAbsDiff:E2} over {Parity.Cases} inputs{greedy}");
    }
}

/// <summary>What <see cref="CheckpointExport.Export"/> wrote; the first file is the one that is served.</summary>
public sealed record CheckpointExportResult(string Family, long Step, IReadOnlyList<ExportedFile> Files)
{
    /// <summary>The worst parity of all files (what the manifest records).</summary>
    public double MaxAbsDiff => Files.Max(f => Math.Max(f.Parity.MaxAbsDiff, f.Parity.GreedyMaxAbsDiff ?? 0));
}

/// <summary>
/// A training checkpoint to ONNX, with the parity check that must pass before anything is written:
/// the architecture comes from what the run recorded in the checkpoint, so the exported graph is the
/// trained one. dcgan → the generator; vae → the decoder (served) and <c>&lt;out&gt;.encoder.onnx</c>;
/// classifier → the classifier; gpt → one graph with a KV cache.
/// </summary>
public static class CheckpointExport
{
    /// <param name="expectedFamily">If given, the checkpoint must be of this family.</param>
    /// <param name="conditional">For checkpoints that do not record it: the image model was class-conditioned.</param>
    public static CheckpointExportResult Export(Checkpoint latest, string outPath, string? expectedFamily = null, bool conditional = false)
    {
        TrainingState recorded;
        using (var stream = latest.Open(TrainingCheckpoint.StatePart))
        {
            recorded = JsonSerializer.Deserialize<TrainingState>(stream)
                ?? throw new InvalidDataException($"checkpoint '{latest.Directory}' has an empty training state");
        }

        var extra = recorded.Extra ?? new Dictionary<string, string>();
        string family = extra.GetValueOrDefault("family") ?? expectedFamily ?? "dcgan";
        if (expectedFamily is not null && expectedFamily != family)
        {
            throw new ArgumentException($"the checkpoint is a {family} model, not {expectedFamily}");
        }

        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(outPath))!);
        if (family == TextTrainingRun.Family)
        {
            var (config, vocabulary) = TextTrainingRun.ReadArchitecture(latest);
            string task = TextTrainingRun.ReadTask(latest);
            using var gpt = new Gpt(config);
            TrainingCheckpoint.Restore(latest, new Dictionary<string, nn.Module> { ["gpt"] = gpt }, null);
            var exported = ModelExporter.Export(new GptExporter(gpt, task, vocabulary), gpt);
            DurableFiles.ReplaceFile(outPath, s => s.Write(exported.Onnx));
            string summary = string.Create(CultureInfo.InvariantCulture,
                $"gpt ({task}, {config.Layers} layers, width {config.Width}, context {config.Context}, vocabulary {vocabulary.Count})");
            return new CheckpointExportResult(family, latest.Step, [new ExportedFile("model", outPath, exported.Onnx.Length, exported.Parity, summary)]);
        }

        int classes = extra.TryGetValue("classes", out var c) ? int.Parse(c, CultureInfo.InvariantCulture) : conditional ? 10 : 0;
        int width = extra.TryGetValue("width", out var w) ? int.Parse(w, CultureInfo.InvariantCulture) : ImageRunRequest.DefaultWidth(family);
        double dropout = extra.TryGetValue("dropout", out var d) ? double.Parse(d, CultureInfo.InvariantCulture) : new ClassifierConfig().Dropout;
        var exports = new List<(string Role, nn.Module Module, string Path)>();
        try
        {
            switch (family)
            {
                case "dcgan":
                    var generator = new DcganGenerator(new DcganConfig(Classes: classes, Width: width));
                    TrainingCheckpoint.Restore(latest, new Dictionary<string, nn.Module> { ["generator"] = generator }, null);
                    exports.Add(("model", generator, outPath));
                    break;
                case "vae":
                    var decoder = new VaeDecoder(new VaeConfig(Classes: classes, Width: width));
                    var encoder = new VaeEncoder(new VaeConfig(Classes: classes, Width: width));
                    TrainingCheckpoint.Restore(latest, new Dictionary<string, nn.Module> { ["decoder"] = decoder, ["encoder"] = encoder }, null);
                    exports.Add(("model", decoder, outPath));
                    exports.Add(("encoder", encoder, EncoderPath(outPath)));
                    break;
                case "classifier":
                    var classifier = new FashionClassifier(new ClassifierConfig(Width: width, Dropout: dropout));
                    TrainingCheckpoint.Restore(latest, new Dictionary<string, nn.Module> { ["classifier"] = classifier }, null);
                    exports.Add(("model", classifier, outPath));
                    break;
                default:
                    throw new ArgumentException($"the checkpoint records an unknown family '{family}'");
            }

            var files = new List<ExportedFile>();
            foreach (var (role, module, path) in exports)
            {
                var result = ModelExporter.Export(module);
                DurableFiles.ReplaceFile(path, s => s.Write(result.Onnx));
                files.Add(new ExportedFile(role, path, result.Onnx.Length, result.Parity, module.GetName()));
            }

            return new CheckpointExportResult(family, latest.Step, files);
        }
        finally
        {
            foreach (var (_, module, _) in exports)
            {
                module.Dispose();
            }
        }
    }

    /// <summary>Where a VAE export puts its encoder next to the decoder.</summary>
    public static string EncoderPath(string outPath) => System.IO.Path.ChangeExtension(outPath, null) + ".encoder.onnx";
}
