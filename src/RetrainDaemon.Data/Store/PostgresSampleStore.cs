using System.Globalization;
using System.Net.Sockets;
using Npgsql;
using NpgsqlTypes;
using RetrainDaemon.Core.Contracts;

namespace RetrainDaemon.Data.Store;

/// <summary>
/// The shared store: one PostgreSQL database that several daemon nodes write at once, with the same
/// schema versions and the same per-item semantics as <see cref="SqliteSampleStore"/>. Connections come
/// from an <see cref="NpgsqlDataSource"/> pool. Each <see cref="CommitAsync"/> is one transaction of two
/// round trips for a batch of samples (lock + one multi-row insert, then COMMIT), and durable when it
/// returns as far as the server's <c>fsync</c>/<c>synchronous_commit</c> make it — the defaults do.
/// Transient failures (server down, connection lost, shutting down, out of resources, serialization
/// conflicts) surface as <see cref="StoreUnavailableException"/>; everything else propagates.
/// </summary>
public sealed partial class PostgresSampleStore : IDaemonStore
{
    /// <summary>
    /// Session advisory lock held while migrating: nodes that start together against one database would
    /// otherwise race to create the same tables. Arbitrary fixed keys ("RTRN" + a purpose number); any
    /// other application using these exact numbers on the same database would only be serialized with us.
    /// </summary>
    internal const long MigrationLockKey = 0x5254_524E_0000_0001;

    /// <summary>Transaction advisory lock every sample/feedback commit takes before its first insert (see <see cref="CommitAsync"/>).</summary>
    internal const long CommitLockKey = 0x5254_524E_0000_0002;

    /// <summary>Readiness must answer even when the server is a black hole (Npgsql's own connect timeout is 15 s).</summary>
    private static readonly TimeSpan PingTimeout = TimeSpan.FromSeconds(5);

    private readonly NpgsqlDataSource dataSource;
    private readonly TimeProvider clock;
    private readonly SemaphoreSlim initLock = new(1, 1);
    private volatile bool initialized;
    private int disposed;

    /// <param name="connectionString">An Npgsql connection string (<c>Host=…;Database=…;Username=…</c>).</param>
    /// <param name="clock">The time written as <c>received_at</c> and stage times (tests pass their own).</param>
    public PostgresSampleStore(string connectionString, TimeProvider? clock = null)
    {
        var builder = ParseConnectionString(connectionString);
        Description = Describe(builder);
        if (string.IsNullOrEmpty(builder.ApplicationName))
        {
            // pg_stat_activity then says which sessions are the daemon's.
            builder.ApplicationName = "retrain-daemon";
        }

        if (builder.MaxAutoPrepare == 0)
        {
            // The few statements a node repeats (the batch insert above all) are then parsed and planned once per
            // pooled connection instead of at every commit.
            builder.MaxAutoPrepare = 32;
        }

        dataSource = NpgsqlDataSource.Create(builder);
        this.clock = clock ?? TimeProvider.System;
    }

    /// <summary>PostgreSQL host:port/database — what error messages and the CLI name; never the password.</summary>
    public string Description { get; }

    /// <summary>
    /// Parses an Npgsql connection string, refusing unknown keywords and bad values with a message that names
    /// the keyword but never quotes the string (it may hold a password).
    /// </summary>
    public static NpgsqlConnectionStringBuilder ParseConnectionString(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        var pairs = new System.Data.Common.DbConnectionStringBuilder();
        try
        {
            pairs.ConnectionString = connectionString;
        }
        catch (ArgumentException ex)
        {
            // The generic parser's message gives a position, never the text.
            throw new ArgumentException($"not a valid PostgreSQL connection string: {ex.Message}", nameof(connectionString), ex);
        }

        // Keyword by keyword, so the error names the one Npgsql refuses; Npgsql's own message for an unknown keyword
        // ("Couldn't set …") does not say that it is unknown.
        var builder = new NpgsqlConnectionStringBuilder();
        foreach (string key in pairs.Keys)
        {
            try
            {
                builder[key] = pairs[key];
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidCastException or OverflowException)
            {
                bool secret = key.Contains("pass", StringComparison.OrdinalIgnoreCase);
                string problem = !builder.ContainsKey(key) ? $"'{key}' is not a keyword Npgsql knows"
                    : secret ? $"the value of '{key}' is not valid"
                    : $"the value of '{key}' is not valid: {(ex.InnerException ?? ex).Message}";
                throw new ArgumentException($"not a valid PostgreSQL connection string: {problem}", nameof(connectionString), ex);
            }
        }

        if (string.IsNullOrWhiteSpace(builder.Host))
        {
            throw new ArgumentException("the PostgreSQL connection string names no Host: add Host=<server name or address>", nameof(connectionString));
        }

        return builder;
    }

