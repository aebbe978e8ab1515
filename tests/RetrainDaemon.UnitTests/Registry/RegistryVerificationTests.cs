using System.Text;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Core.IO;

namespace RetrainDaemon.UnitTests.Registry;

public sealed class RegistryVerificationTests : IDisposable
{
    private readonly RegistryScratch scratch = new();

    private ModelRegistry Registry => scratch.Registry;

    public void Dispose() => scratch.Dispose();

    [Fact]
    public void Publish_ThenVerify_RoundTripsEveryField_AndReadsTheSignatureFromTheOnnxFile()
    {
        var request = scratch.Passed() with
        {
            Files = scratch.Files(("model.onnx", TestOnnx.Model(payloadBytes: 4096)), ("encoder.onnx", TestOnnx.Model(seed: 7))),
            ParentVersion = 3,
        };

        var published = Registry.Publish(request);
        var verified = Registry.Verify(RegistryScratch.Model, published.Version);

        Assert.Equal(1, published.Version);
        Assert.Equal(scratch.VersionFolder(1), verified.Directory);
        var m = verified.Manifest;
        Assert.Equal(VersionStatus.Passed, m.Status);
        Assert.Equal("run-1", m.RunId);
        Assert.Equal(3, m.ParentVersion);
        Assert.Equal(1234, m.DataWatermark);
        Assert.Equal(17, m.Opset);
        Assert.Equal(8, m.MaxBatchSize);
        Assert.Equal("0.0002", m.Hyperparameters["lr"]);
        var metric = Assert.Single(m.Metrics);
        Assert.Equal(("fid", 12.5, "extractor:abc|layer:pool|n:1000"), (metric.Metric, metric.Value, metric.Signature));
        Assert.Equal("pass", m.GateReport!["checks"]![0]!["verdict"]!.GetValue<string>());
        Assert.True(m.GateReport!["passed"]!.GetValue<bool>());
        Assert.Equal(new ExportParity(3e-6, 1e-5, 100), m.Parity);
        var input = Assert.Single(m.Inputs);
        Assert.Equal(("z", "float32"), (input.Name, input.ElementType));
        Assert.Equal([-1L, 4L], input.Shape);
        Assert.Equal("y", Assert.Single(m.Outputs).Name);
        Assert.Equal(["encoder.onnx", "model.onnx"], m.Files.Select(f => f.Name));
        Assert.Equal(File.ReadAllBytes(request.Files["model.onnx"]), verified.ReadVerifiedBytes("model.onnx"));
        Assert.Equal(Path.Combine(verified.Directory, "model.onnx"), verified.ModelPath);
        Assert.Equal(["encoder.onnx", "manifest.json", "model.onnx"], Directory.GetFiles(verified.Directory).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void VersionNumbers_Increase_AndAreNeverReused_AfterARejectionRetentionOrAHandDeletedFolder()
    {
        using var small = new RegistryScratch(keepLast: 1);
        var numbers = new List<int>
        {
            small.Registry.Publish(small.Passed(seed: 1)).Version,
            small.Registry.Publish(small.Rejected(seed: 2)).Version,
            small.Registry.Publish(small.Passed(seed: 3)).Version,
            small.Registry.Publish(small.Passed(seed: 4)).Version,
        };
        Assert.Equal([1, 2, 3, 4], numbers);
        Assert.False(Directory.Exists(small.VersionFolder(1))); // retention (keep 1, nothing aliased)
        Assert.False(Directory.Exists(small.VersionFolder(3)));

        // Even the newest folder removed by hand does not give its number back: versions.json remembers.
        Directory.Delete(small.VersionFolder(4), recursive: true);
        Assert.Equal(5, small.Registry.Publish(small.Passed(seed: 5)).Version);
        Assert.Equal(6, small.Registry.Publish(small.Rejected(seed: 6)).Version);
    }

    [Fact]
    public void TamperedFile_SameSize_IsRefused_NamingTheFileAndTheHash()
    {
        int v = Registry.Publish(scratch.Passed()).Version;
        string path = Path.Combine(scratch.VersionFolder(v), "model.onnx");
        var bytes = File.ReadAllBytes(path);
        bytes[^3] ^= 0x5A;
        File.WriteAllBytes(path, bytes);

        var ex = Assert.Throws<RegistryVerificationException>(() => Registry.Verify(RegistryScratch.Model, v));
        Assert.Contains("model.onnx does not match its sha256", ex.Reason, StringComparison.Ordinal);
        Assert.Equal(v, ex.Version);
    }

    [Fact]
    public void TruncatedFile_IsRefused_WithBothSizes()
    {
        int v = Registry.Publish(scratch.Passed()).Version;
        string path = Path.Combine(scratch.VersionFolder(v), "model.onnx");
        long size = new FileInfo(path).Length;
        using (var stream = new FileStream(path, FileMode.Open))
        {
            stream.SetLength(size - 10);
        }

        Assert.False(Registry.TryVerify(RegistryScratch.Model, v, out _, out var problem));
        Assert.Equal($"model.onnx has {size - 10} bytes, the manifest says {size}", problem);
    }

    [Fact]
    public void MissingFile_IsRefused()
    {
        var request = scratch.Passed() with { Files = scratch.Files(("model.onnx", TestOnnx.Model()), ("vocab.txt", "a b c"u8.ToArray())) };
        int v = Registry.Publish(request).Version;
        File.Delete(Path.Combine(scratch.VersionFolder(v), "vocab.txt"));

        Assert.False(Registry.TryVerify(RegistryScratch.Model, v, out _, out var problem));
        Assert.Equal("vocab.txt is missing", problem);
    }

    [Theory]
    [InlineData("notes.txt")]
    [InlineData(".hidden")]
    public void ExtraFile_IsRefused_AsAHandEdit(string name)
    {
        int v = Registry.Publish(scratch.Passed()).Version;
        File.WriteAllText(Path.Combine(scratch.VersionFolder(v), name), "added by hand");

        Assert.False(Registry.TryVerify(RegistryScratch.Model, v, out _, out var problem));
        Assert.Contains($"unlisted file '{name}'", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void ExtraFolderOrSymlink_IsRefused()
    {
        int v = Registry.Publish(scratch.Passed()).Version;
        string folder = scratch.VersionFolder(v);
        Directory.CreateDirectory(Path.Combine(folder, "sub"));
        Assert.False(Registry.TryVerify(RegistryScratch.Model, v, out _, out var problem));
        Assert.Contains("unexpected folder 'sub'", problem, StringComparison.Ordinal);

        Directory.Delete(Path.Combine(folder, "sub"));
        File.CreateSymbolicLink(Path.Combine(folder, "passwd"), "/etc/passwd");
        Assert.False(Registry.TryVerify(RegistryScratch.Model, v, out _, out problem));
        Assert.Contains("'passwd' is a symbolic link", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void ReplacingAListedFileWithASymlink_IsRefused()
    {
        int v = Registry.Publish(scratch.Passed()).Version;
        string model = Path.Combine(scratch.VersionFolder(v), "model.onnx");
        string copy = Path.Combine(scratch.Directory, "model-copy.onnx");
        File.Move(model, copy);
        File.CreateSymbolicLink(model, copy);

        Assert.False(Registry.TryVerify(RegistryScratch.Model, v, out _, out var problem));
        Assert.Contains("'model.onnx' is a symbolic link", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void EditedManifest_IsRefused_EvenWhenStillValidJson()
    {
        int v = Registry.Publish(scratch.Passed()).Version;
        string path = Path.Combine(scratch.VersionFolder(v), "manifest.json");
        string text = File.ReadAllText(path);
        Assert.Contains("12.5", text, StringComparison.Ordinal);
        File.WriteAllText(path, text.Replace("12.5", "2.5", StringComparison.Ordinal));

        var ex = Assert.Throws<RegistryVerificationException>(() => Registry.Verify(RegistryScratch.Model, v));
        Assert.Contains("manifest.json was modified after it was written", ex.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("{")]
    [InlineData("[]")]
    [InlineData("{\"format\": 2, \"sha256\": \"x\", \"manifest\": {}}")]
    public void UnreadableManifest_IsRefused(string content)
    {
        int v = Registry.Publish(scratch.Passed()).Version;
        File.WriteAllText(Path.Combine(scratch.VersionFolder(v), "manifest.json"), content);

        Assert.False(Registry.TryVerify(RegistryScratch.Model, v, out _, out var problem));
        Assert.Contains("manifest.json", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void MutatedManifests_AreRefused_NeverACrash()
    {
        int v = Registry.Publish(scratch.Passed()).Version;
        byte[] valid = File.ReadAllBytes(Path.Combine(scratch.VersionFolder(v), "manifest.json"));
        Assert.NotNull(ManifestCodec.Decode(valid, out var originalSha, out _));
        var random = new Random(7);
        int refused = 0;
        for (int i = 0; i < 3000; i++)
        {
            byte[] bytes = valid[..random.Next(valid.Length + 1)];
            for (int k = random.Next(1, 4); k > 0 && bytes.Length > 0; k--)
            {
                bytes[random.Next(bytes.Length)] ^= (byte)random.Next(1, 256);
            }

            var manifest = ManifestCodec.Decode(bytes, out var sha, out var problem);
            if (manifest is null)
            {
                Assert.NotNull(problem);
                refused++;
            }
            else
            {
                // Only a change outside the hashed content (say, envelope whitespace) may be accepted.
                Assert.Equal(originalSha, sha);
            }
        }

        Assert.True(refused > 2900, $"{refused} of 3000 refused");
    }

    [Fact]
    public void MissingManifest_IsRefused_AsUnfinished()
    {
        int v = Registry.Publish(scratch.Passed()).Version;
        File.Delete(Path.Combine(scratch.VersionFolder(v), "manifest.json"));

        Assert.False(Registry.TryVerify(RegistryScratch.Model, v, out _, out var problem));
        Assert.StartsWith("no manifest.json", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void VersionFolderCopiedUnderAnotherNumber_IsRefused()
    {
        int v = Registry.Publish(scratch.Passed()).Version;
        string copy = scratch.VersionFolder(9);
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.GetFiles(scratch.VersionFolder(v)))
        {
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        }

        Assert.False(Registry.TryVerify(RegistryScratch.Model, 9, out _, out var problem));
        Assert.Equal("the manifest names version 1, but the folder is 9", problem);
    }

    [Fact]
    public void HandCraftedManifest_ListingAPathOutsideTheFolder_IsRefused()
    {
        int v = Registry.Publish(scratch.Passed()).Version;
        var manifest = Registry.Verify(RegistryScratch.Model, v).Manifest;
        var evil = manifest with { Files = [.. manifest.Files, new ManifestFile("../aliases.json", 10, new string('0', 64))] };
        File.WriteAllBytes(Path.Combine(scratch.VersionFolder(v), "manifest.json"), ManifestCodec.Encode(evil, out _));

        Assert.False(Registry.TryVerify(RegistryScratch.Model, v, out _, out var problem));
        Assert.Contains("'../aliases.json', which is not a plain file name", problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../x.bin", "points outside the version folder")]
    [InlineData("../../../etc/passwd", "points outside the version folder")]
    [InlineData("/etc/passwd", "absolute path '/etc/passwd'")]
    [InlineData("sub/x.bin", "not a plain file name")]
    [InlineData("x.bin", "which the manifest does not list")]
    [InlineData("", "names no location")]
    public void ExternalData_OutsideOrUnlisted_IsRefusedAtPublish(string location, string problem)
    {
        var request = scratch.Passed(model: TestOnnx.Model(externalLocation: location));

        var ex = Assert.Throws<RegistryException>(() => Registry.Publish(request));
        Assert.Contains(problem, ex.Message, StringComparison.Ordinal);
        Assert.Contains("tensor 'ext' in model.onnx", ex.Message, StringComparison.Ordinal);
        Assert.Empty(Registry.List(RegistryScratch.Model).Versions); // nothing was written
        Assert.Empty(Directory.GetFileSystemEntries(scratch.ModelFolder, ".tmp-*"));
    }

    [Theory]
    [InlineData(ExternalPlace.Initializer)]
    [InlineData(ExternalPlace.NodeAttribute)]
    [InlineData(ExternalPlace.Subgraph)]
    [InlineData(ExternalPlace.SparseInitializer)]
    public void ExternalData_IsFoundWhereverTheTensorHides(ExternalPlace place)
    {
        var escaping = scratch.Passed(model: TestOnnx.Model(externalLocation: "../../etc/passwd", place: place));
        var ex = Assert.Throws<RegistryException>(() => Registry.Publish(escaping));
        Assert.Contains("points outside the version folder", ex.Message, StringComparison.Ordinal);

        // The same model with its data inside the folder, and listed, is fine.
        var inside = scratch.Passed() with
        {
            Files = scratch.Files(("model.onnx", TestOnnx.Model(externalLocation: "weights.bin", place: place)), ("weights.bin", new byte[16])),
        };
        var published = Registry.Publish(inside);
        Assert.NotEmpty(published.Manifest.ExternalData); // the test's If node shares one branch graph: two references
        Assert.All(published.Manifest.ExternalData, r => Assert.Equal(new ExternalDataReference("model.onnx", "ext", "weights.bin"), r));
        Assert.True(Registry.TryVerify(RegistryScratch.Model, published.Version, out _, out var problem), problem);
    }

    [Fact]
    public void ExternalData_LocationWithoutTheExternalFlag_IsStillChecked()
    {
        var request = scratch.Passed(model: TestOnnx.Model(externalLocation: "/etc/shadow", markExternal: false));
        var ex = Assert.Throws<RegistryException>(() => Registry.Publish(request));
        Assert.Contains("absolute path", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ExternalData_RangeBeyondTheFile_IsRefused()
    {
        var request = scratch.Passed() with
        {
            Files = scratch.Files(("model.onnx", TestOnnx.Model(externalLocation: "weights.bin", externalOffset: 8, externalLength: 16)), ("weights.bin", new byte[16])),
        };

        var ex = Assert.Throws<RegistryException>(() => Registry.Publish(request));
        Assert.Contains("reads bytes 8..24 of 'weights.bin', which has only 16 bytes", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ExternalFile_TamperedAfterPublish_IsRefused()
    {
        var request = scratch.Passed() with
        {
            Files = scratch.Files(("model.onnx", TestOnnx.Model(externalLocation: "weights.bin")), ("weights.bin", new byte[16])),
        };
        int v = Registry.Publish(request).Version;
        File.WriteAllBytes(Path.Combine(scratch.VersionFolder(v), "weights.bin"), Enumerable.Repeat((byte)1, 16).ToArray());

        Assert.False(Registry.TryVerify(RegistryScratch.Model, v, out _, out var problem));
        Assert.StartsWith("weights.bin does not match its sha256", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void HandCraftedFolder_WhoseOnnxPointsOutside_IsRefusedByVerify()
    {
        // Not via Publish (which refuses it) but a folder built by hand with a consistent manifest.
        int v = Registry.Publish(scratch.Passed()).Version;
        string folder = scratch.VersionFolder(v);
        var manifest = Registry.Verify(RegistryScratch.Model, v).Manifest;
        byte[] evil = TestOnnx.Model(externalLocation: "../../../etc/passwd");
        File.WriteAllBytes(Path.Combine(folder, "model.onnx"), evil);
        var forged = manifest with
        {
            Files = [new ManifestFile("model.onnx", evil.Length, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(evil)))],
        };
        File.WriteAllBytes(Path.Combine(folder, "manifest.json"), ManifestCodec.Encode(forged, out _));

        var ex = Assert.Throws<RegistryVerificationException>(() => Registry.Verify(RegistryScratch.Model, v));
        Assert.Equal("tensor 'ext' in model.onnx has its external data at '../../../etc/passwd', which points outside the version folder", ex.Reason);
    }

    [Fact]
    public void NotAnOnnxFile_IsRefusedAtPublish()
    {
        var request = scratch.Passed(model: Encoding.UTF8.GetBytes("this is not protobuf at all, just text"));
        var ex = Assert.Throws<RegistryException>(() => Registry.Publish(request));
        Assert.Contains("model.onnx is not a readable ONNX model", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RejectedCandidate_IsListedWithItsReport_ButNeverServableOrPromotable()
    {
        Registry.Publish(scratch.Passed(PublishAlias.Champion));
        var rejected = Registry.Publish(scratch.Rejected(seed: 2));

        Assert.Equal(2, rejected.Version);
        Assert.Null(rejected.Verified);
        Assert.Equal(Path.Combine(scratch.ModelFolder, "rejected", "2"), rejected.Directory);
        Assert.False(Directory.Exists(scratch.VersionFolder(2)));

        var listed = Registry.List(RegistryScratch.Model).Versions.Single(x => x.Version == 2);
        Assert.Equal(VersionLocation.Rejected, listed.Location);
        Assert.True(listed.Verified, listed.Problem); // intact, but...
        Assert.False(listed.Servable);                // ...never servable
        Assert.Equal("fail", listed.Manifest!.GateReport!["checks"]![0]!["verdict"]!.GetValue<string>());

        var ex = Assert.Throws<RegistryVerificationException>(() => Registry.Verify(RegistryScratch.Model, 2));
        Assert.Contains("rejected by the gate", ex.Reason, StringComparison.Ordinal);
        var promote = Assert.Throws<RegistryException>(() => Registry.Promote(RegistryScratch.Model, 2, "try anyway"));
        Assert.Contains("rejected by the gate", promote.Message, StringComparison.Ordinal);
        Assert.Equal(1, Registry.ResolveServable(RegistryScratch.Model).Version);
    }

    [Fact]
    public void RejectedManifestMovedIntoTheServableLocation_IsRefused()
    {
        var rejected = Registry.Publish(scratch.Rejected());
        Directory.Move(rejected.Directory, scratch.VersionFolder(rejected.Version));

        Assert.False(Registry.TryVerify(RegistryScratch.Model, rejected.Version, out _, out var problem));
        Assert.Contains("rejected candidates are never servable", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void ResolveServable_RefusesABrokenChampion_WithAReason_AndOffersNoOtherVersion()
    {
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 1));
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 2));
        File.AppendAllText(Path.Combine(scratch.VersionFolder(2), "model.onnx"), "x");

        var resolution = Registry.ResolveServable(RegistryScratch.Model);

        Assert.False(resolution.IsServable);
        Assert.Equal(2, resolution.Version);
        Assert.Null(resolution.Verified);
        Assert.Contains("champion v2 of fashion-mnist is refused: model.onnx has", resolution.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Resolve_WithoutModelOrChampion_SaysSo()
    {
        Assert.Contains("no model 'fashion-mnist'", Registry.ResolveServable(RegistryScratch.Model).Problem, StringComparison.Ordinal);
        Registry.Publish(scratch.Passed());
        Assert.Equal("fashion-mnist has no champion yet", Registry.ResolveServable(RegistryScratch.Model).Problem);
    }

    [Fact]
    public void Recover_RemovesLeftovers_AndReportsUnverifiedFolders_WhichAreNeverServed()
    {
        Registry.Publish(scratch.Passed(PublishAlias.Champion));
        // What a crash can leave: a temp folder mid-publish, a trash folder mid-delete, an aliases temp file.
        Directory.CreateDirectory(Path.Combine(scratch.ModelFolder, ".tmp-publish-abc"));
        File.WriteAllText(Path.Combine(scratch.ModelFolder, ".tmp-publish-abc", "model.onnx"), "half");
        Directory.CreateDirectory(Path.Combine(scratch.ModelFolder, ".trash-1-def"));
        File.WriteAllText(Path.Combine(scratch.ModelFolder, ".tmp-aliases.json-123"), "{");
        // And what a person can leave: a numbered folder without a manifest.
        Directory.CreateDirectory(scratch.VersionFolder(7));
        File.WriteAllBytes(Path.Combine(scratch.VersionFolder(7), "model.onnx"), TestOnnx.Model());

        var report = Registry.Recover(RegistryScratch.Model);

        Assert.Equal(3, report.RemovedLeftovers.Count);
        Assert.Empty(Directory.GetFileSystemEntries(scratch.ModelFolder, ".tmp-*"));
        Assert.Empty(Directory.GetFileSystemEntries(scratch.ModelFolder, ".trash-*"));
        var unverified = Assert.Single(report.Unverified);
        Assert.Equal(7, unverified.Version);
        Assert.StartsWith("no manifest.json", unverified.Problem, StringComparison.Ordinal);
        Assert.False(Registry.TryVerify(RegistryScratch.Model, 7, out _, out _));
        // Its number is taken: the next version is 8, and the unverified folder is left for an operator.
        Assert.Equal(8, Registry.Publish(scratch.Passed(seed: 8)).Version);
        Assert.True(Directory.Exists(scratch.VersionFolder(7)));
    }

    [Fact]
    public void Recover_RewritesTheConfiguration_WhenACrashCameBetweenAliasesAndConfig()
    {
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 1));
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 2));
        string config = Path.Combine(scratch.ModelFolder, "config.pbtxt");
        File.WriteAllText(config, File.ReadAllText(config).Replace("versions: [ 2 ]", "versions: [ 1 ]", StringComparison.Ordinal));

        Assert.True(Registry.Recover(RegistryScratch.Model).ConfigRewritten);
        Assert.Contains("versions: [ 2 ]", File.ReadAllText(config), StringComparison.Ordinal);
        Assert.False(Registry.Recover(RegistryScratch.Model).ConfigRewritten);
    }

    [Fact]
    public void NoReplaceRename_NeverOverwritesAnExistingVersion()
    {
        string a = Path.Combine(scratch.Directory, "a"), b = Path.Combine(scratch.Directory, "b"), c = Path.Combine(scratch.Directory, "c");
        Directory.CreateDirectory(a);
        File.WriteAllText(Path.Combine(a, "f"), "new");
        Directory.CreateDirectory(b);
        File.WriteAllText(Path.Combine(b, "f"), "old");
        Directory.CreateDirectory(c); // empty: plain rename(2) would replace it silently

        Assert.False(DurableFiles.TryRenameNoReplace(a, b));
        Assert.Equal("old", File.ReadAllText(Path.Combine(b, "f")));
        Assert.False(DurableFiles.TryRenameNoReplace(a, c));
        Assert.Empty(Directory.GetFileSystemEntries(c));
        Assert.True(DurableFiles.TryRenameNoReplace(a, Path.Combine(scratch.Directory, "d")));
        Assert.Equal("new", File.ReadAllText(Path.Combine(scratch.Directory, "d", "f")));
    }

    [Theory]
    [InlineData("Fashion")]
    [InlineData("../x")]
    [InlineData("")]
    public void BadModelNames_AreRejected(string model)
    {
        Assert.Throws<ArgumentException>(() => Registry.Publish(scratch.Passed() with { Model = model }));
    }

    [Theory]
    [InlineData("../model.onnx")]
    [InlineData("manifest.json")]
    [InlineData(".hidden")]
    [InlineData("a/b")]
    public void BadFileNames_AreRejected(string name)
    {
        var request = scratch.Passed() with { Files = scratch.Files(("model.onnx", TestOnnx.Model())) };
        var files = new Dictionary<string, string>(request.Files) { [name] = request.Files["model.onnx"] };
        Assert.Throws<ArgumentException>(() => Registry.Publish(request with { Files = files }));
    }

    [Fact]
    public void PassedCandidate_WithoutModelOnnx_IsRejected()
    {
        var request = scratch.Passed() with { Files = scratch.Files(("encoder.onnx", TestOnnx.Model())) };
        var ex = Assert.Throws<ArgumentException>(() => Registry.Publish(request));
        Assert.Contains("model.onnx", ex.Message, StringComparison.Ordinal);
    }
}
