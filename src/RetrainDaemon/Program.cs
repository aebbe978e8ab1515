using RetrainDaemon.Cli;
using RetrainDaemon.Hosting;
using RetrainDaemon.Loop;
using RetrainDaemon.Serving;

// Composition root. The command line picks a verb; `run` builds the daemon, one AddX() per stage.
return await RetrainCli.InvokeAsync(args, static async (configuration, cancellationToken) =>
{
    var builder = WebApplication.CreateSlimBuilder();
    builder.AddDaemonDefaults(configuration);
    builder.AddNodeRoles();
    builder.AddStore();
    builder.AddRegistry();
    builder.AddIngestion();
    builder.AddServing();
    builder.AddModelEvents();
    builder.AddLoop();

    await using var app = builder.Build();
    app.MapOperationalEndpoints();
    app.MapServing();
    await app.RunAsync(cancellationToken);
});
