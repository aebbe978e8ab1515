using System.Text.Json;
using RetrainDaemon.Core.Registry;

namespace RetrainDaemon.UnitTests.Registry;

public sealed class RegistryAliasTests : IDisposable
{
    private readonly RegistryScratch scratch = new(keepLast: 2);

    private ModelRegistry Registry => scratch.Registry;

    private string Model => RegistryScratch.Model;

    public void Dispose() => scratch.Dispose();

    [Fact]
    public void PublishAsChampion_MovesChampion_AndTheOldOneBecomesPrevious()
    {
        var first = Registry.Publish(scratch.Passed(PublishAlias.Champion, reason: "first model", seed: 1));
        Assert.Equal((1, (int?)null), (first.Aliases.Champion!.Value, first.Aliases.Previous));

        var second = Registry.Publish(scratch.Passed(PublishAlias.Champion, reason: "better fid", seed: 2));

        Assert.Equal(2, second.Aliases.Champion);
        Assert.Equal(1, second.Aliases.Previous);
        var change = second.Aliases.History[^1];
        Assert.Equal((AliasActions.Promote, AliasNames.Champion, (int?)1, (int?)2, "better fid"), (change.Action, change.Alias, change.From, change.To, change.Reason));
        var onDisk = Registry.ReadAliases(Model)!;
        Assert.Equal((2, 1, 2), (onDisk.Champion!.Value, onDisk.Previous!.Value, onDisk.History.Count));
    }

