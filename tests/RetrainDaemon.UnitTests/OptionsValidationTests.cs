using RetrainDaemon.Core.Options;

namespace RetrainDaemon.UnitTests;

public class OptionsValidationTests
{
    [Fact]
    public void Defaults_AreValid()
    {
        Assert.True(new IngestOptionsValidator().Validate(null, new IngestOptions()).Succeeded);
        Assert.True(new StoreOptionsValidator().Validate(null, new StoreOptions()).Succeeded);
        Assert.True(new HttpOptionsValidator().Validate(null, new HttpOptions()).Succeeded);
        Assert.True(new BrokerOptionsValidator().Validate(null, new BrokerOptions { Endpoints = ["localhost:5672"] }).Succeeded);
    }

    [Fact]
    public void Ingest_ReportsEveryProblem_WithKeyAndValue()
    {
        var options = new IngestOptions
        {
            Prefetch = 0,
            DeliveryLimit = 0,
            MaxMessageBytes = 64 * 1024 * 1024,
            BatchSize = 20_000,
            StoreRetryInitial = TimeSpan.Zero,
            StoreRetryMax = TimeSpan.FromSeconds(-1),
            BatchDelay = TimeSpan.FromSeconds(5),
        };

        var failures = new IngestOptionsValidator().Validate(null, options).Failures!.ToList();

        Assert.Contains(failures, f => f.StartsWith("Ingest:Prefetch = '0'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Ingest:DeliveryLimit = '0'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Ingest:MaxMessageBytes = '67108864'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Ingest:BatchSize = '20000'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Ingest:StoreRetryInitial = '00:00:00'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Ingest:StoreRetryMax = '-00:00:01'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Ingest:BatchDelay = '00:00:05'", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("", "at least one")]
    [InlineData("host-without-port:", "expected host:port")]
    [InlineData("h:70000", "expected host:port")]
    public void Broker_RejectsBadEndpoints(string endpoint, string problem)
    {
        var options = new BrokerOptions { Endpoints = endpoint.Length == 0 ? [] : [endpoint] };
        var failures = new BrokerOptionsValidator().Validate(null, options).Failures!;
        Assert.Contains(failures, f => f.Contains(problem, StringComparison.Ordinal));
    }

    [Fact]
    public void Broker_NeverPrintsThePassword()
    {
        var options = new BrokerOptions { Endpoints = ["x:1"], Password = "s3cret-value", PasswordFile = "/nonexistent/password" };
        var failures = new BrokerOptionsValidator().Validate(null, options).Failures!;
        Assert.DoesNotContain(failures, f => f.Contains("s3cret-value", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("Broker:PasswordFile", StringComparison.Ordinal));
    }

    [Fact]
    public void Models_ReportsEveryBadModel()
    {
        var catalog = new ModelCatalogOptions();
        catalog.Models["Bad Name"] = new ModelOptions { Modality = "image" };
        catalog.Models["vid"] = new ModelOptions { Modality = "video" };
        catalog.Models["img"] = new ModelOptions { Modality = "image", HoldoutFraction = 1.5, Image = new ImageShapeOptions { Channels = 2, Width = 0, OnMismatch = "stretch" } };
        catalog.Models["txt"] = new ModelOptions { Modality = "text", Text = new TextLimitOptions { MaxChars = 0 } };

        var failures = new ModelCatalogOptionsValidator().Validate(null, catalog).Failures!.ToList();

        Assert.Contains(failures, f => f.StartsWith("Models:Bad Name = 'Bad Name'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Models:vid:Modality = 'video'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Models:img:HoldoutFraction = '1.5'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Models:img:Image:Channels = '2'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Models:img:Image:Width = '0'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Models:img:Image:OnMismatch = 'stretch'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Models:txt:Text:MaxChars = '0'", StringComparison.Ordinal));
    }

    [Fact]
    public void Models_EmptyCatalog_IsRefused()
    {
        Assert.True(new ModelCatalogOptionsValidator().Validate(null, new ModelCatalogOptions()).Failed);
    }
}
