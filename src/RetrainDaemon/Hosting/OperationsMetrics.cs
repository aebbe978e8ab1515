using Microsoft.Extensions.Options;
using Prometheus;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Loop;
using RetrainDaemon.Messaging.Ingestion;

namespace RetrainDaemon.Hosting;

/// <summary>
/// Series the alert rules (<c>monitoring/prometheus/rules.yml</c>) need and no pipeline stage owns:
/// free and total bytes of the file systems holding the store and the registry
/// (<c>retrain_disk_free_bytes{volume}</c>, <c>retrain_disk_size_bytes{volume}</c>, read every
/// <see cref="OperationsOptions.DiskCheckInterval"/>), whether this host is meant to run on a GPU
/// (<c>retrain_gpu_expected</c>), and the loop's training device. At start it also creates the zero
/// series of the ingest counters, so <c>rate()</c> sees them before the first message arrives.
/// </summary>
public sealed partial class OperationsMetrics(
    IOptions<OperationsOptions> operations,
    IOptions<StoreOptions> store,
    IOptions<RegistryOptions> registry,
    IServiceProvider services,
    ILogger<OperationsMetrics> logger) : BackgroundService
{
    public const string StoreVolume = "store";
    public const string RegistryVolume = "registry";

    private static readonly Gauge DiskFree = Metrics.CreateGauge("retrain_disk_free_bytes",
        "Bytes available to the daemon on the file system holding the store (volume=store) or the registry (volume=registry).",
        new GaugeConfiguration { LabelNames = ["volume"] });

    private static readonly Gauge DiskSize = Metrics.CreateGauge("retrain_disk_size_bytes",
        "Total bytes of the file system holding the store (volume=store) or the registry (volume=registry).",
        new GaugeConfiguration { LabelNames = ["volume"] });

    private static readonly Gauge GpuExpected = Metrics.CreateGauge("retrain_gpu_expected",
        "1 when Operations:ExpectGpu says this host should run on a GPU, else 0.");

    // The same series TorchRuntime.SelectDevice writes (prometheus-net returns the one instance for a name).
    private static readonly Gauge TrainingDevice = Metrics.CreateGauge("retrain_training_device",
        "1 for the device TorchSharp trains on (cpu or cuda).", new GaugeConfiguration { LabelNames = ["device"] });

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        GpuExpected.Set(operations.Value.ExpectGpu ? 1 : 0);
        if (services.GetService<IOptions<LoopOptions>>()?.Value.Enabled == true)
        {
            // The loop's runs (FineTuneRunner → ImageTrainingRun / TextTrainingRun) put no module on a CUDA
            // device: its training device is the CPU, whatever Training:AllowCuda says.
            TrainingDevice.WithLabels("cpu").Set(1);
        }

        var catalog = services.GetService<IOptions<ModelCatalogOptions>>()?.Value;
        if (catalog is not null)
        {
            services.GetService<IngestMetrics>()?.Initialize(catalog.Models.Keys);
        }

        using var timer = new PeriodicTimer(operations.Value.DiskCheckInterval);
        do
        {
            foreach (var (name, path) in new[] { (StoreVolume, ExistingDirectory(store.Value.Path, isFile: true)), (RegistryVolume, ExistingDirectory(registry.Value.Root, isFile: false)) })
            {
                try
                {
                    var drive = new DriveInfo(path);
                    DiskFree.WithLabels(name).Set(drive.AvailableFreeSpace);
                    DiskSize.WithLabels(name).Set(drive.TotalSize);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
                {
                    LogDiskUnreadable(logger, name, path, ex.Message);
                }
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    /// <summary>
    /// The directory whose file system holds <paramref name="path"/> (a file's folder, or the folder
    /// itself), walking up to the nearest one that exists: the store's folder may not exist yet.
    /// </summary>
    public static string ExistingDirectory(string path, bool isFile)
    {
        string full = Path.GetFullPath(path);
        string? directory = isFile ? Path.GetDirectoryName(full) : full;
        while (directory is not null && !Directory.Exists(directory))
        {
            directory = Path.GetDirectoryName(directory);
        }

        return directory ?? Path.GetPathRoot(full) ?? "/";
    }

    [LoggerMessage(EventId = 900, Level = LogLevel.Warning, Message = "Cannot read the free space of the {Volume} volume at {Path}: {Reason}")]
    private static partial void LogDiskUnreadable(ILogger logger, string volume, string path, string reason);
}
