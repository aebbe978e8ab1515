using System.Globalization;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Data.Store;

namespace RetrainDaemon.IntegrationTests.Store;

/// <summary>
/// What every store promises, run against each of them (<see cref="SqliteSampleStoreContractTests"/>,
/// <see cref="PostgresSampleStoreContractTests"/>): the whole of <see cref="ISampleStore"/>, <see cref="IRunLedger"/>
/// and <see cref="ILoopQueries"/> through the interfaces, on an empty database per test, with exact values.
/// Raw SQL (<see cref="Scalar"/>, <see cref="ExecuteAsync"/>) is kept to statements both dialects read the same way.
/// </summary>
public abstract class SampleStoreContract : IAsyncLifetime
{
    protected static readonly DateTimeOffset T0 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    protected static CancellationToken None => CancellationToken.None;

    /// <summary>Records compare lists by reference: runs are compared with this one list in place of their stages.</summary>
    private static readonly IReadOnlyList<RunStageRecord> NoStages = [];

    protected ManualClock Clock { get; } = new(T0);

    protected IDaemonStore Store { get; private set; } = null!;

    /// <summary>A store on this test's database (the same database at every call within one test).</summary>
    protected abstract IDaemonStore OpenStore(TimeProvider clock);

    /// <summary>Creates this test's empty database.</summary>
    protected abstract Task CreateDatabaseAsync();

    protected abstract Task DeleteDatabaseAsync();

    /// <summary>One number read straight from the database.</summary>
    protected abstract long Scalar(string sql);

    /// <summary>Rows read straight from the database, each value as invariant text (null stays null).</summary>
    protected abstract Task<List<string?[]>> QueryAsync(string sql);

    protected abstract Task ExecuteAsync(string sql);

    public async Task InitializeAsync()
    {
        await CreateDatabaseAsync();
        Store = OpenStore(Clock);
        await Store.InitializeAsync(None);
    }

    public async Task DisposeAsync()
    {
        await Store.DisposeAsync();
        await DeleteDatabaseAsync();
    }

    /// <summary>Closes the store and opens a new one on the same database, as a restarted daemon would.</summary>
    protected async Task ReopenAsync()
    {
        await Store.DisposeAsync();
        Store = OpenStore(Clock);
        await Store.InitializeAsync(None);
    }

    protected static IngestItem Text(string id, string model = "fortunes", string split = Splits.Train, string text = "a fortune") =>
        IngestItem.Of(new SampleRecord(id, model, "/tests", null, Modality.Text, split, null, 0, 0, 0, null, text, null));

    protected static IngestItem Image(string id, string model = "fashion-mnist", string split = Splits.Train, string? label = "1") =>
        IngestItem.Of(new SampleRecord(id, model, "/tests", null, Modality.Image, split, label, 2, 2, 1, [1, 2, 3, 4], null, null));

    protected static FeedbackRecord Feedback(string id, string model, string generation, string version, int? rating = null, bool? accepted = null, string? text = null, byte[]? image = null) =>
        new(id, model, "/tests", T0, generation, version, rating, accepted, text, image, "qa")
        {
            CorrectionShape = image is null ? default : (28, 28, 1),
        };

    protected Task SeedGenerationsAsync() => Store.RecordGenerationsAsync(
    [
        new("fashion-mnist/2/aaa", "fashion-mnist", 2, T0, GenerationModalities.Image, "3", null),
        new("fashion-mnist/2/bbb", "fashion-mnist", 2, T0, GenerationModalities.Image, null, null),
        new("fashion-mnist/3/ccc", "fashion-mnist", 3, T0, GenerationModalities.Image, "7", null),
        new("en-de/1/ddd", "en-de", 1, T0, GenerationModalities.Text, null, "Open file"),
        new("fortunes/4/eee", "fortunes", 4, T0, GenerationModalities.Text, null, null),
    ], None);

    private async Task<List<StoredSample>> ReadAsync(string model, long after, long watermark, string? split = null) =>
        await Store.ReadSamplesAsync(model, after, watermark, split, None).ToListAsync();

    // ---- schema ----

    [Fact]
    public async Task Migrations_reach_version_3_with_the_shared_names_and_reopening_applies_nothing_again()
    {
        Assert.Equal(3, (await Store.GetStatsAsync(None)).SchemaVersion);
        string[][] expected =
        [
            ["1", "samples and feedback keyed by event id"],
            ["2", "run ledger: fine-tune and analysis runs and their stages"],
            ["3", "generations served, feedback joined to them, corrections as samples"],
        ];
        Assert.Equal(expected, (await QueryAsync("SELECT version, name FROM schema_migrations ORDER BY version;")).Select(r => r.Select(v => v!).ToArray()).ToArray());
        Assert.Equal([CommitOutcome.Stored], await Store.CommitAsync([Text("kept")], None));

        await ReopenAsync();
        await ReopenAsync();

        Assert.Equal(3, (await Store.GetStatsAsync(None)).SchemaVersion);
        Assert.Equal(3, Scalar("SELECT COUNT(*) FROM schema_migrations;"));
        Assert.Equal("a fortune", (await Store.GetSampleAsync("kept", None))!.Record.Text);
        Assert.Equal(1, await Store.GetWatermarkAsync(None));
    }

