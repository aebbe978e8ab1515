using Npgsql;
using NpgsqlTypes;

namespace RetrainDaemon.Data.Store;

/// <summary>The run ledger in the shared database: every node sees every run (and which are unfinished).</summary>
public sealed partial class PostgresSampleStore : IRunLedger, ILoopQueries
{
    public Task<long> CountSamplesAfterAsync(string model, long afterSequence, CancellationToken cancellationToken) =>
        WithConnectionAsync($"cannot count the samples of '{model}'", connection =>
            // ix_samples_model_seq makes this a range count, not a scan.
            ScalarInt64Async(connection, "SELECT COUNT(*) FROM samples WHERE model = $1 AND seq > $2;", cancellationToken, model, afterSequence), cancellationToken);

    public Task StartRunAsync(RunStart run, CancellationToken cancellationToken) => LedgerWriteAsync(connection =>
        ExecuteAsync(connection, null, """
            INSERT INTO runs (run_id, model, kind, status, trigger, started_at, directory, attempts)
            VALUES ($1, $2, $3, 'running', $4, $5, $6, 1);
            """, cancellationToken, run.RunId, run.Model, run.Kind, run.Trigger, run.StartedAt.UtcDateTime, Text(run.Directory)), cancellationToken);

    public Task<int> ResumeRunAsync(string runId, CancellationToken cancellationToken) => LedgerWriteAsync(async connection =>
    {
        await using var command = Command(connection, "UPDATE runs SET attempts = attempts + 1 WHERE run_id = $1 AND status = 'running' RETURNING attempts;", runId);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is int attempts
            ? attempts
            : throw new InvalidOperationException($"run '{runId}' is not a running run of the ledger; it cannot be resumed");
    }, cancellationToken);

    public Task SetSnapshotAsync(string runId, long watermark, long previousWatermark, int? parentVersion, CancellationToken cancellationToken) => LedgerWriteAsync(async connection =>
        RequireRow(await ExecuteAsync(connection, null, "UPDATE runs SET watermark = $2, previous_watermark = $3, parent_version = $4 WHERE run_id = $1;",
            cancellationToken, runId, watermark, previousWatermark, Integer(parentVersion)).ConfigureAwait(false), runId), cancellationToken);

    public Task BeginStageAsync(string runId, int attempt, string stage, CancellationToken cancellationToken) => LedgerWriteAsync(connection =>
        // A resumed attempt may begin a stage again: the newest start wins, the outcome is cleared.
        ExecuteAsync(connection, null, """
            INSERT INTO run_stages (run_id, attempt, stage, started_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (run_id, attempt, stage) DO UPDATE SET started_at = excluded.started_at, finished_at = NULL, outcome = NULL, detail = NULL;
            """, cancellationToken, runId, attempt, stage, clock.GetUtcNow().UtcDateTime), cancellationToken);

    public Task EndStageAsync(string runId, int attempt, string stage, string outcome, string? detail, CancellationToken cancellationToken) => LedgerWriteAsync(async connection =>
        RequireRow(await ExecuteAsync(connection, null, "UPDATE run_stages SET finished_at = $4, outcome = $5, detail = $6 WHERE run_id = $1 AND attempt = $2 AND stage = $3;",
            cancellationToken, runId, attempt, stage, clock.GetUtcNow().UtcDateTime, outcome, Text(detail)).ConfigureAwait(false), $"{runId} stage {stage} (attempt {attempt})"), cancellationToken);

    public Task FinishRunAsync(string runId, string status, int? version, string? detail, CancellationToken cancellationToken)
    {
        if (!RunStatuses.IsFinal(status))
        {
            throw new ArgumentException($"a run finishes with a final status, not '{status}'", nameof(status));
        }

        return LedgerWriteAsync(async connection =>
        {
            var now = clock.GetUtcNow().UtcDateTime;
            await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            RequireRow(await ExecuteAsync(connection, tx, "UPDATE runs SET status = $2, finished_at = $3, version = COALESCE($4, version), detail = $5 WHERE run_id = $1;",
                cancellationToken, runId, status, now, Integer(version), Text(detail)).ConfigureAwait(false), runId);
            // A stage left open by the attempt that finished the run did not complete.
            await ExecuteAsync(connection, tx, "UPDATE run_stages SET finished_at = $2, outcome = 'interrupted' WHERE run_id = $1 AND outcome IS NULL;",
                cancellationToken, runId, now).ConfigureAwait(false);
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            return 0;
        }, cancellationToken);
    }

