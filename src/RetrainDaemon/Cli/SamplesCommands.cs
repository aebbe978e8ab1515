using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Hosting;

namespace RetrainDaemon.Cli;

/// <summary><c>samples stats</c>: what the store holds, per model, modality, split and label.</summary>
internal static class SamplesCommands
{
    public static Command Create()
    {
        var samples = new Command("samples", "Inspect the sample store.");
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table." };
        var stats = new Command("stats", "Counts per model, modality, split and label; feedback per model; the watermark.");
        stats.Options.Add(json);
        stats.SetAction(async (parse, cancellationToken) =>
        {
            var configuration = RetrainCli.Configuration(parse);
            var failures = new List<string>();
            var storeOptions = RetrainCli.Bind(configuration, StoreOptions.Section, RetrainCli.StoreValidator(), failures);
            if (failures.Count > 0)
            {
                throw new ConfigurationInvalidException(failures);
            }

            // Opening a SQLite store creates its file; a PostgreSQL database is there or the connection fails.
            if (storeOptions.NormalizedProvider == StoreProviders.Sqlite && !File.Exists(storeOptions.Path))
            {
                Console.Error.WriteLine($"retrain-daemon: no store at '{Path.GetFullPath(storeOptions.Path)}' (Store:Path); nothing has been ingested there yet.");
                return 1;
            }

            await using var store = SampleStores.Open(storeOptions);
            var result = await store.GetStatsAsync(cancellationToken);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(result, HostingExtensions.Indented));
                return 0;
            }

            Print(result, store.Description);
            return 0;
        });
        samples.Subcommands.Add(stats);
        return samples;
    }

    private static void Print(StoreStats stats, string where)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"store {where} (schema v{stats.SchemaVersion}, watermark {stats.Watermark})");
        Console.WriteLine();
        Console.WriteLine($"{"model",-16} {"modality",-8} {"split",-8} {"label",-24} {"count",10}");
        foreach (var model in stats.Samples.GroupBy(s => s.Model))
        {
            foreach (var row in model)
            {
                Console.WriteLine(string.Format(inv, "{0,-16} {1,-8} {2,-8} {3,-24} {4,10}", row.Model, row.Modality, row.Split, Clip(row.Label ?? "-"), row.Count));
            }

            foreach (var split in model.GroupBy(s => s.Split))
            {
                Console.WriteLine(string.Format(inv, "{0,-16} {1,-8} {2,-8} {3,-24} {4,10}", model.Key, "", split.Key, "(all labels)", split.Sum(s => s.Count)));
            }

            Console.WriteLine(string.Format(inv, "{0,-16} {1,-8} {2,-8} {3,-24} {4,10}", model.Key, "", "(all)", "", model.Sum(s => s.Count)));
            Console.WriteLine();
        }

        if (stats.Samples.Count == 0)
        {
            Console.WriteLine("(no samples)");
            Console.WriteLine();
        }

        Console.WriteLine($"{"feedback model",-16} {"count",10} {"mean rating",12}");
        foreach (var row in stats.Feedback)
        {
            Console.WriteLine(string.Format(inv, "{0,-16} {1,10} {2,12}", row.Model, row.Count, row.MeanRating is { } m ? m.ToString("0.00", inv) : "-"));
        }

        if (stats.Feedback.Count == 0)
        {
            Console.WriteLine("(no feedback)");
        }
    }

    private static string Clip(string s) => s.Length <= 24 ? s : s[..23] + "…";
}
