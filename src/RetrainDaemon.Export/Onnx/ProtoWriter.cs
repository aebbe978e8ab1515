using System.Buffers.Binary;
using System.Text;

namespace RetrainDaemon.Export.Onnx;

/// <summary>
/// The protobuf wire format, write side only, for the handful of ONNX messages the exporters emit:
/// varints (wire type 0), 64-bit (1), length-delimited (2) and 32-bit (5) fields. Nested messages
/// are written into their own buffer and embedded length-prefixed.
/// </summary>
public sealed class ProtoWriter
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

    private void Tag(int field, int wireType) => Varint((ulong)((field << 3) | wireType));

    public ProtoWriter Int(int field, long value)
    {
        Tag(field, 0);
        Varint(unchecked((ulong)value)); // negative int64 as two's complement, 10 bytes, per the spec
        return this;
    }

    public ProtoWriter Float(int field, float value)
    {
        Tag(field, 5);
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
        buffer.Write(bytes);
        return this;
    }

    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> value)
    {
        Tag(field, 2);
        Varint((ulong)value.Length);
        buffer.Write(value);
        return this;
    }

    public ProtoWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public ProtoWriter Message(int field, ProtoWriter message) => Bytes(field, message.ToArray());

    /// <summary>A packed repeated int64 field.</summary>
    public ProtoWriter PackedInts(int field, IEnumerable<long> values)
    {
        var packed = new ProtoWriter();
        foreach (var v in values)
        {
            packed.Varint(unchecked((ulong)v));
        }

        return Bytes(field, packed.ToArray());
    }
}
