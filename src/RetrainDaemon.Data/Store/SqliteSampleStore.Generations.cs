using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;
using RetrainDaemon.Core.Contracts;

namespace RetrainDaemon.Data.Store;

/// <summary>
/// Generations the serving API handed out, and feedback joined to them: feedback is stored only when
/// it cites a recorded generation of the same model and version (else it comes back rejected, for
/// ingestion to dead-letter), its row carries the generation's slice, and a correction of the
/// generation's own modality also becomes a training sample marked <c>origin = 'correction'</c>.
/// </summary>
public sealed partial class SqliteSampleStore
{
    private static SqliteCommand PrepareFindGeneration(SqliteConnection connection)
    {
        var command = connection.CreateCommand();
        command.CommandText = "SELECT generation_id, model, version, created_at, modality, slice, input FROM generations WHERE generation_id = $id;";
        command.Parameters.Add(new SqliteParameter { ParameterName = "$id" });
        command.Prepare();
        return command;
    }

    private static SqliteCommand PrepareFeedbackExists(SqliteConnection connection)
    {
        var command = connection.CreateCommand();
        command.CommandText = "SELECT 1 FROM feedback WHERE event_id = $id;";
        command.Parameters.Add(new SqliteParameter { ParameterName = "$id" });
        command.Prepare();
        return command;
    }

    /// <summary>Inside <see cref="CommitAsync"/>'s transaction: join, store, and make the correction sample.</summary>
    private CommitOutcome CommitFeedback(FeedbackRecord feedback, string received)
    {
        findGeneration!.Parameters[0].Value = feedback.GenerationId;
        GenerationRecord? generation;
        using (var reader = findGeneration.ExecuteReader())
        {
            generation = reader.Read() ? ReadGeneration(reader) : null;
        }

        if (FeedbackJoin.Refusal(feedback, generation) is var (reason, detail))
        {
            // A redelivery of feedback stored earlier (before generations were recorded, say) is a duplicate: the
            // same event id is settled the same way however often it comes.
            feedbackExists!.Parameters[0].Value = feedback.EventId;
            return feedbackExists.ExecuteScalar() is null ? CommitOutcome.Rejected(reason, detail) : CommitOutcome.Duplicate;
        }

        if (InsertFeedback(feedback, generation!, received) == 0)
        {
            return CommitOutcome.Duplicate;
        }

        return CommitOutcome.Stored with { AddedCorrectionSample = InsertCorrectionSample(feedback, generation!, received) };
    }

    /// <summary>A correction of the generation's own modality also becomes a training sample (<see cref="FeedbackJoin.CorrectionSample"/>).</summary>
    private bool InsertCorrectionSample(FeedbackRecord feedback, GenerationRecord generation, string received) =>
        FeedbackJoin.CorrectionSample(feedback, generation) is { } sample && InsertSample(sample, received) == 1;

