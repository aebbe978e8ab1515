using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Messaging.Events;

namespace RetrainDaemon.Cli;

/// <summary>
/// <c>models list | show | promote | rollback</c>: the model registry from the command line. Reads
/// need no lock; promote and rollback take the model's lock like the daemon does, so they are safe
/// while it runs, and then announce the new champion as <c>model.promoted</c> on <c>retrain.events</c>
/// (a warning, not a failure, when no broker takes it: servers also watch the registry files).
/// Exit codes: 0 done, 1 refused or not found (the reason on stderr), 2 invalid configuration.
/// </summary>
internal static class ModelsCommands
{
    private static readonly Option<string?> RegistryOption = new("--registry")
    {
        Description = "The registry folder (default: Registry:Root from the configuration).",
    };

    private static readonly Option<bool> JsonOption = new("--json") { Description = "Print JSON instead of text." };

    public static Command Create()
    {
        var models = new Command("models", "Inspect the model registry and move its champion: list, show, promote, rollback.");
        models.Subcommands.Add(ListCommand());
        models.Subcommands.Add(ShowCommand());
        models.Subcommands.Add(PromoteCommand());
        models.Subcommands.Add(RollbackCommand());
        return models;
    }

    private static Option<string> ModelOption(bool required) => new("--model", "-m")
    {
        Description = "The model (its folder name in the registry).",
        Required = required,
    };

    private static Option<string> ReasonOption() => new("--reason")
    {
        Description = "Why: recorded with the time in the model's alias history (aliases.json).",
        Required = true,
    };

    private static Command ListCommand()
    {
        var model = ModelOption(required: false);
        var command = new Command("list", "Every model (or one) with its aliases and versions, each verified now (hashes, files, external data).");
        command.Options.Add(model);
        command.Options.Add(RegistryOption);
        command.Options.Add(JsonOption);
        command.SetAction(parse => Run(parse, registry =>
        {
            string? only = parse.GetValue(model);
            if (only is not null && !registry.Models().Contains(only))
            {
                return Refuse($"no model '{only}' in the registry at {registry.Root}");
            }

            var listings = (only is null ? registry.Models() : [only]).Select(registry.List).ToList();
            if (parse.GetValue(JsonOption))
            {
                Console.WriteLine(RegistryJson.Serialize(listings));
                return 0;
            }

            Console.WriteLine($"registry {registry.Root}");
            if (listings.Count == 0)
            {
                Console.WriteLine("(no models)");
            }

            foreach (var listing in listings)
            {
                PrintListing(listing);
            }

            return 0;
        }));
        return command;
    }

    private static Command ShowCommand()
    {
        var model = ModelOption(required: true);
        var version = new Option<int?>("--version", "-v") { Description = "The version (default: the champion)." };
        var command = new Command("show", "One version's manifest (origin, signature, metrics, gate report, parity, files) and whether it verifies.");
        foreach (var option in new Option[] { model, version, RegistryOption, JsonOption })
        {
            command.Options.Add(option);
        }

        command.SetAction(parse => Run(parse, registry =>
        {
            string name = parse.GetValue(model)!;
            int? number = parse.GetValue(version);
            if (number is null)
            {
                number = registry.ReadAliases(name)?.Champion;
                if (number is null)
                {
                    return Refuse($"{name} has no champion; name a version with --version");
                }
            }

            var info = registry.Inspect(name, number.Value);
            if (info is null)
            {
                return Refuse($"{name} has no version {number}");
            }

            if (parse.GetValue(JsonOption))
            {
                Console.WriteLine(RegistryJson.Serialize(info));
            }
            else
            {
                PrintVersion(info);
            }

            return info.Verified ? 0 : 1;
        }));
        return command;
    }