    [Fact]
    public async Task A_schema_newer_than_the_build_is_refused_and_left_untouched()
    {
        await Store.CommitAsync([Text("before")], None);
        await ExecuteAsync("INSERT INTO schema_migrations (version, name, applied_at) VALUES (4, 'from a newer build', '2030-01-01T00:00:00Z');");
        await Store.DisposeAsync();

        Store = OpenStore(Clock);
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => Store.InitializeAsync(None));

        Assert.Equal($"The store '{Store.Description}' has schema version 4, newer than this build knows (3); refusing to touch it.", refused.Message);
        Assert.Equal(4, Scalar("SELECT COUNT(*) FROM schema_migrations;"));
        Assert.Equal(1, Scalar("SELECT COUNT(*) FROM samples;"));
    }

    // ---- commits ----

    [Fact]
    public async Task A_batch_reports_stored_and_duplicate_per_item_and_numbers_what_it_stored_in_batch_order()
    {
        Assert.Equal([CommitOutcome.Stored, CommitOutcome.Stored], await Store.CommitAsync([Text("s-1"), Text("s-2")], None));
        Assert.Equal([CommitOutcome.Duplicate, CommitOutcome.Stored, CommitOutcome.Duplicate, CommitOutcome.Stored],
            await Store.CommitAsync([Text("s-2"), Text("s-3"), Text("s-3"), Image("s-4")], None));
        Assert.Empty(await Store.CommitAsync([], None));

        // Numbers rise in batch order. How many a duplicate uses up differs (SQLite's AUTOINCREMENT draws one per
        // attempted row, the PostgreSQL store none), so only the first, duplicate-free batch has exact numbers.
        var stored = await ReadAsync("fortunes", 0, long.MaxValue);
        Assert.Equal(["s-1", "s-2", "s-3"], stored.Select(s => s.Record.EventId).ToArray());
        Assert.Equal([1L, 2L], stored.Take(2).Select(s => s.Sequence).ToArray());
        long last = (await Store.GetSampleAsync("s-4", None))!.Sequence;
        Assert.InRange(stored[2].Sequence, 3, last - 1);
        Assert.Equal(last, await Store.GetWatermarkAsync(None));
        Assert.Equal(4, Scalar("SELECT COUNT(*) FROM samples;"));
    }

    [Fact]
    public async Task A_redelivered_event_id_is_stored_once_and_keeps_its_first_content()
    {
        Assert.Equal([CommitOutcome.Stored], await Store.CommitAsync([Text("once", text: "first")], None));
        Assert.Equal([CommitOutcome.Duplicate], await Store.CommitAsync([Text("once", text: "first")], None));
        Assert.Equal([CommitOutcome.Duplicate], await Store.CommitAsync([Text("once", text: "changed", split: Splits.Holdout)], None));

        var sample = await Store.GetSampleAsync("once", None);
        Assert.Equal((1L, "first", Splits.Train), (sample!.Sequence, sample.Record.Text, sample.Record.Split));
        Assert.Equal(1, Scalar("SELECT COUNT(*) FROM samples;"));
        Assert.Equal(1, await Store.GetWatermarkAsync(None));
    }

    [Fact]
    public async Task Nothing_of_a_batch_that_fails_is_visible_and_the_store_keeps_working()
    {
        await SeedGenerationsAsync();
        var failing = await Assert.ThrowsAnyAsync<Exception>(() => Store.CommitAsync(
        [
            Text("early-1"),
            IngestItem.Of(Feedback("fb-early", "fashion-mnist", "fashion-mnist/2/aaa", "2", rating: 4)),
            Text("early-2"),
            Text("bad", split: "validation"), // violates the split CHECK
            Text("late"),
        ], None));

        // A constraint violation is not worth retrying: it must not come back as "unavailable".
        Assert.IsNotType<StoreUnavailableException>(failing);
        Assert.Null(await Store.GetSampleAsync("early-1", None));
        Assert.Null(await Store.GetSampleAsync("early-2", None));
        Assert.Equal(0, await Store.GetWatermarkAsync(None));
        Assert.Equal(0, await Store.GetFeedbackWatermarkAsync(None));
        Assert.Equal(0, Scalar("SELECT COUNT(*) FROM samples;") + Scalar("SELECT COUNT(*) FROM feedback;"));

        // A correction whose pixels do not match its shape fails the batch the same way, naming the event.
        var shape = await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitAsync(
        [
            Text("early-3"),
            IngestItem.Of(Feedback("fb-bad-shape", "fashion-mnist", "fashion-mnist/2/aaa", "2", image: new byte[10])),
        ], None));
        Assert.Contains("feedback fb-bad-shape: its correction image has 10 bytes but CorrectionShape says 28x28x1", shape.Message, StringComparison.Ordinal);
        Assert.Null(await Store.GetSampleAsync("early-3", None));

        Assert.Equal([CommitOutcome.Stored, CommitOutcome.Stored], await Store.CommitAsync([Text("early-1"), IngestItem.Of(Feedback("fb-early", "fashion-mnist", "fashion-mnist/2/aaa", "2", rating: 4))], None));
        Assert.Equal(1, Scalar("SELECT COUNT(*) FROM samples;"));
        Assert.Equal(1, Scalar("SELECT COUNT(*) FROM feedback;"));
    }

    // ---- reading ----

    [Fact]
    public async Task Watermark_and_ranges_select_one_models_samples_in_sequence_order()
    {
        Assert.Equal(0, await Store.GetWatermarkAsync(None));
        await Store.CommitAsync([Image("a"), Image("b", split: Splits.Holdout), Image("c")], None);
        await Store.CommitAsync([Text("d", model: "other")], None);
        await Store.CommitAsync([Image("e", split: Splits.Holdout), Image("f")], None);

        Assert.Equal(6, await Store.GetWatermarkAsync(None));
        Assert.Equal([(1L, "a"), (2L, "b"), (3L, "c"), (5L, "e"), (6L, "f")], (await ReadAsync("fashion-mnist", 0, 6)).Select(s => (s.Sequence, s.Record.EventId)).ToArray());
        Assert.Equal(["c", "e"], (await ReadAsync("fashion-mnist", 2, 5)).Select(s => s.Record.EventId).ToArray());
        Assert.Equal(["a", "c", "f"], (await ReadAsync("fashion-mnist", 0, 6, Splits.Train)).Select(s => s.Record.EventId).ToArray());
        Assert.Equal(["b", "e"], (await ReadAsync("fashion-mnist", 1, 5, Splits.Holdout)).Select(s => s.Record.EventId).ToArray());
        Assert.Equal(["d"], (await ReadAsync("other", 0, 6)).Select(s => s.Record.EventId).ToArray());
        Assert.Empty(await ReadAsync("fashion-mnist", 6, 6));
        Assert.Empty(await ReadAsync("nobody", 0, 6));

        Assert.Equal(5, await Store.CountSamplesAfterAsync("fashion-mnist", 0, None));
        Assert.Equal(3, await Store.CountSamplesAfterAsync("fashion-mnist", 2, None));
        Assert.Equal(0, await Store.CountSamplesAfterAsync("fashion-mnist", 6, None));
        Assert.Equal(1, await Store.CountSamplesAfterAsync("other", 3, None));
        Assert.Equal(0, await Store.CountSamplesAfterAsync("nobody", 0, None));
    }

    [Fact]
    public async Task A_sample_reads_back_with_every_field()
    {
        // Microsecond times: what both stores keep exactly (PostgreSQL's timestamptz resolution).
        var eventTime = new DateTimeOffset(2026, 2, 28, 23, 59, 58, TimeSpan.FromHours(2)).AddTicks(1_234_560);
        var received = T0.AddMinutes(5).AddTicks(6_543_210);
        Clock.Now = received;
        var pixels = Enumerable.Range(0, 28 * 28).Select(i => (byte)(i * 7)).ToArray();
        var image = new SampleRecord("img", "fashion-mnist", "/producers/camera-1", eventTime, Modality.Image, Splits.Holdout, "9", 28, 28, 1, pixels, null, null);
        var text = new SampleRecord("txt", "en-de", "/producers/po", null, Modality.Text, Splits.Train, null, 0, 0, 0, null, "Grüße, 世界 🌍 \"quoted\"; O'Reilly \\ \n second line", "Greetings, world");
        await Store.CommitAsync([IngestItem.Of(image), IngestItem.Of(text)], None);

        var storedImage = await Store.GetSampleAsync("img", None);
        Assert.NotNull(storedImage);
        Assert.Equal((1L, received), (storedImage.Sequence, storedImage.ReceivedAt));
        AssertSame(image, storedImage.Record);
        Assert.Equal(eventTime.UtcTicks, storedImage.Record.EventTime!.Value.UtcTicks);

        var storedText = await Store.GetSampleAsync("txt", None);
        Assert.NotNull(storedText);
        Assert.Equal((2L, received), (storedText.Sequence, storedText.ReceivedAt));
        AssertSame(text, storedText.Record);

        // A snapshot reads the same rows.
        AssertSame(image, Assert.Single(await ReadAsync("fashion-mnist", 0, 2)).Record);
        AssertSame(text, Assert.Single(await ReadAsync("en-de", 0, 2)).Record);
        Assert.Null(await Store.GetSampleAsync("missing", None));
    }

    private static void AssertSame(SampleRecord expected, SampleRecord actual)
    {
        Assert.Equal(expected with { Pixels = null }, actual with { Pixels = null });
        Assert.Equal(expected.Pixels, actual.Pixels);
    }

    [Fact]
    public async Task Stats_count_per_model_modality_split_and_label_with_feedback_per_model()
    {
        await SeedGenerationsAsync();
        await Store.CommitAsync(
        [
            Image("i-1", label: "1"), Image("i-2", label: "1"), Image("i-3", label: "1", split: Splits.Holdout), Image("i-4", label: null), Image("i-5", label: "0"),
            Text("t-1"), Text("t-2", split: Splits.Holdout), Text("t-3", model: "en-de"),
            IngestItem.Of(Feedback("f-1", "fashion-mnist", "fashion-mnist/2/aaa", "2", rating: 1)),
            IngestItem.Of(Feedback("f-2", "fashion-mnist", "fashion-mnist/3/ccc", "3", rating: 4)),
            IngestItem.Of(Feedback("f-3", "fortunes", "fortunes/4/eee", "4", accepted: true)),
        ], None);

        var stats = await Store.GetStatsAsync(None);

        SampleCount[] samples =
        [
            new("en-de", "text", Splits.Train, null, 1),
            new("fashion-mnist", "image", Splits.Holdout, "1", 1),
            new("fashion-mnist", "image", Splits.Train, null, 1),
            new("fashion-mnist", "image", Splits.Train, "0", 1),
            new("fashion-mnist", "image", Splits.Train, "1", 2),
            new("fortunes", "text", Splits.Holdout, null, 1),
            new("fortunes", "text", Splits.Train, null, 1),
        ];
        Assert.Equal(samples, stats.Samples);
        Assert.Equal([new FeedbackCount("fashion-mnist", 2, 2.5), new FeedbackCount("fortunes", 1, null)], stats.Feedback);
        Assert.Equal((8L, 3), (stats.Watermark, stats.SchemaVersion));
    }

    // ---- generations and feedback ----

    [Fact]
    public async Task Recording_a_generation_twice_keeps_the_first_record()
    {
        await SeedGenerationsAsync();
        await Store.RecordGenerationsAsync(
        [
            new("fashion-mnist/2/aaa", "other", 9, T0.AddDays(1), GenerationModalities.Text, null, "x"),
            new("new/1/x", "new", 1, T0.AddMinutes(1), GenerationModalities.Text, null, "first"),
            new("new/1/x", "new", 1, T0.AddMinutes(2), GenerationModalities.Text, null, "second in the same batch"),
        ], None);
        await Store.RecordGenerationsAsync([], None);

        Assert.Equal(new GenerationRecord("fashion-mnist/2/aaa", "fashion-mnist", 2, T0, GenerationModalities.Image, "3", null), await Store.GetGenerationAsync("fashion-mnist/2/aaa", None));
        Assert.Equal(new GenerationRecord("new/1/x", "new", 1, T0.AddMinutes(1), GenerationModalities.Text, null, "first"), await Store.GetGenerationAsync("new/1/x", None));
        Assert.Equal(new GenerationRecord("en-de/1/ddd", "en-de", 1, T0, GenerationModalities.Text, null, "Open file"), await Store.GetGenerationAsync("en-de/1/ddd", None));
        Assert.Null(await Store.GetGenerationAsync("nope", None));
        Assert.Equal(6, Scalar("SELECT COUNT(*) FROM generations;"));
    }

    [Fact]
    public async Task A_generation_with_an_unknown_modality_is_refused_naming_it_and_nothing_of_its_batch_is_recorded()
    {
        var refused = await Assert.ThrowsAsync<ArgumentException>(() =>
            Store.RecordGenerationsAsync([new("ok", "fortunes", 1, T0, GenerationModalities.Text, null, null), new("g", "fortunes", 1, T0, "audio", null, null)], None));

        Assert.StartsWith("generation 'g' has modality 'audio'; expected 'image' or 'text'", refused.Message, StringComparison.Ordinal);
        Assert.Null(await Store.GetGenerationAsync("ok", None));
    }

    [Fact]
    public async Task Feedback_citing_a_recorded_generation_is_stored_with_its_slice_and_the_generations_version()
    {
        await SeedGenerationsAsync();
        var outcomes = await Store.CommitAsync([IngestItem.Of(Feedback("fb-1", "fashion-mnist", "fashion-mnist/2/aaa", "02", rating: 2))], None);

        Assert.Equal([CommitOutcome.Stored], outcomes);
        var row = Assert.Single(await Store.ReadFeedbackAsync("fashion-mnist", 0, None).ToListAsync());
        Assert.Equal(new StoredFeedback(1, "fb-1", "fashion-mnist", "fashion-mnist/2/aaa", 2, "3", 2, null, false, T0), row);
        Assert.Equal(1, Scalar("SELECT COUNT(*) FROM feedback WHERE version = '2' AND slice = '3';")); // "02" stored as the generation's 2
    }

    [Fact]
    public async Task Unknown_and_mismatched_generations_are_refused_alone_and_the_rest_of_the_batch_is_stored()
    {
        await SeedGenerationsAsync();
        var outcomes = await Store.CommitAsync(
        [
            Text("s-1"),
            IngestItem.Of(Feedback("fb-unknown", "fashion-mnist", "fashion-mnist/2/never", "2", rating: 1)),
            IngestItem.Of(Feedback("fb-ok", "fashion-mnist", "fashion-mnist/3/ccc", "3", rating: 5)),
            IngestItem.Of(Feedback("fb-version", "fashion-mnist", "fashion-mnist/2/aaa", "3", rating: 1)),
            IngestItem.Of(Feedback("fb-model", "fortunes", "fashion-mnist/2/aaa", "2", rating: 1)),
            IngestItem.Of(Feedback("fb-words", "fashion-mnist", "fashion-mnist/2/aaa", "latest", rating: 1)),
            Text("s-2"),
            IngestItem.Of(Feedback("fb-ok", "fashion-mnist", "fashion-mnist/3/ccc", "3", rating: 5)),
            IngestItem.Of(Feedback("fb-unknown", "fashion-mnist", "fashion-mnist/2/never", "2", rating: 1)),
        ], None);

        Assert.Equal(CommitOutcome.Stored, outcomes[0]);
        Assert.Equal(CommitOutcome.Rejected(RejectReasons.UnknownGeneration,
            "event fb-unknown: generation 'fashion-mnist/2/never' was never handed out by the serving API (no record of it); feedback must cite the generation_id of a generate response"), outcomes[1]);
        Assert.Equal(CommitOutcome.Stored, outcomes[2]);
        Assert.Equal(CommitOutcome.Rejected(RejectReasons.GenerationMismatch,
            "event fb-version: generation 'fashion-mnist/2/aaa' was made by model 'fashion-mnist' version 2, but the feedback names model 'fashion-mnist' version '3'"), outcomes[3]);
        Assert.Equal(CommitOutcome.Rejected(RejectReasons.GenerationMismatch,
            "event fb-model: generation 'fashion-mnist/2/aaa' was made by model 'fashion-mnist' version 2, but the feedback names model 'fortunes' version '2'"), outcomes[4]);
        Assert.Equal((CommitStatus.Rejected, RejectReasons.GenerationMismatch), (outcomes[5].Status, outcomes[5].RejectReason));
        Assert.Equal(CommitOutcome.Stored, outcomes[6]);
        Assert.Equal(CommitOutcome.Duplicate, outcomes[7]); // the same feedback again in one batch
        Assert.Equal(outcomes[1], outcomes[8]); // refused again: it was never stored
        Assert.Equal(1, Scalar("SELECT COUNT(*) FROM feedback;"));
        Assert.Equal(2, Scalar("SELECT COUNT(*) FROM samples;"));
    }

    [Fact]
    public async Task Refused_feedback_is_stored_once_its_generation_is_recorded_and_a_stored_one_redelivered_is_a_duplicate()
    {
        await SeedGenerationsAsync();
        var item = IngestItem.Of(Feedback("fb-early", "fashion-mnist", "fashion-mnist/5/late", "5", accepted: true));
        Assert.Equal(RejectReasons.UnknownGeneration, (await Store.CommitAsync([item], None))[0].RejectReason);

        await Store.RecordGenerationsAsync([new("fashion-mnist/5/late", "fashion-mnist", 5, T0, GenerationModalities.Image, "1", null)], None);
        Assert.Equal([CommitOutcome.Stored], await Store.CommitAsync([item], None));
        Assert.Equal([CommitOutcome.Duplicate], await Store.CommitAsync([item], None));
        // Redelivered under another version: still the stored event, so a duplicate rather than a mismatch.
        Assert.Equal([CommitOutcome.Duplicate], await Store.CommitAsync([IngestItem.Of(Feedback("fb-early", "fashion-mnist", "fashion-mnist/5/late", "6"))], None));
        Assert.Equal(1, Scalar("SELECT COUNT(*) FROM feedback WHERE event_id = 'fb-early' AND slice = '1';"));
        Assert.Equal(1, await Store.GetFeedbackWatermarkAsync(None));
    }

    [Fact]
    public async Task Corrections_become_training_samples_marked_as_corrections()
    {
        await SeedGenerationsAsync();
        var pixels = Enumerable.Range(0, 28 * 28).Select(i => (byte)i).ToArray();
        var outcomes = await Store.CommitAsync(
        [
            IngestItem.Of(Feedback("fb-text", "en-de", "en-de/1/ddd", "1", rating: 2, text: "Datei öffnen")),
            Text("between", model: "en-de"),
            IngestItem.Of(Feedback("fb-image", "fashion-mnist", "fashion-mnist/2/aaa", "2", accepted: false, image: pixels)),
            IngestItem.Of(Feedback("fb-caption", "fashion-mnist", "fashion-mnist/2/bbb", "2", text: "a shoe, not a shirt")),
            IngestItem.Of(Feedback("fb-lm", "fortunes", "fortunes/4/eee", "4", text: "A better fortune.")),
        ], None);

        Assert.Equal([true, false, true, false, true], outcomes.Select(o => o.AddedCorrectionSample).ToArray());
        Assert.All(outcomes, o => Assert.Equal(CommitStatus.Stored, o.Status));
        long watermark = await Store.GetWatermarkAsync(None);
        Assert.Equal(4, watermark);

        // In batch order: the correction takes its place in sequence where its feedback was.
        var enDe = await ReadAsync("en-de", 0, watermark);
        Assert.Equal([(1L, FeedbackJoin.CorrectionSampleId("fb-text")), (2L, "between")], enDe.Select(s => (s.Sequence, s.Record.EventId)).ToArray());
        var text = enDe[0].Record;
        Assert.Equal(("correction:fb-text", SampleOrigins.Correction, "en-de/1/ddd", Splits.Train, "Datei öffnen", "Open file", T0),
            (text.EventId, text.Origin, text.CorrectionOf, text.Split, text.Text, text.SourceText, text.EventTime));

        var image = Assert.Single(await ReadAsync("fashion-mnist", 0, watermark, Splits.Train)).Record;
        Assert.Equal((3L, SampleOrigins.Correction, "fashion-mnist/2/aaa", "3", 28, 28, 1, Modality.Image),
            ((await Store.GetSampleAsync(image.EventId, None))!.Sequence, image.Origin, image.CorrectionOf, image.Label, image.Width, image.Height, image.Channels, image.Modality));
        Assert.Equal(pixels, image.Pixels);

        var lm = Assert.Single(await ReadAsync("fortunes", 0, watermark)).Record;
        Assert.Equal(("A better fortune.", (string?)null), (lm.Text, lm.SourceText)); // no prompt: no source

        // Redelivered: the feedback is a duplicate and no second sample appears.
        var again = await Store.CommitAsync([IngestItem.Of(Feedback("fb-text", "en-de", "en-de/1/ddd", "1", rating: 2, text: "Datei öffnen"))], None);
        Assert.Equal([CommitOutcome.Duplicate], again);
        Assert.Equal(3, Scalar("SELECT COUNT(*) FROM samples WHERE origin = 'correction';"));
        Assert.Equal(watermark, await Store.GetWatermarkAsync(None));
        Assert.Equal(4, await Store.GetFeedbackWatermarkAsync(None));
    }

    [Fact]
    public async Task Producer_samples_read_back_as_producer_samples()
    {
        await Store.CommitAsync([Text("s-p")], None);

        var sample = await Store.GetSampleAsync("s-p", None);
        Assert.Equal((SampleOrigins.Producer, (string?)null), (sample!.Record.Origin, sample.Record.CorrectionOf));
    }

    [Fact]
    public async Task The_feedback_summary_counts_by_model_version_and_time_and_feedback_reads_after_a_sequence()
    {
        await SeedGenerationsAsync();
        Assert.Equal(new FeedbackSummary(0, 0, null, 0, 0, 0), await Store.GetFeedbackSummaryAsync("fashion-mnist", null, null, None));
        Assert.Equal(0, await Store.GetFeedbackWatermarkAsync(None));

        await Store.CommitAsync(
        [
            IngestItem.Of(Feedback("a", "fashion-mnist", "fashion-mnist/2/aaa", "2", rating: 1, accepted: false)),
            IngestItem.Of(Feedback("b", "fashion-mnist", "fashion-mnist/2/bbb", "2", rating: 4)),
        ], None);
        Clock.Now = T0.AddHours(1);
        await Store.CommitAsync(
        [
            IngestItem.Of(Feedback("c", "fashion-mnist", "fashion-mnist/3/ccc", "3", accepted: true, image: new byte[28 * 28])),
            IngestItem.Of(Feedback("d", "en-de", "en-de/1/ddd", "1", rating: 5)),
        ], None);

        Assert.Equal(new FeedbackSummary(3, 2, 2.5, 1, 1, 1), await Store.GetFeedbackSummaryAsync("fashion-mnist", null, null, None));
        Assert.Equal(new FeedbackSummary(2, 2, 2.5, 0, 1, 0), await Store.GetFeedbackSummaryAsync("fashion-mnist", 2, null, None));
        Assert.Equal(new FeedbackSummary(1, 0, null, 1, 0, 1), await Store.GetFeedbackSummaryAsync("fashion-mnist", null, T0.AddMinutes(30), None));
        Assert.Equal(new FeedbackSummary(0, 0, null, 0, 0, 0), await Store.GetFeedbackSummaryAsync("fashion-mnist", 2, T0.AddMinutes(30), None));
        Assert.Equal(new FeedbackSummary(1, 1, 5.0, 0, 0, 0), await Store.GetFeedbackSummaryAsync("en-de", 1, null, None));
        // The same instant in another offset is the same instant.
        Assert.Equal(1, (await Store.GetFeedbackSummaryAsync("fashion-mnist", null, T0.AddHours(1).ToOffset(TimeSpan.FromHours(2)), None)).Count);

        Assert.Equal(4, await Store.GetFeedbackWatermarkAsync(None));
        var fresh = await Store.ReadFeedbackAsync("fashion-mnist", 1, None).ToListAsync();
        Assert.Equal(
        [
            new StoredFeedback(2, "b", "fashion-mnist", "fashion-mnist/2/bbb", 2, null, 4, null, false, T0),
            new StoredFeedback(3, "c", "fashion-mnist", "fashion-mnist/3/ccc", 3, "7", null, true, true, T0.AddHours(1)),
        ], fresh);
        Assert.Equal(["d"], (await Store.ReadFeedbackAsync("en-de", 0, None).ToListAsync()).Select(f => f.EventId).ToArray());
        Assert.Empty(await Store.ReadFeedbackAsync("fashion-mnist", 4, None).ToListAsync());
    }

    // ---- the run ledger ----

    [Fact]
    public async Task A_run_is_recorded_from_start_to_finish_with_its_snapshot_and_stages()
    {
        await Store.StartRunAsync(new RunStart("r-1", "fashion-mnist", RunKinds.FineTune, "data_volume", T0, "/runs/r-1"), None);
        var started = await Store.GetRunAsync("r-1", None);
        Assert.Equal(new RunRecord("r-1", "fashion-mnist", RunKinds.FineTune, RunStatuses.Running, "data_volume", T0, null, null, null, null, null, "/runs/r-1", null, 1, NoStages),
            started! with { Stages = NoStages });
        Assert.Empty(started.Stages);

        await Store.SetSnapshotAsync("r-1", 120, 100, 3, None);
        Clock.Now = T0.AddSeconds(1);
        await Store.BeginStageAsync("r-1", 1, "snapshot", None);
        Clock.Now = T0.AddSeconds(2);
        await Store.EndStageAsync("r-1", 1, "snapshot", StageOutcomes.Ok, null, None);
        Clock.Now = T0.AddSeconds(3);
        await Store.BeginStageAsync("r-1", 1, "train", None);
        Clock.Now = T0.AddSeconds(10);
        await Store.EndStageAsync("r-1", 1, "train", StageOutcomes.Failed, "loss is NaN at step 17", None);
        Clock.Now = T0.AddSeconds(11);
        await Store.FinishRunAsync("r-1", RunStatuses.Failed, null, "non-finite loss", None);

        var run = await Store.GetRunAsync("r-1", None);
        Assert.Equal(new RunRecord("r-1", "fashion-mnist", RunKinds.FineTune, RunStatuses.Failed, "data_volume", T0, T0.AddSeconds(11), 120, 100, 3, null, "/runs/r-1", "non-finite loss", 1, NoStages),
            run! with { Stages = NoStages });
        Assert.Equal(
        [
            new RunStageRecord(1, "snapshot", T0.AddSeconds(1), T0.AddSeconds(2), StageOutcomes.Ok, null),
            new RunStageRecord(1, "train", T0.AddSeconds(3), T0.AddSeconds(10), StageOutcomes.Failed, "loss is NaN at step 17"),
        ], run.Stages);
        Assert.Equal(TimeSpan.FromSeconds(11), run.Duration);
        Assert.Null(await Store.GetRunAsync("nope", None));
    }

    [Fact]
    public async Task Resuming_counts_attempts_and_only_a_running_run_can_be_resumed_or_changed()
    {
        await Store.StartRunAsync(new RunStart("r-1", "m", RunKinds.FineTune, "manual", T0, null), None);

        Assert.Equal(2, await Store.ResumeRunAsync("r-1", None));
        Assert.Equal(3, await Store.ResumeRunAsync("r-1", None));
        await Store.FinishRunAsync("r-1", RunStatuses.Promoted, 7, null, None);

        var finished = await Assert.ThrowsAsync<InvalidOperationException>(() => Store.ResumeRunAsync("r-1", None));
        Assert.Equal("run 'r-1' is not a running run of the ledger; it cannot be resumed", finished.Message);
        var unknown = await Assert.ThrowsAsync<InvalidOperationException>(() => Store.ResumeRunAsync("nope", None));
        Assert.Equal("run 'nope' is not a running run of the ledger; it cannot be resumed", unknown.Message);
        Assert.Equal("the run ledger has no run 'nope'", (await Assert.ThrowsAsync<InvalidOperationException>(() => Store.SetSnapshotAsync("nope", 1, 0, null, None))).Message);
        Assert.Equal("the run ledger has no run 'nope'", (await Assert.ThrowsAsync<InvalidOperationException>(() => Store.FinishRunAsync("nope", RunStatuses.Failed, null, null, None))).Message);
        Assert.Equal("the run ledger has no run 'r-1 stage train (attempt 3)'",
            (await Assert.ThrowsAsync<InvalidOperationException>(() => Store.EndStageAsync("r-1", 3, "train", StageOutcomes.Ok, null, None))).Message);
        Assert.StartsWith("a run finishes with a final status, not 'running'",
            (await Assert.ThrowsAsync<ArgumentException>(() => Store.FinishRunAsync("r-1", RunStatuses.Running, null, null, None))).Message, StringComparison.Ordinal);

        var run = await Store.GetRunAsync("r-1", None);
        Assert.Equal((RunStatuses.Promoted, (int?)7, 3, (string?)null, (long?)null), (run!.Status, run.Version, run.Attempts, run.Detail, run.Watermark));
        // A finish without a version keeps the one recorded.
        await Store.StartRunAsync(new RunStart("r-2", "m", RunKinds.FineTune, "manual", T0, null), None);
        await Store.FinishRunAsync("r-2", RunStatuses.Rejected, 8, "gate", None);
        await Store.FinishRunAsync("r-2", RunStatuses.Failed, null, "later", None);
        Assert.Equal((RunStatuses.Failed, (int?)8), ((await Store.GetRunAsync("r-2", None))!.Status, (await Store.GetRunAsync("r-2", None))!.Version));
    }

    [Fact]
    public async Task A_resumed_attempt_begins_a_stage_again_and_finishing_closes_open_stages_as_interrupted()
    {
        await Store.StartRunAsync(new RunStart("r-1", "m", RunKinds.FineTune, "schedule", T0, null), None);
        Clock.Now = T0.AddSeconds(1);
        await Store.BeginStageAsync("r-1", 1, "train", None); // then the process died
        Assert.Equal(2, await Store.ResumeRunAsync("r-1", None));
        Clock.Now = T0.AddSeconds(5);
        await Store.BeginStageAsync("r-1", 2, "train", None);
        Clock.Now = T0.AddSeconds(6);
        await Store.EndStageAsync("r-1", 2, "train", StageOutcomes.Ok, "done", None);
        Clock.Now = T0.AddSeconds(7);
        await Store.BeginStageAsync("r-1", 2, "export", None);
        Clock.Now = T0.AddSeconds(8);
        await Store.EndStageAsync("r-1", 2, "export", StageOutcomes.Failed, "parity", None);
        Clock.Now = T0.AddSeconds(9);
        await Store.BeginStageAsync("r-1", 2, "export", None); // begun again: the newer start wins, the outcome is cleared
        Clock.Now = T0.AddSeconds(10);
        await Store.FinishRunAsync("r-1", RunStatuses.Failed, null, "stopped", None);

        var run = await Store.GetRunAsync("r-1", None);
        Assert.Equal(
        [
            new RunStageRecord(1, "train", T0.AddSeconds(1), T0.AddSeconds(10), StageOutcomes.Interrupted, null),
            new RunStageRecord(2, "train", T0.AddSeconds(5), T0.AddSeconds(6), StageOutcomes.Ok, "done"),
            new RunStageRecord(2, "export", T0.AddSeconds(9), T0.AddSeconds(10), StageOutcomes.Interrupted, null),
        ], run!.Stages);
        Assert.Equal((2, RunStatuses.Failed), (run.Attempts, run.Status));
    }

    [Fact]
    public async Task Runs_list_newest_first_with_model_and_kind_filters_a_limit_and_ties_in_start_order()
    {
        await Store.StartRunAsync(new RunStart("a", "m1", RunKinds.FineTune, "manual", T0, null), None);
        await Store.StartRunAsync(new RunStart("b", "m1", RunKinds.Analysis, "schedule", T0.AddHours(1), null), None);
        await Store.StartRunAsync(new RunStart("c", "m2", RunKinds.FineTune, "manual", T0.AddHours(2), null), None);
        // d and e start within one clock tick: the later start is listed first.
        await Store.StartRunAsync(new RunStart("e", "m1", RunKinds.FineTune, "drift", T0.AddHours(3), null), None);
        await Store.StartRunAsync(new RunStart("d", "m1", RunKinds.FineTune, "drift", T0.AddHours(3), null), None);
        Clock.Now = T0.AddHours(3);
        await Store.BeginStageAsync("d", 1, "snapshot", None);

        async Task<string[]> List(string? model, string? kind, int limit) => (await Store.ListRunsAsync(model, kind, limit, None)).Select(r => r.RunId).ToArray();
        Assert.Equal(["d", "e", "c", "b", "a"], await List(null, null, 10));
        Assert.Equal(["d", "e", "b", "a"], await List("m1", null, 10));
        Assert.Equal(["d", "e"], await List("m1", RunKinds.FineTune, 2));
        Assert.Equal(["b"], await List(null, RunKinds.Analysis, 10));
        Assert.Equal(["d"], await List(null, null, 1));
        Assert.Empty(await List("m3", null, 10));
        Assert.Equal(["snapshot"], (await Store.ListRunsAsync("m1", null, 1, None))[0].Stages.Select(s => s.Stage).ToArray());

        await Store.FinishRunAsync("a", RunStatuses.Completed, null, null, None);
        await Store.FinishRunAsync("c", RunStatuses.Skipped, null, "too little data", None);
        Assert.Equal(["d", "e", "b"], (await Store.ListUnfinishedRunsAsync(None)).Select(r => r.RunId).ToArray());
    }

    [Fact]
    public async Task Ping_answers_true_while_the_store_is_up()
    {
        Assert.True(await Store.PingAsync(None));
    }

    /// <summary>A clock the test moves.</summary>
    protected sealed class ManualClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
