using Microsoft.Data.Sqlite;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Store;

namespace RetrainDaemon.IntegrationTests.Store;

/// <summary>
/// Feedback joined to the generations it cites, against a real SQLite file: unknown or mismatched
/// generations are refused per item (never failing the batch), stored rows carry the generation's slice,
/// corrections become samples marked as such, and the loop's feedback queries count what was stored.
/// </summary>
public sealed class FeedbackJoinStoreTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly string root = Path.Combine(Path.GetTempPath(), $"rd-feedback-join-{Guid.NewGuid():N}");
    private readonly ManualClock clock = new(T0);
    private SqliteSampleStore store = null!;

    private string DatabasePath => Path.Combine(root, "retrain.db");

    public async Task InitializeAsync()
    {
        store = new SqliteSampleStore(new StoreOptions { Path = DatabasePath }, clock);
        await store.InitializeAsync(CancellationToken.None);
        await store.RecordGenerationsAsync(
        [
            new("fashion-mnist/2/aaa", "fashion-mnist", 2, T0, GenerationModalities.Image, "3", null),
            new("fashion-mnist/2/bbb", "fashion-mnist", 2, T0, GenerationModalities.Image, null, null),
            new("fashion-mnist/3/ccc", "fashion-mnist", 3, T0, GenerationModalities.Image, "7", null),
            new("en-de/1/ddd", "en-de", 1, T0, GenerationModalities.Text, null, "Open file"),
            new("fortunes/4/eee", "fortunes", 4, T0, GenerationModalities.Text, null, null),
        ], CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await store.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Directory.Delete(root, recursive: true);
    }

    private static FeedbackRecord Feedback(string id, string model, string generation, string version, int? rating = null, bool? accepted = null, string? text = null, byte[]? image = null) =>
        new(id, model, "/tests", T0, generation, version, rating, accepted, text, image, "qa")
        {
            CorrectionShape = image is null ? default : (28, 28, 1),
        };

    private static IngestItem Sample(string id) => IngestItem.Of(new SampleRecord(id, "fortunes", "/tests", null, Modality.Text, Splits.Train, null, 0, 0, 0, null, "a fortune", null));

    private long Scalar(string sql)
    {
        using var connection = new SqliteConnection($"Data Source={DatabasePath};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar() ?? 0L, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Feedback_citing_a_recorded_generation_is_stored_with_its_slice_and_the_generations_version()
    {
        var outcomes = await store.CommitAsync([IngestItem.Of(Feedback("fb-1", "fashion-mnist", "fashion-mnist/2/aaa", "02", rating: 2))], CancellationToken.None);

        Assert.Equal([CommitOutcome.Stored], outcomes);
        var row = Assert.Single(await store.ReadFeedbackAsync("fashion-mnist", 0, CancellationToken.None).ToListAsync());
        Assert.Equal(("fb-1", "fashion-mnist/2/aaa", (int?)2, "3", (int?)2, (bool?)null, false), (row.EventId, row.GenerationId, row.Version, row.Slice, row.Rating, row.Accepted, row.HasCorrection));
        Assert.Equal(1, Scalar("SELECT COUNT(*) FROM feedback WHERE version = '2' AND slice = '3';")); // "02" stored as the generation's 2
    }

    [Fact]
    public async Task Unknown_and_mismatched_generations_are_refused_alone_and_the_rest_of_the_batch_is_stored()
    {
        var outcomes = await store.CommitAsync(
        [
            Sample("s-1"),
            IngestItem.Of(Feedback("fb-unknown", "fashion-mnist", "fashion-mnist/2/never", "2", rating: 1)),
            IngestItem.Of(Feedback("fb-ok", "fashion-mnist", "fashion-mnist/3/ccc", "3", rating: 5)),
            IngestItem.Of(Feedback("fb-version", "fashion-mnist", "fashion-mnist/2/aaa", "3", rating: 1)),
            IngestItem.Of(Feedback("fb-model", "fortunes", "fashion-mnist/2/aaa", "2", rating: 1)),
            IngestItem.Of(Feedback("fb-words", "fashion-mnist", "fashion-mnist/2/aaa", "latest", rating: 1)),
            Sample("s-2"),
        ], CancellationToken.None);

        Assert.Equal(CommitOutcome.Stored, outcomes[0]);
        Assert.Equal((CommitStatus.Rejected, RejectReasons.UnknownGeneration), (outcomes[1].Status, outcomes[1].RejectReason));
        Assert.Contains("generation 'fashion-mnist/2/never' was never handed out", outcomes[1].RejectDetail, StringComparison.Ordinal);
        Assert.Contains("fb-unknown", outcomes[1].RejectDetail, StringComparison.Ordinal);
        Assert.Equal(CommitOutcome.Stored, outcomes[2]);
        foreach (int i in new[] { 3, 4, 5 })
        {
            Assert.Equal((CommitStatus.Rejected, RejectReasons.GenerationMismatch), (outcomes[i].Status, outcomes[i].RejectReason));
        }

        Assert.Contains("was made by model 'fashion-mnist' version 2, but the feedback names model 'fashion-mnist' version '3'", outcomes[3].RejectDetail, StringComparison.Ordinal);
        Assert.Contains("names model 'fortunes' version '2'", outcomes[4].RejectDetail, StringComparison.Ordinal);
        Assert.Equal(CommitOutcome.Stored, outcomes[6]);
        Assert.Equal(1, Scalar("SELECT COUNT(*) FROM feedback;"));
        Assert.Equal(2, Scalar("SELECT COUNT(*) FROM samples;"));
    }

    [Fact]
    public async Task Refused_feedback_is_stored_once_its_generation_is_recorded_and_a_stored_one_redelivered_is_a_duplicate()
    {
        var item = IngestItem.Of(Feedback("fb-early", "fashion-mnist", "fashion-mnist/5/late", "5", accepted: true));
        Assert.True((await store.CommitAsync([item], CancellationToken.None))[0].IsRejected);

        await store.RecordGenerationsAsync([new("fashion-mnist/5/late", "fashion-mnist", 5, T0, GenerationModalities.Image, "1", null)], CancellationToken.None);
        Assert.Equal([CommitOutcome.Stored], await store.CommitAsync([item], CancellationToken.None));
        Assert.Equal([CommitOutcome.Duplicate], await store.CommitAsync([item], CancellationToken.None));
        Assert.Equal(1, Scalar("SELECT COUNT(*) FROM feedback WHERE event_id = 'fb-early' AND slice = '1';"));
    }

    [Fact]
    public async Task Recording_a_generation_twice_keeps_the_first_record()
    {
        await store.RecordGenerationsAsync([new("fashion-mnist/2/aaa", "other", 9, T0.AddDays(1), GenerationModalities.Text, null, "x")], CancellationToken.None);

        Assert.Equal(new GenerationRecord("fashion-mnist/2/aaa", "fashion-mnist", 2, T0, GenerationModalities.Image, "3", null),
            await store.GetGenerationAsync("fashion-mnist/2/aaa", CancellationToken.None));
        Assert.Null(await store.GetGenerationAsync("nope", CancellationToken.None));
        Assert.Equal(5, Scalar("SELECT COUNT(*) FROM generations;"));
    }

    [Fact]
    public async Task A_generation_with_an_unknown_modality_is_refused_naming_it()
    {
        var refused = await Assert.ThrowsAsync<ArgumentException>(() =>
            store.RecordGenerationsAsync([new("g", "fortunes", 1, T0, "audio", null, null)], CancellationToken.None));
        Assert.Contains("modality 'audio'", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Corrections_become_training_samples_marked_as_corrections()
    {
        var pixels = Enumerable.Range(0, 28 * 28).Select(i => (byte)i).ToArray();
        var outcomes = await store.CommitAsync(
        [
            IngestItem.Of(Feedback("fb-text", "en-de", "en-de/1/ddd", "1", rating: 2, text: "Datei öffnen")),
            IngestItem.Of(Feedback("fb-image", "fashion-mnist", "fashion-mnist/2/aaa", "2", accepted: false, image: pixels)),
            IngestItem.Of(Feedback("fb-caption", "fashion-mnist", "fashion-mnist/2/bbb", "2", text: "a shoe, not a shirt")),
            IngestItem.Of(Feedback("fb-lm", "fortunes", "fortunes/4/eee", "4", text: "A better fortune.")),
        ], CancellationToken.None);

        Assert.Equal([true, true, false, true], outcomes.Select(o => o.AddedCorrectionSample).ToArray());
        Assert.All(outcomes, o => Assert.Equal(CommitStatus.Stored, o.Status));
        long watermark = await store.GetWatermarkAsync(CancellationToken.None);

        var text = Assert.Single(await store.ReadSamplesAsync("en-de", 0, watermark, null, CancellationToken.None).ToListAsync()).Record;
        Assert.Equal((SqliteSampleStore.CorrectionSampleId("fb-text"), SampleOrigins.Correction, "en-de/1/ddd", Splits.Train, "Datei öffnen", "Open file"),
            (text.EventId, text.Origin, text.CorrectionOf, text.Split, text.Text, text.SourceText));

        var image = Assert.Single(await store.ReadSamplesAsync("fashion-mnist", 0, watermark, Splits.Train, CancellationToken.None).ToListAsync()).Record;
        Assert.Equal((SampleOrigins.Correction, "fashion-mnist/2/aaa", "3", 28, 28, 1, Modality.Image), (image.Origin, image.CorrectionOf, image.Label, image.Width, image.Height, image.Channels, image.Modality));
        Assert.Equal(pixels, image.Pixels);

        var lm = Assert.Single(await store.ReadSamplesAsync("fortunes", 0, watermark, null, CancellationToken.None).ToListAsync()).Record;
        Assert.Equal(("A better fortune.", (string?)null), (lm.Text, lm.SourceText)); // no prompt: no source

        // Redelivered: the feedback is a duplicate and no second sample appears.
        var again = await store.CommitAsync([IngestItem.Of(Feedback("fb-text", "en-de", "en-de/1/ddd", "1", rating: 2, text: "Datei öffnen"))], CancellationToken.None);
        Assert.Equal([CommitOutcome.Duplicate], again);
        Assert.Equal(3, Scalar("SELECT COUNT(*) FROM samples WHERE origin = 'correction';"));
        Assert.Equal(watermark, await store.GetWatermarkAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Producer_samples_read_back_as_producer_samples()
    {
        await store.CommitAsync([Sample("s-p")], CancellationToken.None);

        var sample = await store.GetSampleAsync("s-p", CancellationToken.None);
        Assert.Equal((SampleOrigins.Producer, (string?)null), (sample!.Record.Origin, sample.Record.CorrectionOf));
    }

    [Fact]
    public async Task The_feedback_summary_counts_by_model_version_and_time()
    {
        Assert.Equal(new FeedbackSummary(0, 0, null, 0, 0, 0), await store.GetFeedbackSummaryAsync("fashion-mnist", null, null, CancellationToken.None));
        Assert.Equal(0, await store.GetFeedbackWatermarkAsync(CancellationToken.None));

        await store.CommitAsync(
        [
            IngestItem.Of(Feedback("a", "fashion-mnist", "fashion-mnist/2/aaa", "2", rating: 1, accepted: false)),
            IngestItem.Of(Feedback("b", "fashion-mnist", "fashion-mnist/2/bbb", "2", rating: 4)),
        ], CancellationToken.None);
        clock.Now = T0.AddHours(1);
        await store.CommitAsync(
        [
            IngestItem.Of(Feedback("c", "fashion-mnist", "fashion-mnist/3/ccc", "3", accepted: true, image: new byte[28 * 28])),
            IngestItem.Of(Feedback("d", "en-de", "en-de/1/ddd", "1", rating: 5)),
        ], CancellationToken.None);

        var all = await store.GetFeedbackSummaryAsync("fashion-mnist", null, null, CancellationToken.None);
        Assert.Equal(new FeedbackSummary(3, 2, 2.5, 1, 1, 1), all);
        Assert.Equal(new FeedbackSummary(2, 2, 2.5, 0, 1, 0), await store.GetFeedbackSummaryAsync("fashion-mnist", 2, null, CancellationToken.None));
        Assert.Equal(new FeedbackSummary(1, 0, null, 1, 0, 1), await store.GetFeedbackSummaryAsync("fashion-mnist", null, T0.AddMinutes(30), CancellationToken.None));
        // The same instant in another offset is the same instant.
        Assert.Equal(1, (await store.GetFeedbackSummaryAsync("fashion-mnist", null, T0.AddHours(1).ToOffset(TimeSpan.FromHours(2)), CancellationToken.None)).Count);

        Assert.Equal(4, await store.GetFeedbackWatermarkAsync(CancellationToken.None));
        var fresh = await store.ReadFeedbackAsync("fashion-mnist", 1, CancellationToken.None).ToListAsync();
        Assert.Equal([2L, 3L], fresh.Select(f => f.Sequence).ToArray());
        Assert.Equal(new string?[] { null, "7" }.AsEnumerable(), fresh.Select(f => f.Slice));
        Assert.Equal([false, true], fresh.Select(f => f.HasCorrection).ToArray());
    }

    [Fact]
    public async Task A_store_from_before_the_join_upgrades_keeping_its_rows()
    {
        await store.DisposeAsync();
        SqliteConnection.ClearAllPools();
        // Take the file back to schema 2 (no generations, no slice, no origin) and put legacy rows in it.
        using (var connection = new SqliteConnection($"Data Source={DatabasePath};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = """
                DROP TABLE generations;
                ALTER TABLE feedback DROP COLUMN slice;
                ALTER TABLE samples DROP COLUMN correction_of;
                ALTER TABLE samples DROP COLUMN origin;
                DELETE FROM schema_migrations WHERE version = 3;
                INSERT INTO samples (event_id, model, source, modality, split, width, height, channels, text, received_at)
                VALUES ('old-sample', 'fortunes', '/old', 'text', 'train', 0, 0, 0, 'an old fortune', '2026-01-01T00:00:00.0000000+00:00');
                INSERT INTO feedback (event_id, model, source, generation_id, version, rating, received_at)
                VALUES ('old-feedback', 'fortunes', '/old', 'g-old', 'v-old', 3, '2026-01-01T00:00:00.0000000+00:00');
                """;
            command.ExecuteNonQuery();
        }

        store = new SqliteSampleStore(new StoreOptions { Path = DatabasePath }, clock);
        var stats = await store.GetStatsAsync(CancellationToken.None);

        Assert.True(stats.SchemaVersion >= 3);
        var old = await store.GetSampleAsync("old-sample", CancellationToken.None);
        Assert.Equal(SampleOrigins.Producer, old!.Record.Origin);
        var legacy = Assert.Single(await store.ReadFeedbackAsync("fortunes", 0, CancellationToken.None).ToListAsync());
        Assert.Equal(("g-old", (int?)null, (string?)null, (int?)3), (legacy.GenerationId, legacy.Version, legacy.Slice, legacy.Rating));
        // A redelivery of that legacy feedback is a duplicate, not a rejection for its unrecorded generation.
        Assert.Equal([CommitOutcome.Duplicate], await store.CommitAsync([IngestItem.Of(Feedback("old-feedback", "fortunes", "g-old", "v-old", rating: 3))], CancellationToken.None));
    }

    private sealed class ManualClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