    public async Task<RunRecord?> GetRunAsync(string runId, CancellationToken cancellationToken)
    {
        var runs = await QueryRunsAsync("WHERE run_id = $1", [runId], 1, cancellationToken).ConfigureAwait(false);
        return runs.Count == 0 ? null : runs[0];
    }

    public Task<IReadOnlyList<RunRecord>> ListRunsAsync(string? model, string? kind, int limit, CancellationToken cancellationToken) =>
        QueryRunsAsync("WHERE ($1::text IS NULL OR model = $1) AND ($2::text IS NULL OR kind = $2)", [Text(model), Text(kind)], limit, cancellationToken);

    public Task<IReadOnlyList<RunRecord>> ListUnfinishedRunsAsync(CancellationToken cancellationToken) =>
        QueryRunsAsync("WHERE status = 'running'", [], int.MaxValue, cancellationToken);

    private Task<IReadOnlyList<RunRecord>> QueryRunsAsync(string where, object?[] parameters, int limit, CancellationToken cancellationToken) =>
        WithConnectionAsync<IReadOnlyList<RunRecord>>("cannot read the run ledger", async connection =>
        {
            var runs = new List<RunRecord>();
            // row_order (insertion order, like SQLite's rowid) breaks ties between runs started within one clock tick.
            await using (var command = Command(connection, $"""
                SELECT run_id, model, kind, status, trigger, started_at, finished_at, watermark, previous_watermark,
                       parent_version, version, directory, detail, attempts
                FROM runs {where} ORDER BY started_at DESC, row_order DESC LIMIT ${parameters.Length + 1};
                """, [.. parameters, (long)limit]))
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    runs.Add(new RunRecord(
                        reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                        reader.GetFieldValue<DateTimeOffset>(5), reader.IsDBNull(6) ? null : reader.GetFieldValue<DateTimeOffset>(6),
                        reader.IsDBNull(7) ? null : reader.GetInt64(7), reader.IsDBNull(8) ? null : reader.GetInt64(8),
                        reader.IsDBNull(9) ? null : reader.GetInt32(9), reader.IsDBNull(10) ? null : reader.GetInt32(10),
                        reader.IsDBNull(11) ? null : reader.GetString(11), reader.IsDBNull(12) ? null : reader.GetString(12),
                        reader.GetInt32(13), []));
                }
            }

            if (runs.Count == 0)
            {
                return runs;
            }

            // All stages of the listed runs in one query, in the order they started within each attempt.
            var stages = runs.ToDictionary(r => r.RunId, _ => new List<RunStageRecord>(), StringComparer.Ordinal);
            await using (var command = Command(connection, """
                SELECT run_id, attempt, stage, started_at, finished_at, outcome, detail FROM run_stages
                WHERE run_id = ANY($1) ORDER BY run_id, attempt, started_at, row_order;
                """, TextArray([.. stages.Keys])))
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    stages[reader.GetString(0)].Add(new RunStageRecord(reader.GetInt32(1), reader.GetString(2), reader.GetFieldValue<DateTimeOffset>(3),
                        reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4), reader.IsDBNull(5) ? null : reader.GetString(5),
                        reader.IsDBNull(6) ? null : reader.GetString(6)));
                }
            }

            return runs.Select(r => r with { Stages = stages[r.RunId] }).ToList();
        }, cancellationToken);

    /// <summary>A ledger write; transient failures surface as <see cref="StoreUnavailableException"/> naming the ledger.</summary>
    private Task<T> LedgerWriteAsync<T>(Func<NpgsqlConnection, Task<T>> write, CancellationToken cancellationToken) =>
        WithConnectionAsync("cannot write the run ledger", write, cancellationToken);

    private static int RequireRow(int rows, string what) =>
        rows == 1 ? rows : throw new InvalidOperationException($"the run ledger has no run '{what}'");

    /// <summary>A nullable text parameter: a bare null would leave the server to guess its type.</summary>
    private static NpgsqlParameter Text(string? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };

    private static NpgsqlParameter Integer(int? value) => new() { Value = value is int v ? v : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer };
}
