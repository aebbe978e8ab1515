using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Quartz;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Evaluation.Text;
using RetrainDaemon.Loop;
using RetrainDaemon.Messaging.Events;

namespace RetrainDaemon.Cli;

/// <summary><c>runs list|show</c> (the run ledger) and <c>retrain --model m</c> (one fine-tune now, in this process).</summary>
internal static class LoopCommands
{
    public static Command Runs()
    {
        var runs = new Command("runs", "The run ledger: every fine-tune and error analysis, its trigger, stages, timings and outcome.");
        var model = new Option<string?>("--model", "-m") { Description = "Only this model's runs." };
        var kind = new Option<string?>("--kind") { Description = "finetune or analysis." };
        kind.AcceptOnlyFromAmong(RunKinds.FineTune, RunKinds.Analysis);
        var limit = new Option<int>("--limit", "-n") { Description = "How many (newest first).", DefaultValueFactory = _ => 20 };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var list = new Command("list", "List runs, newest first.");
        foreach (var o in new Option[] { model, kind, limit, json })
        {
            list.Options.Add(o);
        }

        list.SetAction(async (parse, cancellationToken) =>
        {
            await using var store = OpenStore(parse);
            var records = await store.ListRunsAsync(parse.GetValue(model), parse.GetValue(kind), Math.Max(1, parse.GetValue(limit)), cancellationToken);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(records, Indented));
                return 0;
            }

            if (records.Count == 0)
            {
                Console.Error.WriteLine("no runs recorded");
                return 0;
            }

            Console.WriteLine($"{"RUN",-44} {"KIND",-9} {"STATUS",-9} {"VER",4} {"STARTED (UTC)",-20} {"TOOK",8}  TRIGGER / DETAIL");
            foreach (var r in records)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{r.RunId,-44} {r.Kind,-9} {r.Status,-9} {(r.Version is int v ? "v" + v : "-"),4} {r.StartedAt.UtcDateTime,-20:yyyy-MM-dd HH:mm:ss} {Took(r.Duration),8}  {r.Trigger}{(r.Detail is null ? "" : " / " + r.Detail)}"));
            }

