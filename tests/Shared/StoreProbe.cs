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
        return Convert.ToInt64(command.ExecuteScalar() ?? 0L, CultureInfo.InvariantCulture);
    }

    public static long Samples(string path) => Scalar(path, "SELECT COUNT(*) FROM samples;");

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
