using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Messaging.Broker;
using RetrainDaemon.Messaging.Publishing;

namespace RetrainDaemon.Cli;

/// <summary>
/// <c>publish fashion-mnist | fortunes | gettext | feedback</c>: a producer of real data from
/// Debian's packages, publishing CloudEvents with confirms. Exit 0 only if every message was confirmed.
/// </summary>
internal static class PublishCommands
{
    private static readonly Option<string?> Split = CreateSplit();

    private static Option<string?> CreateSplit()
    {
        var option = new Option<string?>("--split")
        {
            Description = "Stamp an explicit split (train or holdout) on every sample; by default the daemon assigns one from a hash of the event id.",
        };
        option.AcceptOnlyFromAmong(Splits.Train, Splits.Holdout);
        return option;
    }

    private static readonly Option<int> Window = new("--window")
    {
        Description = "Publishes awaiting their broker confirm at once.",
        DefaultValueFactory = _ => 1000,
    };

    public static Command Create()
    {
        var publish = new Command("publish", "Publish real data or feedback to the broker (exchange retrain.ingest) with publisher confirms.");
        publish.Subcommands.Add(FashionMnistCommand());
        publish.Subcommands.Add(FortunesCommand());
        publish.Subcommands.Add(GettextCommand());
        publish.Subcommands.Add(FeedbackCommand());
        return publish;
    }

    private static Option<string> ModelOption(string defaultModel) => new("--model", "-m")
    {
        Description = "The model the data is for (the CloudEvent subject); it must be configured under Models.",
        DefaultValueFactory = _ => defaultModel,
    };

    private static Option<int?> CountOption(string what) => new("--count", "-n")
    {
        Description = $"How many {what} to publish (default: all).",
    };

