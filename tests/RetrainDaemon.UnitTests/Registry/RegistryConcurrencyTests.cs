using RetrainDaemon.Core.Registry;

namespace RetrainDaemon.UnitTests.Registry;

public sealed class RegistryConcurrencyTests : IDisposable
{
    private readonly RegistryScratch scratch = new(keepLast: 100);

    public void Dispose() => scratch.Dispose();

    [Fact]
    public async Task FourThreads_PublishingTheSameModel_GetDistinctNumbers_AllVerify_AliasesValid()
    {
        const int threads = 4, each = 10;
        // Separate registry instances, as separate processes would have: the lock file is what serializes them.
        var requests = Enumerable.Range(0, threads)
            .Select(t => Enumerable.Range(0, each).Select(i => scratch.Passed(i % 3 == 0 ? PublishAlias.Champion : PublishAlias.None, seed: (t * 100) + i)).ToList())
            .ToList();
        var results = await Task.WhenAll(Enumerable.Range(0, threads).Select(t => Task.Run(() =>
        {
            var registry = new ModelRegistry(scratch.Registry.Root, keepLast: 100);
            return requests[t].Select(r => registry.Publish(r)).ToList();
        })));

        var numbers = results.SelectMany(r => r.Select(p => p.Version)).ToList();
        Assert.Equal(threads * each, numbers.Distinct().Count());
        Assert.Equal(Enumerable.Range(1, threads * each), numbers.Order());
        foreach (var list in results)
        {
            // Each writer sees its own numbers increase.
            Assert.Equal(list.Select(p => p.Version).Order(), list.Select(p => p.Version));
        }

        var listing = scratch.Registry.List(RegistryScratch.Model);
        Assert.All(listing.Versions, v => Assert.True(v.Verified, v.Problem));
        var aliases = listing.Aliases!;
        Assert.True(scratch.Registry.TryVerify(RegistryScratch.Model, aliases.Champion!.Value, out _, out var problem), problem);
        Assert.True(scratch.Registry.TryVerify(RegistryScratch.Model, aliases.Previous!.Value, out _, out problem), problem);
        Assert.Equal(threads * 4, aliases.History.Count); // i = 0, 3, 6, 9 promote in every thread
        Assert.Empty(Directory.GetFileSystemEntries(scratch.ModelFolder, ".tmp-*"));
        Assert.Contains($"versions: [ {aliases.Champion} ]", File.ReadAllText(Path.Combine(scratch.ModelFolder, "config.pbtxt")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReadersDuringPublishing_NeverSeeAnUnverifiedVersionOrTornAliases()
    {
        scratch.Registry.Publish(scratch.Passed(PublishAlias.Champion, seed: 0));
        var requests = Enumerable.Range(1, 20).Select(i => scratch.Passed(PublishAlias.Champion, model: TestOnnx.Model(payloadBytes: 256 * 1024, seed: i))).ToList();
        using var done = new CancellationTokenSource();
        var writer = Task.Run(() =>
        {
            var registry = new ModelRegistry(scratch.Registry.Root, keepLast: 2);
            foreach (var request in requests)
            {
                registry.Publish(request);
            }

            done.Cancel();
        });

        int reads = 0;
        var failures = new List<string>();
        while (!done.IsCancellationRequested)
        {
            var resolution = scratch.Registry.ResolveServable(RegistryScratch.Model);
            reads++;
            if (!resolution.IsServable)
            {
                // Allowed only when retention deleted the version between reading aliases and verifying it.
                var now = scratch.Registry.ReadAliases(RegistryScratch.Model)!;
                if (now.Champion == resolution.Version)
                {
                    failures.Add(resolution.Problem!);
                }
            }
        }

        await writer;
        Assert.Empty(failures);
        Assert.True(reads > 0);
    }
}
