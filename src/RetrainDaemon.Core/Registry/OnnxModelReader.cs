using System.Text;

namespace RetrainDaemon.Core.Registry;

/// <summary>ONNX <c>TensorProto.DataType</c> codes as the manifest's element-type names and Triton's <c>TYPE_*</c>.</summary>
public static class OnnxElementTypes
{
    private static readonly Dictionary<int, (string Name, string Triton)> Types = new()
    {
        [1] = ("float32", "TYPE_FP32"),
        [2] = ("uint8", "TYPE_UINT8"),
        [3] = ("int8", "TYPE_INT8"),
        [4] = ("uint16", "TYPE_UINT16"),
        [5] = ("int16", "TYPE_INT16"),
        [6] = ("int32", "TYPE_INT32"),
        [7] = ("int64", "TYPE_INT64"),
        [8] = ("string", "TYPE_STRING"),
        [9] = ("bool", "TYPE_BOOL"),
        [10] = ("float16", "TYPE_FP16"),
        [11] = ("float64", "TYPE_FP64"),
        [12] = ("uint32", "TYPE_UINT32"),
        [13] = ("uint64", "TYPE_UINT64"),
        [16] = ("bfloat16", "TYPE_BF16"),
    };

    /// <summary>The manifest name of an ONNX data type code (<c>1</c> → <c>float32</c>); unknown codes as <c>onnx:&lt;code&gt;</c>.</summary>
    public static string Name(int onnxDataType) =>
        Types.TryGetValue(onnxDataType, out var t) ? t.Name : $"onnx:{onnxDataType}";

    /// <summary>Triton's data type for a manifest element-type name, or null when Triton has none.</summary>
    public static string? Triton(string elementType)
    {
        foreach (var (name, triton) in Types.Values)
        {
            if (name == elementType)
            {
                return triton;
            }
        }

        return null;
    }
}

/// <summary>One tensor whose data an ONNX file keeps outside itself (<c>TensorProto.external_data</c>).</summary>
public sealed record OnnxExternalData(string Tensor, string? Location, long? Offset, long? Length, bool MarkedExternal);

/// <summary>What the registry needs from an ONNX file: opsets, graph inputs and outputs, and every external-data reference.</summary>
public sealed record OnnxModelInfo(
    long IrVersion,
    IReadOnlyDictionary<string, long> Opsets,
    IReadOnlyList<TensorSpec> Inputs,
    IReadOnlyList<TensorSpec> Outputs,
    IReadOnlyList<OnnxExternalData> ExternalData)
{
    /// <summary><c>ModelProto.metadata_props</c> (14): key/value strings an exporter attached (e.g. a text model's vocabulary).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>The default-domain (<c>ai.onnx</c>) opset, if imported.</summary>
    public long? Opset => Opsets.TryGetValue("", out long v) || Opsets.TryGetValue("ai.onnx", out v) ? v : null;
}

/// <summary>
/// A small reader of the protobuf wire format for just the parts of <c>onnx.proto</c> the registry
/// checks — no package, no native code. It walks <c>ModelProto.graph</c> (7) and every place a
/// tensor can hide: <c>GraphProto.initializer</c> (5) and <c>sparse_initializer</c> (15), node
/// attributes (<c>t</c> 5, <c>tensors</c> 10, <c>sparse_tensor</c> 22, <c>sparse_tensors</c> 23) and
/// the subgraphs of control-flow nodes (<c>g</c> 6, <c>graphs</c> 11), <c>ModelProto.functions</c> (25)
/// and <c>training_info</c> (20) — collecting <c>TensorProto.external_data</c> (13) and
/// <c>data_location</c> (14). onnx/onnx#3991 showed a <c>location</c> of <c>../../../etc/passwd</c>;
/// the registry refuses such files itself rather than trusting the runtime to.
/// The file is read through a seekable stream and large fields (<c>raw_data</c>) are skipped, so
/// memory stays small whatever the model size; hostile input ends in <see cref="InvalidDataException"/>.
/// </summary>
public static class OnnxModelReader
{
    private const int MaxDepth = 32; // control-flow nesting; far beyond anything an exporter writes
    private const int MaxStringBytes = 64 * 1024;
    private const int MaxMetadataBytes = 16 * 1024 * 1024; // a text model's vocabulary travels in metadata_props

