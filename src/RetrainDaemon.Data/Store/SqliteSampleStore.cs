using System.Globalization;
using Microsoft.Data.Sqlite;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;

namespace RetrainDaemon.Data.Store;

/// <summary>
/// The embedded store: one SQLite file in WAL mode. Writes go through a single connection
/// (SQLite has one writer anyway) guarded by a semaphore; each <see cref="CommitAsync"/> is one
/// transaction and, with <c>synchronous=FULL</c>, one fsync — so the caller may ack every message
/// of the batch once it returns. Reads use pooled connections and do not block the writer.
/// </summary>
public sealed partial class SqliteSampleStore : IDaemonStore
{
    private readonly string path;
    private readonly string synchronous;
    private readonly SemaphoreSlim writeLock = new(1, 1);
    private readonly TimeProvider clock;
    private SqliteConnection? writer;
    private SqliteCommand? insertSample;
    private SqliteCommand? insertFeedback;
    private SqliteCommand? findGeneration;
    private SqliteCommand? feedbackExists;

    public SqliteSampleStore(StoreOptions options, TimeProvider? clock = null)
    {
        path = Path.GetFullPath(options.Path);
        synchronous = options.Synchronous.ToUpperInvariant();
        this.clock = clock ?? TimeProvider.System;
    }

    public string DatabasePath => path;

