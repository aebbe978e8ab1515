using System.CommandLine;
using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Hosting;

namespace RetrainDaemon.Cli;

/// <summary>The <c>retrain-daemon</c> command line: <c>run</c>, <c>publish …</c>, <c>samples stats</c>.</summary>
public static class RetrainCli
{
    /// <summary>Exit code for a configuration that fails validation.</summary>
    public const int ExitInvalidConfiguration = 2;

    internal static readonly Option<FileInfo?> ConfigOption = new("--config", "-c")
    {
        Description = "An extra JSON configuration file (over the embedded defaults and /etc/retrain-daemon/appsettings.json).",
        Recursive = true,
    };

    internal static readonly Option<string[]> SetOption = new("--set")
    {
        Description = "Override one setting, e.g. --set Broker:Endpoints:0=localhost:5673 (repeatable; environment: RETRAIN__Section__Key).",
        Recursive = true,
        Arity = ArgumentArity.ZeroOrMore,
    };

    public static async Task<int> InvokeAsync(string[] args, Func<IConfiguration, CancellationToken, Task> runDaemon)
    {
        // ONNX Runtime 1.31 creates a telemetry device id and event queue under $HOME/.cache when its
        // environment starts, and carries code to upload them; nothing leaves this service. Only the
        // variable read by the native library stops it (OrtEnv.DisableTelemetryEvents comes too late), and
        // .NET's Environment.SetEnvironmentVariable does not reach native getenv: set it natively, first.
        NativeEnvironment.Set("ORT_DISABLE_TELEMETRY", "1");
        var root = new RootCommand("RetrainDaemon keeps generative models fresh: it ingests samples and feedback from RabbitMQ into a durable store, fine-tunes models on their triggers and schedules, gates the ONNX exports, promotes, serves and rolls back.");
        root.Options.Add(ConfigOption);
        root.Options.Add(SetOption);

        var run = new Command("run", "Run the daemon: consume retrain.samples and retrain.feedback into the store; fine-tune, gate, publish and roll back models on their triggers and schedules (Quartz); serve the champions, /metrics and /v2/health/{live,ready}.");
        run.SetAction(async (parse, cancellationToken) =>
        {
            var configuration = Configuration(parse);
            // Validate every section up front: the host's own ValidateOnStart stops at the first
            // options type that a hosted service happens to resolve.
            var failures = new List<string>();
            Bind(configuration, BrokerOptions.Section, new BrokerOptionsValidator(), failures);
            Bind(configuration, IngestOptions.Section, new IngestOptionsValidator(), failures);
            Bind(configuration, StoreOptions.Section, StoreValidator(), failures);
            Bind(configuration, HttpOptions.Section, new HttpOptionsValidator(), failures);
            Bind(configuration, TrainingHostOptions.Section, new TrainingHostOptionsValidator(), failures);
            Bind(configuration, EvaluationOptions.Section, new EvaluationOptionsValidator(), failures);
            Bind(configuration, Evaluation.Text.TextEvaluationOptions.Section, new Evaluation.Text.TextEvaluationOptionsValidator(), failures);
            Bind(configuration, RegistryOptions.Section, new RegistryOptionsValidator(), failures);
            Bind(configuration, ServingOptions.Section, new ServingOptionsValidator(), failures);
            Bind(configuration, Loop.LoopOptions.Section, new Loop.LoopOptionsValidator(), failures);
            BindModels(configuration, failures);
            if (failures.Count > 0)
            {
                return ReportInvalid(failures);
            }

            try
            {
                await runDaemon(configuration, cancellationToken);
                return Environment.ExitCode;
            }
            catch (Exception ex) when (HostingExtensions.OptionsFailures(ex) is { Count: > 0 } startFailures)
            {
                return ReportInvalid(startFailures);
            }
        });
        root.Subcommands.Add(run);
        root.Subcommands.Add(PublishCommands.Create());
        root.Subcommands.Add(SamplesCommands.Create());
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(TuneCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(ExtractorCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(GateCommand.Create());
        root.Subcommands.Add(ModelsCommands.Create());
        root.Subcommands.Add(LoopCommands.Runs());
        root.Subcommands.Add(LoopCommands.Retrain());
        root.Subcommands.Add(LoopCommands.Analyze());

        var parsed = root.Parse(args);
        // Long enough for the host's own graceful shutdown (30 s) to finish after SIGTERM/SIGINT.
        // Exceptions reach the handler below (configuration problems as a list, exit 2) instead of System.CommandLine printing a stack trace.
        var invocation = new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(45), EnableDefaultExceptionHandler = false };
        try
        {
            return await parsed.InvokeAsync(invocation);
        }
        catch (ConfigurationInvalidException ex)
        {
            return ReportInvalid(ex.Failures);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("retrain-daemon: cancelled");
            return 130;
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or ArgumentException or InvalidOperationException or UnauthorizedAccessException or Core.Registry.RegistryException)
        {
            // Expected failures (missing or damaged files, bad input, refused registry operations) as one line naming what was wrong.
            Console.Error.WriteLine($"retrain-daemon: {ex.Message}");
            return 1;
        }
    }

    internal static IConfigurationRoot Configuration(ParseResult parse) =>
        DaemonConfiguration.Build(parse.GetValue(ConfigOption), parse.GetValue(SetOption));

    internal static int ReportInvalid(IReadOnlyList<string> failures)
    {
        Console.Error.WriteLine($"retrain-daemon: the configuration is invalid ({failures.Count} problem{(failures.Count == 1 ? "" : "s")}):");
        foreach (var failure in failures)
        {
            Console.Error.WriteLine("  - " + failure);
        }

        return ExitInvalidConfiguration;
    }

    /// <summary>Binds and validates options outside the host (publisher, stats), all failures at once.</summary>
    internal static T Bind<T>(IConfiguration configuration, string section, IValidateOptions<T> validator, List<string> failures)
        where T : class, new()
    {
        var value = new T();
        try
        {
            configuration.GetSection(section).Bind(value);
        }
        catch (InvalidOperationException ex)
        {
            // The binder names the key and the value it could not convert.
            failures.Add($"{section}: {ex.Message}");
            return value;
        }

        var result = validator.Validate(Microsoft.Extensions.Options.Options.DefaultName, value);
        if (result.Failed)
        {
            failures.AddRange(result.Failures);
        }

        return value;
    }

    /// <summary>
    /// <c>Store</c> as the daemon checks it at start: Core's checks (provider, path, connection string shape), then
    /// Npgsql's own reading of a PostgreSQL connection string.
    /// </summary>
    internal static IValidateOptions<StoreOptions> StoreValidator() => new BothValidators<StoreOptions>(new StoreOptionsValidator(), new PostgresConnectionValidator());

    /// <summary>Runs <paramref name="second"/> only when <paramref name="first"/> passes (it relies on what the first checks).</summary>
    private sealed class BothValidators<T>(IValidateOptions<T> first, IValidateOptions<T> second) : IValidateOptions<T>
        where T : class
    {
        public ValidateOptionsResult Validate(string? name, T options)
        {
            var result = first.Validate(name, options);
            return result.Failed ? result : second.Validate(name, options);
        }
    }

    internal static ModelCatalogOptions BindModels(IConfiguration configuration, List<string> failures)
    {
        var catalog = new ModelCatalogOptions();
        try
        {
            configuration.GetSection(ModelCatalogOptions.Section).Bind(catalog.Models);
        }
        catch (InvalidOperationException ex)
        {
            failures.Add($"{ModelCatalogOptions.Section}: {ex.Message}");
            return catalog;
        }

        foreach (var validator in new IValidateOptions<ModelCatalogOptions>[] { new ModelCatalogOptionsValidator(), new Loop.CronScheduleValidator() })
        {
            var result = validator.Validate(null, catalog);
            if (result.Failed)
            {
                failures.AddRange(result.Failures);
            }
        }

        return catalog;
    }
}

/// <summary>Thrown by verbs whose options do not validate; reported like the daemon's own start-up failures.</summary>
internal sealed class ConfigurationInvalidException(IReadOnlyList<string> failures) : Exception("invalid configuration")
{
    public IReadOnlyList<string> Failures { get; } = failures;
}

/// <summary>The process environment as native libraries see it.</summary>
internal static class NativeEnvironment
{
    public static void Set(string name, string value)
    {
        if (OperatingSystem.IsLinux() && Setenv(name, value, 1) != 0)
        {
            throw new InvalidOperationException($"setenv({name}) failed");
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "setenv", CharSet = System.Runtime.InteropServices.CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern int Setenv(string name, string value, int overwrite);
}
