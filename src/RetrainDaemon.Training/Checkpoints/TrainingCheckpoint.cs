using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RetrainDaemon.Training.Checkpoints;

/// <summary>Everything besides weights that an exact resume needs.</summary>
public sealed record TrainingState(long Step, long DataCursor, long Epoch, double LearningRate, string RngState, IReadOnlyDictionary<string, string>? Extra = null);

/// <summary>
/// Saves and restores a model, its optimizer and the global RNG through a <see cref="CheckpointStore"/>
/// (TorchSharp's <c>Module.save(string)</c> overwrites in place, so only the stream overloads are used).
/// </summary>
public static class TrainingCheckpoint
{
    public const string StatePart = "state.json";

    public static Checkpoint Save(CheckpointStore store, nn.Module model, OptimizerHelper optimizer, long step, long dataCursor, long epoch, double learningRate, IReadOnlyDictionary<string, string>? extra = null) =>
        Save(store, new Dictionary<string, nn.Module> { ["model"] = model }, new Dictionary<string, OptimizerHelper> { ["optimizer"] = optimizer }, step, dataCursor, epoch, learningRate, extra);

    /// <summary>Saves named modules (<c>&lt;name&gt;.bin</c>), named optimizers (<c>&lt;name&gt;.optimizer.bin</c>) and the state.</summary>
    public static Checkpoint Save(CheckpointStore store, IReadOnlyDictionary<string, nn.Module> modules, IReadOnlyDictionary<string, OptimizerHelper> optimizers, long step, long dataCursor, long epoch, double learningRate, IReadOnlyDictionary<string, string>? extra = null)
    {
        using var rng = random.get_rng_state();
        var state = new TrainingState(step, dataCursor, epoch, learningRate, Convert.ToBase64String(rng.bytes.ToArray()), extra);
        var parts = new Dictionary<string, Action<Stream>>();
        foreach (var (name, module) in modules)
        {
            parts[name + ".bin"] = s =>
            {
                using var writer = new BinaryWriter(s, System.Text.Encoding.UTF8, leaveOpen: true);
                module.save(writer);
            };
        }

        foreach (var (name, optimizer) in optimizers)
        {
            parts[name + ".optimizer.bin"] = s =>
            {
                using var writer = new BinaryWriter(s, System.Text.Encoding.UTF8, leaveOpen: true);
                optimizer.save_state_dict(writer);
            };
        }

        parts[StatePart] = s => JsonSerializer.Serialize(s, state);
        return store.Save(step, parts);
    }

    public static TrainingState Restore(Checkpoint checkpoint, nn.Module model, OptimizerHelper? optimizer) =>
        Restore(checkpoint, new Dictionary<string, nn.Module> { ["model"] = model }, optimizer is null ? null : new Dictionary<string, OptimizerHelper> { ["optimizer"] = optimizer });

    /// <summary>
    /// Loads weights (strictly), optimizer states (when given) and the RNG state. A checkpoint of another
    /// architecture or family fails with what the model expects.
    /// </summary>
    public static TrainingState Restore(Checkpoint checkpoint, IReadOnlyDictionary<string, nn.Module> modules, IReadOnlyDictionary<string, OptimizerHelper>? optimizers)
    {
        foreach (var (name, module) in modules)
        {
            if (!checkpoint.Manifest.Files.Any(f => f.Name == name + ".bin"))
            {
                throw new InvalidOperationException($"checkpoint {checkpoint.Directory} has no {name}.bin (it holds {string.Join(", ", checkpoint.Manifest.Files.Select(f => f.Name))}); is it from another model family?");
            }

            try
            {
                using var stream = checkpoint.Open(name + ".bin");
                using var reader = new BinaryReader(stream);
                module.load(reader, strict: true);
            }
            catch (ArgumentException ex)
            {
                string expected = string.Join(", ", module.state_dict().Select(p => $"{p.Key} [{string.Join('x', p.Value.shape)}]"));
                throw new InvalidOperationException($"checkpoint {checkpoint.Directory} does not fit {module.GetName()}: {ex.Message}. The model expects: {expected}", ex);
            }
        }

        foreach (var (name, optimizer) in optimizers ?? new Dictionary<string, OptimizerHelper>())
        {
            using var stream = checkpoint.Open(name + ".optimizer.bin");
            using var reader = new BinaryReader(stream);
            optimizer.load_state_dict(reader);
        }

        TrainingState state;
        using (var stream = checkpoint.Open(StatePart))
        {
            state = JsonSerializer.Deserialize<TrainingState>(stream) ?? throw new InvalidDataException($"{checkpoint.Directory}/{StatePart} is empty");
        }

        using var rng = tensor(Convert.FromBase64String(state.RngState), dtype: ScalarType.Byte);
        random.set_rng_state(rng);
        return state;
    }
}
