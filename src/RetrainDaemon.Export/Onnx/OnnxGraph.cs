using System.Runtime.InteropServices;

namespace RetrainDaemon.Export.Onnx;

/// <summary>ONNX tensor element types used here (TensorProto.DataType).</summary>
public enum OnnxType
{
    Float = 1,
    Int64 = 7,
}

/// <summary>
/// Builds an ONNX model (IR 8, opset 17 — the newest pair Debian's python3-onnx 1.12 checker accepts,
/// and ORT 1.31 loads) node by node and serializes it with <see cref="ProtoWriter"/>. Field numbers
/// follow onnx.proto. Dimensions given as strings are symbolic (e.g. "batch").
/// </summary>
public sealed class OnnxGraph(string name)
{
    public const int IrVersion = 8;
    public const int Opset = 17;

    private readonly List<ProtoWriter> nodes = [];
    private readonly List<ProtoWriter> initializers = [];
    private readonly List<ProtoWriter> inputs = [];
    private readonly List<ProtoWriter> outputs = [];
    private readonly HashSet<string> names = [];
    private readonly List<(string Key, string Value)> metadata = [];
    private int counter;

    public IReadOnlyCollection<string> InitializerNames => names;

    public void Input(string valueName, OnnxType type, params object[] dims) => inputs.Add(ValueInfo(valueName, type, dims));

    public void Output(string valueName, OnnxType type, params object[] dims) => outputs.Add(ValueInfo(valueName, type, dims));

    /// <summary>A float constant (weights), stored as little-endian raw_data.</summary>
    public string Initializer(string tensorName, ReadOnlySpan<float> data, params long[] dims)
    {
        var tensor = new ProtoWriter().PackedInts(1, dims).Int(2, (long)OnnxType.Float).String(8, tensorName)
            .Bytes(9, MemoryMarshal.AsBytes(data));
        initializers.Add(tensor);
        names.Add(tensorName);
        return tensorName;
    }

    public string Initializer(string tensorName, ReadOnlySpan<long> data, params long[] dims)
    {
        var tensor = new ProtoWriter().PackedInts(1, dims).Int(2, (long)OnnxType.Int64).String(8, tensorName)
            .Bytes(9, MemoryMarshal.AsBytes(data));
        initializers.Add(tensor);
        names.Add(tensorName);
        return tensorName;
    }

    /// <summary>Adds a node; returns its (single) output name. Attributes: long, float, string, long[] or float[].</summary>
    public string Node(string opType, string[] nodeInputs, string? output = null, params (string Name, object Value)[] attributes) =>
        Node(opType, nodeInputs, [output ?? $"{opType.ToLowerInvariant()}_{counter + 1}"], attributes)[0];

    /// <summary>Adds a node with several outputs (e.g. Split).</summary>
    public string[] Node(string opType, string[] nodeInputs, string[] nodeOutputs, params (string Name, object Value)[] attributes)
    {
        counter++;
        var node = new ProtoWriter();
        foreach (var input in nodeInputs)
        {
            node.String(1, input);
        }

        foreach (var output in nodeOutputs)
        {
            node.String(2, output);
        }

        node.String(3, $"{opType}_{counter}").String(4, opType);
        foreach (var (attributeName, value) in attributes)
        {
            var attribute = new ProtoWriter().String(1, attributeName);
            switch (value)
            {
                case long l:
                    attribute.Int(20, 2).Int(3, l);
                    break;
                case int i:
                    attribute.Int(20, 2).Int(3, i);
                    break;
                case float f:
                    attribute.Int(20, 1).Float(2, f);
                    break;
                case string s:
                    attribute.Int(20, 3).String(4, s);
                    break;
                case long[] ints:
                    attribute.Int(20, 7).PackedInts(8, ints);
                    break;
                default:
                    throw new ArgumentException($"attribute {attributeName}: unsupported value type {value.GetType().Name}");
            }

            node.Message(5, attribute);
        }

        nodes.Add(node);
        return nodeOutputs;
    }

    /// <summary>A <c>metadata_props</c> entry of the model (e.g. the vocabulary a text model needs, so the file is self-contained).</summary>
    public void Metadata(string key, string value)
    {
        if (metadata.Any(m => m.Key == key))
        {
            throw new ArgumentException($"metadata key '{key}' set twice", nameof(key));
        }

        metadata.Add((key, value));
    }

    public byte[] ToModelBytes(string producer = "retrain-daemon", string docString = "")
    {
        var graph = new ProtoWriter();
        foreach (var node in nodes)
        {
            graph.Message(1, node);
        }

        graph.String(2, name);
        foreach (var initializer in initializers)
        {
            graph.Message(5, initializer);
        }

        if (docString.Length > 0)
        {
            graph.String(10, docString);
        }

        foreach (var input in inputs)
        {
            graph.Message(11, input);
        }

        foreach (var output in outputs)
        {
            graph.Message(12, output);
        }

        var model = new ProtoWriter()
            .Int(1, IrVersion)
            .String(2, producer)
            .String(3, typeof(OnnxGraph).Assembly.GetName().Version?.ToString() ?? "0")
            .Message(7, graph)
            .Message(8, new ProtoWriter().String(1, "").Int(2, Opset));
        foreach (var (key, value) in metadata)
        {
            model.Message(14, new ProtoWriter().String(1, key).String(2, value));
        }

        return model.ToArray();
    }

    private static ProtoWriter ValueInfo(string valueName, OnnxType type, object[] dims)
    {
        var shape = new ProtoWriter();
        foreach (var dim in dims)
        {
            shape.Message(1, dim switch
            {
                string symbol => new ProtoWriter().String(2, symbol),
                int i => new ProtoWriter().Int(1, i),
                long l => new ProtoWriter().Int(1, l),
                _ => throw new ArgumentException($"dimension {dim} of {valueName} must be a number or a symbol"),
            });
        }

        var tensorType = new ProtoWriter().Int(1, (long)type).Message(2, shape);
        return new ProtoWriter().String(1, valueName).Message(2, new ProtoWriter().Message(1, tensorType));
    }
}
