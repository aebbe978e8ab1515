using System.Diagnostics;
using Microsoft.Data.Sqlite;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Publishing;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.FaultTests;

/// <summary>
/// reliability.md R6: the store is unavailable for several seconds (another process holds SQLite's
/// write lock). Consumption pauses with backoff — no requeue storm, nothing dead-lettered — readiness
/// reports it, and everything is stored once the store is back.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class StoreOutageTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-outage")
{

    [Fact]
    public async Task StoreLocked_PausesConsumptionWithBackoff_NothingDeadLettered_AllStoredAfterwards()
    {
        const int total = 2_000;
        string store = StorePath;
        await using var daemon = DaemonProcess.Start(Fixture.Broker, store);
        await daemon.WaitReadyAsync();

        // Take SQLite's write lock from outside the daemon: its commits now fail with SQLITE_BUSY.
        using var blocker = new SqliteConnection($"Data Source={store};Pooling=False");
        blocker.Open();
        using (var begin = blocker.CreateCommand())
        {
            begin.CommandText = "BEGIN EXCLUSIVE;";
            begin.ExecuteNonQuery();
        }

        var messages = FashionMnist.Read("t10k", take: total).Select(i => CloudEventEncoder.FashionMnist(i, "t10k", "fashion-mnist", "png", null)).ToList();
        Assert.Equal(total, (await Fixture.PublishAsync(messages, total)).Confirmed);

        var outage = Stopwatch.StartNew();
        int status = 200;
        while (outage.Elapsed < TimeSpan.FromSeconds(20) && (status = await daemon.GetStatusAsync("/v2/health/ready")) == 200)
        {
            await Task.Delay(100);
        }

        Assert.Equal(503, status);
        string readiness = await daemon.GetAsync("/v2/health/ready");
        await Task.Delay(TimeSpan.FromSeconds(6));
        double retries = await daemon.MetricAsync("retrain_ingest_store_retries_total");
        long storedDuringOutage = StoreProbe.Samples(store);
        uint deadDuringOutage = await BrokerProbe.DepthAsync(Fixture.Broker, Topology.DeadLetterQueue);

        using (var rollback = blocker.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK;";
            rollback.ExecuteNonQuery();
        }

        var recovered = Stopwatch.StartNew();
        Assert.Equal(total, await StoreProbe.WaitForSamplesAsync(store, total, TimeSpan.FromSeconds(60)));
        var catchUp = recovered.Elapsed;
        await daemon.WaitReadyAsync(TimeSpan.FromSeconds(30));
        double duplicates = await daemon.MetricAsync("retrain_ingest_messages_total", "result=\"duplicate\"");
        output.WriteLine($"outage {outage.Elapsed.TotalSeconds:0.0} s: readiness {readiness}; commit retries {retries} (backoff, not per message); " +
            $"stored during outage {storedDuringOutage}; dead-lettered {deadDuringOutage}; all {total} stored {catchUp.TotalSeconds:0.0} s after the lock was released; redeliveries {duplicates}");

        Assert.Equal(0, storedDuringOutage);
        Assert.Equal(0u, deadDuringOutage);
        Assert.InRange(retries, 1, 20); // capped exponential backoff: a handful of attempts in ~8 s, not a storm
        Assert.Equal(0, duplicates); // nothing was requeued and redelivered
        Assert.Equal(0u, await BrokerProbe.DepthAsync(Fixture.Broker, Topology.DeadLetterQueue));
        Assert.Contains("database is locked", readiness, StringComparison.OrdinalIgnoreCase);
    }
}
