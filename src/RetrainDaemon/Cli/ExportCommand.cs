using System.CommandLine;
using RetrainDaemon.Export.Exporters;
using RetrainDaemon.Training.Checkpoints;

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

            string outPath = parse.GetValue(output)!;
            CheckpointExportResult exported;
            try
            {
                exported = CheckpointExport.Export(latest, outPath, parse.GetValue(family), parse.GetValue(conditional));
            }
            catch (ArgumentException ex)
            {
                Console.Error.WriteLine($"retrain-daemon: {ex.Message}");
                return 2;
            }

            foreach (var file in exported.Files)
            {
                Console.WriteLine(file.Describe(exported.Step));
            }

            return 0;
        });
        return command;
    }
}