    private static Command FashionMnistCommand()
    {
        var model = ModelOption("fashion-mnist");
        var count = CountOption("images");
        var subset = new Option<string>("--subset") { Description = "Which file: train (60,000 images) or t10k (10,000).", DefaultValueFactory = _ => "train" };
        subset.AcceptOnlyFromAmong("train", "t10k");
        var offset = new Option<int>("--offset") { Description = "Skip this many images first.", DefaultValueFactory = _ => 0 };
        var encoding = new Option<string>("--encoding") { Description = "How pixels travel: png or raw-u8.", DefaultValueFactory = _ => "png" };
        encoding.AcceptOnlyFromAmong("png", "raw-u8");
        var directory = new Option<string>("--dir") { Description = "Where the IDX files are.", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };
        var command = new Command("fashion-mnist", "Publish Fashion-MNIST images (Debian package dataset-fashion-mnist) as retrain.sample.v1.");
        foreach (var o in new Option[] { model, count, subset, offset, encoding, directory, Split, Window })
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, ct) =>
        {
            var images = FashionMnist.Read(parse.GetValue(subset)!, parse.GetValue(offset), (parse.GetValue(count) ?? int.MaxValue), parse.GetValue(directory)!);
            string m = parse.GetValue(model)!, s = parse.GetValue(subset)!, e = parse.GetValue(encoding)!;
            string? split = parse.GetValue(Split);
            return RunAsync(parse, m, Modality.Image, images.Select(i => CloudEventEncoder.FashionMnist(i, s, m, e, split)), images.Count, "images", ct);
        });
        return command;
    }

    private static Command FortunesCommand()
    {
        var model = ModelOption("fortunes");
        var count = CountOption("fortunes");
        var directory = new Option<string>("--dir") { Description = "The fortune databases.", DefaultValueFactory = _ => Fortunes.DefaultDirectory };
        var command = new Command("fortunes", "Publish fortune-cookie texts (Debian packages fortunes, fortunes-min) as retrain.sample.v1.");
        foreach (var o in new Option[] { model, count, directory, Split, Window })
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, ct) =>
        {
            var fortunes = Fortunes.Read(parse.GetValue(directory)!).Where(f => f.Text.Trim().Length > 0).Take((parse.GetValue(count) ?? int.MaxValue)).ToList();
            string m = parse.GetValue(model)!;
            string? split = parse.GetValue(Split);
            return RunAsync(parse, m, Modality.Text, fortunes.Select(f => CloudEventEncoder.Fortune(f, m, split)), fortunes.Count, "fortunes", ct);
        });
        return command;
    }

    private static Command GettextCommand()
    {
        var model = ModelOption("en-de");
        var count = CountOption("pairs");
        var language = new Option<string>("--lang") { Description = "Target language of the catalogs (source is English).", DefaultValueFactory = _ => "de" };
        var directory = new Option<string>("--dir") { Description = "The locale directory.", DefaultValueFactory = _ => GettextCatalog.DefaultLocaleDirectory };
        var command = new Command("gettext", "Publish English → <lang> message pairs from the gettext catalogs (*.mo) as retrain.sample.v1 (source_text ⇒ text).");
        foreach (var o in new Option[] { model, count, language, directory, Split, Window })
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, ct) =>
        {
            string lang = parse.GetValue(language)!, m = parse.GetValue(model)!;
            string? split = parse.GetValue(Split);
            var pairs = GettextCatalog.ReadLanguage(lang, parse.GetValue(directory)!).Take((parse.GetValue(count) ?? int.MaxValue)).ToList();
            return RunAsync(parse, m, Modality.Text, pairs.Select(p => CloudEventEncoder.Translation(p, lang, m, split)), pairs.Count, "pairs", ct);
        });
        return command;
    }

    private static Command FeedbackCommand()
    {
        var file = new Option<FileInfo>("--file", "-f") { Description = "JSON Lines: one retrain.feedback.v1 data object per line; optional \"id\" and \"subject\" members override the defaults.", Required = true };
        var model = new Option<string?>("--model", "-m") { Description = "Subject for lines without one (default: the line's \"model\")." };
        var command = new Command("feedback", "Publish ratings / accept decisions / corrections as retrain.feedback.v1.");
        foreach (var o in new Option[] { file, model, Window })
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, ct) =>
        {
            var path = parse.GetValue(file)!;
            if (!path.Exists)
            {
                Console.Error.WriteLine($"retrain-daemon: feedback file '{path.FullName}' does not exist");
                return Task.FromResult(1);
            }

            var messages = new List<OutgoingMessage>();
            int lineNumber = 0;
            foreach (var line in File.ReadLines(path.FullName))
            {
                lineNumber++;
                if (line.Trim().Length == 0)
                {
                    continue;
                }

                JsonObject data;
                try
                {
                    data = JsonNode.Parse(line) as JsonObject ?? throw new JsonException("not a JSON object");
                }
                catch (JsonException ex)
                {
                    Console.Error.WriteLine($"retrain-daemon: {path.Name}:{lineNumber}: {ex.Message}");
                    return Task.FromResult(1);
                }

                string id = Take(data, "id") ?? "feedback/" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(line.Trim())))[..32];
                string? subject = Take(data, "subject") ?? parse.GetValue(model) ?? (data["model"] as JsonValue)?.ToString();
                if (string.IsNullOrEmpty(subject))
                {
                    Console.Error.WriteLine($"retrain-daemon: {path.Name}:{lineNumber}: no subject, \"model\" or --model");
                    return Task.FromResult(1);
                }

                messages.Add(CloudEventEncoder.Encode(id, EventTypes.Feedback, subject, "/retrain-daemon/publish/feedback", data));
            }

            return RunAsync(parse, null, null, messages, messages.Count, "feedback events", ct);
        });
        return command;
    }

    private static string? Take(JsonObject data, string name)
    {
        if (data[name] is not JsonValue value)
        {
            return null;
        }

        data.Remove(name);
        return value.ToString();
    }

    private static async Task<int> RunAsync(ParseResult parse, string? model, Modality? modality, IEnumerable<OutgoingMessage> messages, long total, string what, CancellationToken cancellationToken)
    {
        var configuration = RetrainCli.Configuration(parse);
        var failures = new List<string>();
        var broker = RetrainCli.Bind(configuration, BrokerOptions.Section, new BrokerOptionsValidator(), failures);
        var ingest = RetrainCli.Bind(configuration, IngestOptions.Section, new IngestOptionsValidator(), failures);
        var models = RetrainCli.BindModels(configuration, failures);
        if (failures.Count > 0)
        {
            throw new ConfigurationInvalidException(failures);
        }

        if (model is not null)
        {
            if (!models.TryGet(model, out var options))
            {
                Console.Error.WriteLine($"retrain-daemon: model '{model}' is not configured (Models: {string.Join(", ", models.Models.Keys)}); the daemon would dead-letter every message.");
                return 1;
            }

            if (modality is { } m && options.ParsedModality != m)
            {
                Console.Error.WriteLine($"retrain-daemon: model '{model}' takes {options.Modality}, not {m.ToString().ToLowerInvariant()}.");
                return 1;
            }
        }

        using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
        var connector = new BrokerConnector(broker, loggerFactory.CreateLogger<BrokerConnector>());
        await using var publisher = await ConfirmedPublisher.ConnectAsync(connector, ingest, loggerFactory.CreateLogger<ConfirmedPublisher>(), parse.GetValue(Window), cancellationToken: cancellationToken);
        Console.Error.WriteLine($"publishing {total} {what} to {string.Join(", ", broker.Endpoints)} (exchange {Topology.IngestExchange})");
        var progress = new Progress<PublishProgress>(p => Console.Error.WriteLine(string.Format(CultureInfo.InvariantCulture,
            "  {0,8}/{1} sent, {2} confirmed, {3} failed, {4:0} msg/s", p.Attempted, p.Total, p.Confirmed, p.Failed, p.Elapsed.TotalSeconds > 0 ? p.Confirmed / p.Elapsed.TotalSeconds : 0)));
        var summary = await publisher.PublishAsync(messages, total, progress, cancellationToken);
        Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
            "confirmed {0}, failed {1}, retried {2} (reconnects {3}) in {4:0.00} s ({5:0} msg/s)", summary.Confirmed, summary.Failed, summary.Retried, summary.Reconnects, summary.Elapsed.TotalSeconds, summary.MessagesPerSecond));
        foreach (var failure in summary.FailedIds)
        {
            Console.Error.WriteLine("  lost: " + failure);
        }

        return summary.Failed == 0 && summary.Confirmed == total ? 0 : 1;
    }
}
