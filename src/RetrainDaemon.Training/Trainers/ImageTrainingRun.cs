using RetrainDaemon.Training.Checkpoints;
using RetrainDaemon.Training.Data;
using RetrainDaemon.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace RetrainDaemon.Training.Trainers;

/// <summary>What to train: the family, where to write, how, and optionally the checkpoint to start from.</summary>
/// <remarks><see cref="Width"/> and <see cref="Dropout"/> override the family's default architecture (the tuner searches them).</remarks>
public sealed record ImageRunRequest(string Family, string OutputDirectory, TrainingOptions Options, bool Conditional = false, string? FromCheckpoint = null, InitScheme Init = InitScheme.Normal002, int Classes = 10, int KeepCheckpoints = 3, int? Width = null, double? Dropout = null)
{
    /// <summary>What a checkpoint must record so that export (or a resume) rebuilds the same architecture.</summary>
    public IReadOnlyDictionary<string, string> Architecture(int classes) => new Dictionary<string, string>
    {
        ["family"] = Family,
        ["classes"] = classes.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["width"] = (Width ?? DefaultWidth(Family)).ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["dropout"] = (Dropout ?? new ClassifierConfig().Dropout).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    public static int DefaultWidth(string family) => family switch
    {
        "dcgan" => new DcganConfig().Width,
        "vae" => new VaeConfig().Width,
        _ => new ClassifierConfig().Width,
    };
}

/// <summary>The outcome of a run and where its files are.</summary>
public sealed record ImageRunResult(TrainingResult Training, string CheckpointDirectory, Checkpoint? LastCheckpoint, string SamplesPng, string LossPng);

/// <summary>
/// One training run of an image family: builds the modules, initializes them or warm-starts them from
/// a checkpoint (transfer learning, with frozen layers), trains, checkpoints, and writes a sample grid
/// and the loss curves next to the checkpoints. A run that ends on a non-finite loss still writes its
/// artifacts, but its result says so, and nothing downstream may promote it.
/// </summary>
public static class ImageTrainingRun
{
    public static readonly IReadOnlyList<string> Families = ["dcgan", "vae", "classifier"];

    /// <summary>Runs (or resumes, when its checkpoints directory already holds a verifying checkpoint) one training run.</summary>
    public static ImageRunResult Run(ImageRunRequest request, ImageDataset train, ImageDataset holdout, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        manual_seed(request.Options.Seed);
        int classes = request.Conditional ? request.Classes : 0;
        var (step, sample) = request.Family switch
        {
            "dcgan" => Dcgan(request, classes),
            "vae" => Vae(request, classes),
            "classifier" => Classifier(request),
            _ => throw new ArgumentException($"unknown model family '{request.Family}' (expected {string.Join(", ", Families)})"),
        };

        var store = new CheckpointStore(Path.Combine(request.OutputDirectory, "checkpoints"), request.KeepCheckpoints);
        store.RemoveOrphans();

        // A run directory that already holds a verifying checkpoint was interrupted (crash, SIGKILL,
        // shutdown): continue it exactly — weights, optimizer moments, RNG, step — instead of starting over.
        Checkpoint? last = store.LoadLatest();
        long startStep = 0;
        if (last is not null)
        {
            startStep = TrainingCheckpoint.Restore(last, step.Modules, step.Optimizers).Step;
        }

        var architecture = request.Architecture(classes);
        var result = TrainingLoop.Run(step, train, holdout, request.Options, startStep: startStep, progress: progress, cancellationToken: cancellationToken,
            checkpoint: s => last = TrainingCheckpoint.Save(store, step.Modules, step.Optimizers, s, s * request.Options.BatchSize, 0, LearningRateSchedule.At(request.Options, s), architecture));

        string samples = Path.Combine(request.OutputDirectory, "samples.png");
        string loss = Path.Combine(request.OutputDirectory, "loss.png");
        File.WriteAllBytes(samples, TrainingArtifacts.SampleGrid(sample(), 28));
        File.WriteAllBytes(loss, TrainingArtifacts.LossCurve(result.Losses));
        File.WriteAllText(Path.Combine(request.OutputDirectory, "loss.csv"), TrainingArtifacts.LossCsv(result.Losses));
        return new ImageRunResult(result, store.Root, last, samples, loss);
    }

