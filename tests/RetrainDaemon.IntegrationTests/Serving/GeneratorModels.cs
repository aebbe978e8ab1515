using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Export.Exporters;
using RetrainDaemon.Training.Models;
using static TorchSharp.torch;

namespace RetrainDaemon.IntegrationTests.Serving;

/// <summary>The S2 bad candidates <see cref="GeneratorModels.PublishBadChampion"/> can make.</summary>
public enum BadCandidate
{
    /// <summary><c>model.onnx</c> cut in half after publish (a partial copy): its size no longer matches the manifest.</summary>
    Truncated,

    /// <summary>Cut in half, and the manifest forged to match (size and hash): the registry's ONNX reader refuses it.</summary>
    TruncatedWithForgedManifest,

    /// <summary>One byte of <c>model.onnx</c> changed after publish, same size: the sha256 no longer matches.</summary>
    HashMismatch,

    /// <summary>A real generator whose input is called <c>noise_</c> instead of <c>latent</c>: refused by warm-up.</summary>
    WrongInputName,

    /// <summary>A real generator whose <c>latent</c> input is declared float64: ONNX Runtime refuses the graph at load.</summary>
    WrongLatentType,

    /// <summary>A real generator of 32×32 images where the catalog says 28×28: refused by warm-up.</summary>
    WrongImageSize,

    /// <summary>A generator whose last layer's weights are NaN (exported without the parity check): refused by warm-up.</summary>
    NaNWeights,

    /// <summary>A graph with an initializer stored as external data at <c>../../etc/passwd</c>, manifest forged to match: refused by the registry.</summary>
    ExternalDataEscape,
}

/// <summary>Where a bad candidate is refused (<c>verify</c>, <c>load</c>, <c>warmup</c>) and a fragment of the reason.</summary>
public sealed record BadCandidateExpectation(string Stage, string ReasonFragment);

/// <summary>
/// Real DCGAN generators exported to ONNX by the project's own exporter, for serving tests: N distinct
/// ones by seed (the bytes are cached process-wide; an export with its parity check takes about a
/// second), helpers that publish one into a <see cref="ModelRegistry"/> as the champion, and the S2
/// bad candidates. Usable as an xUnit class or collection fixture, or through <see cref="Shared"/>.
/// The generator shape is <see cref="Config"/>: latent 64, 1×28×28 images (Fashion-MNIST), as the
/// catalog entry <see cref="Catalog"/> describes.
/// </summary>
public sealed class GeneratorModels : IDisposable
{
    /// <summary>The family recorded in the manifest's hyperparameters.</summary>
    public const string Family = "dcgan";

    /// <summary>The shape of every good generator here.</summary>
    public static readonly DcganConfig Config = new();

    private static readonly ConcurrentDictionary<string, byte[]> Cache = new(StringComparer.Ordinal);
    private static readonly Lock TorchLock = new(); // TorchSharp's global seed: one export at a time

    private static readonly Lazy<GeneratorModels> SharedInstance = new(() => new GeneratorModels());

    /// <summary>A process-wide instance (its folder is left for the OS to clean).</summary>
    public static GeneratorModels Shared => SharedInstance.Value;

    /// <summary>A fixture with its own scratch folder for the files it writes.</summary>
    public GeneratorModels()
    {
        Scratch = Directory.CreateTempSubdirectory("rd-generators-").FullName;
    }

    /// <summary>Where the fixture writes ONNX files before they are published.</summary>
    public string Scratch { get; }

    /// <summary>The catalog entry of an image model served with these generators: 1×28×28.</summary>
    public static ModelOptions CatalogEntry() => new() { Modality = "image", Image = new ImageShapeOptions { Width = 28, Height = 28, Channels = 1 } };

    /// <summary>A model catalog with <paramref name="models"/> as 1×28×28 image models.</summary>
    public static ModelCatalogOptions Catalog(params string[] models)
    {
        var catalog = new ModelCatalogOptions();
        foreach (var model in models)
        {
            catalog.Models[model] = CatalogEntry();
        }

        return catalog;
    }

