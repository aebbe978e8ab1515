using System.Globalization;
using System.Numerics;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace RetrainDaemon.Serving.Http;

/// <summary>
/// A model input or output as the protocol names it: OIP datatype and shape, -1 for a dynamic
/// dimension, and the graph's names of symbolic dimensions (<c>batch</c>; empty where none), which
/// must have one size across all inputs of a request.
/// </summary>
internal sealed record TensorSignature(string Name, string Datatype, long[] Shape, IReadOnlyList<string>? Symbols = null)
{
    public override string ToString() => $"{Name} ({Datatype} [{string.Join(", ", Shape)}])";
}

/// <summary>A validated input: its datatype's CLR array (<c>float[]</c> for FP32, <c>long[]</c> for INT64, …) in row-major order.</summary>
internal sealed record InputTensor(string Name, string Datatype, long[] Shape, Array Data);

/// <summary>An output copied out of ONNX Runtime, ready to be written as JSON.</summary>
internal sealed record OutputTensor(string Name, string Datatype, long[] Shape, Array Data);

/// <summary>
/// The Open Inference Protocol's JSON tensor format: datatype names, checking a request's inputs
/// against a model's signature (every mistake is a 400 that names what was expected), turning them
/// into ONNX Runtime values, and writing output tensors. Pure apart from the ONNX Runtime value types.
/// </summary>
internal static class TensorJson
{
    /// <summary>Datatypes this server reads and writes as JSON numbers or booleans.</summary>
    public static readonly IReadOnlyList<string> Supported = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP32", "FP64"];

    /// <summary>The OIP datatype of an ONNX Runtime element type (<c>FP16</c>, <c>BF16</c>, <c>BYTES</c> are named but not served as JSON).</summary>
    public static string Datatype(TensorElementType type) => type switch
    {
        TensorElementType.Float => "FP32",
        TensorElementType.Double => "FP64",
        TensorElementType.Float16 => "FP16",
        TensorElementType.BFloat16 => "BF16",
        TensorElementType.Int8 => "INT8",
        TensorElementType.Int16 => "INT16",
        TensorElementType.Int32 => "INT32",
        TensorElementType.Int64 => "INT64",
        TensorElementType.UInt8 => "UINT8",
        TensorElementType.UInt16 => "UINT16",
        TensorElementType.UInt32 => "UINT32",
        TensorElementType.UInt64 => "UINT64",
        TensorElementType.Bool => "BOOL",
        TensorElementType.String => "BYTES",
        _ => type.ToString().ToUpperInvariant(),
    };

    /// <summary>The OIP datatype of a manifest element-type name (<c>float32</c> → <c>FP32</c>).</summary>
    public static string Datatype(string manifestType) => manifestType switch
    {
        "float32" => "FP32",
        "float64" => "FP64",
        "float16" => "FP16",
        "bfloat16" => "BF16",
        "int8" => "INT8",
        "int16" => "INT16",
        "int32" => "INT32",
        "int64" => "INT64",
        "uint8" => "UINT8",
        "uint16" => "UINT16",
        "uint32" => "UINT32",
        "uint64" => "UINT64",
        "bool" => "BOOL",
        "string" => "BYTES",
        _ => manifestType.ToUpperInvariant(),
    };

    /// <summary>The inputs and outputs of a session as the protocol names them.</summary>
    public static (IReadOnlyList<TensorSignature> Inputs, IReadOnlyList<TensorSignature> Outputs) Signature(InferenceSession session)
    {
        ArgumentNullException.ThrowIfNull(session);
        static TensorSignature Of(string name, NodeMetadata meta) =>
            new(name, meta.IsTensor ? Datatype(meta.ElementDataType) : meta.OnnxValueType.ToString().ToUpperInvariant(),
                meta.IsTensor ? meta.Dimensions.Select(d => d < 0 ? -1L : d).ToArray() : [],
                meta.IsTensor ? meta.SymbolicDimensions : null);
        return (session.InputMetadata.Select(kv => Of(kv.Key, kv.Value)).ToList(), session.OutputMetadata.Select(kv => Of(kv.Key, kv.Value)).ToList());
    }