    private static string Describe(NpgsqlConnectionStringBuilder builder) =>
        string.Create(CultureInfo.InvariantCulture, $"postgres {builder.Host}:{builder.Port}/{builder.Database ?? builder.Username ?? "(default database)"}");

    public Task InitializeAsync(CancellationToken cancellationToken) => EnsureInitializedAsync(cancellationToken);

    private async Task EnsureInitializedAsync(CancellationToken cancellationToken)
    {
        if (initialized)
        {
            return;
        }

        await initLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (initialized)
            {
                return;
            }

            try
            {
                await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
                await MigrateAsync(connection, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsTransient(ex))
            {
                throw Unavailable("cannot open", ex);
            }

            initialized = true;
        }
        finally
        {
            initLock.Release();
        }
    }

    private async Task MigrateAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        // Nodes starting together would race to create the same tables (CREATE TABLE IF NOT EXISTS is not safe
        // under concurrency either): one migrates, the others wait here and then find nothing left to do. A session
        // lock, released below or when the connection dies.
        await ExecuteAsync(connection, null, "SELECT pg_advisory_lock($1);", cancellationToken, MigrationLockKey).ConfigureAwait(false);
        try
        {
            await ExecuteAsync(connection, null,
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL);",
                cancellationToken).ConfigureAwait(false);
            int current = await CurrentSchemaVersionAsync(connection, cancellationToken).ConfigureAwait(false);
            int newest = PostgresMigrations.All[^1].Version;
            if (current > newest)
            {
                throw new InvalidOperationException(
                    $"The store '{Description}' has schema version {current}, newer than this build knows ({newest}); refusing to touch it.");
            }