    /// <summary>Reads <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not a well-formed ONNX model.</exception>
    public static OnnxModelInfo Read(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return Read(stream);
    }

    /// <summary>Reads a model from a seekable stream.</summary>
    /// <exception cref="InvalidDataException">The stream is not a well-formed ONNX model.</exception>
    public static OnnxModelInfo Read(Stream stream)
    {
        if (!stream.CanSeek)
        {
            throw new ArgumentException("the stream must be seekable", nameof(stream));
        }

        var walker = new Walker(new Wire(stream));
        walker.Model(stream.Length);
        if (!walker.SawGraph)
        {
            throw new InvalidDataException("not an ONNX model: no graph");
        }

        return new OnnxModelInfo(walker.IrVersion, walker.Opsets, walker.Inputs, walker.Outputs, walker.External) { Metadata = walker.Metadata };
    }

    private sealed class Walker(Wire wire)
    {
        public long IrVersion { get; private set; }

        public bool SawGraph { get; private set; }

        public Dictionary<string, long> Opsets { get; } = new(StringComparer.Ordinal);

        public List<TensorSpec> Inputs { get; } = [];

        public List<TensorSpec> Outputs { get; } = [];

        public List<OnnxExternalData> External { get; } = [];

        public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);

        private readonly HashSet<string> topInitializers = new(StringComparer.Ordinal);

        public void Model(long end)
        {
            var inputs = new List<TensorSpec>();
            while (wire.Position < end)
            {
                var (field, type) = wire.Tag(end);
                switch (field, type)
                {
                    case (1, 0):
                        IrVersion = (long)wire.Varint(end);
                        break;
                    case (8, 2):
                        OpsetImport(wire.Length(end));
                        break;
                    case (7, 2):
                        SawGraph = true;
                        Graph(wire.Length(end), 1, inputs, Outputs, topInitializers);
                        break;
                    case (20, 2):
                        TrainingInfo(wire.Length(end));
                        break;
                    case (25, 2):
                        Function(wire.Length(end));
                        break;
                    case (14, 2):
                        MetadataEntry(wire.Length(end));
                        break;
                    default:
                        wire.Skip(type, end);
                        break;
                }
            }

            // IR < 4 lists initializers among the inputs too; they are weights, not something a caller feeds.
            Inputs.AddRange(inputs.Where(i => !topInitializers.Contains(i.Name)));
        }

        private void MetadataEntry(long end)
        {
            string? key = null, value = null;
            while (wire.Position < end)
            {
                var (field, type) = wire.Tag(end);
                if (field is 1 or 2 && type == 2)
                {
                    string text = wire.String(end, MaxMetadataBytes);
                    if (field == 1)
                    {
                        key = text;
                    }
                    else
                    {
                        value = text;
                    }
                }
                else
                {
                    wire.Skip(type, end);
                }
            }

            if (key is not null && !Metadata.TryAdd(key, value ?? ""))
            {
                throw new InvalidDataException($"metadata key '{key}' appears twice");
            }
        }

        private void OpsetImport(long end)
        {
            string domain = "";
            long version = 0;
            while (wire.Position < end)
            {
                var (field, type) = wire.Tag(end);
                if (field == 1 && type == 2)
                {
                    domain = wire.String(end);
                }
                else if (field == 2 && type == 0)
                {
                    version = (long)wire.Varint(end);
                }
                else
                {
                    wire.Skip(type, end);
                }
            }

            Opsets[domain] = version;
        }

        private void Graph(long end, int depth, List<TensorSpec>? inputs, List<TensorSpec>? outputs, HashSet<string>? initializers)
        {
            if (depth > MaxDepth)
            {
                throw new InvalidDataException($"subgraphs nested deeper than {MaxDepth}");
            }

            while (wire.Position < end)
            {
                var (field, type) = wire.Tag(end);
                switch (field, type)
                {
                    case (1, 2):
                        Node(wire.Length(end), depth);
                        break;
                    case (5, 2):
                        string? name = Tensor(wire.Length(end));
                        if (name is not null)
                        {
                            initializers?.Add(name);
                        }

                        break;
                    case (15, 2):
                        SparseTensor(wire.Length(end));
                        break;
                    case (11, 2) when inputs is not null:
                        inputs.Add(ValueInfo(wire.Length(end)));
                        break;
                    case (12, 2) when outputs is not null:
                        outputs.Add(ValueInfo(wire.Length(end)));
                        break;
                    default:
                        wire.Skip(type, end);
                        break;
                }
            }
        }