    public async Task RecordGenerationsAsync(IReadOnlyList<GenerationRecord> generations, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(generations);
        if (generations.Count == 0)
        {
            return;
        }

        FeedbackJoin.CheckModalities(generations);
        await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        SqliteTransaction? tx = null;
        try
        {
            var connection = await EnsureWriterAsync(cancellationToken).ConfigureAwait(false);
            tx = connection.BeginTransaction(deferred: false);
            using var command = connection.CreateCommand();
            command.Transaction = tx;
            command.CommandText = """
                INSERT INTO generations (generation_id, model, version, created_at, modality, slice, input)
                VALUES ($id, $model, $version, $created, $modality, $slice, $input)
                ON CONFLICT (generation_id) DO NOTHING;
                """;
            var p = new SqliteParameter[7];
            foreach (var (name, i) in new[] { "$id", "$model", "$version", "$created", "$modality", "$slice", "$input" }.Select((n, i) => (n, i)))
            {
                p[i] = command.Parameters.Add(new SqliteParameter { ParameterName = name });
            }

            command.Prepare();
            foreach (var g in generations)
            {
                p[0].Value = g.GenerationId;
                p[1].Value = g.Model;
                p[2].Value = g.Version;
                p[3].Value = g.CreatedAt.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture);
                p[4].Value = g.Modality;
                p[5].Value = (object?)g.Slice ?? DBNull.Value;
                p[6].Value = (object?)g.Input ?? DBNull.Value;
                command.ExecuteNonQuery();
            }

            tx.Commit();
        }
        catch (SqliteException ex) when (IsTransient(ex))
        {
            SafeRollback(tx);
            throw new StoreUnavailableException($"cannot record {generations.Count} generations in '{path}' ({ex.SqliteErrorCode}): {ex.Message}", ex);
        }
        catch
        {
            SafeRollback(tx);
            throw;
        }
        finally
        {
            tx?.Dispose();
            writeLock.Release();
        }
    }

    public async Task<GenerationRecord?> GetGenerationAsync(string generationId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT generation_id, model, version, created_at, modality, slice, input FROM generations WHERE generation_id = $id;";
        command.Parameters.AddWithValue("$id", generationId);
        using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadGeneration(reader) : null;
    }

    private static GenerationRecord ReadGeneration(SqliteDataReader r) => new(
        r.GetString(0), r.GetString(1), r.GetInt32(2), DateTimeOffset.Parse(r.GetString(3), CultureInfo.InvariantCulture),
        r.GetString(4), r.IsDBNull(5) ? null : r.GetString(5), r.IsDBNull(6) ? null : r.GetString(6));

    public async Task<FeedbackSummary> GetFeedbackSummaryAsync(string model, int? version, DateTimeOffset? since, CancellationToken cancellationToken)
    {
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        // received_at is written as UTC "O" text (fixed width, +00:00), so comparing text compares times.
        command.CommandText = """
            SELECT COUNT(*), COUNT(rating), AVG(rating),
                   COALESCE(SUM(accepted = 1), 0), COALESCE(SUM(accepted = 0), 0),
                   COALESCE(SUM(correction_text IS NOT NULL OR correction_image IS NOT NULL), 0)
            FROM feedback
            WHERE model = $model AND ($version IS NULL OR version = $version) AND ($since IS NULL OR received_at >= $since);
            """;
        command.Parameters.AddWithValue("$model", model);
        command.Parameters.AddWithValue("$version", version is int v ? v.ToString(CultureInfo.InvariantCulture) : DBNull.Value);
        command.Parameters.AddWithValue("$since", since is { } t ? t.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture) : DBNull.Value);
        using var r = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await r.ReadAsync(cancellationToken).ConfigureAwait(false);
        return new FeedbackSummary(r.GetInt64(0), r.GetInt64(1), r.IsDBNull(2) ? null : r.GetDouble(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5));
    }

    public async IAsyncEnumerable<StoredFeedback> ReadFeedbackAsync(string model, long afterFeedbackSequence, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT seq, event_id, model, generation_id, version, slice, rating, accepted,
                   correction_text IS NOT NULL OR correction_image IS NOT NULL, received_at
            FROM feedback WHERE model = $model AND seq > $after ORDER BY seq;
            """;
        command.Parameters.AddWithValue("$model", model);
        command.Parameters.AddWithValue("$after", afterFeedbackSequence);
        using var r = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            yield return new StoredFeedback(
                Sequence: r.GetInt64(0),
                EventId: r.GetString(1),
                Model: r.GetString(2),
                GenerationId: r.GetString(3),
                Version: int.TryParse(r.GetString(4), NumberStyles.None, CultureInfo.InvariantCulture, out int version) ? version : null,
                Slice: r.IsDBNull(5) ? null : r.GetString(5),
                Rating: r.IsDBNull(6) ? null : r.GetInt32(6),
                Accepted: r.IsDBNull(7) ? null : r.GetInt64(7) != 0,
                HasCorrection: r.GetInt64(8) != 0,
                ReceivedAt: DateTimeOffset.Parse(r.GetString(9), CultureInfo.InvariantCulture));
        }
    }

    public async Task<long> GetFeedbackWatermarkAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT COALESCE(MAX(seq), 0) FROM feedback;";
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
    }
}
