using System.Text;

namespace RetrainDaemon.UnitTests.Registry;

/// <summary>Where a test model keeps its externally stored tensor.</summary>
public enum ExternalPlace
{
    Initializer,
    NodeAttribute,
    Subgraph,
    SparseInitializer,
}

/// <summary>
/// Writes small ONNX models for registry tests (also compiled into the RegistryWorker): one input
/// <c>z</c> (float32, [batch, 4]), <c>y = z + w</c>, optionally a large unused initializer so files are
/// megabytes, and optionally a tensor whose data is "external" at a chosen location, in a chosen
/// place of the graph. Only the wire format matters here; the registry never runs these models.
/// </summary>
public static class TestOnnx
{
    public static byte[] Model(
        int payloadBytes = 0,
        string? externalLocation = null,
        ExternalPlace place = ExternalPlace.Initializer,
        long? externalOffset = null,
        long? externalLength = null,
        bool markExternal = true,
        int seed = 1)
    {
        var graph = new Proto()
            .Message(1, new Proto().String(1, "z").String(1, "w").String(2, "y").String(3, "add").String(4, "Add"))
            .String(2, "test")
            .Message(5, FloatTensor("w", [4], new byte[16]));
        if (payloadBytes > 0)
        {
            var payload = new byte[payloadBytes];
            new Random(seed).NextBytes(payload);
            graph.Message(5, FloatTensor("payload", [payloadBytes / 4], payload));
        }

        if (externalLocation is not null)
        {
            var tensor = ExternalTensor("ext", externalLocation, externalOffset, externalLength, markExternal);
            switch (place)
            {
                case ExternalPlace.Initializer:
                    graph.Message(5, tensor);
                    break;
                case ExternalPlace.NodeAttribute:
                    graph.Message(1, new Proto().String(2, "c").String(4, "Constant")
                        .Message(5, new Proto().String(1, "value").Int(20, 4).Message(5, tensor)));
                    break;
                case ExternalPlace.Subgraph:
                    var branch = new Proto().String(2, "branch").Message(5, tensor)
                        .Message(12, ValueInfo("ext", 1, [4]));
                    graph.Message(1, new Proto().String(1, "cond").String(2, "o").String(4, "If")
                        .Message(5, new Proto().String(1, "then_branch").Int(20, 5).Message(6, branch))
                        .Message(5, new Proto().String(1, "else_branch").Int(20, 5).Message(6, branch)));
                    break;
                case ExternalPlace.SparseInitializer:
                    graph.Message(15, new Proto().Message(1, tensor).Message(2, new Proto().String(8, "idx").Int(2, 7).Packed(1, [1])).Packed(3, [4]));
                    break;
            }
        }

        graph.Message(11, ValueInfo("z", 1, [-1, 4]))
            .Message(12, ValueInfo("y", 1, [-1, 4]));
        return new Proto()
            .Int(1, 8)
            .String(2, "registry-tests")
            .Message(8, new Proto().String(1, "").Int(2, 17))
            .Message(7, graph)
            .ToArray();
    }

    private static Proto FloatTensor(string name, long[] dims, byte[] raw) =>
        new Proto().Packed(1, dims).Int(2, 1).String(8, name).Bytes(9, raw);

    private static Proto ExternalTensor(string name, string location, long? offset, long? length, bool markExternal)
    {
        var tensor = new Proto().Packed(1, [4]).Int(2, 1).String(8, name)
            .Message(13, new Proto().String(1, "location").String(2, location));
        if (offset is not null)
        {
            tensor.Message(13, new Proto().String(1, "offset").String(2, offset.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        if (length is not null)
        {
            tensor.Message(13, new Proto().String(1, "length").String(2, length.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        return markExternal ? tensor.Int(14, 1) : tensor;
    }

    /// <summary>A tensor-typed ValueInfoProto; -1 dimensions are written as the symbolic "batch".</summary>
    private static Proto ValueInfo(string name, int elementType, long[] shape)
    {
        var dims = new Proto();
        foreach (long d in shape)
        {
            dims.Message(1, d < 0 ? new Proto().String(2, "batch") : new Proto().Int(1, d));
        }

        return new Proto().String(1, name)
            .Message(2, new Proto().Message(1, new Proto().Int(1, elementType).Message(2, dims)));
    }

    /// <summary>Protobuf wire-format writer: varint, length-delimited and packed fields.</summary>
    private sealed class Proto
    {
        private readonly MemoryStream buffer = new();

        public byte[] ToArray() => buffer.ToArray();

        private void Varint(ulong value)
        {
            while (value >= 0x80)
            {
                buffer.WriteByte((byte)(value | 0x80));
                value >>= 7;
            }

            buffer.WriteByte((byte)value);
        }

        private void Tag(int field, int type) => Varint((ulong)((field << 3) | type));

        public Proto Int(int field, long value)
        {
            Tag(field, 0);
            Varint(unchecked((ulong)value));
            return this;
        }

        public Proto Bytes(int field, byte[] value)
        {
            Tag(field, 2);
            Varint((ulong)value.Length);
            buffer.Write(value);
            return this;
        }

        public Proto String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

        public Proto Message(int field, Proto message) => Bytes(field, message.ToArray());

        public Proto Packed(int field, long[] values)
        {
            var packed = new Proto();
            foreach (long v in values)
            {
                packed.Varint(unchecked((ulong)v));
            }

            return Bytes(field, packed.ToArray());
        }
    }
}
