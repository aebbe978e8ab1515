using System.Globalization;
using Npgsql;
using NpgsqlTypes;
using RetrainDaemon.Core.Contracts;

namespace RetrainDaemon.Data.Store;

/// <summary>
/// Generations the serving API handed out, and the feedback queries of the loop. The join itself happens in
/// <see cref="CommitAsync"/> with <see cref="FeedbackJoin"/>, the rules the SQLite store follows too.
/// </summary>
public sealed partial class PostgresSampleStore
{
    private const string GenerationColumns = "generation_id, model, version, created_at, modality, slice, input";

    public async Task RecordGenerationsAsync(IReadOnlyList<GenerationRecord> generations, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(generations);
        if (generations.Count == 0)
        {
            return;
        }

        FeedbackJoin.CheckModalities(generations);
        int n = generations.Count;
        var ids = new string[n];
        var models = new string[n];
        var versions = new int[n];
        var created = new DateTime[n];
        var modalities = new string[n];
        var slices = new string?[n];
        var inputs = new string?[n];
        for (int i = 0; i < n; i++)
        {
            var g = generations[i];
            (ids[i], models[i], versions[i], created[i], modalities[i], slices[i], inputs[i]) =
                (g.GenerationId, g.Model, g.Version, g.CreatedAt.UtcDateTime, g.Modality, g.Slice, g.Input);
        }

        await WithConnectionAsync($"cannot record {n} generations", async connection =>
        {
            // One statement is one transaction; an id recorded before (or twice in this batch) keeps its first record.
            await using var command = new NpgsqlCommand($"""
                INSERT INTO generations ({GenerationColumns})
                SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (generation_id) DO NOTHING;
                """, connection)
            {
                Parameters =
                {
                    TextArray(ids), TextArray(models), Typed(versions, NpgsqlDbType.Integer), Typed(created, NpgsqlDbType.TimestampTz),
                    TextArray(modalities), TextArray(slices), TextArray(inputs),
                },
            };
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
    }

    public Task<GenerationRecord?> GetGenerationAsync(string generationId, CancellationToken cancellationToken) =>
        WithConnectionAsync($"cannot read generation '{generationId}'", async connection =>
        {
            await using var command = Command(connection, $"SELECT {GenerationColumns} FROM generations WHERE generation_id = $1;", generationId);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadGeneration(reader) : null;
        }, cancellationToken);

    private static GenerationRecord ReadGeneration(NpgsqlDataReader r) => new(
        r.GetString(0), r.GetString(1), r.GetInt32(2), r.GetFieldValue<DateTimeOffset>(3),
        r.GetString(4), r.IsDBNull(5) ? null : r.GetString(5), r.IsDBNull(6) ? null : r.GetString(6));

    public Task<FeedbackSummary> GetFeedbackSummaryAsync(string model, int? version, DateTimeOffset? since, CancellationToken cancellationToken) =>
        WithConnectionAsync($"cannot summarize the feedback of '{model}'", async connection =>
        {
            await using var command = new NpgsqlCommand("""
                SELECT COUNT(*), COUNT(rating), AVG(rating)::double precision,
                       COUNT(*) FILTER (WHERE accepted), COUNT(*) FILTER (WHERE NOT accepted),
                       COUNT(*) FILTER (WHERE correction_text IS NOT NULL OR correction_image IS NOT NULL)
                FROM feedback
                WHERE model = $1 AND ($2::text IS NULL OR version = $2) AND ($3::timestamptz IS NULL OR received_at >= $3);
                """, connection)
            {
                Parameters =
                {
                    new NpgsqlParameter { Value = model, NpgsqlDbType = NpgsqlDbType.Text },
                    new NpgsqlParameter { Value = version is int v ? v.ToString(CultureInfo.InvariantCulture) : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text },
                    new NpgsqlParameter { Value = since is { } t ? t.UtcDateTime : DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz },
                },
            };
            await using var r = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await r.ReadAsync(cancellationToken).ConfigureAwait(false);
            return new FeedbackSummary(r.GetInt64(0), r.GetInt64(1), r.IsDBNull(2) ? null : r.GetDouble(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5));
        }, cancellationToken);

    public IAsyncEnumerable<StoredFeedback> ReadFeedbackAsync(string model, long afterFeedbackSequence, CancellationToken cancellationToken) =>
        StreamAsync($"cannot read the feedback of '{model}'", """
            SELECT seq, event_id, model, generation_id, version, slice, rating, accepted,
                   correction_text IS NOT NULL OR correction_image IS NOT NULL, received_at
            FROM feedback WHERE model = $1 AND seq > $2 ORDER BY seq;
            """,
            [model, afterFeedbackSequence],
            r => new StoredFeedback(
                Sequence: r.GetInt64(0),
                EventId: r.GetString(1),
                Model: r.GetString(2),
                GenerationId: r.GetString(3),
                Version: int.TryParse(r.GetString(4), NumberStyles.None, CultureInfo.InvariantCulture, out int version) ? version : null,
                Slice: r.IsDBNull(5) ? null : r.GetString(5),
                Rating: r.IsDBNull(6) ? null : r.GetInt32(6),
                Accepted: r.IsDBNull(7) ? null : r.GetBoolean(7),
                HasCorrection: r.GetBoolean(8),
                ReceivedAt: r.GetFieldValue<DateTimeOffset>(9)),
            cancellationToken);

    public Task<long> GetFeedbackWatermarkAsync(CancellationToken cancellationToken) =>
        WithConnectionAsync("cannot read the feedback watermark", connection => ScalarInt64Async(connection, "SELECT COALESCE(MAX(seq), 0) FROM feedback;", cancellationToken), cancellationToken);
}
