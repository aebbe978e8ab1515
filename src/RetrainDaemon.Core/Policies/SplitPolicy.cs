using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace RetrainDaemon.Core.Policies;

/// <summary>
/// Deterministic train/holdout assignment from the event id, so a redelivered or republished
/// sample always lands in the same split, on any machine and in any store.
/// </summary>
public static class SplitPolicy
{
    /// <summary>
    /// The first 8 bytes of SHA-256(UTF-8 <paramref name="eventId"/>) as a big-endian unsigned
    /// integer, divided by 2^64, is a uniform number u in [0, 1); the sample is holdout when
    /// u &lt; <paramref name="holdoutFraction"/>. An explicit split wins.
    /// </summary>
    public static string Assign(string eventId, double holdoutFraction, string? explicitSplit = null)
    {
        if (explicitSplit is not null)
        {
            return explicitSplit;
        }

        return UnitInterval(eventId) < holdoutFraction ? Contracts.Splits.Holdout : Contracts.Splits.Train;
    }

    /// <summary>The id's position in [0, 1) used by <see cref="Assign"/>.</summary>
    public static double UnitInterval(string eventId)
    {
        Span<byte> hash = stackalloc byte[32];
        int byteCount = Encoding.UTF8.GetByteCount(eventId);
        byte[]? rented = null;
        Span<byte> utf8 = byteCount <= 512 ? stackalloc byte[byteCount] : (rented = new byte[byteCount]);
        Encoding.UTF8.GetBytes(eventId, utf8);
        SHA256.HashData(utf8, hash);
        ulong head = BinaryPrimitives.ReadUInt64BigEndian(hash);
        return (head >> 11) * (1.0 / (1UL << 53));
    }
}