    /// <summary>
    /// Checks a request's inputs against the model's and converts their data. Every input must be
    /// given exactly once, with the model's datatype, a shape that matches the model's fixed
    /// dimensions, and as many values as the shape holds.
    /// </summary>
    /// <exception cref="ServingException">400 naming the input, what was expected and what was given.</exception>
    public static IReadOnlyList<InputTensor> ReadInputs(InferRequest request, IReadOnlyList<TensorSignature> expected, string modelName)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(expected);
        string expectedList = string.Join(", ", expected);
        var byName = expected.ToDictionary(e => e.Name, StringComparer.Ordinal);
        var inputs = new List<InputTensor>(request.Inputs.Count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var input in request.Inputs)
        {
            if (!byName.TryGetValue(input.Name, out var signature))
            {
                throw ServingException.BadRequest($"{modelName} has no input '{input.Name}'; its inputs are {expectedList}");
            }

            if (!seen.Add(input.Name))
            {
                throw ServingException.BadRequest($"input '{input.Name}' is given twice");
            }

            if (!string.Equals(input.Datatype, signature.Datatype, StringComparison.Ordinal))
            {
                throw ServingException.BadRequest($"input '{input.Name}' has datatype {input.Datatype}; {modelName} expects {signature.Datatype}");
            }

            if (!ShapeMatches(input.Shape, signature.Shape))
            {
                throw ServingException.BadRequest($"input '{input.Name}' has shape [{string.Join(", ", input.Shape)}]; {modelName} expects [{string.Join(", ", signature.Shape)}] (-1: any size)");
            }

            inputs.Add(new InputTensor(input.Name, input.Datatype, input.Shape, ReadData(input)));
        }

        var missing = expected.Where(e => !seen.Contains(e.Name)).ToList();
        if (missing.Count > 0)
        {
            throw ServingException.BadRequest($"missing input{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing)}; {modelName} needs every input: {expectedList}");
        }