            return 0;
        });

        var id = new Argument<string>("run-id") { Description = "The run id (from runs list)." };
        var showJson = new Option<bool>("--json") { Description = "Print JSON." };
        var show = new Command("show", "One run with its stages and timings.");
        show.Arguments.Add(id);
        show.Options.Add(showJson);
        show.SetAction(async (parse, cancellationToken) =>
        {
            await using var store = OpenStore(parse);
            var run = await store.GetRunAsync(parse.GetValue(id)!, cancellationToken);
            if (run is null)
            {
                Console.Error.WriteLine($"retrain-daemon: no run '{parse.GetValue(id)}' in the ledger (see: retrain-daemon runs list)");
                return 1;
            }

            if (parse.GetValue(showJson))
            {
                Console.WriteLine(JsonSerializer.Serialize(run, Indented));
                return 0;
            }

            Console.WriteLine($"run       {run.RunId}");
            Console.WriteLine($"model     {run.Model} ({run.Kind})");
            Console.WriteLine($"status    {run.Status}{(run.Version is int v ? $" (v{v})" : "")}{(run.Attempts > 1 ? $" after {run.Attempts} attempts" : "")}");
            Console.WriteLine($"trigger   {run.Trigger}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"started   {run.StartedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC; took {Took(run.Duration)}"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"snapshot  watermark {run.Watermark?.ToString(CultureInfo.InvariantCulture) ?? "-"} (previous {run.PreviousWatermark?.ToString(CultureInfo.InvariantCulture) ?? "-"}); parent version {run.ParentVersion?.ToString(CultureInfo.InvariantCulture) ?? "none"}"));
            if (run.Directory is not null)
            {
                Console.WriteLine($"directory {run.Directory}");
            }

            if (run.Detail is not null)
            {
                Console.WriteLine($"detail    {run.Detail}");
            }

            Console.WriteLine();
            Console.WriteLine($"{"ATTEMPT",7} {"STAGE",-9} {"OUTCOME",-11} {"TOOK",8}  DETAIL");
            foreach (var s in run.Stages)
            {
                Console.WriteLine($"{s.Attempt,7} {s.Stage,-9} {s.Outcome ?? "running",-11} {Took(s.Duration),8}  {s.Detail}");
            }

            return 0;
        });

        runs.Subcommands.Add(list);
        runs.Subcommands.Add(show);
        return runs;
    }

    public static Command Retrain()
    {
        var model = new Option<string>("--model", "-m") { Description = "The configured model to fine-tune.", Required = true };
        var reason = new Option<string>("--reason") { Description = "Why (recorded as the run's trigger).", DefaultValueFactory = _ => "requested on the command line" };
        var resume = new Option<string?>("--resume") { Description = "Resume this interrupted run (its id) instead of starting a new one." };
        var command = new Command("retrain", "One fine-tune now, in this process, exactly as the daemon's job runs it: snapshot → train (from the champion) → export + parity → gate → registry → event; recorded in the run ledger. Exit 0 promoted, 3 rejected by the gate, 4 skipped (too little data), 1 failed, 130 interrupted (resume with --resume).");
        foreach (var o in new Option[] { model, reason, resume })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, cancellationToken) =>
        {
            var (storeOptions, registryOptions, evaluation, text, trainingHost, loop, broker, catalog) = BindLoopSettings(parse);

            string name = parse.GetValue(model)!;
            if (!catalog.TryGet(name, out var options) || !options.Retrain)
            {
                Console.Error.WriteLine($"retrain-daemon: '{name}' is not a model the loop trains (Models: {string.Join(", ", catalog.Models.Where(m => m.Value.Retrain).Select(m => m.Key))})");
                return 2;
            }

            if (storeOptions.NormalizedProvider == StoreProviders.Postgres)
            {
                // A run in this process would be invisible to the cluster (nobody would recover it if this process
                // died), so on a clustered store the verb queues a firing of the model's job for a train node instead.
                if (parse.GetValue(resume) is not null)
                {
                    Console.Error.WriteLine("retrain-daemon: --resume is not used on a clustered store (Store:Provider=postgres): the train nodes resume interrupted runs themselves");
                    return 2;
                }

                return await QueueOnClusterAsync(name, parse.GetValue(reason)!, loop, storeOptions, cancellationToken);
            }

            using var loggers = LoggerFactory.Create(b => b.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; }).SetMinimumLevel(LogLevel.Information));
            await using var store = SampleStores.Open(storeOptions);
            var events = new ModelEventPublisher(broker, loggers.CreateLogger<ModelEventPublisher>());
            var runner = new FineTuneRunner(Options.Create(catalog), Options.Create(loop), Options.Create(evaluation), Options.Create(text), Options.Create(trainingHost),
                store, store, new ModelRegistry(registryOptions), new LoopMetrics(), loggers.CreateLogger<FineTuneRunner>(), events);
            var outcome = await runner.RunAsync(name, $"manual: {parse.GetValue(reason)}", parse.GetValue(resume), cancellationToken);
            Console.WriteLine($"{outcome.RunId}: {outcome.Status}{(outcome.Version is int v ? $" v{v}" : "")}: {outcome.Detail}");
            foreach (var (stage, took) in outcome.Stages)
            {
                Console.WriteLine($"  {stage,-9} {Took(took)}");
            }

            return ExitCodeOf(outcome.Status);
        });
        return command;
    }

    /// <summary><c>retrain</c>'s exit code for how the run ended (the same locally and on a cluster).</summary>
    private static int ExitCodeOf(string status) => status switch
    {
        RunStatuses.Promoted => 0,
        RunStatuses.Rejected => GateCommand.ExitRejected,
        RunStatuses.Skipped => 4,
        RunStatuses.Running => 130,
        _ => 1,
    };

    public static Command Analyze()
    {
        var model = new Option<string>("--model", "-m") { Description = "The configured model whose champion to analyse.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the report JSON instead of the summary." };
        var command = new Command("analyze", "One error analysis now, in this process, as the daemon's job runs it: the champion per slice on the recent holdout and its rated generations, drift of the data since its watermark, sampling weights for the next fine-tune; report.json + report.html under Loop:AnalysisDirectory, recorded in the run ledger. Exit 0 completed, 4 skipped (no champion), 1 failed.");
        command.Options.Add(model);
        command.Options.Add(json);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var (storeOptions, registryOptions, evaluation, text, _, loop, broker, catalog) = BindLoopSettings(parse);

            string name = parse.GetValue(model)!;
            if (!catalog.TryGet(name, out _))
            {
                Console.Error.WriteLine($"retrain-daemon: '{name}' is not a configured model (Models: {string.Join(", ", catalog.Models.Keys)})");
                return 2;
            }

            using var loggers = LoggerFactory.Create(b => b.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; }).SetMinimumLevel(LogLevel.Information));
            await using var store = SampleStores.Open(storeOptions);
            var runner = new AnalysisRunner(Options.Create(catalog), Options.Create(loop), Options.Create(evaluation), Options.Create(text),
                store, store, new ModelRegistry(registryOptions), new LoopMetrics(), loggers.CreateLogger<AnalysisRunner>(), new ModelEventPublisher(broker, loggers.CreateLogger<ModelEventPublisher>()));
            var outcome = await runner.RunAsync(name, "manual: requested on the command line", cancellationToken);
            if (outcome.Result is { } result && parse.GetValue(json))
            {
                Console.WriteLine(await File.ReadAllTextAsync(result.JsonPath, cancellationToken));
            }
            else
            {
                Console.WriteLine($"{outcome.RunId}: {outcome.Status}: {outcome.Detail}");
                if (outcome.Result is { } r)
                {
                    Console.WriteLine($"  report  {r.JsonPath}");
                    Console.WriteLine($"  page    {r.HtmlPath}");
                    Console.WriteLine("  weights " + string.Join(", ", r.Weights.Weights.OrderByDescending(w => w.Value).Select(w => string.Create(CultureInfo.InvariantCulture, $"{w.Key} {w.Value:0.00}"))));
                }
            }

            return outcome.Status switch
            {
                RunStatuses.Completed => 0,
                RunStatuses.Skipped => 4,
                _ => 1,
            };
        });
        return command;
    }

    /// <summary>Every section a fine-tune or an analysis reads, validated together (all failures at once).</summary>
    private static (StoreOptions Store, RegistryOptions Registry, EvaluationOptions Evaluation, TextEvaluationOptions Text, TrainingHostOptions TrainingHost,
        LoopOptions Loop, BrokerOptions Broker, ModelCatalogOptions Catalog) BindLoopSettings(ParseResult parse)
    {
        var configuration = RetrainCli.Configuration(parse);
        var failures = new List<string>();
        var result = (
            RetrainCli.Bind(configuration, StoreOptions.Section, RetrainCli.StoreValidator(), failures),
            RetrainCli.Bind(configuration, RegistryOptions.Section, new RegistryOptionsValidator(), failures),
            RetrainCli.Bind(configuration, EvaluationOptions.Section, new EvaluationOptionsValidator(), failures),
            RetrainCli.Bind(configuration, TextEvaluationOptions.Section, new TextEvaluationOptionsValidator(), failures),
            RetrainCli.Bind(configuration, TrainingHostOptions.Section, new TrainingHostOptionsValidator(), failures),
            RetrainCli.Bind(configuration, LoopOptions.Section, new LoopOptionsValidator(), failures),
            RetrainCli.Bind(configuration, BrokerOptions.Section, new BrokerOptionsValidator(), failures),
            RetrainCli.BindModels(configuration, failures));
        return failures.Count > 0 ? throw new ConfigurationInvalidException(failures) : result;
    }

    /// <summary>
    /// <c>retrain</c> on a cluster: stores a firing of the model's fine-tune job in the clustered job store (through a
    /// scheduler that is never started, so this process never runs jobs or checks in), then follows the run a train
    /// node starts for it in the ledger and exits as the local verb would. Ctrl+C stops the waiting, not the run.
    /// </summary>
    private static async Task<int> QueueOnClusterAsync(string model, string reason, LoopOptions loop, StoreOptions storeOptions, CancellationToken cancellationToken)
    {
        await using var store = SampleStores.Open(storeOptions);
        var known = (await store.ListRunsAsync(model, RunKinds.FineTune, 100, cancellationToken)).Select(r => r.RunId).ToHashSet(StringComparer.Ordinal);
        string trigger = $"manual: {reason}";
        var scheduler = await QuartzSchedulerBuilder.Create(q => q.UseLoopJobStore(loop, storeOptions)).BuildScheduler(cancellationToken);
        try
        {
            if (!await scheduler.Exists(FineTuneJob.KeyFor(model), cancellationToken))
            {
                Console.Error.WriteLine($"retrain-daemon: the cluster has no fine-tune job for '{model}' yet: no train node with this model configured has started");
                return 1;
            }

            await scheduler.TriggerJob(FineTuneJob.KeyFor(model), new JobDataMap { [FineTuneJob.TriggerKey] = trigger }, cancellationToken);
        }
        finally
        {
            await scheduler.Shutdown(waitForJobsToComplete: false, CancellationToken.None);
        }

        Console.WriteLine($"queued a fine-tune of {model} on the cluster; waiting for a train node to run it (Ctrl+C stops waiting, not the run)");
        string? runId = null;
        while (true)
        {
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            // Ours is the new run with our trigger text (a cron or policy firing may start one at the same moment).
            var run = (await store.ListRunsAsync(model, RunKinds.FineTune, 20, cancellationToken))
                .FirstOrDefault(r => runId is null ? !known.Contains(r.RunId) && r.Trigger == trigger : r.RunId == runId);
            if (run is null)
            {
                continue;
            }

            if (runId is null)
            {
                runId = run.RunId;
                Console.WriteLine($"{runId}: started ({run.Trigger})");
            }

            if (RunStatuses.IsFinal(run.Status))
            {
                Console.WriteLine($"{run.RunId}: {run.Status}{(run.Version is int v ? $" v{v}" : "")}: {run.Detail}");
                return ExitCodeOf(run.Status);
            }
        }
    }

    private static IDaemonStore OpenStore(ParseResult parse)
    {
        var failures = new List<string>();
        var storeOptions = RetrainCli.Bind(RetrainCli.Configuration(parse), StoreOptions.Section, RetrainCli.StoreValidator(), failures);
        return failures.Count > 0 ? throw new ConfigurationInvalidException(failures) : SampleStores.Open(storeOptions);
    }

    internal static string Took(TimeSpan? duration) => duration is not TimeSpan d ? "-" : d.TotalSeconds < 90
        ? string.Create(CultureInfo.InvariantCulture, $"{d.TotalSeconds:0.0} s")
        : string.Create(CultureInfo.InvariantCulture, $"{(int)d.TotalMinutes}m{d.Seconds:00}s");

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
}
