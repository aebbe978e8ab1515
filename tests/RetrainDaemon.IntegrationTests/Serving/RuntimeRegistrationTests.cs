using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Serving.Runtime;
using RetrainDaemon.Tests.Shared;

namespace RetrainDaemon.IntegrationTests.Serving;

/// <summary><c>AddServingRuntime</c>: one <see cref="ServedModels"/> behind every interface, validated options, the served names, and retirement on dispose.</summary>
public sealed class RuntimeRegistrationTests : IDisposable
{
    private readonly string root = TestPaths.NewTempDirectory("rd-serving-di");

    public void Dispose() => Directory.Delete(root, recursive: true);

    private ServiceProvider Provider(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddLogging();
        services.AddSingleton(new ModelRegistry(root));
        services.AddOptions<ModelCatalogOptions>().Configure(o => configuration.GetSection(ModelCatalogOptions.Section).Bind(o.Models));
        services.AddServingRuntime();
        services.AddServingRuntime(); // idempotent
        return services.BuildServiceProvider();
    }

    [Fact]
    public void OneInstance_IsTheServedModels_TheNotifier_AndTheHostedService()
    {
        using var provider = Provider(new() { ["Serving:Models:0"] = "fashion", ["Serving:PollInterval"] = "00:00:02" });

        var served = provider.GetRequiredService<ServedModels>();
        Assert.Same(served, provider.GetRequiredService<IServedModels>());
        Assert.Same(served, Assert.Single(provider.GetServices<IModelChangeNotifier>()));
        Assert.Same(served, Assert.Single(provider.GetServices<IHostedService>()));
        Assert.Equal(["fashion"], served.Names);
        Assert.Equal(TimeSpan.FromSeconds(2), provider.GetRequiredService<IOptions<ServingOptions>>().Value.PollInterval);
        Assert.NotNull(provider.GetRequiredService<SessionFactory>());
    }

    [Fact]
    public void WithoutServingModels_EveryImageModelOfTheCatalogIsServed()
    {
        using var provider = Provider(new()
        {
            ["Models:fashion:Modality"] = "image",
            ["Models:shoes:Modality"] = "image",
            ["Models:fortunes:Modality"] = "text",
        });

        Assert.Equal(["fashion", "shoes"], provider.GetRequiredService<IServedModels>().Names);
    }

    [Fact]
    public void Disabled_ServesNothing()
    {
        using var provider = Provider(new() { ["Serving:Enabled"] = "false", ["Models:fashion:Modality"] = "image" });
        Assert.Empty(provider.GetRequiredService<IServedModels>().Names);
    }

    [Fact]
    public void InvalidOptions_AreRefused_NamingTheKeys()
    {
        using var provider = Provider(new() { ["Serving:IntraOpThreads"] = "0", ["Serving:GraphOptimization"] = "max" });
        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<ServingOptions>>().Value);
        Assert.Contains("IntraOpThreads", ex.Message, StringComparison.Ordinal);
        Assert.Contains("GraphOptimization", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HostedLifecycle_ServesThenRetiresOnDispose()
    {
        GeneratorModels.Shared.PublishChampion(new ModelRegistry(root), "fashion", seed: 1);
        var provider = Provider(new() { ["Serving:Models:0"] = "fashion" });
        var served = provider.GetRequiredService<ServedModels>();
        await served.StartAsync(CancellationToken.None);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (served.Status("fashion")?.Ready != true && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.True(served.TryLease("fashion", out var lease, out var reason, out _), reason);
        var version = lease.Version!;
        await served.StopAsync(CancellationToken.None);
        Assert.True(served.Status("fashion")!.Ready); // stopping the loops does not unload: Kestrel may still be draining

        await provider.DisposeAsync();
        Assert.True(version.IsRetired);
        Assert.False(version.IsReleased); // the lease taken before the stop still holds it
        Assert.False(served.TryLease("fashion", out _, out reason, out _));
        Assert.Equal("the server is stopping", reason);
        lease.Dispose();
        Assert.True(version.IsReleased);
    }
}