    private static Command PromoteCommand()
    {
        var model = ModelOption(required: true);
        var version = new Option<int>("--version", "-v") { Description = "The version to serve; it must have passed the gate and verify now.", Required = true };
        var reason = ReasonOption();
        var command = new Command("promote", "Make a version the champion (the current champion becomes previous) and rewrite config.pbtxt.");
        foreach (var option in new Option[] { model, version, reason, RegistryOption })
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, cancellationToken) => RunAsync(parse, async registry =>
        {
            string name = parse.GetValue(model)!;
            var aliases = registry.Promote(name, parse.GetValue(version), parse.GetValue(reason)!);
            var change = aliases.History[^1];
            Console.WriteLine($"{name}: champion v{aliases.Champion}, previous {Show(aliases.Previous)} ({change.Reason})");
            await AnnounceAsync(parse, ModelEventCodec.EncodePromoted(new ModelPromotedData(name, aliases.Champion!.Value, change.From, change.Reason)), cancellationToken);
            return 0;
        }));
        return command;
    }

    private static Command RollbackCommand()
    {
        var model = ModelOption(required: true);
        var reason = ReasonOption();
        var command = new Command("rollback", "Point the champion back at the previous version (which must verify) and rewrite config.pbtxt; the reason is recorded.");
        foreach (var option in new Option[] { model, reason, RegistryOption })
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, cancellationToken) => RunAsync(parse, async registry =>
        {
            string name = parse.GetValue(model)!;
            var aliases = registry.Rollback(name, parse.GetValue(reason)!);
            var change = aliases.History[^1];
            Console.WriteLine($"{name}: rolled back from v{change.From} to v{aliases.Champion} ({change.Reason})");
            // A rollback is a champion change like any other: servers follow it the same way.
            await AnnounceAsync(parse, ModelEventCodec.EncodePromoted(new ModelPromotedData(name, aliases.Champion!.Value, change.From, change.Reason)), cancellationToken);
            return 0;
        }));
        return command;
    }

    /// <summary>Builds the registry from configuration (or <c>--registry</c>) and maps refusals to exit code 1.</summary>
    private static int Run(ParseResult parse, Func<ModelRegistry, int> action) =>
        RunAsync(parse, registry => Task.FromResult(action(registry))).GetAwaiter().GetResult();

    /// <summary>
    /// Publishes a registry event after the change it announces, with the <c>Broker</c> settings that
    /// <c>publish</c> uses, and prints the outcome. Never fails the verb: the change already stands and
    /// servers also watch the registry files, so a missing broker (or a broken <c>Broker</c> section)
    /// is a warning. Waits at most <see cref="ModelEventPublisher.DefaultDeadline"/>.
    /// </summary>
    internal static async Task AnnounceAsync(ParseResult parse, ModelEventMessage message, CancellationToken cancellationToken)
    {
        string what = string.Create(CultureInfo.InvariantCulture, $"{message.RoutingKey} for {message.Subject} v{message.Version}");
        var failures = new List<string>();
        var broker = RetrainCli.Bind(RetrainCli.Configuration(parse), BrokerOptions.Section, new BrokerOptionsValidator(), failures);
        if (failures.Count > 0)
        {
            Console.Error.WriteLine($"warning: {what} was not published: the Broker configuration is invalid ({string.Join("; ", failures)}); servers pick the change up from the registry files");
            return;
        }

        var publisher = new ModelEventPublisher(broker, NullLogger<ModelEventPublisher>.Instance);
        ModelEventPublishResult result;
        try
        {
            result = await publisher.PublishAsync(message, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"warning: {what} was not published (cancelled); servers pick the change up from the registry files");
            return;
        }

        if (result.Published)
        {
            Console.WriteLine($"published {what}");
        }
        else
        {
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"warning: {what} was not published to {string.Join(", ", broker.Endpoints)} within {result.Elapsed.TotalSeconds:0.0} s ({result.Problem}); the registry change stands and servers pick it up from the registry files"));
        }
    }

    private static async Task<int> RunAsync(ParseResult parse, Func<ModelRegistry, Task<int>> action)
    {
        var configuration = RetrainCli.Configuration(parse);
        var failures = new List<string>();
        var options = RetrainCli.Bind(configuration, RegistryOptions.Section, new RegistryOptionsValidator(), failures);
        if (parse.GetValue(RegistryOption) is { } root)
        {
            options.Root = root;
            failures.RemoveAll(f => f.StartsWith($"{RegistryOptions.Section}:{nameof(RegistryOptions.Root)} ", StringComparison.Ordinal));
        }

        if (failures.Count > 0)
        {
            // Reported here rather than thrown: System.CommandLine's default exception handler would
            // catch a ConfigurationInvalidException before RetrainCli.InvokeAsync sees it (exit 1, a stack trace).
            return RetrainCli.ReportInvalid(failures);
        }

        try
        {
            return await action(new ModelRegistry(options));
        }
        catch (RegistryException ex)
        {
            return Refuse(ex.Message);
        }
        catch (ArgumentException ex)
        {
            return Refuse(ex.Message);
        }
    }

    private static int Refuse(string message)
    {
        Console.Error.WriteLine($"retrain-daemon: {message}");
        return 1;
    }

    private static string Show(int? version) => version is int v ? $"v{v}" : "-";

    private static void PrintListing(ModelListing listing)
    {
        var inv = CultureInfo.InvariantCulture;
        var a = listing.Aliases;
        Console.WriteLine();
        Console.WriteLine($"{listing.Model}: champion {Show(a?.Champion)}, previous {Show(a?.Previous)}, challenger {Show(a?.Challenger)}");
        if (listing.AliasesProblem is not null)
        {
            Console.WriteLine($"  aliases: {listing.AliasesProblem}");
        }

        if (a?.History is { Count: > 0 } history)
        {
            var last = history[^1];
            Console.WriteLine($"  last change: {last.At.ToString("u", inv)} {last.Action} {last.Alias} {Show(last.From)} -> {Show(last.To)}: {last.Reason}");
        }

        Console.WriteLine(string.Format(inv, "  {0,7} {1,-8} {2,-8} {3,-8} {4,-20} {5,-20} {6}", "version", "status", "where", "verified", "aliases", "created", "run / problem"));
        foreach (var v in listing.Versions)
        {
            string status = v.Manifest is null ? "?" : v.Manifest.Status == VersionStatus.Passed ? "passed" : "rejected";
            string created = v.Manifest?.CreatedAt.ToString("u", inv) ?? "-";
            string tail = v.Problem ?? v.Manifest?.RunId ?? "";
            Console.WriteLine(string.Format(inv, "  {0,7} {1,-8} {2,-8} {3,-8} {4,-20} {5,-20} {6}",
                v.Version, status, v.Location == VersionLocation.Servable ? "servable" : "rejected", v.Verified ? "yes" : "NO",
                v.Aliases.Count == 0 ? "-" : string.Join(",", v.Aliases), created, tail));
        }

        if (listing.Versions.Count == 0)
        {
            Console.WriteLine("  (no versions)");
        }
    }

    private static void PrintVersion(VersionInfo info)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"{info.Model} v{info.Version} ({(info.Location == VersionLocation.Servable ? "servable location" : "rejected candidate")}) at {info.Directory}");
        Console.WriteLine(info.Verified ? "verified: yes" : $"verified: NO — {info.Problem} (never loaded)");
        if (info.Aliases.Count > 0)
        {
            Console.WriteLine($"aliases: {string.Join(", ", info.Aliases)}");
        }

        var m = info.Manifest;
        if (m is null)
        {
            return;
        }

        Console.WriteLine($"status: {(m.Status == VersionStatus.Passed ? "passed" : "rejected")}, created {m.CreatedAt.ToString("u", inv)}, run {m.RunId ?? "-"}, parent {Show(m.ParentVersion)}, data watermark {m.DataWatermark?.ToString(inv) ?? "-"}");
        Console.WriteLine($"opset {m.Opset?.ToString(inv) ?? "-"}, max_batch_size {m.MaxBatchSize}");
        foreach (var (kind, tensors) in new[] { ("input", m.Inputs), ("output", m.Outputs) })
        {
            foreach (var t in tensors)
            {
                Console.WriteLine($"  {kind} {t.Name}: {t.ElementType} [{string.Join(", ", t.Shape.Select(d => d.ToString(inv)))}]");
            }
        }

        if (m.Hyperparameters.Count > 0)
        {
            Console.WriteLine("hyperparameters: " + string.Join(", ", m.Hyperparameters.Select(p => $"{p.Key}={p.Value}")));
        }

        foreach (var metric in m.Metrics)
        {
            Console.WriteLine($"  metric {metric}");
        }

        if (m.Parity is { } p)
        {
            Console.WriteLine(string.Format(inv, "export parity: max |diff| {0:E2} (tolerance {1:E2}) over {2} inputs", p.MaxAbsDiff, p.Tolerance, p.InputsChecked));
        }

        foreach (var f in m.Files)
        {
            Console.WriteLine(string.Format(inv, "  file {0} {1} bytes sha256 {2}", f.Name, f.Bytes, f.Sha256));
        }

        foreach (var e in m.ExternalData)
        {
            Console.WriteLine($"  external data: tensor {e.Tensor} of {e.File} in {e.Location}");
        }

        if (m.GateReport is not null)
        {
            Console.WriteLine("gate report:");
            Console.WriteLine(m.GateReport.ToJsonString(Hosting.HostingExtensions.Indented));
        }
    }
}
