using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace RetrainDaemon.Core.Registry;

/// <summary>Source-generated JSON for the registry's files: camelCase, indented, enums as strings, NaN allowed in metric values.</summary>
[JsonSourceGenerationOptions(
    WriteIndented = true,
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    UseStringEnumConverter = true,
    RespectNullableAnnotations = true,
    RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(VersionManifest))]
[JsonSerializable(typeof(ModelAliases))]
[JsonSerializable(typeof(VersionCounter))]
[JsonSerializable(typeof(VersionInfo))]
[JsonSerializable(typeof(ModelListing))]
[JsonSerializable(typeof(IReadOnlyList<ModelListing>))]
internal sealed partial class RegistryJsonContext : JsonSerializerContext;

/// <summary>The registry's documents as JSON text, for command-line output and tools.</summary>
public static class RegistryJson
{
    public static string Serialize(VersionInfo info) => JsonSerializer.Serialize(info, RegistryJsonContext.Default.VersionInfo);

    public static string Serialize(ModelListing listing) => JsonSerializer.Serialize(listing, RegistryJsonContext.Default.ModelListing);

    public static string Serialize(IReadOnlyList<ModelListing> listings) => JsonSerializer.Serialize(listings, RegistryJsonContext.Default.IReadOnlyListModelListing);

    public static string Serialize(ModelAliases aliases) => JsonSerializer.Serialize(aliases, RegistryJsonContext.Default.ModelAliases);
}

/// <summary>
/// <c>manifest.json</c> is an envelope <c>{"format":1,"sha256":"…","manifest":{…}}</c> whose
/// <c>sha256</c> covers the exact UTF-8 bytes of the <c>manifest</c> value as written. Hashing raw
/// bytes (not a re-serialization) keeps the check independent of serializer versions, and makes an
/// edited manifest — a metric changed by hand, a file entry added — fail like a tampered file.
/// </summary>
internal static class ManifestCodec
{
    public const int Format = 1;

    /// <summary>A manifest is small; a bigger file is refused before it is read into memory.</summary>
    public const long MaxBytes = 16L << 20;

    public static byte[] Encode(VersionManifest manifest, out string sha256)
    {
        byte[] body = JsonSerializer.SerializeToUtf8Bytes(manifest, RegistryJsonContext.Default.VersionManifest);
        sha256 = Convert.ToHexStringLower(SHA256.HashData(body));
        using var output = new MemoryStream(body.Length + 128);
        output.Write(Encoding.UTF8.GetBytes($"{{\n  \"format\": {Format},\n  \"sha256\": \"{sha256}\",\n  \"manifest\": "));
        output.Write(body);
        output.Write("\n}\n"u8);
        return output.ToArray();
    }

    /// <summary>Decodes and checks a manifest file's bytes; null with <paramref name="problem"/> when it is not intact.</summary>
    public static VersionManifest? Decode(byte[] bytes, out string? sha256, out string? problem)
    {
        sha256 = null;
        try
        {
            using var document = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 64 });
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                problem = "manifest.json is not a JSON object";
                return null;
            }

            if (!root.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.Number || !format.TryGetInt32(out int f) || f != Format)
            {
                problem = $"manifest.json has no supported format (expected {Format})";
                return null;
            }

            if (!root.TryGetProperty("sha256", out var recorded) || recorded.ValueKind != JsonValueKind.String
                || !root.TryGetProperty("manifest", out var body) || body.ValueKind != JsonValueKind.Object)
            {
                problem = "manifest.json lacks its sha256 or manifest member";
                return null;
            }

            var raw = JsonMarshal.GetRawUtf8Value(body);
            string actual = Convert.ToHexStringLower(SHA256.HashData(raw));
            if (!string.Equals(actual, recorded.GetString(), StringComparison.Ordinal))
            {
                problem = "manifest.json was modified after it was written (its content does not match its recorded sha256)";
                return null;
            }

            var manifest = JsonSerializer.Deserialize(raw, RegistryJsonContext.Default.VersionManifest);
            if (manifest is null)
            {
                problem = "manifest.json holds a null manifest";
                return null;
            }

            sha256 = actual;
            problem = null;
            return manifest;
        }
        catch (JsonException ex)
        {
            problem = $"manifest.json is not readable: {ex.Message}";
            return null;
        }
    }
}
