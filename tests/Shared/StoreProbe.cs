using System.Globalization;
using Microsoft.Data.Sqlite;

namespace RetrainDaemon.Tests.Shared;

/// <summary>Reads a daemon's SQLite store directly (read-only), the way an auditor would.</summary>
public static class StoreProbe
{
    private static SqliteConnection Open(string path)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        using var busy = connection.CreateCommand();
        busy.CommandText = "PRAGMA busy_timeout=5000;";
        busy.ExecuteNonQuery();
        return connection;
    }

    public static long Scalar(string path, string sql)
    {
        if (!File.Exists(path))
        {
            return 0;
        }

        using var connection = Open(path);
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        try
        {
            return Convert.ToInt64(command.ExecuteScalar() ?? 0L, CultureInfo.InvariantCulture);
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode == 1 && ex.Message.Contains("no such table", StringComparison.Ordinal))
        {
            return 0; // the daemon created the file but has not migrated it yet
        }
    }

    public static long Samples(string path) => Scalar(path, "SELECT COUNT(*) FROM samples;");

    /// <summary>The highest sequence number: O(1) on the rowid, so polling it does not load the daemon (equals the count for a fresh store).</summary>
    public static long Watermark(string path) => Scalar(path, "SELECT COALESCE(MAX(seq), 0) FROM samples;");

    public static long Feedback(string path) => Scalar(path, "SELECT COUNT(*) FROM feedback;");

    public static HashSet<string> SampleIds(string path)
    {
        using var connection = Open(path);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT event_id FROM samples;";
        using var reader = command.ExecuteReader();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read())
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }

    /// <summary>Sequence numbers in commit order are strictly increasing and unique.</summary>
    public static bool SequencesStrictlyIncrease(string path) =>
        Scalar(path, "SELECT COUNT(*) FROM samples;") == Scalar(path, "SELECT COUNT(DISTINCT seq) FROM samples;");

    public static async Task<long> WaitForSamplesAsync(string path, long expected, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        long count = 0;
        while (DateTime.UtcNow < deadline)
        {
            count = Samples(path);
            if (count >= expected)
            {
                return count;
            }

            await Task.Delay(200);
        }

        return count;
    }
}

/// <summary>Row-level snapshots, to prove that stored data never changes underneath.</summary>
public static class StoreSnapshot
{
    /// <summary>event id → "seq|split|label|sha256(pixels or text)".</summary>
    public static Dictionary<string, string> Take(string path)
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT event_id, seq, split, COALESCE(label, ''), COALESCE(pixels, CAST(text AS BLOB)) FROM samples;";
        using var reader = command.ExecuteReader();
        var rows = new Dictionary<string, string>(StringComparer.Ordinal);
        while (reader.Read())
        {
            var payload = reader.IsDBNull(4) ? [] : (byte[])reader.GetValue(4);
            rows[reader.GetString(0)] = $"{reader.GetInt64(1)}|{reader.GetString(2)}|{reader.GetString(3)}|{Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(payload))}";
        }

        return rows;
    }

    public static byte[]? Pixels(string path, string eventId)
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT pixels FROM samples WHERE event_id = $id;";
        command.Parameters.AddWithValue("$id", eventId);
        return command.ExecuteScalar() as byte[];
    }
}
