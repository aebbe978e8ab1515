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
    public const string ModelPart = "model.bin";
    public const string OptimizerPart = "optimizer.bin";
    public const string StatePart = "state.json";

    public static Checkpoint Save(CheckpointStore store, nn.Module model, OptimizerHelper optimizer, long step, long dataCursor, long epoch, double learningRate, IReadOnlyDictionary<string, string>? extra = null)
    {
        using var rng = random.get_rng_state();
        var state = new TrainingState(step, dataCursor, epoch, learningRate, Convert.ToBase64String(rng.bytes.ToArray()), extra);
        return store.Save(step, new Dictionary<string, Action<Stream>>
        {
            [ModelPart] = s =>
            {
                using var writer = new BinaryWriter(s, System.Text.Encoding.UTF8, leaveOpen: true);
                model.save(writer);
            },
            [OptimizerPart] = s =>
            {
                using var writer = new BinaryWriter(s, System.Text.Encoding.UTF8, leaveOpen: true);
                optimizer.save_state_dict(writer);
            },
            [StatePart] = s => JsonSerializer.Serialize(s, state),
        });
    }

    /// <summary>
    /// Loads weights (strictly), optimizer state and the RNG state. A checkpoint of another
    /// architecture fails with the shapes the model expects.
    /// </summary>
    public static TrainingState Restore(Checkpoint checkpoint, nn.Module model, OptimizerHelper? optimizer)
    {
        try
        {
            using var stream = checkpoint.Open(ModelPart);
            using var reader = new BinaryReader(stream);
            model.load(reader, strict: true);
        }
        catch (ArgumentException ex)
        {
            string expected = string.Join(", ", model.state_dict().Select(p => $"{p.Key} [{string.Join('x', p.Value.shape)}]"));
            throw new InvalidOperationException($"checkpoint {checkpoint.Directory} does not fit {model.GetName()}: {ex.Message}. The model expects: {expected}", ex);
        }

        if (optimizer is not null)
        {
            using var stream = checkpoint.Open(OptimizerPart);
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