        CheckSymbols(inputs, byName);
        return inputs;
    }

    /// <summary>A symbolic dimension (<c>batch</c>) must have the same size in every input that has it: otherwise the run would fail inside the graph.</summary>
    private static void CheckSymbols(List<InputTensor> inputs, Dictionary<string, TensorSignature> byName)
    {
        var sizes = new Dictionary<string, (long Size, string Input)>(StringComparer.Ordinal);
        foreach (var input in inputs)
        {
            var symbols = byName[input.Name].Symbols;
            for (int i = 0; symbols is not null && i < symbols.Count && i < input.Shape.Length; i++)
            {
                if (string.IsNullOrEmpty(symbols[i]))
                {
                    continue;
                }

                if (sizes.TryGetValue(symbols[i], out var seen) && seen.Size != input.Shape[i])
                {
                    throw ServingException.BadRequest(string.Create(CultureInfo.InvariantCulture,
                        $"inputs '{seen.Input}' and '{input.Name}' disagree on dimension '{symbols[i]}': {seen.Size} and {input.Shape[i]}"));
                }

                sizes[symbols[i]] = (input.Shape[i], input.Name);
            }
        }
    }

    /// <summary>The outputs to compute: the ones asked for (each must exist, once), or all of them.</summary>
    /// <exception cref="ServingException">400 for an unknown or repeated output name.</exception>
    public static IReadOnlyList<string> ReadOutputs(InferRequest request, IReadOnlyList<TensorSignature> outputs, string modelName)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(outputs);
        if (request.Outputs is not { Count: > 0 } asked)
        {
            return outputs.Select(o => o.Name).ToList();
        }

        var names = new List<string>(asked.Count);
        foreach (var output in asked)
        {
            if (!outputs.Any(o => o.Name == output.Name))
            {
                throw ServingException.BadRequest($"{modelName} has no output '{output.Name}'; its outputs are {string.Join(", ", outputs)}");
            }

            if (names.Contains(output.Name))
            {
                throw ServingException.BadRequest($"output '{output.Name}' is asked for twice");
            }

            names.Add(output.Name);
        }

        return names;
    }

    /// <summary>Fixed dimensions (≥ 0) must be equal; -1 matches any size. Given dimensions are never negative.</summary>
    public static bool ShapeMatches(long[] given, long[] expected)
    {
        ArgumentNullException.ThrowIfNull(given);
        ArgumentNullException.ThrowIfNull(expected);
        if (given.Length != expected.Length)
        {
            return false;
        }

        for (int i = 0; i < given.Length; i++)
        {
            if (given[i] < 0 || (expected[i] >= 0 && given[i] != expected[i]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Flattens <c>data</c> (flat or nested, row-major) into the datatype's array, checking the element count and every value.</summary>
    /// <exception cref="ServingException">400 for a count that does not match the shape, or a value the datatype cannot hold.</exception>
    public static Array ReadData(InferInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Data.ValueKind != JsonValueKind.Array)
        {
            throw ServingException.BadRequest($"input '{input.Name}': 'data' must be an array (flat or nested), not {input.Data.ValueKind}");
        }

        long count = CountLeaves(input.Data);
        long expected = 1;
        foreach (long d in input.Shape)
        {
            // No overflow: a shape whose product exceeds the values given is refused whatever it is.
            expected = d == 0 || expected == 0 ? 0 : expected > long.MaxValue / Math.Max(d, 1) ? long.MaxValue : expected * d;
        }

        if (count != expected)
        {
            throw ServingException.BadRequest(string.Create(CultureInfo.InvariantCulture,
                $"input '{input.Name}' has shape [{string.Join(", ", input.Shape)}] = {(expected == long.MaxValue ? "too many" : expected.ToString(CultureInfo.InvariantCulture))} elements but {count} data values"));
        }

        var reader = new LeafReader(input.Name, input.Datatype);
        return input.Datatype switch
        {
            "FP32" => Fill<float>(input.Data, (int)count, reader.Single),
            "FP64" => Fill<double>(input.Data, (int)count, reader.Double),
            "INT8" => Fill(input.Data, (int)count, e => (sbyte)reader.Integer(e, sbyte.MinValue, sbyte.MaxValue)),
            "INT16" => Fill(input.Data, (int)count, e => (short)reader.Integer(e, short.MinValue, short.MaxValue)),
            "INT32" => Fill(input.Data, (int)count, e => (int)reader.Integer(e, int.MinValue, int.MaxValue)),
            "INT64" => Fill(input.Data, (int)count, e => reader.Integer(e, long.MinValue, long.MaxValue)),
            "UINT8" => Fill(input.Data, (int)count, e => (byte)reader.Integer(e, 0, byte.MaxValue)),
            "UINT16" => Fill(input.Data, (int)count, e => (ushort)reader.Integer(e, 0, ushort.MaxValue)),
            "UINT32" => Fill(input.Data, (int)count, e => (uint)reader.Integer(e, 0, uint.MaxValue)),
            "UINT64" => Fill<ulong>(input.Data, (int)count, reader.Unsigned),
            "BOOL" => Fill<bool>(input.Data, (int)count, reader.Boolean),
            _ => throw ServingException.BadRequest($"input '{input.Name}': datatype {input.Datatype} is not served as JSON here; supported: {string.Join(", ", Supported)}"),
        };
    }

    /// <summary>An ONNX Runtime tensor over the input's array (no copy); dispose it after the run.</summary>
    public static OrtValue ToOrtValue(InputTensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return input.Data switch
        {
            float[] a => OrtValue.CreateTensorValueFromMemory(a, input.Shape),
            double[] a => OrtValue.CreateTensorValueFromMemory(a, input.Shape),
            sbyte[] a => OrtValue.CreateTensorValueFromMemory(a, input.Shape),
            short[] a => OrtValue.CreateTensorValueFromMemory(a, input.Shape),
            int[] a => OrtValue.CreateTensorValueFromMemory(a, input.Shape),
            long[] a => OrtValue.CreateTensorValueFromMemory(a, input.Shape),
            byte[] a => OrtValue.CreateTensorValueFromMemory(a, input.Shape),
            ushort[] a => OrtValue.CreateTensorValueFromMemory(a, input.Shape),
            uint[] a => OrtValue.CreateTensorValueFromMemory(a, input.Shape),
            ulong[] a => OrtValue.CreateTensorValueFromMemory(a, input.Shape),
            bool[] a => OrtValue.CreateTensorValueFromMemory(a, input.Shape),
            _ => throw new ArgumentException($"unsupported input array {input.Data.GetType()}", nameof(input)),
        };
    }

    /// <summary>Copies an output out of ONNX Runtime so the run's values (and the version's lease) can be released before the response is written.</summary>
    /// <exception cref="ServingException">500 for a datatype JSON cannot carry or a non-finite float (JSON has no NaN; it also means the model diverged).</exception>
    public static OutputTensor ReadOutput(string name, OrtValue value, string modelName, int version)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (!value.IsTensor)
        {
            throw new ServingException(500, FailureReasons.Internal, $"{modelName}: output '{name}' is a {value.OnnxType}, not a tensor", version);
        }

        var info = value.GetTensorTypeAndShape();
        string datatype = Datatype(info.ElementDataType);
        Array data = info.ElementDataType switch
        {
            TensorElementType.Float => Finite(value.GetTensorDataAsSpan<float>().ToArray(), name, modelName, version),
            TensorElementType.Double => Finite(value.GetTensorDataAsSpan<double>().ToArray(), name, modelName, version),
            TensorElementType.Int8 => value.GetTensorDataAsSpan<sbyte>().ToArray(),
            TensorElementType.Int16 => value.GetTensorDataAsSpan<short>().ToArray(),
            TensorElementType.Int32 => value.GetTensorDataAsSpan<int>().ToArray(),
            TensorElementType.Int64 => value.GetTensorDataAsSpan<long>().ToArray(),
            TensorElementType.UInt8 => value.GetTensorDataAsSpan<byte>().ToArray(),
            TensorElementType.UInt16 => value.GetTensorDataAsSpan<ushort>().ToArray(),
            TensorElementType.UInt32 => value.GetTensorDataAsSpan<uint>().ToArray(),
            TensorElementType.UInt64 => value.GetTensorDataAsSpan<ulong>().ToArray(),
            TensorElementType.Bool => value.GetTensorDataAsSpan<bool>().ToArray(),
            _ => throw new ServingException(500, FailureReasons.Internal, $"{modelName}: output '{name}' has datatype {datatype}, which the JSON response cannot carry", version),
        };
        return new OutputTensor(name, datatype, info.Shape, data);
    }

    /// <summary>Writes the inference response object: <c>model_name</c>, <c>model_version</c>, <c>id</c> when given, <c>outputs</c> with flat data.</summary>
    public static void WriteResponse(Utf8JsonWriter writer, string model, int version, string? id, IReadOnlyList<OutputTensor> outputs)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(outputs);
        writer.WriteStartObject();
        writer.WriteString("model_name", model);
        writer.WriteString("model_version", version.ToString(CultureInfo.InvariantCulture));
        if (id is not null)
        {
            writer.WriteString("id", id);
        }

        writer.WriteStartArray("outputs");
        foreach (var output in outputs)
        {
            writer.WriteStartObject();
            writer.WriteString("name", output.Name);
            writer.WriteString("datatype", output.Datatype);
            writer.WriteStartArray("shape");
            foreach (long d in output.Shape)
            {
                writer.WriteNumberValue(d);
            }

            writer.WriteEndArray();
            writer.WriteStartArray("data");
            WriteValues(writer, output.Data);
            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    private static void WriteValues(Utf8JsonWriter writer, Array data)
    {
        switch (data)
        {
            case float[] a: foreach (var v in a) { writer.WriteNumberValue(v); } break;
            case double[] a: foreach (var v in a) { writer.WriteNumberValue(v); } break;
            case sbyte[] a: foreach (var v in a) { writer.WriteNumberValue(v); } break;
            case short[] a: foreach (var v in a) { writer.WriteNumberValue(v); } break;
            case int[] a: foreach (var v in a) { writer.WriteNumberValue(v); } break;
            case long[] a: foreach (var v in a) { writer.WriteNumberValue(v); } break;
            case byte[] a: foreach (var v in a) { writer.WriteNumberValue(v); } break;
            case ushort[] a: foreach (var v in a) { writer.WriteNumberValue(v); } break;
            case uint[] a: foreach (var v in a) { writer.WriteNumberValue(v); } break;
            case ulong[] a: foreach (var v in a) { writer.WriteNumberValue(v); } break;
            case bool[] a: foreach (var v in a) { writer.WriteBooleanValue(v); } break;
            default: throw new ArgumentException($"unsupported output array {data.GetType()}", nameof(data));
        }
    }

    private static T[] Finite<T>(T[] values, string name, string modelName, int version)
        where T : IFloatingPointIeee754<T>
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!T.IsFinite(values[i]))
            {
                throw new ServingException(500, FailureReasons.Internal,
                    string.Create(CultureInfo.InvariantCulture, $"{modelName} produced a non-finite value ({values[i]}) at element {i} of output '{name}'; refused (the model has diverged)"), version);
            }
        }

        return values;
    }

    private static long CountLeaves(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Array)
        {
            return 1;
        }

        long n = 0;
        foreach (var item in element.EnumerateArray())
        {
            n += CountLeaves(item);
        }

        return n;
    }

    private static T[] Fill<T>(JsonElement data, int count, Func<JsonElement, T> read)
    {
        var values = new T[count];
        int i = 0;
        void Walk(JsonElement element)
        {
            if (element.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in element.EnumerateArray())
                {
                    Walk(item);
                }
            }
            else
            {
                values[i++] = read(element);
            }
        }

        Walk(data);
        return values;
    }

    /// <summary>Reads one JSON value as a datatype's element; failures name the input, the datatype and the value.</summary>
    private sealed class LeafReader(string input, string datatype)
    {
        public float Single(JsonElement e)
        {
            double d = Double(e);
            float f = (float)d;
            return float.IsFinite(f) ? f : throw Bad(e, "is out of FP32 range");
        }

        public double Double(JsonElement e) =>
            e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out double d) && double.IsFinite(d) ? d : throw Bad(e, "is not a finite number");

        public long Integer(JsonElement e, long min, long max)
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out long v))
            {
                throw Bad(e, "is not an integer");
            }

            return v >= min && v <= max ? v : throw Bad(e, string.Create(CultureInfo.InvariantCulture, $"is out of range {min}..{max}"));
        }

        public ulong Unsigned(JsonElement e) =>
            e.ValueKind == JsonValueKind.Number && e.TryGetUInt64(out ulong v) ? v : throw Bad(e, "is not an unsigned integer");

        public bool Boolean(JsonElement e) => e.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Bad(e, "is not true or false"),
        };

        private ServingException Bad(JsonElement e, string problem)
        {
            string text = e.GetRawText();
            return ServingException.BadRequest($"input '{input}' ({datatype}): value {(text.Length > 40 ? text[..40] + "…" : text)} {problem}");
        }
    }
}
