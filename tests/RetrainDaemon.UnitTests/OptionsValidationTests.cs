using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Store;

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

    private static List<string> StoreFailures(StoreOptions options) =>
        new StoreOptionsValidator().Validate(null, options).Failures?.ToList() ?? [];

    [Fact]
    public void Store_UnknownProvider_ListsTheAcceptedOnes()
    {
        Assert.Equal(["Store:Provider = 'mysql': unknown provider; accepted: sqlite, postgres"], StoreFailures(new StoreOptions { Provider = "mysql" }));
        Assert.Empty(StoreFailures(new StoreOptions { Provider = "SQLite" }));
        Assert.Empty(StoreFailures(new StoreOptions { Provider = " Postgres ", ConnectionString = "Host=db;Database=retrain;Username=retrain" }));
    }

    [Fact]
    public void Store_Sqlite_StillChecksPathAndSynchronous_PostgresIgnoresThem()
    {
        Assert.Equal(
            ["Store:Path = '': must name a database file", "Store:Synchronous = 'off': must be full, extra or normal"],
            StoreFailures(new StoreOptions { Path = "", Synchronous = "off" }));
        Assert.Empty(StoreFailures(new StoreOptions { Provider = "postgres", Path = "", Synchronous = "off", ConnectionString = "Server=db" }));
    }

    [Fact]
    public void Store_PostgresWithoutConnectionString_SaysWhatToSet()
    {
        Assert.Equal(
            ["Store:ConnectionString = '': Store:Provider is postgres: set Store:ConnectionString (Host=…;Database=…;Username=…) or Store:ConnectionStringFile"],
            StoreFailures(new StoreOptions { Provider = "postgres", ConnectionString = "  " }));
    }

    [Fact]
    public void Store_UnparsableConnectionString_IsRefusedWithoutEchoingIt()
    {
        var unparsable = StoreFailures(new StoreOptions { Provider = "postgres", ConnectionString = "Host=db;Password=s3cret-value;oops" });
        Assert.Equal(
            ["Store:ConnectionString = '***': not a connection string: expected Key=Value pairs separated by ';', e.g. Host=db;Database=retrain;Username=retrain (URLs are not accepted)"],
            unparsable);

        var url = StoreFailures(new StoreOptions { Provider = "postgres", ConnectionString = "postgresql://retrain:s3cret-value@db/retrain" });
        Assert.Single(url);
        Assert.DoesNotContain("s3cret-value", url[0], StringComparison.Ordinal);

        Assert.Equal(
            ["Store:ConnectionString = '***': names no Host: add Host=<server name or address>"],
            StoreFailures(new StoreOptions { Provider = "postgres", ConnectionString = "Database=retrain;Password=s3cret-value" }));
    }

    [Fact]
    public void Store_ConnectionStringFile_WinsAndItsFirstLineIsTheConnectionString()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"rd-store-options-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            var file = Path.Combine(dir, "connection");
            File.WriteAllText(file, "  Host=db;Database=retrain;Password=s3cret-value  \nsecond line is ignored\n");
            var options = new StoreOptions { Provider = "postgres", ConnectionStringFile = file, ConnectionString = "not used; this would not parse" };
            Assert.Empty(StoreFailures(options));
            Assert.Equal("Host=db;Database=retrain;Password=s3cret-value", options.ResolveConnectionString());

            File.WriteAllText(file, "\nHost=db\n");
            Assert.Equal([$"Store:ConnectionStringFile = '{file}': its first line is empty; it must hold the PostgreSQL connection string"], StoreFailures(options));

            File.WriteAllText(file, "Database=retrain;Password=s3cret-value\n");
            Assert.Equal(["Store:ConnectionStringFile = '***': names no Host: add Host=<server name or address>"], StoreFailures(options));

            var missing = Path.Combine(dir, "missing");
            Assert.Equal([$"Store:ConnectionStringFile = '{missing}': file does not exist"], StoreFailures(new StoreOptions { Provider = "postgres", ConnectionStringFile = missing }));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Store_KeywordsNpgsqlDoesNotKnow_AreRefusedByTheDataValidatorWithoutEchoingTheString()
    {
        var options = new StoreOptions { Provider = "postgres", ConnectionString = "Host=db;Password=s3cret-value;Colour=blue" };
        Assert.Empty(StoreFailures(options)); // the shape is fine; only Npgsql knows its keywords

        Assert.Equal(["Store:ConnectionString = '***': not a valid PostgreSQL connection string: 'colour' is not a keyword Npgsql knows"],
            new PostgresConnectionValidator().Validate(null, options).Failures!);

        var badPort = new PostgresConnectionValidator().Validate(null, new StoreOptions { Provider = "postgres", ConnectionString = "Host=db;Password=s3cret-value;Port=lots" }).Failures!.ToList();
        Assert.StartsWith("Store:ConnectionString = '***': not a valid PostgreSQL connection string: the value of 'port' is not valid", Assert.Single(badPort), StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-value", badPort[0], StringComparison.Ordinal);

        Assert.True(new PostgresConnectionValidator().Validate(null, new StoreOptions { Provider = "postgres", ConnectionString = "Host=db;Port=6543;Database=retrain;Username=retrain;Password=x" }).Succeeded);
        Assert.True(new PostgresConnectionValidator().Validate(null, new StoreOptions { Provider = "sqlite", ConnectionString = "Colour=blue" }).Succeeded);
    }

    [Fact]
    public async Task Store_Factory_OpensTheConfiguredProviderWithoutConnecting()
    {
        await using (var postgres = SampleStores.Open(new StoreOptions { Provider = "postgres", ConnectionString = "Host=db.example;Port=6543;Database=retrain;Username=retrain;Password=s3cret-value" }))
        {
            Assert.IsType<PostgresSampleStore>(postgres);
            Assert.Equal("postgres db.example:6543/retrain", postgres.Description);
        }

        var path = Path.Combine(Path.GetTempPath(), $"rd-factory-{Guid.NewGuid():N}.db");
        await using (var sqlite = SampleStores.Open(new StoreOptions { Path = path }))
        {
            Assert.IsType<SqliteSampleStore>(sqlite);
            Assert.Equal(Path.GetFullPath(path), sqlite.Description);
        }

        Assert.False(File.Exists(path)); // nothing opened yet
        var unknown = Assert.Throws<ArgumentException>(() => SampleStores.Open(new StoreOptions { Provider = "mysql" }));
        Assert.StartsWith("Store:Provider 'mysql' is unknown; accepted: sqlite, postgres", unknown.Message, StringComparison.Ordinal);
    }
}
