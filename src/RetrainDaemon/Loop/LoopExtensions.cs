using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Quartz;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Evaluation.Text;
using RetrainDaemon.Hosting;
using RetrainDaemon.Messaging.Events;

namespace RetrainDaemon.Loop;

/// <summary>
/// Registration of the continuous loop: Quartz with its persistent store (SQLite on one node; PostgreSQL, clustered,
/// when the sample store is PostgreSQL), the jobs, the runner.
/// </summary>
public static class LoopExtensions
{
    /// <summary>How often a clustered node looks for triggers other nodes or processes stored (Quartz's minimum is 1 s).</summary>
    public static readonly TimeSpan ClusterIdleWait = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The loop's services (the runner and the ledger are also what <c>retrain</c> and <c>runs</c> use), and —
    /// when <c>Loop:Enabled</c> — the Quartz scheduler and its jobs. Call after <c>AddStore</c>, <c>AddRegistry</c>
    /// and <c>AddIngestion</c> (it reads their options).
    /// </summary>
    public static WebApplicationBuilder AddLoop(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddLoopServices();
        var loop = builder.Configuration.GetSection(LoopOptions.Section).Get<LoopOptions>() ?? new LoopOptions();
        if (!loop.Enabled)
        {
            return builder;
        }

        services.AddSingleton<IRetrainRequester, SchedulerRetrainRequester>();
        var storeOptions = builder.Configuration.GetSection(StoreOptions.Section).Get<StoreOptions>() ?? new StoreOptions();
        bool clustered = storeOptions.NormalizedProvider == StoreProviders.Postgres;
        services.AddSingleton(new LoopTopology(clustered));
        services.AddQuartz(q =>
        {
            // The watch plus one fine-tune per model at most (the runner lets one train at a time on a small box).
            q.UseDefaultThreadPool(4);
            if (clustered)
            {
                // At shutdown the running fine-tune is asked to stop (its token) and waited for; it checkpoints and
                // throws, and the store hands its firing back (below) for another node to resume. (UseClustering
                // gives every node its own generated instance id for the cluster's check-in table.)
                q.ConfigureScheduler(o =>
                {
                    o.ShutdownJobInterruption = ShutdownJobInterruption.WhenWaitingForJobs;
                    // A node only hears of triggers it stores itself; others' (a handed-back firing, a `retrain` queued
                    // from the command line) it finds when it next polls. Quartz's 30 s default idle wait made a
                    // handed-back run wait until the stopped node was declared dead (9–10 s measured); 2 s polls.
                    o.IdleWaitTime = ClusterIdleWait;
                });
            }

            q.UseLoopJobStore(loop, storeOptions);
        });
        // Quartz waits for a running fine-tune at shutdown; the run sees its token, writes a checkpoint and returns
        // (one node) or is handed back to the cluster (clustered) within HostOptions.ShutdownTimeout.
        services.AddQuartzHostedService(o => o.WaitForJobsToComplete = true);
        services.AddHostedService<LoopScheduler>();
        return builder;
    }

    /// <summary>
    /// Quartz's persistent store for the loop: SQLite in <see cref="LoopOptions.SchedulerStore"/> on one node, or — with
    /// <c>Store:Provider=postgres</c> — clustered, in the store's PostgreSQL database. The daemon's scheduler and the
    /// <c>retrain</c> verb's client (which queues a firing on a cluster) use the same store this way.
    /// </summary>
    public static IQuartzBuilder UseLoopJobStore(this IQuartzBuilder q, LoopOptions loop, StoreOptions storeOptions)
    {
        bool clustered = storeOptions.NormalizedProvider == StoreProviders.Postgres;
        q.UsePersistentStore(store =>
        {
            if (clustered)
            {
                // Quartz's tables live in the store's own PostgreSQL database (one thing to back up and secure).
                // A missing connection string is reported by the store's validator at start, before Quartz connects.
                store.UsePostgres(storeOptions.ResolveConnectionString() ?? "");
                store.UseClustering(c =>
                {
                    c.CheckinInterval = loop.ClusterCheckinInterval;
                    c.CheckinMisfireThreshold = loop.ClusterCheckinMisfireThreshold;
                });
            }
            else
            {
                string path = Path.GetFullPath(loop.SchedulerStore);
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                store.UseSqlite($"Data Source={path}");
            }

            // Several nodes may provision at once: the loser of that race finds the winner's tables (Quartz docs).
            store.ProvisionSchema();
            store.ConfigureStore(o =>
            {
                o.MisfireThreshold = loop.MisfireThreshold;
                // Clustered only: a firing its shutdown interrupted becomes a recovery trigger another node fires.
                // One node keeps its ledger-driven resume at start instead (a handed-back firing would run twice).
                o.RecoverFiringsCancelledByShutdown = clustered;
            });
        });
        return q;
    }

    /// <summary>The runner, the ledger and the policies' helpers, without a scheduler (the CLI's <c>retrain</c> uses these).</summary>
    public static IServiceCollection AddLoopServices(this IServiceCollection services)
    {
        services.AddValidatedOptions<LoopOptions, LoopOptionsValidator>(LoopOptions.Section);
        services.AddValidatedOptions<TrainingHostOptions, TrainingHostOptionsValidator>(TrainingHostOptions.Section);
        services.AddValidatedOptions<TextEvaluationOptions, TextEvaluationOptionsValidator>(TextEvaluationOptions.Section);
        services.AddSingleton<IValidateOptions<ModelCatalogOptions>, CronScheduleValidator>();
        services.AddSingleton(sp => (IRunLedger)sp.GetRequiredService<ISampleStore>());
        services.AddSingleton(sp => (ILoopQueries)sp.GetRequiredService<ISampleStore>());
        services.AddSingleton<LoopMetrics>();
        services.AddSingleton<LoopState>();
        services.TryAddSingleton<ServingOutcomes>();
        services.AddSingleton(sp => new ModelEventPublisher(sp.GetRequiredService<IOptions<Core.Options.BrokerOptions>>().Value, sp.GetRequiredService<ILogger<ModelEventPublisher>>()));
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<FineTuneRunner>(sp, sp.GetRequiredService<ModelEventPublisher>(), sp.GetRequiredService<LoopState>()));
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<AnalysisRunner>(sp, sp.GetRequiredService<ModelEventPublisher>(), sp.GetRequiredService<LoopState>()));
        services.AddSingleton<IFeedbackSummaries, StoreFeedbackSummaries>();
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<RollbackWatch>(sp));
        return services;
    }
}

/// <summary>The admin route's "fine-tune now": fires the model's Quartz job with a manual reason.</summary>
public sealed class SchedulerRetrainRequester(ISchedulerFactory factory, IOptions<ModelCatalogOptions> catalog, LoopState state, TimeProvider? clock = null) : IRetrainRequester
{
    public async Task RequestAsync(string model, string reason, CancellationToken cancellationToken)
    {
        if (!catalog.Value.TryGet(model, out var options) || !options.Retrain)
        {
            throw new ArgumentException($"'{model}' is not a model the loop trains (Models: {string.Join(", ", catalog.Value.Models.Where(m => m.Value.Retrain).Select(m => m.Key))})");
        }

        var scheduler = await factory.GetScheduler(cancellationToken).ConfigureAwait(false);
        state.Requested(model, (clock ?? TimeProvider.System).GetUtcNow());
        await scheduler.TriggerJob(FineTuneJob.KeyFor(model), new JobDataMap { [FineTuneJob.TriggerKey] = $"manual: {reason}" }, cancellationToken).ConfigureAwait(false);
    }
}