    /// <summary>The ONNX bytes of the generator initialized with <paramref name="seed"/> (normal(0, 0.02)), parity-checked against TorchSharp.</summary>
    public byte[] Onnx(int seed, int classes = 0) =>
        Cache.GetOrAdd($"good:{seed}:{classes}", _ => Export(seed, Config with { Classes = classes }, breakWeights: false, parity: true));

    /// <summary><see cref="Onnx"/> written to a file in <see cref="Scratch"/>; returns its path.</summary>
    public string File(int seed, int classes = 0) => Write(Onnx(seed, classes), $"generator-{seed}-{classes}.onnx");

    /// <summary>Publishes the generator of <paramref name="seed"/> as the champion of <paramref name="model"/>.</summary>
    public PublishResult PublishChampion(ModelRegistry registry, string model, int seed, int classes = 0, string? reason = null) =>
        PublishChampion(registry, model, Onnx(seed, classes), reason ?? $"test: generator seed {seed}", classes);

    /// <summary>Publishes <paramref name="onnx"/> as a passed version and the champion of <paramref name="model"/> (family dcgan, max batch 64).</summary>
    public PublishResult PublishChampion(ModelRegistry registry, string model, byte[] onnx, string reason, int classes = 0, IReadOnlyDictionary<string, string>? hyperparameters = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        string path = Write(onnx, $"publish-{Guid.NewGuid():N}.onnx");
        try
        {
            return registry.Publish(new PublishRequest
            {
                Model = model,
                Status = VersionStatus.Passed,
                Files = new Dictionary<string, string> { ["model.onnx"] = path },
                Hyperparameters = hyperparameters ?? new Dictionary<string, string>
                {
                    ["family"] = Family,
                    ["classes"] = classes.ToString(System.Globalization.CultureInfo.InvariantCulture),
                },
                Alias = PublishAlias.Champion,
                MaxBatchSize = 64,
                Reason = reason,
            });
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    /// <summary>
    /// Publishes a bad candidate of kind <paramref name="kind"/> as the champion of <paramref name="model"/>
    /// (tampering with the folder after publish where the registry would refuse it at publish).
    /// Call it while no watcher-driven server is looking, or accept that one may see the good bytes
    /// for an instant before they are damaged.
    /// </summary>
    public PublishResult PublishBadChampion(ModelRegistry registry, string model, BadCandidate kind)
    {
        string reason = $"test: bad candidate {kind}";
        switch (kind)
        {
            case BadCandidate.Truncated:
            {
                var published = PublishChampion(registry, model, Onnx(1), reason);
                byte[] bytes = System.IO.File.ReadAllBytes(ModelPath(published));
                System.IO.File.WriteAllBytes(ModelPath(published), bytes[..(bytes.Length / 2)]);
                return published;
            }

            case BadCandidate.TruncatedWithForgedManifest:
            {
                var published = PublishChampion(registry, model, Onnx(1), reason);
                byte[] bytes = System.IO.File.ReadAllBytes(ModelPath(published));
                Forge(published, bytes[..(bytes.Length / 2)]);
                return published;
            }

            case BadCandidate.HashMismatch:
            {
                var published = PublishChampion(registry, model, Onnx(1), reason);
                byte[] bytes = System.IO.File.ReadAllBytes(ModelPath(published));
                bytes[bytes.Length / 2] ^= 0x55;
                System.IO.File.WriteAllBytes(ModelPath(published), bytes);
                return published;
            }

            case BadCandidate.WrongInputName:
                return PublishChampion(registry, model, WrongInputName(), reason);
            case BadCandidate.WrongLatentType:
                return PublishChampion(registry, model, WrongLatentType(), reason);
            case BadCandidate.WrongImageSize:
                return PublishChampion(registry, model, WrongImageSize(), reason);
            case BadCandidate.NaNWeights:
                return PublishChampion(registry, model, NaNWeights(), reason);
            case BadCandidate.ExternalDataEscape:
            {
                var published = PublishChampion(registry, model, Onnx(1), reason);
                Forge(published, WithExternalData(Onnx(1), "../../etc/passwd"));
                return published;
            }

            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
    }

    /// <summary>Where and why the serving runtime refuses a bad candidate.</summary>
    public static BadCandidateExpectation Expect(BadCandidate kind) => kind switch
    {
        BadCandidate.Truncated => new("verify", "bytes, the manifest says"),
        BadCandidate.TruncatedWithForgedManifest => new("verify", "model.onnx is not a readable ONNX model"),
        BadCandidate.HashMismatch => new("verify", "does not match its sha256"),
        BadCandidate.WrongInputName => new("warmup", "needs a float32 input 'latent'"),
        BadCandidate.WrongLatentType => new("load", "double"),
        BadCandidate.WrongImageSize => new("warmup", "the model's images are (1, 1, 28, 28)"),
        BadCandidate.NaNWeights => new("warmup", "non-finite value"),
        BadCandidate.ExternalDataEscape => new("verify", "'../../etc/passwd', which points outside the version folder"),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>A generator whose final ConvTranspose weights are NaN; exported without the parity check (which would refuse it).</summary>
    public byte[] NaNWeights() => Cache.GetOrAdd("nan", _ => Export(900, Config, breakWeights: true, parity: false));

    /// <summary>A real generator whose input is named <c>noise_</c>: every length-prefixed <c>latent</c> string of the graph is renamed (same length, so the protobuf stays valid).</summary>
    public byte[] WrongInputName() => Cache.GetOrAdd("wrong-name", _ =>
    {
        byte[] bytes = (byte[])Onnx(901).Clone();
        int renamed = ReplaceAll(bytes, [0x06, .. "latent"u8], [0x06, .. "noise_"u8]);
        return renamed >= 2 ? bytes : throw new InvalidOperationException($"expected the input and a node to name 'latent'; renamed {renamed}");
    });

    /// <summary>A real generator whose <c>latent</c> graph input is declared float64 (elem_type 11) while its weights are float32.</summary>
    public byte[] WrongLatentType() => Cache.GetOrAdd("wrong-type", _ =>
    {
        byte[] bytes = (byte[])Onnx(902).Clone();
        // ValueInfoProto{name(1)="latent", type(2)=TypeProto{tensor_type(1)=Tensor{elem_type(1)=1, ...}}}
        byte[] name = [0x0a, 0x06, .. "latent"u8];
        for (int i = 0; i + name.Length + 6 < bytes.Length; i++)
        {
            if (bytes.AsSpan(i, name.Length).SequenceEqual(name) && bytes[i + name.Length] == 0x12 && bytes[i + name.Length + 2] == 0x0a
                && bytes[i + name.Length + 4] == 0x08 && bytes[i + name.Length + 5] == 0x01)
            {
                bytes[i + name.Length + 5] = 11;
                return bytes;
            }
        }

        throw new InvalidOperationException("the latent input's type was not found in the exported graph");
    });

    /// <summary>A real, valid generator of 1×32×32 images (the catalog says 28×28).</summary>
    public byte[] WrongImageSize() => Cache.GetOrAdd("wrong-size", _ => Export(903, Config with { Side = 32 }, breakWeights: false, parity: true));

    /// <summary>
    /// <paramref name="onnx"/> plus one initializer whose data is "external" at <paramref name="location"/>.
    /// Appending a serialized <c>ModelProto{graph{initializer}}</c> merges it into the graph (protobuf
    /// concatenation), so the model stays a real generator with one hostile reference.
    /// </summary>
    public static byte[] WithExternalData(byte[] onnx, string location)
    {
        ArgumentNullException.ThrowIfNull(onnx);
        var tensor = new Proto().Packed(1, [4]).Int(2, 1).String(8, "ext")
            .Message(13, new Proto().String(1, "location").String(2, location))
            .Int(14, 1);
        byte[] fragment = new Proto().Message(7, new Proto().Message(5, tensor)).ToArray();
        return [.. onnx, .. fragment];
    }

    /// <summary>The <c>model.onnx</c> path of a published version.</summary>
    public static string ModelPath(PublishResult published)
    {
        ArgumentNullException.ThrowIfNull(published);
        return Path.Combine(published.Directory, "model.onnx");
    }

    /// <summary>
    /// Replaces <c>model.onnx</c> of a published version and forges its manifest to match (size, sha256,
    /// and the envelope's own sha256) — what someone who knows the format could do by hand. Only the
    /// registry's own checks of the file's content can catch it then.
    /// </summary>
    public static void Forge(PublishResult published, byte[] model)
    {
        ArgumentNullException.ThrowIfNull(published);
        ArgumentNullException.ThrowIfNull(model);
        System.IO.File.WriteAllBytes(ModelPath(published), model);
        string manifestPath = Path.Combine(published.Directory, "manifest.json");
        var envelope = JsonNode.Parse(System.IO.File.ReadAllText(manifestPath))!.AsObject();
        var manifest = envelope["manifest"]!.AsObject();
        foreach (var file in manifest["files"]!.AsArray())
        {
            if ((string?)file!["name"] == "model.onnx")
            {
                file["bytes"] = model.Length;
                file["sha256"] = Convert.ToHexStringLower(SHA256.HashData(model));
            }
        }

        byte[] body = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        string sha = Convert.ToHexStringLower(SHA256.HashData(body));
        System.IO.File.WriteAllBytes(manifestPath, [.. Encoding.UTF8.GetBytes($"{{\"format\":1,\"sha256\":\"{sha}\",\"manifest\":"), .. body, .. "}"u8]);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Scratch, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp folder.
        }
    }

    private string Write(byte[] bytes, string name)
    {
        string path = Path.Combine(Scratch, name);
        System.IO.File.WriteAllBytes(path, bytes);
        return path;
    }

    private static byte[] Export(int seed, DcganConfig config, bool breakWeights, bool parity)
    {
        lock (TorchLock)
        {
            manual_seed(seed);
            using var generator = new DcganGenerator(config);
            Initialization.Apply(generator, InitScheme.Normal002);
            if (breakWeights)
            {
                using var noGrad = no_grad();
                foreach (var (name, parameter) in generator.named_parameters())
                {
                    if (name.StartsWith("up2.", StringComparison.Ordinal))
                    {
                        parameter.fill_(float.NaN);
                    }
                }
            }

            generator.eval();
            return parity
                ? ModelExporter.Export(generator, casesPerBatchSize: 5).Onnx
                : ModelExporter.ExporterFor(generator).Export();
        }
    }

    private static int ReplaceAll(byte[] bytes, byte[] find, byte[] replace)
    {
        int count = 0;
        for (int i = 0; i + find.Length <= bytes.Length; i++)
        {
            if (bytes.AsSpan(i, find.Length).SequenceEqual(find))
            {
                replace.CopyTo(bytes, i);
                count++;
                i += find.Length - 1;
            }
        }

        return count;
    }

    /// <summary>Protobuf wire-format writer (varint, length-delimited, packed) for the external-data fragment.</summary>
    private sealed class Proto
    {
        private readonly MemoryStream buffer = new();

        public byte[] ToArray() => buffer.ToArray();

        public Proto Int(int field, long value)
        {
            Tag(field, 0);
            Varint(unchecked((ulong)value));
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

        private Proto Bytes(int field, byte[] value)
        {
            Tag(field, 2);
            Varint((ulong)value.Length);
            buffer.Write(value);
            return this;
        }

        private void Tag(int field, int type) => Varint((ulong)((field << 3) | type));

        private void Varint(ulong value)
        {
            while (value >= 0x80)
            {
                buffer.WriteByte((byte)(value | 0x80));
                value >>= 7;
            }

            buffer.WriteByte((byte)value);
        }
    }
}