    [Fact]
    public void PublishWithoutAlias_LeavesTheChampionAlone()
    {
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 1));
        var plain = Registry.Publish(scratch.Passed(seed: 2));

        Assert.Equal(1, plain.Aliases.Champion);
        Assert.Equal(1, Registry.ResolveServable(Model).Version);
    }

    [Fact]
    public void Promote_OnlyPassedVerifyingVersions_WithClearErrors()
    {
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 1));
        Registry.Publish(scratch.Passed(seed: 2));
        Registry.Publish(scratch.Rejected(seed: 3));

        Assert.Contains("does not exist", Assert.Throws<RegistryException>(() => Registry.Promote(Model, 42, "why not")).Message, StringComparison.Ordinal);
        Assert.Contains("already the champion", Assert.Throws<RegistryException>(() => Registry.Promote(Model, 1, "again")).Message, StringComparison.Ordinal);
        Assert.Contains("rejected by the gate", Assert.Throws<RegistryException>(() => Registry.Promote(Model, 3, "override")).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => Registry.Promote(Model, 2, " "));

        File.WriteAllText(Path.Combine(scratch.VersionFolder(2), "extra.txt"), "x");
        var broken = Assert.Throws<RegistryException>(() => Registry.Promote(Model, 2, "looks fine"));
        Assert.Contains("cannot promote fashion-mnist v2: unlisted file 'extra.txt'", broken.Message, StringComparison.Ordinal);
        File.Delete(Path.Combine(scratch.VersionFolder(2), "extra.txt"));

        var aliases = Registry.Promote(Model, 2, "canary looked good");
        Assert.Equal((2, 1), (aliases.Champion!.Value, aliases.Previous!.Value));
        Assert.Contains("versions: [ 2 ]", File.ReadAllText(Path.Combine(scratch.ModelFolder, "config.pbtxt")), StringComparison.Ordinal);
    }

    [Fact]
    public void Rollback_ReturnsToPrevious_RecordsTheReason_AndCannotBeRepeated()
    {
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 1));
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 2));

        var aliases = Registry.Rollback(Model, "v2 produces blank images (incident 17)");

        Assert.Equal(1, aliases.Champion);
        Assert.Null(aliases.Previous);
        var change = aliases.History[^1];
        Assert.Equal((AliasActions.Rollback, (int?)2, (int?)1, "v2 produces blank images (incident 17)"), (change.Action, change.From, change.To, change.Reason));
        Assert.Contains("versions: [ 1 ]", File.ReadAllText(Path.Combine(scratch.ModelFolder, "config.pbtxt")), StringComparison.Ordinal);
        Assert.Equal(1, Registry.ResolveServable(Model).Version);

        var again = Assert.Throws<RegistryException>(() => Registry.Rollback(Model, "once more"));
        Assert.Contains("there is no previous version", again.Message, StringComparison.Ordinal);
        // The history survives on disk, reasons included.
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(scratch.ModelFolder, "aliases.json")));
        Assert.Contains(json.RootElement.GetProperty("history").EnumerateArray(), e => e.GetProperty("reason").GetString() == "v2 produces blank images (incident 17)");
    }

    [Fact]
    public void Rollback_FailsClearly_WithoutChampion_OrWhenPreviousDoesNotVerify()
    {
        Assert.Contains("no model", Assert.Throws<RegistryException>(() => Registry.Rollback(Model, "r")).Message, StringComparison.Ordinal);
        Registry.Publish(scratch.Passed(seed: 1));
        Assert.Contains("it has no champion", Assert.Throws<RegistryException>(() => Registry.Rollback(Model, "r")).Message, StringComparison.Ordinal);

        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 2));
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 3));
        File.Delete(Path.Combine(scratch.VersionFolder(2), "model.onnx"));

        var ex = Assert.Throws<RegistryException>(() => Registry.Rollback(Model, "bad v3"));
        Assert.Equal("cannot roll back fashion-mnist to previous v2: model.onnx is missing", ex.Message);
        Assert.Equal(3, Registry.ReadAliases(Model)!.Champion); // unchanged
    }

    [Fact]
    public void Challenger_CanBeSetAndCleared_AndIsPromotedAway()
    {
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 1));
        var published = Registry.Publish(scratch.Passed(PublishAlias.Challenger, reason: "shadow traffic", seed: 2));
        Assert.Equal(2, published.Aliases.Challenger);
        Assert.Equal(2, Registry.Resolve(Model, AliasNames.Challenger).Version);
        Assert.Contains("is the champion", Assert.Throws<RegistryException>(() => Registry.SetChallenger(Model, 1, "x")).Message, StringComparison.Ordinal);

        var promoted = Registry.Promote(Model, 2, "won the A/B test");
        Assert.Null(promoted.Challenger);

        Registry.Publish(scratch.Passed(seed: 3));
        Assert.Equal(3, Registry.SetChallenger(Model, 3, "next candidate").Challenger);
        var cleared = Registry.SetChallenger(Model, null, "experiment over");
        Assert.Null(cleared.Challenger);
        Assert.Equal(AliasActions.ClearChallenger, cleared.History[^1].Action);
    }

    [Fact]
    public void Retention_KeepsAliasedAndTheLastN_DeletesTheRest_AndNeverReusesTheirNumbers()
    {
        // keepLast = 2. v1 champion → v2 champion (v1 previous) → v3..v6 plain → challenger v4.
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 1));
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 2));
        Registry.Publish(scratch.Passed(seed: 3));
        Registry.Publish(scratch.Passed(seed: 4));
        Registry.SetChallenger(Model, 4, "shadow");
        Registry.Publish(scratch.Passed(seed: 5));
        var last = Registry.Publish(scratch.Passed(seed: 6));
        Registry.Publish(scratch.Rejected(seed: 7));
        Registry.Publish(scratch.Rejected(seed: 8));
        var rejectedLast = Registry.Publish(scratch.Rejected(seed: 9));

        Assert.Equal([1, 2, 4, 5, 6], last.Retention.Kept);
        Assert.False(Directory.Exists(scratch.VersionFolder(3))); // deleted when v5 arrived
        Assert.Equal([6, 5, 4, 2, 1], Registry.List(Model).Versions.Where(v => v.Location == VersionLocation.Servable).Select(v => v.Version));
        Assert.Equal([7], rejectedLast.Retention.DeletedRejected);
        Assert.Equal([9, 8], Registry.List(Model).Versions.Where(v => v.Location == VersionLocation.Rejected).Select(v => v.Version));
        Assert.All(Registry.List(Model).Versions, v => Assert.True(v.Verified, v.Problem));
        Assert.Empty(Directory.GetFileSystemEntries(scratch.ModelFolder, ".trash-*"));
        Assert.Equal(10, Registry.Publish(scratch.Passed(seed: 10)).Version);
    }

    [Fact]
    public void ConfigPbtxt_DescribesTheChampion_ForTritonsOnnxRuntimeBackend()
    {
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 1));
        Registry.Publish(scratch.Passed(seed: 2));
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 3));

        string config = File.ReadAllText(Path.Combine(scratch.ModelFolder, "config.pbtxt"));

        Assert.Contains("name: \"fashion-mnist\"\n", config, StringComparison.Ordinal);
        Assert.Contains("backend: \"onnxruntime\"\n", config, StringComparison.Ordinal);
        Assert.Contains("platform: \"onnxruntime_onnx\"\n", config, StringComparison.Ordinal);
        Assert.Contains("max_batch_size: 8\n", config, StringComparison.Ordinal);
        Assert.Contains("input [\n  {\n    name: \"z\"\n    data_type: TYPE_FP32\n    dims: [ 4 ]\n  }\n]\n", config, StringComparison.Ordinal);
        Assert.Contains("output [\n  {\n    name: \"y\"\n    data_type: TYPE_FP32\n    dims: [ 4 ]\n  }\n]\n", config, StringComparison.Ordinal);
        Assert.EndsWith("version_policy: { specific: { versions: [ 3 ] } }\n", config, StringComparison.Ordinal);
    }

    [Fact]
    public void ConfigPbtxt_WithoutBatching_WritesWholeShapes()
    {
        var manifest = new VersionManifest
        {
            Model = "en-de",
            Version = 4,
            Status = VersionStatus.Passed,
            CreatedAt = DateTimeOffset.UnixEpoch,
            Inputs = [new TensorSpec("tokens", "int64", [1, -1])],
            Outputs = [new TensorSpec("logits", "float32", [1, -1, 512])],
            MaxBatchSize = 16, // ignored: the first dimensions are fixed
            RunId = "run-1\nmax_batch_size: 999",
        };

        string config = TritonConfig.Render(manifest);

        Assert.Contains("max_batch_size: 0\n", config, StringComparison.Ordinal);
        Assert.Contains("data_type: TYPE_INT64\n    dims: [ 1, -1 ]", config, StringComparison.Ordinal);
        Assert.Contains("dims: [ 1, -1, 512 ]", config, StringComparison.Ordinal);
        Assert.Contains("versions: [ 4 ]", config, StringComparison.Ordinal);
        Assert.DoesNotContain("\nmax_batch_size: 999", config, StringComparison.Ordinal); // free text cannot inject a line
    }

    [Fact]
    public void Aliases_AreNeverTorn_AndHistoryIsBounded()
    {
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 1));
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 2));
        for (int i = 0; i < ModelAliases.HistoryLimit + 5; i++)
        {
            Registry.Rollback(Model, $"rollback {i}");
            Registry.Promote(Model, 2, $"promote {i}");
        }

        var aliases = Registry.ReadAliases(Model)!;
        Assert.Equal(ModelAliases.HistoryLimit, aliases.History.Count);
        Assert.Equal($"promote {ModelAliases.HistoryLimit + 4}", aliases.History[^1].Reason);
        Assert.Empty(Directory.GetFileSystemEntries(scratch.ModelFolder, ".tmp-*"));
    }

    [Fact]
    public void UnreadableAliases_StopAliasChanges_ButResolveExplains()
    {
        Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 1));
        Registry.Publish(scratch.Passed(seed: 2));
        File.WriteAllText(Path.Combine(scratch.ModelFolder, "aliases.json"), "{ \"champion\": ");

        Assert.Contains("aliases.json is unreadable", Registry.ResolveServable(Model).Problem, StringComparison.Ordinal);
        Assert.Contains("aliases.json is unreadable", Assert.Throws<RegistryException>(() => Registry.Promote(Model, 2, "x")).Message, StringComparison.Ordinal);
        Assert.NotNull(Registry.List(Model).AliasesProblem);
    }
}