    /// <summary>The database file's full path.</summary>
    public string Description => path;

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await EnsureWriterAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            writeLock.Release();
        }
    }

    private async Task<SqliteConnection> EnsureWriterAsync(CancellationToken cancellationToken)
    {
        if (writer is not null)
        {
            return writer;
        }

        var directory = Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        var connection = new SqliteConnection(ConnectionString(pooling: false));
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            Execute(connection, "PRAGMA journal_mode=WAL;");
            Execute(connection, $"PRAGMA synchronous={synchronous};");
            Execute(connection, "PRAGMA busy_timeout=2000;");
            Migrate(connection);
            insertSample = PrepareInsertSample(connection);
            insertFeedback = PrepareInsertFeedback(connection);
            findGeneration = PrepareFindGeneration(connection);
            feedbackExists = PrepareFeedbackExists(connection);
            writer = connection;
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private string ConnectionString(bool pooling) => new SqliteConnectionStringBuilder
    {
        DataSource = path,
        Mode = SqliteOpenMode.ReadWriteCreate,
        Pooling = pooling,
        // Microsoft.Data.Sqlite retries a busy database for this long before it throws; past it the
        // store counts as unavailable (readiness false, commits retried with backoff).
        DefaultTimeout = 5,
    }.ToString();

    private static void Execute(SqliteConnection connection, string sql, SqliteTransaction? tx = null)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = tx;
        command.ExecuteNonQuery();
    }

    private static void Migrate(SqliteConnection connection)
    {
        Execute(connection, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);");
        int current = CurrentSchemaVersion(connection);
        int newest = SqliteMigrations.All[^1].Version;
        if (current > newest)
        {
            throw new InvalidOperationException(
                $"The store '{connection.DataSource}' has schema version {current}, newer than this build knows ({newest}); refusing to touch it.");
        }

        foreach (var (version, name, sql) in SqliteMigrations.All)
        {
            if (version <= current)
            {
                continue;
            }

            using var tx = connection.BeginTransaction();
            Execute(connection, sql, tx);
            using var record = connection.CreateCommand();
            record.Transaction = tx;
            record.CommandText = "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($v, $n, $t);";
            record.Parameters.AddWithValue("$v", version);
            record.Parameters.AddWithValue("$n", name);
            record.Parameters.AddWithValue("$t", DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture));
            record.ExecuteNonQuery();
            tx.Commit();
        }
    }

    private static int CurrentSchemaVersion(SqliteConnection connection)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations;";
        return Convert.ToInt32(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    private static SqliteCommand PrepareInsertSample(SqliteConnection connection)
    {
        var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO samples (event_id, model, source, event_time, modality, split, label, width, height, channels, pixels, text, source_text, received_at, origin, correction_of)
            VALUES ($id, $model, $source, $time, $modality, $split, $label, $w, $h, $c, $pixels, $text, $source_text, $received, $origin, $correction_of)
            ON CONFLICT (event_id) DO NOTHING;
            """;
        foreach (var name in new[] { "$id", "$model", "$source", "$time", "$modality", "$split", "$label", "$w", "$h", "$c", "$pixels", "$text", "$source_text", "$received", "$origin", "$correction_of" })
        {
            command.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        command.Prepare();
        return command;
    }

    private static SqliteCommand PrepareInsertFeedback(SqliteConnection connection)
    {
        var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO feedback (event_id, model, source, event_time, generation_id, version, rating, accepted, correction_text, correction_image, rater, received_at, slice)
            VALUES ($id, $model, $source, $time, $gen, $version, $rating, $accepted, $ctext, $cimage, $rater, $received, $slice)
            ON CONFLICT (event_id) DO NOTHING;
            """;
        foreach (var name in new[] { "$id", "$model", "$source", "$time", "$gen", "$version", "$rating", "$accepted", "$ctext", "$cimage", "$rater", "$received", "$slice" })
        {
            command.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        command.Prepare();
        return command;
    }

    public async Task<IReadOnlyList<CommitOutcome>> CommitAsync(IReadOnlyList<IngestItem> items, CancellationToken cancellationToken)
    {
        if (items.Count == 0)
        {
            return [];
        }

        await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            SqliteConnection connection;
            try
            {
                connection = await EnsureWriterAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (SqliteException ex) when (IsTransient(ex))
            {
                throw new StoreUnavailableException($"cannot open the store '{path}': {ex.Message}", ex);
            }

            var outcomes = new CommitOutcome[items.Count];
            string received = clock.GetUtcNow().ToString("O", CultureInfo.InvariantCulture);
            SqliteTransaction? tx = null;
            try
            {
                tx = connection.BeginTransaction(deferred: false);
                insertSample!.Transaction = tx;
                insertFeedback!.Transaction = tx;
                findGeneration!.Transaction = tx;
                feedbackExists!.Transaction = tx;
                for (int i = 0; i < items.Count; i++)
                {
                    outcomes[i] = items[i].Sample is { } sample
                        ? InsertSample(sample, received) == 1 ? CommitOutcome.Stored : CommitOutcome.Duplicate
                        : CommitFeedback(items[i].Feedback!, received);
                }

                tx.Commit();
                return outcomes;
            }
            catch (SqliteException ex) when (IsTransient(ex))
            {
                SafeRollback(tx);
                throw new StoreUnavailableException($"the store '{path}' is unavailable ({ex.SqliteErrorCode}): {ex.Message}", ex);
            }
            catch
            {
                SafeRollback(tx);
                throw;
            }
            finally
            {
                tx?.Dispose();
                insertSample!.Transaction = null;
                insertFeedback!.Transaction = null;
                findGeneration!.Transaction = null;
                feedbackExists!.Transaction = null;
            }
        }
        finally
        {
            writeLock.Release();
        }
    }

    private static void SafeRollback(SqliteTransaction? tx)
    {
        try
        {
            tx?.Rollback();
        }
        catch (SqliteException)
        {
            // The transaction may already be gone (e.g. the connection failed); nothing was committed either way.
        }
        catch (InvalidOperationException)
        {
        }
    }

    private int InsertSample(SampleRecord s, string received)
    {
        var p = insertSample!.Parameters;
        p[0].Value = s.EventId;
        p[1].Value = s.Model;
        p[2].Value = s.Source;
        p[3].Value = (object?)s.EventTime?.ToString("O", CultureInfo.InvariantCulture) ?? DBNull.Value;
        p[4].Value = s.Modality == Modality.Image ? "image" : "text";
        p[5].Value = s.Split;
        p[6].Value = (object?)s.Label ?? DBNull.Value;
        p[7].Value = s.Width;
        p[8].Value = s.Height;
        p[9].Value = s.Channels;
        p[10].Value = (object?)s.Pixels ?? DBNull.Value;
        p[11].Value = (object?)s.Text ?? DBNull.Value;
        p[12].Value = (object?)s.SourceText ?? DBNull.Value;
        p[13].Value = received;
        p[14].Value = s.Origin;
        p[15].Value = (object?)s.CorrectionOf ?? DBNull.Value;
        return insertSample.ExecuteNonQuery();
    }

    private int InsertFeedback(FeedbackRecord f, GenerationRecord generation, string received)
    {
        var p = insertFeedback!.Parameters;
        p[0].Value = f.EventId;
        p[1].Value = f.Model;
        p[2].Value = f.Source;
        p[3].Value = (object?)f.EventTime?.ToString("O", CultureInfo.InvariantCulture) ?? DBNull.Value;
        p[4].Value = f.GenerationId;
        // The generation's version, not the message's spelling of it ("3", 3, "03"), so queries by version match.
        p[5].Value = generation.Version.ToString(CultureInfo.InvariantCulture);
        p[6].Value = (object?)f.Rating ?? DBNull.Value;
        p[7].Value = f.Accepted is { } a ? (a ? 1 : 0) : DBNull.Value;
        p[8].Value = (object?)f.CorrectionText ?? DBNull.Value;
        p[9].Value = (object?)f.CorrectionImage ?? DBNull.Value;
        p[10].Value = (object?)f.Rater ?? DBNull.Value;
        p[11].Value = received;
        p[12].Value = (object?)generation.Slice ?? DBNull.Value;
        return insertFeedback.ExecuteNonQuery();
    }

    /// <summary>Errors that say "not now" rather than "never": busy/locked, I/O, full disk, cannot open.</summary>
    public static bool IsTransient(SqliteException ex) => (ex.SqliteErrorCode & 0xFF) switch
    {
        5 or 6 or 7 or 8 or 10 or 13 or 14 or 15 => true, // BUSY LOCKED NOMEM READONLY IOERR FULL CANTOPEN PROTOCOL
        _ => false,
    };

    private async Task<SqliteConnection> OpenReaderAsync(CancellationToken cancellationToken)
    {
        if (writer is null)
        {
            await InitializeAsync(cancellationToken).ConfigureAwait(false);
        }

        var connection = new SqliteConnection(ConnectionString(pooling: true));
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        return connection;
    }

    public async Task<StoreStats> GetStatsAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        var samples = new List<SampleCount>();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT model, modality, split, label, COUNT(*) FROM samples GROUP BY model, modality, split, label ORDER BY model, modality, split, label;";
            using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                samples.Add(new SampleCount(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3), reader.GetInt64(4)));
            }
        }

        var feedback = new List<FeedbackCount>();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT model, COUNT(*), AVG(rating) FROM feedback GROUP BY model ORDER BY model;";
            using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                feedback.Add(new FeedbackCount(reader.GetString(0), reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetDouble(2)));
            }
        }

        long watermark = await WatermarkAsync(connection, cancellationToken).ConfigureAwait(false);
        return new StoreStats(samples, feedback, watermark, CurrentSchemaVersion(connection));
    }

    public async Task<long> GetWatermarkAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        return await WatermarkAsync(connection, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<long> WatermarkAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT COALESCE(MAX(seq), 0) FROM samples;";
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
    }

    private const string SampleColumns = "seq, event_id, model, source, event_time, modality, split, label, width, height, channels, pixels, text, source_text, received_at, origin, correction_of";

    public async Task<StoredSample?> GetSampleAsync(string eventId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {SampleColumns} FROM samples WHERE event_id = $id;";
        command.Parameters.AddWithValue("$id", eventId);
        using var r = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await r.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadSample(r) : null;
    }

    public async IAsyncEnumerable<StoredSample> ReadSamplesAsync(string model, long afterSequence, long watermark, string? split, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {SampleColumns} FROM samples WHERE model = $model AND seq > $after AND seq <= $watermark"
            + (split is null ? "" : " AND split = $split") + " ORDER BY seq;";
        command.Parameters.AddWithValue("$model", model);
        command.Parameters.AddWithValue("$after", afterSequence);
        command.Parameters.AddWithValue("$watermark", watermark);
        if (split is not null)
        {
            command.Parameters.AddWithValue("$split", split);
        }

        using var r = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            yield return ReadSample(r);
        }
    }

    private static StoredSample ReadSample(SqliteDataReader r)
    {
        var record = new SampleRecord(
            EventId: r.GetString(1),
            Model: r.GetString(2),
            Source: r.GetString(3),
            EventTime: r.IsDBNull(4) ? null : DateTimeOffset.Parse(r.GetString(4), CultureInfo.InvariantCulture),
            Modality: r.GetString(5) == "image" ? Modality.Image : Modality.Text,
            Split: r.GetString(6),
            Label: r.IsDBNull(7) ? null : r.GetString(7),
            Width: r.GetInt32(8),
            Height: r.GetInt32(9),
            Channels: r.GetInt32(10),
            Pixels: r.IsDBNull(11) ? null : (byte[])r.GetValue(11),
            Text: r.IsDBNull(12) ? null : r.GetString(12),
            SourceText: r.IsDBNull(13) ? null : r.GetString(13))
        {
            Origin = r.GetString(15),
            CorrectionOf = r.IsDBNull(16) ? null : r.GetString(16),
        };
        return new StoredSample(r.GetInt64(0), record, DateTimeOffset.Parse(r.GetString(14), CultureInfo.InvariantCulture));
    }

    public async Task<bool> PingAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT 1;";
            return Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture) == 1;
        }
        catch (SqliteException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            insertSample?.Dispose();
            insertFeedback?.Dispose();
            findGeneration?.Dispose();
            feedbackExists?.Dispose();
            if (writer is not null)
            {
                await writer.DisposeAsync().ConfigureAwait(false);
                writer = null;
            }
        }
        finally
        {
            writeLock.Release();
        }
    }
}
