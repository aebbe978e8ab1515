using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Text;

namespace RetrainDaemon.Evaluation.Text.Generation;

/// <summary>
/// The past keys and values fed to the next step of a <c>gpt</c> graph: per layer a key and a value
/// (rows, heads, length, head_dim), in graph input order (<c>past_key_0, past_value_0, past_key_1, …</c>).
/// The tensors are either the presents of the previous run (owned through its result collection, so
/// they are fed back without a copy) or tensors this class built (empty, or rows gathered for beam
/// reordering and for dropping finished rows). Disposing frees whichever it holds.
/// </summary>
internal sealed class KeyValueCache : IDisposable
{
    private readonly IDisposable owner;
    private readonly OrtValue? logits;

    private KeyValueCache(OrtValue[] values, int rows, int length, IDisposable owner, OrtValue? logits = null)
    {
        this.logits = logits;
        Values = values;
        Rows = rows;
        Length = length;
        this.owner = owner;
    }

    /// <summary>Per layer key then value, in graph input order.</summary>
    public OrtValue[] Values { get; }

    public int Rows { get; }

    /// <summary>Cached positions per row (padding included).</summary>
    public int Length { get; }

    /// <summary>The logits of the run whose presents this cache holds (valid until the cache is disposed).</summary>
    public OrtValue Logits => logits ?? throw new InvalidOperationException("this cache was not taken from a run's results");

    /// <summary>Zero-length pasts for a prefill of <paramref name="rows"/> rows.</summary>
    public static KeyValueCache Empty(GptShape shape, int rows)
    {
        var values = new OrtValue[2 * shape.Layers];
        var owned = new OwnedValues(values);
        try
        {
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float,
                    [rows, shape.Heads, 0, shape.HeadDim]);
            }
        }
        catch
        {
            owned.Dispose();
            throw;
        }

        return new KeyValueCache(values, rows, 0, owned);
    }

    /// <summary>
    /// Takes the presents out of a run's results (<paramref name="results"/>[1..], in graph output order
    /// <c>present_key_0, present_value_0, …</c>; [0] is the logits); the cache then owns (and disposes) the whole collection.
    /// </summary>
    public static KeyValueCache FromResults(IDisposableReadOnlyCollection<OrtValue> results, int rows, int length)
    {
        var values = new OrtValue[results.Count - 1];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = results[i + 1];
        }

        return new KeyValueCache(values, rows, length, results, results[0]);
    }

    /// <summary>A cache whose row r is this cache's row <paramref name="sourceRows"/>[r] (rows may repeat or be dropped).</summary>
    public KeyValueCache Gather(IReadOnlyList<int> sourceRows)
    {
        var values = new OrtValue[Values.Length];
        var owned = new OwnedValues(values);
        try
        {
            for (int i = 0; i < values.Length; i++)
            {
                var shape = Values[i].GetTensorTypeAndShape().Shape;                 // (R, H, P, D)
                int block = checked((int)(shape[1] * shape[2] * shape[3]));
                var source = Values[i].GetTensorDataAsSpan<float>();
                var gathered = new float[sourceRows.Count * block];
                for (int r = 0; r < sourceRows.Count; r++)
                {
                    source.Slice(sourceRows[r] * block, block).CopyTo(gathered.AsSpan(r * block, block));
                }

                values[i] = OrtValue.CreateTensorValueFromMemory(gathered, [sourceRows.Count, shape[1], shape[2], shape[3]]);
            }
        }
        catch
        {
            owned.Dispose();
            throw;
        }

        return new KeyValueCache(values, sourceRows.Count, Length, owned);
    }

    public void Dispose() => owner.Dispose();

    private sealed class OwnedValues(OrtValue?[] values) : IDisposable
    {
        public void Dispose()
        {
            foreach (var value in values)
            {
                value?.Dispose();
            }
        }
    }
}
