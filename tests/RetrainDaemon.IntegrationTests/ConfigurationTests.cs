using RetrainDaemon.Tests.Shared;

namespace RetrainDaemon.IntegrationTests;

/// <summary>Start-up with a bad configuration fails fast and lists every problem with key and value.</summary>
public sealed class ConfigurationTests
{
    [Fact]
    public async Task BadConfiguration_FailsStartup_ListingEveryProblem()
    {
        var settings = new Dictionary<string, string>
        {
            ["Broker:Endpoints:0"] = "localhost:99999",
            ["Broker:Password"] = "do-not-print-me",
            ["Ingest:Prefetch"] = "0",
            ["Ingest:DeliveryLimit"] = "-3",
            ["Store:Synchronous"] = "sometimes",
            ["Http:Urls"] = "ftp://127.0.0.1:1",
            ["Models:fashion-mnist:Image:Channels"] = "2",
            ["Models:fortunes:Modality"] = "video",
        };
        await using var daemon = DaemonProcess.StartRaw("run", settings, 0);
        int exit = await daemon.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(2, exit);
        string text = daemon.Output;
        // 8 set above, plus two that follow from the 2-channel image: the DCGAN trains on 28x28 grayscale,
        // and the VAE that shares the fashion-mnist dataset no longer has the same image shape.
        Assert.Contains("the configuration is invalid (10 problems)", text, StringComparison.Ordinal);
        Assert.Contains("Models:fashion-mnist:Image = '28x28x2'", text, StringComparison.Ordinal);
        Assert.Contains("Models:fashion-vae:Dataset = 'fashion-mnist'", text, StringComparison.Ordinal);
        Assert.Contains("Broker:Endpoints:0 = 'localhost:99999'", text, StringComparison.Ordinal);
        Assert.Contains("Ingest:Prefetch = '0'", text, StringComparison.Ordinal);
        Assert.Contains("Ingest:DeliveryLimit = '-3'", text, StringComparison.Ordinal);
        Assert.Contains("Store:Synchronous = 'sometimes'", text, StringComparison.Ordinal);
        Assert.Contains("Http:Urls = 'ftp://127.0.0.1:1'", text, StringComparison.Ordinal);
        Assert.Contains("Models:fashion-mnist:Image:Channels = '2'", text, StringComparison.Ordinal);
        Assert.Contains("Models:fortunes:Modality = 'video'", text, StringComparison.Ordinal);
        Assert.DoesNotContain("do-not-print-me", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Hosting failed to start", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BadModelConfiguration_UnknownFamilyDatasetMetricAndSchedule_AreListedTogether()
    {
        var settings = new Dictionary<string, string>
        {
            ["Models:fortunes:Family"] = "gan",
            ["Models:fashion-vae:Dataset"] = "mnist-digits",
            ["Models:en-de:Gate:Checks:0:Metric"] = "blue",
            ["Models:fashion-mnist:Schedule"] = "every day at 3",
            ["Models:fashion-mnist:Triggers:MinNewSamples"] = "0",
            ["Loop:CheckInterval"] = "00:00:00.100",
        };
        await using var daemon = DaemonProcess.StartRaw("run", settings, 0);
        Assert.Equal(2, await daemon.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        string text = daemon.Output;
        Assert.Contains("the configuration is invalid (6 problems)", text, StringComparison.Ordinal);
        Assert.Contains("Models:fortunes:Family = 'gan': unknown family (known: dcgan, vae, gpt)", text, StringComparison.Ordinal);
        Assert.Contains("Models:fashion-vae:Dataset = 'mnist-digits': unknown dataset", text, StringComparison.Ordinal);
        Assert.Contains("Models:en-de:Gate:Checks:0:Metric = 'blue'", text, StringComparison.Ordinal);
        Assert.Contains("Models:fashion-mnist:Schedule = 'every day at 3': not a Quartz cron expression", text, StringComparison.Ordinal);
        Assert.Contains("Models:fashion-mnist:Triggers:MinNewSamples = '0'", text, StringComparison.Ordinal);
        Assert.Contains("Loop:CheckInterval = '00:00:00.1000000'", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnreadableValue_IsReported_WithItsKey()
    {
        await using var daemon = DaemonProcess.StartRaw("run", new Dictionary<string, string> { ["Ingest:Prefetch"] = "lots", ["Store:Synchronous"] = "never" }, 0);
        Assert.Equal(2, await daemon.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("Ingest:Prefetch", daemon.Output, StringComparison.Ordinal);
        Assert.Contains("'lots'", daemon.Output, StringComparison.Ordinal);
        Assert.Contains("Store:Synchronous = 'never'", daemon.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownNodeRole_FailsStartup_NamingIt()
    {
        await using var daemon = DaemonProcess.StartRaw("run", new Dictionary<string, string> { ["Node:Roles"] = "ingest,trian" }, 0);
        Assert.Equal(2, await daemon.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("Node:Roles = 'ingest,trian': unknown role 'trian' (roles: ingest, train, serve)", daemon.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_IsAvailableOnEveryVerb()
    {
        foreach (var verb in new[] { "--help", "run --help", "publish --help", "publish fashion-mnist --help", "publish fortunes --help", "publish gettext --help", "publish feedback --help", "samples stats --help" })
        {
            await using var process = DaemonProcess.StartRaw(verb, new Dictionary<string, string>(), 0);
            Assert.Equal(0, await process.WaitForExitAsync(TimeSpan.FromSeconds(30)));
            Assert.Contains("Usage:", process.Output, StringComparison.Ordinal);
        }
    }
}