    private static void WarmStart(ImageRunRequest request, IReadOnlyDictionary<string, nn.Module> modules)
    {
        if (request.FromCheckpoint is null)
        {
            foreach (var module in modules.Values)
            {
                Initialization.Apply(module, request.Init);
            }

            return;
        }

        var checkpoint = new CheckpointStore(request.FromCheckpoint).LoadLatest()
            ?? throw new FileNotFoundException($"no verifying checkpoint under '{request.FromCheckpoint}'");
        TrainingCheckpoint.Restore(checkpoint, modules, optimizers: null);
        foreach (var module in modules.Values)
        {
            var names = request.Options.Freeze.Where(f => module.named_parameters().Any(p => p.name == f || p.name.StartsWith(f + ".", StringComparison.Ordinal))).ToList();
            Trainers.Freezing.Apply(module, names);
        }

        var all = modules.Values.SelectMany(m => m.named_parameters().Select(p => p.name)).ToList();
        foreach (var name in request.Options.Freeze)
        {
            if (!all.Any(p => p == name || p.StartsWith(name + ".", StringComparison.Ordinal)))
            {
                throw new ArgumentException($"cannot freeze '{name}': no such layer in {request.Family} (layers: {string.Join(", ", all.Select(p => p.Split('.')[0]).Distinct())})");
            }
        }
    }

    private static (ITrainingStep, Func<IReadOnlyList<byte[]>>) Dcgan(ImageRunRequest request, int classes)
    {
        var config = new DcganConfig(Classes: classes, Width: request.Width ?? new DcganConfig().Width);
        var generator = new DcganGenerator(config);
        var discriminator = new DcganDiscriminator(config);
        WarmStart(request, new Dictionary<string, nn.Module> { ["generator"] = generator, ["discriminator"] = discriminator });
        var step = new DcganStep(generator, discriminator, request.Options, classes > 0);
        return (step, () =>
        {
            generator.eval();
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var labels = classes > 0 ? arange(64L) % classes : null;
            return ToPixels(generator.forward(randn(64, config.Latent), labels), symmetric: true);
        });
    }

    private static (ITrainingStep, Func<IReadOnlyList<byte[]>>) Vae(ImageRunRequest request, int classes)
    {
        var config = new VaeConfig(Classes: classes, Width: request.Width ?? new VaeConfig().Width);
        var encoder = new VaeEncoder(config);
        var decoder = new VaeDecoder(config);
        WarmStart(request, new Dictionary<string, nn.Module> { ["encoder"] = encoder, ["decoder"] = decoder });
        var step = new VaeStep(encoder, decoder, request.Options, classes > 0);
        return (step, () =>
        {
            decoder.eval();
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var labels = classes > 0 ? arange(64L) % classes : null;
            return ToPixels(sigmoid(decoder.forward(randn(64, config.Latent), labels)), symmetric: false);
        });
    }

    private static (ITrainingStep, Func<IReadOnlyList<byte[]>>) Classifier(ImageRunRequest request)
    {
        var defaults = new ClassifierConfig();
        var model = new FashionClassifier(new ClassifierConfig(Width: request.Width ?? defaults.Width, Dropout: request.Dropout ?? defaults.Dropout));
        WarmStart(request, new Dictionary<string, nn.Module> { ["classifier"] = model });
        return (new ClassifierStep(model, request.Options), () => []);
    }

    /// <summary>(B, 1, s, s) floats → u8 images.</summary>
    private static List<byte[]> ToPixels(Tensor images, bool symmetric)
    {
        var unit = symmetric ? (images + 1) / 2 : images;
        var bytes = (unit.clamp(0, 1) * 255).round().to_type(ScalarType.Byte);
        long count = images.shape[0], size = images.shape[2] * images.shape[3];
        var flat = bytes.data<byte>().ToArray();
        return Enumerable.Range(0, (int)count).Select(i => flat.AsSpan((int)(i * size), (int)size).ToArray()).ToList();
    }
}
