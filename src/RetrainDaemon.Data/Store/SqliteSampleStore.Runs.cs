using System.Globalization;
using Microsoft.Data.Sqlite;

namespace RetrainDaemon.Data.Store;

/// <summary>The run ledger lives in the store's file: one backup covers data and history.</summary>
public sealed partial class SqliteSampleStore : IRunLedger, ILoopQueries
{
    public async Task<long> CountSamplesAfterAsync(string model, long afterSequence, CancellationToken cancellationToken)
    {
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        // ix_samples_model_seq makes this a range count, not a scan.
        command.CommandText = "SELECT COUNT(*) FROM samples WHERE model = $model AND seq > $after;";
        command.Parameters.AddWithValue("$model", model);
        command.Parameters.AddWithValue("$after", afterSequence);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
    }

    public Task StartRunAsync(RunStart run, CancellationToken cancellationToken) => WriteAsync(connection =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO runs (run_id, model, kind, status, trigger, started_at, directory, attempts)
            VALUES ($id, $model, $kind, 'running', $trigger, $started, $dir, 1);
            """;
        command.Parameters.AddWithValue("$id", run.RunId);
        command.Parameters.AddWithValue("$model", run.Model);
        command.Parameters.AddWithValue("$kind", run.Kind);
        command.Parameters.AddWithValue("$trigger", run.Trigger);
        command.Parameters.AddWithValue("$started", Timestamp(run.StartedAt));
        command.Parameters.AddWithValue("$dir", (object?)run.Directory ?? DBNull.Value);
        command.ExecuteNonQuery();
        return 0;
    }, cancellationToken);

    public Task<int> ResumeRunAsync(string runId, CancellationToken cancellationToken) => WriteAsync(connection =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = "UPDATE runs SET attempts = attempts + 1 WHERE run_id = $id AND status = 'running' RETURNING attempts;";
        command.Parameters.AddWithValue("$id", runId);
        return command.ExecuteScalar() is { } attempts
            ? Convert.ToInt32(attempts, CultureInfo.InvariantCulture)
            : throw new InvalidOperationException($"run '{runId}' is not a running run of the ledger; it cannot be resumed");
    }, cancellationToken);

    public Task SetSnapshotAsync(string runId, long watermark, long previousWatermark, int? parentVersion, CancellationToken cancellationToken) => WriteAsync(connection =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = "UPDATE runs SET watermark = $w, previous_watermark = $p, parent_version = $v WHERE run_id = $id;";
        command.Parameters.AddWithValue("$id", runId);
        command.Parameters.AddWithValue("$w", watermark);
        command.Parameters.AddWithValue("$p", previousWatermark);
        command.Parameters.AddWithValue("$v", (object?)parentVersion ?? DBNull.Value);
        return RequireRow(command.ExecuteNonQuery(), runId);
    }, cancellationToken);

    public Task BeginStageAsync(string runId, int attempt, string stage, CancellationToken cancellationToken) => WriteAsync(connection =>
    {
        using var command = connection.CreateCommand();
        // A resumed attempt may begin a stage again: the newest start wins, the outcome is cleared.
        command.CommandText = """
            INSERT INTO run_stages (run_id, attempt, stage, started_at) VALUES ($id, $a, $s, $t)
            ON CONFLICT (run_id, attempt, stage) DO UPDATE SET started_at = excluded.started_at, finished_at = NULL, outcome = NULL, detail = NULL;
            """;
        command.Parameters.AddWithValue("$id", runId);
        command.Parameters.AddWithValue("$a", attempt);
        command.Parameters.AddWithValue("$s", stage);
        command.Parameters.AddWithValue("$t", Timestamp(clock.GetUtcNow()));
        return command.ExecuteNonQuery();
    }, cancellationToken);

    public Task EndStageAsync(string runId, int attempt, string stage, string outcome, string? detail, CancellationToken cancellationToken) => WriteAsync(connection =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = "UPDATE run_stages SET finished_at = $t, outcome = $o, detail = $d WHERE run_id = $id AND attempt = $a AND stage = $s;";
        command.Parameters.AddWithValue("$id", runId);
        command.Parameters.AddWithValue("$a", attempt);
        command.Parameters.AddWithValue("$s", stage);
        command.Parameters.AddWithValue("$t", Timestamp(clock.GetUtcNow()));
        command.Parameters.AddWithValue("$o", outcome);
        command.Parameters.AddWithValue("$d", (object?)detail ?? DBNull.Value);
        return RequireRow(command.ExecuteNonQuery(), $"{runId} stage {stage} (attempt {attempt})");
    }, cancellationToken);

    public Task FinishRunAsync(string runId, string status, int? version, string? detail, CancellationToken cancellationToken)
    {
        if (!RunStatuses.IsFinal(status))
        {
            throw new ArgumentException($"a run finishes with a final status, not '{status}'", nameof(status));
        }

        return WriteAsync(connection =>
        {
            using var tx = connection.BeginTransaction();
            using var command = connection.CreateCommand();
            command.Transaction = tx;
            command.CommandText = "UPDATE runs SET status = $s, finished_at = $t, version = COALESCE($v, version), detail = $d WHERE run_id = $id;";
            command.Parameters.AddWithValue("$id", runId);
            command.Parameters.AddWithValue("$s", status);
            command.Parameters.AddWithValue("$t", Timestamp(clock.GetUtcNow()));
            command.Parameters.AddWithValue("$v", (object?)version ?? DBNull.Value);
            command.Parameters.AddWithValue("$d", (object?)detail ?? DBNull.Value);
            RequireRow(command.ExecuteNonQuery(), runId);
            // A stage left open by the attempt that finished the run did not complete.
            using var open = connection.CreateCommand();
            open.Transaction = tx;
            open.CommandText = "UPDATE run_stages SET finished_at = $t, outcome = 'interrupted' WHERE run_id = $id AND outcome IS NULL;";
            open.Parameters.AddWithValue("$id", runId);
            open.Parameters.AddWithValue("$t", Timestamp(clock.GetUtcNow()));
            open.ExecuteNonQuery();
            tx.Commit();
            return 0;
        }, cancellationToken);
    }

    public async Task<RunRecord?> GetRunAsync(string runId, CancellationToken cancellationToken)
    {
        var runs = await QueryRunsAsync("WHERE run_id = $id", [("$id", runId)], 1, cancellationToken).ConfigureAwait(false);
        return runs.Count == 0 ? null : runs[0];
    }

    public Task<IReadOnlyList<RunRecord>> ListRunsAsync(string? model, string? kind, int limit, CancellationToken cancellationToken) =>
        QueryRunsAsync("WHERE ($model IS NULL OR model = $model) AND ($kind IS NULL OR kind = $kind)", [("$model", model), ("$kind", kind)], limit, cancellationToken);

    public Task<IReadOnlyList<RunRecord>> ListUnfinishedRunsAsync(CancellationToken cancellationToken) =>
        QueryRunsAsync("WHERE status = 'running'", [], int.MaxValue, cancellationToken);

    private async Task<IReadOnlyList<RunRecord>> QueryRunsAsync(string where, (string Name, object? Value)[] parameters, int limit, CancellationToken cancellationToken)
    {
        await using var connection = await OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        var runs = new List<RunRecord>();
        using (var command = connection.CreateCommand())
        {
            // rowid breaks ties between runs started within one clock tick.
            command.CommandText = $"""
                SELECT run_id, model, kind, status, trigger, started_at, finished_at, watermark, previous_watermark,
                       parent_version, version, directory, detail, attempts
                FROM runs {where} ORDER BY started_at DESC, rowid DESC LIMIT $limit;
                """;
            foreach (var (name, value) in parameters)
            {
                command.Parameters.AddWithValue(name, value ?? DBNull.Value);
            }

            command.Parameters.AddWithValue("$limit", limit);
            using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                runs.Add(new RunRecord(
                    reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                    ParseTimestamp(reader.GetString(5)), reader.IsDBNull(6) ? null : ParseTimestamp(reader.GetString(6)),
                    reader.IsDBNull(7) ? null : reader.GetInt64(7), reader.IsDBNull(8) ? null : reader.GetInt64(8),
                    reader.IsDBNull(9) ? null : reader.GetInt32(9), reader.IsDBNull(10) ? null : reader.GetInt32(10),
                    reader.IsDBNull(11) ? null : reader.GetString(11), reader.IsDBNull(12) ? null : reader.GetString(12),
                    reader.GetInt32(13), []));
            }
        }

        for (int i = 0; i < runs.Count; i++)
        {
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT attempt, stage, started_at, finished_at, outcome, detail FROM run_stages WHERE run_id = $id ORDER BY attempt, started_at, rowid;";
            command.Parameters.AddWithValue("$id", runs[i].RunId);
            var stages = new List<RunStageRecord>();
            using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                stages.Add(new RunStageRecord(reader.GetInt32(0), reader.GetString(1), ParseTimestamp(reader.GetString(2)),
                    reader.IsDBNull(3) ? null : ParseTimestamp(reader.GetString(3)), reader.IsDBNull(4) ? null : reader.GetString(4),
                    reader.IsDBNull(5) ? null : reader.GetString(5)));
            }

            runs[i] = runs[i] with { Stages = stages };
        }

        return runs;
    }

    /// <summary>One write on the single writer connection, with transient failures surfaced as <see cref="StoreUnavailableException"/>.</summary>
    private async Task<T> WriteAsync<T>(Func<SqliteConnection, T> write, CancellationToken cancellationToken)
    {
        await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var connection = await EnsureWriterAsync(cancellationToken).ConfigureAwait(false);
            return write(connection);
        }
        catch (SqliteException ex) when (IsTransient(ex))
        {
            throw new StoreUnavailableException($"the run ledger in '{path}' is unavailable: {ex.Message}", ex);
        }
        finally
        {
            writeLock.Release();
        }
    }

    private static int RequireRow(int rows, string what) =>
        rows == 1 ? rows : throw new InvalidOperationException($"the run ledger has no run '{what}'");

    private static string Timestamp(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", CultureInfo.InvariantCulture);

    private static DateTimeOffset ParseTimestamp(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);
}