        private void Node(long end, int depth)
        {
            while (wire.Position < end)
            {
                var (field, type) = wire.Tag(end);
                if (field == 5 && type == 2)
                {
                    Attribute(wire.Length(end), depth);
                }
                else
                {
                    wire.Skip(type, end);
                }
            }
        }

        private void Attribute(long end, int depth)
        {
            while (wire.Position < end)
            {
                var (field, type) = wire.Tag(end);
                switch (field, type)
                {
                    case (5, 2) or (10, 2):
                        Tensor(wire.Length(end));
                        break;
                    case (22, 2) or (23, 2):
                        SparseTensor(wire.Length(end));
                        break;
                    case (6, 2) or (11, 2):
                        Graph(wire.Length(end), depth + 1, null, null, null);
                        break;
                    default:
                        wire.Skip(type, end);
                        break;
                }
            }
        }

        private void Function(long end)
        {
            while (wire.Position < end)
            {
                var (field, type) = wire.Tag(end);
                if (field == 7 && type == 2)
                {
                    Node(wire.Length(end), 1);
                }
                else
                {
                    wire.Skip(type, end);
                }
            }
        }

        private void TrainingInfo(long end)
        {
            while (wire.Position < end)
            {
                var (field, type) = wire.Tag(end);
                if (field is 1 or 2 && type == 2)
                {
                    Graph(wire.Length(end), 1, null, null, null);
                }
                else
                {
                    wire.Skip(type, end);
                }
            }
        }

        private void SparseTensor(long end)
        {
            while (wire.Position < end)
            {
                var (field, type) = wire.Tag(end);
                if (field is 1 or 2 && type == 2)
                {
                    Tensor(wire.Length(end));
                }
                else
                {
                    wire.Skip(type, end);
                }
            }
        }

        /// <summary>Reads a TensorProto, records its external data if any, and returns its name.</summary>
        private string? Tensor(long end)
        {
            string? name = null, location = null;
            long? offset = null, length = null;
            bool external = false, hasEntries = false;
            while (wire.Position < end)
            {
                var (field, type) = wire.Tag(end);
                switch (field, type)
                {
                    case (8, 2):
                        name = wire.String(end);
                        break;
                    case (14, 0):
                        external = wire.Varint(end) == 1;
                        break;
                    case (13, 2):
                        hasEntries = true;
                        var (key, value) = Entry(wire.Length(end));
                        switch (key)
                        {
                            case "location":
                                location = value;
                                break;
                            case "offset":
                                offset = ParseLong(key, value);
                                break;
                            case "length":
                                length = ParseLong(key, value);
                                break;
                        }

                        break;
                    default:
                        wire.Skip(type, end);
                        break;
                }
            }

            if (external || hasEntries)
            {
                External.Add(new OnnxExternalData(name ?? "", location, offset, length, external));
            }

            return name;
        }