            foreach (var (version, name, sql) in PostgresMigrations.All)
            {
                if (version <= current)
                {
                    continue;
                }

                await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await ExecuteAsync(connection, tx, sql, cancellationToken).ConfigureAwait(false);
                await ExecuteAsync(connection, tx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3);",
                    cancellationToken, version, name, DateTime.UtcNow).ConfigureAwait(false);
                await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            try
            {
                await ExecuteAsync(connection, null, "SELECT pg_advisory_unlock($1);", CancellationToken.None, MigrationLockKey).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException)
            {
                // The connection is gone, and a session lock goes with it; the failure that brought us here is the one to report.
            }
        }
    }

    private static async Task<int> CurrentSchemaVersionAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT COALESCE(MAX(version), 0) FROM schema_migrations;", connection);
        return Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
    }

    /// <summary>Runs one statement (or several without parameters) with positional parameters <c>$1…</c> (values or <see cref="NpgsqlParameter"/>s).</summary>
    private static async Task<int> ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, string sql, CancellationToken cancellationToken, params object?[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection, tx);
        foreach (var value in parameters)
        {
            command.Parameters.Add(Parameter(value));
        }

        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Stores the batch in one transaction with per-item outcomes like <see cref="SqliteSampleStore"/>: a new event id
    /// is stored, a known one (also earlier in the same batch) is a duplicate, feedback that cites no matching
    /// generation is rejected alone.
    /// </summary>
    /// <remarks>
    /// Why the commit lock: training snapshots read <c>afterSequence &lt; seq ≤ watermark</c> with watermark =
    /// MAX(seq). A sequence hands out numbers when rows are inserted, not when they commit, so with several nodes
    /// (or pooled connections) committing at once, the transaction holding seq 5 can commit after the one holding
    /// seq 6 — and a snapshot taken in between, with watermark 6, would miss sample 5 forever (the next snapshot
    /// starts after 6). Taking one transaction-scoped advisory lock before the first insert makes numbering and
    /// commit one critical section: sequence order is commit order, for samples and feedback alike. The lock is
    /// released only after the commit is visible, so the next holder's numbers are all higher. It serializes
    /// commits across nodes; each holds it for one round trip plus the commit's WAL flush.
    /// </remarks>
    public async Task<IReadOnlyList<CommitOutcome>> CommitAsync(IReadOnlyList<IngestItem> items, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (items.Count == 0)
        {
            return [];
        }

        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var received = clock.GetUtcNow().UtcDateTime;
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var outcomes = await CommitInTransactionAsync(connection, tx, items, received, cancellationToken).ConfigureAwait(false);
            // Disposing the transaction without this commit rolls it back: nothing of a failed batch is visible.
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            return outcomes;
        }
        catch (Exception ex) when (IsTransient(ex))
        {
            throw Unavailable($"cannot commit {items.Count} items", ex);
        }
    }

    private async Task<CommitOutcome[]> CommitInTransactionAsync(NpgsqlConnection connection, NpgsqlTransaction tx, IReadOnlyList<IngestItem> items, DateTime received, CancellationToken cancellationToken)
    {
        var outcomes = new CommitOutcome[items.Count];
        var lockCommand = new NpgsqlBatchCommand("SELECT pg_advisory_xact_lock($1);") { Parameters = { new NpgsqlParameter { Value = CommitLockKey } } };
        bool lockTaken = false;

        // Feedback needs the generations it cites (and which feedback ids are stored already) before anything is
        // inserted: one round trip, after the lock, so nothing can change between this look and the inserts.
        Dictionary<string, GenerationRecord> generations = new(StringComparer.Ordinal);
        HashSet<string> storedFeedback = new(StringComparer.Ordinal);
        var feedbackIds = items.Where(i => i.Feedback is not null).Select(i => i.Feedback!.EventId).Distinct(StringComparer.Ordinal).ToArray();
        if (feedbackIds.Length > 0)
        {
            await using var lookup = new NpgsqlBatch(connection, tx);
            lookup.BatchCommands.Add(lockCommand);
            lookup.BatchCommands.Add(new NpgsqlBatchCommand($"SELECT {GenerationColumns} FROM generations WHERE generation_id = ANY($1);")
            {
                Parameters = { TextArray(items.Where(i => i.Feedback is not null).Select(i => i.Feedback!.GenerationId).Distinct(StringComparer.Ordinal).ToArray()) },
            });
            lookup.BatchCommands.Add(new NpgsqlBatchCommand("SELECT event_id FROM feedback WHERE event_id = ANY($1);") { Parameters = { TextArray(feedbackIds) } });
            await using var reader = await lookup.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false); // past the lock's void row
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var generation = ReadGeneration(reader);
                generations[generation.GenerationId] = generation;
            }

            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                storedFeedback.Add(reader.GetString(0));
            }

            lockTaken = true;
        }

        // Settle every item in batch order, as the SQLite store does row by row: the first occurrence of an id in the
        // batch is inserted, later ones are duplicates; a correction sample follows its feedback in sequence order.
        var samples = new List<(SampleRecord Sample, int Item)>();
        var feedback = new List<(FeedbackRecord Feedback, GenerationRecord Generation, int Item, string? CorrectionId)>();
        var batchSampleIds = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < items.Count; i++)
        {
            if (items[i].Sample is { } sample)
            {
                if (batchSampleIds.Add(sample.EventId))
                {
                    samples.Add((sample, i));
                }
                else
                {
                    outcomes[i] = CommitOutcome.Duplicate;
                }

                continue;
            }

            var f = items[i].Feedback!;
            if (storedFeedback.Contains(f.EventId))
            {
                // Already stored (earlier, or earlier in this batch): a duplicate, whatever the join would say now.
                outcomes[i] = CommitOutcome.Duplicate;
                continue;
            }

            var cited = generations.GetValueOrDefault(f.GenerationId);
            if (FeedbackJoin.Refusal(f, cited) is var (reason, detail))
            {
                outcomes[i] = CommitOutcome.Rejected(reason, detail);
                continue;
            }

            storedFeedback.Add(f.EventId);
            string? correctionId = null;
            if (FeedbackJoin.CorrectionSample(f, cited!) is { } correction && batchSampleIds.Add(correction.EventId))
            {
                samples.Add((correction, i));
                correctionId = correction.EventId;
            }

            feedback.Add((f, cited!, i, correctionId));
        }

        if (samples.Count == 0 && feedback.Count == 0)
        {
            return outcomes;
        }

        await using var insert = new NpgsqlBatch(connection, tx);
        if (!lockTaken)
        {
            insert.BatchCommands.Add(lockCommand);
        }

        if (feedback.Count > 0)
        {
            insert.BatchCommands.Add(InsertFeedbackCommand(feedback.Select(x => (x.Feedback, x.Generation)).ToList(), received));
        }

        if (samples.Count > 0)
        {
            insert.BatchCommands.Add(InsertSamplesCommand(samples.Select(x => x.Sample).ToList(), received));
        }

        var insertedFeedback = new HashSet<string>(StringComparer.Ordinal);
        var insertedSamples = new HashSet<string>(StringComparer.Ordinal);
        await using (var reader = await insert.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            if (!lockTaken)
            {
                await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            }

            if (feedback.Count > 0)
            {
                await ReadIdsAsync(reader, insertedFeedback, cancellationToken).ConfigureAwait(false);
                await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            }

            if (samples.Count > 0)
            {
                await ReadIdsAsync(reader, insertedSamples, cancellationToken).ConfigureAwait(false);
            }
        }

        foreach (var (sample, item) in samples)
        {
            if (items[item].Sample is not null)
            {
                outcomes[item] = insertedSamples.Contains(sample.EventId) ? CommitOutcome.Stored : CommitOutcome.Duplicate;
            }
        }

        foreach (var (f, _, item, correctionId) in feedback)
        {
            // Under the commit lock every feedback id settled as new is inserted; the check only keeps the outcome
            // honest should a writer without the lock ever get in between.
            outcomes[item] = insertedFeedback.Contains(f.EventId)
                ? CommitOutcome.Stored with { AddedCorrectionSample = correctionId is not null && insertedSamples.Contains(correctionId) }
                : CommitOutcome.Duplicate;
        }

        return outcomes;
    }

    private static async Task ReadIdsAsync(NpgsqlDataReader reader, HashSet<string> ids, CancellationToken cancellationToken)
    {
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            ids.Add(reader.GetString(0));
        }
    }

    /// <summary>
    /// All samples of a commit in one statement: arrays unnested in batch order. NOT EXISTS skips ids stored before
    /// without drawing a sequence number (an ON CONFLICT skip still draws one; under the commit lock no other
    /// writer can add a row in between, so ON CONFLICT is only the backstop), which keeps seq as dense as SQLite's.
    /// </summary>
    private static NpgsqlBatchCommand InsertSamplesCommand(List<SampleRecord> samples, DateTime received)
    {
        int n = samples.Count;
        var ids = new string[n];
        var models = new string[n];
        var sources = new string[n];
        var eventTimes = new DateTime?[n];
        var modalities = new string[n];
        var splits = new string[n];
        var labels = new string?[n];
        var widths = new int[n];
        var heights = new int[n];
        var channels = new int[n];
        var pixels = new byte[]?[n];
        var texts = new string?[n];
        var sourceTexts = new string?[n];
        var origins = new string[n];
        var correctionOf = new string?[n];
        for (int i = 0; i < n; i++)
        {
            var s = samples[i];
            ids[i] = s.EventId;
            models[i] = s.Model;
            sources[i] = s.Source;
            eventTimes[i] = s.EventTime?.UtcDateTime;
            modalities[i] = s.Modality == Modality.Image ? "image" : "text";
            splits[i] = s.Split;
            labels[i] = s.Label;
            widths[i] = s.Width;
            heights[i] = s.Height;
            channels[i] = s.Channels;
            pixels[i] = s.Pixels;
            texts[i] = s.Text;
            sourceTexts[i] = s.SourceText;
            origins[i] = s.Origin;
            correctionOf[i] = s.CorrectionOf;
        }

        return new NpgsqlBatchCommand("""
            INSERT INTO samples (event_id, model, source, event_time, modality, split, label, width, height, channels, pixels, text, source_text, received_at, origin, correction_of)
            SELECT u.event_id, u.model, u.source, u.event_time, u.modality, u.split, u.label, u.width, u.height, u.channels, u.pixels, u.text, u.source_text, $16, u.origin, u.correction_of
            FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 WITH ORDINALITY AS u (event_id, model, source, event_time, modality, split, label, width, height, channels, pixels, text, source_text, origin, correction_of, ord)
            WHERE NOT EXISTS (SELECT 1 FROM samples s WHERE s.event_id = u.event_id)
            ORDER BY u.ord
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id;
            """)
        {
            Parameters =
            {
                TextArray(ids), TextArray(models), TextArray(sources), Typed(eventTimes, NpgsqlDbType.TimestampTz), TextArray(modalities), TextArray(splits),
                TextArray(labels), Typed(widths, NpgsqlDbType.Integer), Typed(heights, NpgsqlDbType.Integer), Typed(channels, NpgsqlDbType.Integer),
                Typed(pixels, NpgsqlDbType.Bytea), TextArray(texts), TextArray(sourceTexts), TextArray(origins), TextArray(correctionOf),
                new NpgsqlParameter { Value = received, NpgsqlDbType = NpgsqlDbType.TimestampTz },
            },
        };
    }

    private static NpgsqlBatchCommand InsertFeedbackCommand(List<(FeedbackRecord Feedback, GenerationRecord Generation)> rows, DateTime received)
    {
        int n = rows.Count;
        var ids = new string[n];
        var models = new string[n];
        var sources = new string[n];
        var eventTimes = new DateTime?[n];
        var generationIds = new string[n];
        var versions = new string[n];
        var ratings = new int?[n];
        var accepted = new bool?[n];
        var correctionTexts = new string?[n];
        var correctionImages = new byte[]?[n];
        var raters = new string?[n];
        var slices = new string?[n];
        for (int i = 0; i < n; i++)
        {
            var (f, g) = rows[i];
            ids[i] = f.EventId;
            models[i] = f.Model;
            sources[i] = f.Source;
            eventTimes[i] = f.EventTime?.UtcDateTime;
            generationIds[i] = f.GenerationId;
            // The generation's version, not the message's spelling of it ("3", 3, "03"), so queries by version match.
            versions[i] = g.Version.ToString(CultureInfo.InvariantCulture);
            ratings[i] = f.Rating;
            accepted[i] = f.Accepted;
            correctionTexts[i] = f.CorrectionText;
            correctionImages[i] = f.CorrectionImage;
            raters[i] = f.Rater;
            slices[i] = g.Slice;
        }

        return new NpgsqlBatchCommand("""
            INSERT INTO feedback (event_id, model, source, event_time, generation_id, version, rating, accepted, correction_text, correction_image, rater, received_at, slice)
            SELECT u.event_id, u.model, u.source, u.event_time, u.generation_id, u.version, u.rating, u.accepted, u.correction_text, u.correction_image, u.rater, $13, u.slice
            FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 WITH ORDINALITY AS u (event_id, model, source, event_time, generation_id, version, rating, accepted, correction_text, correction_image, rater, slice, ord)
            WHERE NOT EXISTS (SELECT 1 FROM feedback f WHERE f.event_id = u.event_id)
            ORDER BY u.ord
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id;
            """)
        {
            Parameters =
            {
                TextArray(ids), TextArray(models), TextArray(sources), Typed(eventTimes, NpgsqlDbType.TimestampTz), TextArray(generationIds), TextArray(versions),
                Typed(ratings, NpgsqlDbType.Integer), Typed(accepted, NpgsqlDbType.Boolean), TextArray(correctionTexts), Typed(correctionImages, NpgsqlDbType.Bytea),
                TextArray(raters), TextArray(slices),
                new NpgsqlParameter { Value = received, NpgsqlDbType = NpgsqlDbType.TimestampTz },
            },
        };
    }

    /// <summary>A positional parameter: typed ones pass as they are, plain values let Npgsql infer the type.</summary>
    private static NpgsqlParameter Parameter(object? value) => value as NpgsqlParameter ?? new NpgsqlParameter { Value = value ?? DBNull.Value };

    private static NpgsqlParameter TextArray(string?[] values) => Typed(values, NpgsqlDbType.Text);

    private static NpgsqlParameter Typed(object values, NpgsqlDbType elementType) =>
        new() { Value = values, NpgsqlDbType = NpgsqlDbType.Array | elementType };

    /// <summary>
    /// Errors that say "not now" rather than "never": the server down or unreachable, the connection lost,
    /// the server shutting down or starting (57P0x), out of resources (53xxx), serialization failures and
    /// deadlocks (40001, 40P01), and whatever Npgsql itself calls transient (I/O errors, timeouts).
    /// </summary>
    public static bool IsTransient(Exception exception) => exception switch
    {
        PostgresException pg => pg.IsTransient || IsTransientState(pg.SqlState),
        NpgsqlException npgsql => npgsql.IsTransient || npgsql.InnerException is IOException or SocketException or TimeoutException,
        _ => false,
    };

    private static bool IsTransientState(string sqlState) =>
        sqlState.StartsWith("08", StringComparison.Ordinal) || sqlState.StartsWith("53", StringComparison.Ordinal)
        || sqlState.StartsWith("57P0", StringComparison.Ordinal) || sqlState is "40001" or "40P01";

    /// <summary>
    /// The exception callers retry on. A lost server leaves every idle pooled connection dead; clearing the pool
    /// makes the next attempt dial afresh instead of failing once per stale connection.
    /// </summary>
    private StoreUnavailableException Unavailable(string what, Exception ex)
    {
        bool connectionLost = ex is not PostgresException pgError
            || pgError.SqlState.StartsWith("08", StringComparison.Ordinal) || pgError.SqlState.StartsWith("57P0", StringComparison.Ordinal);
        if (connectionLost)
        {
            dataSource.Clear();
        }

        string code = ex is PostgresException pg ? $" ({pg.SqlState})" : "";
        return new StoreUnavailableException($"the store '{Description}' is unavailable{code}: {what}: {ex.Message}", ex);
    }

    /// <summary>One read or small write on a pooled connection, after migrations, with transient failures surfaced as <see cref="StoreUnavailableException"/>.</summary>
    private async Task<T> WithConnectionAsync<T>(string what, Func<NpgsqlConnection, Task<T>> work, CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            return await work(connection).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsTransient(ex))
        {
            throw Unavailable(what, ex);
        }
    }

    /// <summary>Streams rows of one query, with transient failures (also mid-stream) surfaced as <see cref="StoreUnavailableException"/>.</summary>
    private async IAsyncEnumerable<T> StreamAsync<T>(string what, string sql, object?[] parameters, Func<NpgsqlDataReader, T> read,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        NpgsqlConnection? connection = null;
        NpgsqlCommand? command = null;
        NpgsqlDataReader? reader = null;
        try
        {
            try
            {
                connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
                command = new NpgsqlCommand(sql, connection);
                foreach (var value in parameters)
                {
                    command.Parameters.Add(Parameter(value));
                }

                reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsTransient(ex))
            {
                throw Unavailable(what, ex);
            }

            while (true)
            {
                T row;
                try
                {
                    if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        break;
                    }

                    row = read(reader);
                }
                catch (Exception ex) when (IsTransient(ex))
                {
                    throw Unavailable(what, ex);
                }

                yield return row;
            }
        }
        finally
        {
            if (reader is not null)
            {
                await reader.DisposeAsync().ConfigureAwait(false);
            }

            if (command is not null)
            {
                await command.DisposeAsync().ConfigureAwait(false);
            }

            if (connection is not null)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static NpgsqlCommand Command(NpgsqlConnection connection, string sql, params object?[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection);
        foreach (var value in parameters)
        {
            command.Parameters.Add(Parameter(value));
        }

        return command;
    }

    /// <summary>In SQLite's order: byte-wise text (whatever the database's collation) with a missing label first.</summary>
    public Task<StoreStats> GetStatsAsync(CancellationToken cancellationToken) => WithConnectionAsync("cannot read statistics", async connection =>
    {
        var samples = new List<SampleCount>();
        await using (var command = Command(connection, """
            SELECT model, modality, split, label, COUNT(*) FROM samples GROUP BY model, modality, split, label
            ORDER BY model COLLATE "C", modality COLLATE "C", split COLLATE "C", label COLLATE "C" NULLS FIRST;
            """))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                samples.Add(new SampleCount(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3), reader.GetInt64(4)));
            }
        }

        var feedback = new List<FeedbackCount>();
        await using (var command = Command(connection, """SELECT model, COUNT(*), AVG(rating)::double precision FROM feedback GROUP BY model ORDER BY model COLLATE "C";"""))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                feedback.Add(new FeedbackCount(reader.GetString(0), reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetDouble(2)));
            }
        }

        long watermark = await ScalarInt64Async(connection, "SELECT COALESCE(MAX(seq), 0) FROM samples;", cancellationToken).ConfigureAwait(false);
        int schema = await CurrentSchemaVersionAsync(connection, cancellationToken).ConfigureAwait(false);
        return new StoreStats(samples, feedback, watermark, schema);
    }, cancellationToken);

    private static async Task<long> ScalarInt64Async(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params object?[] parameters)
    {
        await using var command = Command(connection, sql, parameters);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
    }

    public Task<long> GetWatermarkAsync(CancellationToken cancellationToken) =>
        WithConnectionAsync("cannot read the watermark", connection => ScalarInt64Async(connection, "SELECT COALESCE(MAX(seq), 0) FROM samples;", cancellationToken), cancellationToken);

    private const string SampleColumns = "seq, event_id, model, source, event_time, modality, split, label, width, height, channels, pixels, text, source_text, received_at, origin, correction_of";

    public Task<StoredSample?> GetSampleAsync(string eventId, CancellationToken cancellationToken) => WithConnectionAsync($"cannot read sample '{eventId}'", async connection =>
    {
        await using var command = Command(connection, $"SELECT {SampleColumns} FROM samples WHERE event_id = $1;", eventId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadSample(reader) : null;
    }, cancellationToken);

    public IAsyncEnumerable<StoredSample> ReadSamplesAsync(string model, long afterSequence, long watermark, string? split, CancellationToken cancellationToken) =>
        StreamAsync($"cannot read the samples of '{model}'",
            $"SELECT {SampleColumns} FROM samples WHERE model = $1 AND seq > $2 AND seq <= $3 AND ($4::text IS NULL OR split = $4) ORDER BY seq;",
            [model, afterSequence, watermark, split], ReadSample, cancellationToken);

    private static StoredSample ReadSample(NpgsqlDataReader r)
    {
        var record = new SampleRecord(
            EventId: r.GetString(1),
            Model: r.GetString(2),
            Source: r.GetString(3),
            EventTime: r.IsDBNull(4) ? null : r.GetFieldValue<DateTimeOffset>(4),
            Modality: r.GetString(5) == "image" ? Modality.Image : Modality.Text,
            Split: r.GetString(6),
            Label: r.IsDBNull(7) ? null : r.GetString(7),
            Width: r.GetInt32(8),
            Height: r.GetInt32(9),
            Channels: r.GetInt32(10),
            Pixels: r.IsDBNull(11) ? null : r.GetFieldValue<byte[]>(11),
            Text: r.IsDBNull(12) ? null : r.GetString(12),
            SourceText: r.IsDBNull(13) ? null : r.GetString(13))
        {
            Origin = r.GetString(15),
            CorrectionOf = r.IsDBNull(16) ? null : r.GetString(16),
        };
        return new StoredSample(r.GetInt64(0), record, r.GetFieldValue<DateTimeOffset>(14));
    }

    /// <summary>False, not an exception, when the server cannot be reached (readiness asks every few seconds).</summary>
    public async Task<bool> PingAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(PingTimeout);
        try
        {
            return await WithConnectionAsync("cannot ping", async connection =>
                await ScalarInt64Async(connection, "SELECT 1;", timeout.Token).ConfigureAwait(false) == 1, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is StoreUnavailableException or NpgsqlException)
        {
            return false;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>Closes the pool. Idempotent: the host may dispose the one instance under each interface it registered.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 0)
        {
            await dataSource.DisposeAsync().ConfigureAwait(false);
        }
    }
}