        private static long ParseLong(string key, string? value) =>
            long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long v)
                ? v
                : throw new InvalidDataException($"external data '{key}' is not a non-negative integer: '{value}'");

        private (string? Key, string? Value) Entry(long end)
        {
            string? key = null, value = null;
            while (wire.Position < end)
            {
                var (field, type) = wire.Tag(end);
                if (field == 1 && type == 2)
                {
                    key = wire.String(end);
                }
                else if (field == 2 && type == 2)
                {
                    value = wire.String(end);
                }
                else
                {
                    wire.Skip(type, end);
                }
            }

            return (key, value);
        }

        private TensorSpec ValueInfo(long end)
        {
            string name = "";
            int elementType = 0;
            List<long> shape = [];
            while (wire.Position < end)
            {
                var (field, type) = wire.Tag(end);
                if (field == 1 && type == 2)
                {
                    name = wire.String(end);
                }
                else if (field == 2 && type == 2)
                {
                    (elementType, shape) = TypeProto(wire.Length(end));
                }
                else
                {
                    wire.Skip(type, end);
                }
            }

            return new TensorSpec(name, OnnxElementTypes.Name(elementType), shape);
        }

        private (int ElementType, List<long> Shape) TypeProto(long end)
        {
            int elementType = 0;
            List<long> shape = [];
            while (wire.Position < end)
            {
                var (field, type) = wire.Tag(end);
                if (field == 1 && type == 2) // tensor_type
                {
                    long tensorEnd = wire.Length(end);
                    while (wire.Position < tensorEnd)
                    {
                        var (f, t) = wire.Tag(tensorEnd);
                        if (f == 1 && t == 0)
                        {
                            elementType = (int)wire.Varint(tensorEnd);
                        }
                        else if (f == 2 && t == 2)
                        {
                            shape = Shape(wire.Length(tensorEnd));
                        }
                        else
                        {
                            wire.Skip(t, tensorEnd);
                        }
                    }
                }
                else
                {
                    wire.Skip(type, end);
                }
            }

            return (elementType, shape);
        }

        private List<long> Shape(long end)
        {
            var dims = new List<long>();
            while (wire.Position < end)
            {
                var (field, type) = wire.Tag(end);
                if (field == 1 && type == 2)
                {
                    long dimEnd = wire.Length(end);
                    long value = -1; // dim_param (symbolic) or nothing: dynamic
                    while (wire.Position < dimEnd)
                    {
                        var (f, t) = wire.Tag(dimEnd);
                        if (f == 1 && t == 0)
                        {
                            value = (long)wire.Varint(dimEnd);
                        }
                        else
                        {
                            wire.Skip(t, dimEnd);
                        }
                    }

                    dims.Add(value < 0 ? -1 : value);
                }
                else
                {
                    wire.Skip(type, end);
                }
            }

            return dims;
        }
    }

    /// <summary>Wire-format primitives over a seekable stream; every read is bounded by the enclosing message's end.</summary>
    private sealed class Wire(Stream stream)
    {
        public long Position => stream.Position;

        public (int Field, int Type) Tag(long end)
        {
            ulong tag = Varint(end);
            int field = (int)(tag >> 3), type = (int)(tag & 7);
            if (field == 0 || tag >> 3 > int.MaxValue)
            {
                throw new InvalidDataException($"invalid field number at byte {stream.Position}");
            }

            return (field, type);
        }

        public ulong Varint(long end)
        {
            ulong value = 0;
            for (int shift = 0; shift < 70; shift += 7)
            {
                if (stream.Position >= end)
                {
                    throw new InvalidDataException($"truncated varint at byte {stream.Position}");
                }

                int b = stream.ReadByte();
                if (b < 0)
                {
                    throw new InvalidDataException("unexpected end of file");
                }

                value |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0)
                {
                    return value;
                }
            }

            throw new InvalidDataException($"varint longer than 10 bytes at byte {stream.Position}");
        }

        /// <summary>Reads a length prefix and returns the end position of the field it announces.</summary>
        public long Length(long end)
        {
            ulong length = Varint(end);
            if (length > (ulong)(end - stream.Position))
            {
                throw new InvalidDataException($"a field at byte {stream.Position} claims {length} bytes, beyond its enclosing message");
            }

            return stream.Position + (long)length;
        }

        public string String(long end, int maxBytes = MaxStringBytes)
        {
            long fieldEnd = Length(end);
            long length = fieldEnd - stream.Position;
            if (length > maxBytes)
            {
                throw new InvalidDataException($"a string of {length} bytes at byte {stream.Position}");
            }

            var bytes = new byte[length];
            stream.ReadExactly(bytes);
            return Encoding.UTF8.GetString(bytes);
        }

        public void Skip(int type, long end)
        {
            long target = type switch
            {
                0 => -1,
                1 => stream.Position + 8,
                2 => Length(end),
                5 => stream.Position + 4,
                _ => throw new InvalidDataException($"unsupported wire type {type} at byte {stream.Position}"),
            };
            if (type == 0)
            {
                Varint(end);
                return;
            }

            if (target > end)
            {
                throw new InvalidDataException($"a field at byte {stream.Position} runs past its enclosing message");
            }

            stream.Position = target;
        }
    }
}
