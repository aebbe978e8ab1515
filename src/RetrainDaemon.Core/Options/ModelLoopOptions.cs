using System.Globalization;
using RetrainDaemon.Core.Policies;

namespace RetrainDaemon.Core.Options;

/// <summary>The model families the daemon trains.</summary>
public static class ModelFamilies
{
    public const string Dcgan = "dcgan";
    public const string Vae = "vae";
    public const string Gpt = "gpt";

    public static readonly IReadOnlyList<string> Image = [Dcgan, Vae];

    public static readonly IReadOnlyList<string> All = [Dcgan, Vae, Gpt];
}

/// <summary>
/// Hyperparameters of a model's fine-tunes. Null members take the family's defaults (the same ones
/// <c>retrain-daemon train</c> uses), so a configuration names only what it changes.
/// </summary>
public sealed class ModelTrainingOptions
{
    /// <summary>Optimizer steps of a run from scratch (no champion yet).</summary>
    public int Steps { get; set; } = 1000;

    /// <summary>Optimizer steps of a fine-tune from the champion; null = <see cref="Steps"/>.</summary>
    public int? FineTuneSteps { get; set; }

    public int? BatchSize { get; set; }

    public double? LearningRate { get; set; }

    /// <summary>sgd, adam or adamw; null = the family's (adam for images, adamw for gpt).</summary>
    public string? Optimizer { get; set; }

    public double? WeightDecay { get; set; }

    /// <summary>Warm-up + cosine schedule (gpt always uses it).</summary>
    public bool Cosine { get; set; }

    public double? GradientClip { get; set; }

    /// <summary>Early stopping: holdout evaluations without improvement (0 = off).</summary>
    public int Patience { get; set; }

    /// <summary>Image models: base channel width; gpt: embedding width.</summary>
    public int? Width { get; set; }

    /// <summary>Image models: condition on the class label.</summary>
    public bool Conditional { get; set; }

    /// <summary>Fine-tunes: older samples replayed per fresh one (against forgetting).</summary>
    public double Replay { get; set; } = 1.0;

    /// <summary>Parameters kept fixed when fine-tuning from the champion (prefixes, e.g. <c>blocks.0</c>).</summary>
    public List<string> Freeze { get; set; } = [];

    public long Seed { get; set; } = 1;

    /// <summary>Checkpoint interval in steps; null = five per run.</summary>
    public int? CheckpointEvery { get; set; }

    /// <summary>A run with fewer fresh training samples than this is skipped (with the reason), not failed.</summary>
    public int MinTrainingSamples { get; set; } = 256;

    /// <summary>A run with fewer holdout samples than this is skipped: the gate would have nothing to score.</summary>
    public int MinHoldoutSamples { get; set; } = 32;

    public int Layers { get; set; } = 2;

    public int Heads { get; set; } = 4;

    public int Context { get; set; } = 128;

    public double Dropout { get; set; } = 0.1;

    public int VocabularySize { get; set; } = 4096;

    public bool Untied { get; set; }

    /// <summary>A hyperparameter search before a model's first run (image families); off by default.</summary>
    public ModelTuningOptions Tune { get; set; } = new();

    public int StepsFor(bool fineTune) => fineTune ? FineTuneSteps ?? Steps : Steps;
}

/// <summary>
/// The tuner budget of a model (<c>Models:&lt;m&gt;:Training:Tune</c>): before a run from scratch, this many
/// short trainings searched over learning rate, batch size, weight decay (and β, width) and scored on the
/// holdout; the best parameters train the run. Fine-tunes keep the champion's hyperparameters.
/// </summary>
public sealed class ModelTuningOptions
{
    /// <summary>Trials (0 = no search).</summary>
    public int Trials { get; set; }

    /// <summary>grid, random or bayesian (TPE).</summary>
    public string Method { get; set; } = "bayesian";

    public int TrialSteps { get; set; } = 200;

    /// <summary>Wall-time budget of the whole search.</summary>
    public TimeSpan MaxTime { get; set; } = TimeSpan.FromMinutes(30);
}

/// <summary>Start-up checks of the loop members of one model (called by the catalog validator).</summary>
internal static class ModelLoopValidation
{
    public static void Collect(Failures f, string model, ModelOptions o, ModelCatalogOptions catalog)
    {
        var loop = o;
        bool image = string.Equals(o.Modality, "image", StringComparison.OrdinalIgnoreCase);
        bool text = string.Equals(o.Modality, "text", StringComparison.OrdinalIgnoreCase);
        string family = loop.Family.ToLowerInvariant();
        if (family.Length > 0 && !ModelFamilies.All.Contains(family))
        {
            f.Add($"{model}:Family", loop.Family, $"unknown family (known: {string.Join(", ", ModelFamilies.All)})");
        }
        else if (family.Length > 0 && ((image && family == ModelFamilies.Gpt) || (text && family != ModelFamilies.Gpt)))
        {
            f.Add($"{model}:Family", loop.Family, $"a {o.Modality} model cannot be a {family} (image: {string.Join(", ", ModelFamilies.Image)}; text: gpt)");
        }

        if (loop.Dataset.Length > 0 && loop.Dataset != model)
        {
            if (!catalog.Models.TryGetValue(loop.Dataset, out var dataset))
            {
                f.Add($"{model}:Dataset", loop.Dataset, $"unknown dataset: no model of that name is configured to receive samples (configured: {string.Join(", ", catalog.Models.Keys)})");
            }
            else if (!string.Equals(dataset.Modality, o.Modality, StringComparison.OrdinalIgnoreCase)
                || (image && (dataset.Image.Width != o.Image.Width || dataset.Image.Height != o.Image.Height || dataset.Image.Channels != o.Image.Channels))
                || (text && dataset.Text.Conditional != o.Text.Conditional))
            {
                f.Add($"{model}:Dataset", loop.Dataset, "the dataset's modality, image shape or conditional flag differs from this model's");
            }
        }

        if (image && (o.Image.Width != 28 || o.Image.Height != 28 || o.Image.Channels != 1) && loop.Retrain)
        {
            f.Add($"{model}:Image", $"{o.Image.Width}x{o.Image.Height}x{o.Image.Channels}", "the image families train on 28x28 grayscale; set Enabled false to only ingest other shapes");
        }

        var t = loop.Training;
        f.Range($"{model}:Training:Steps", t.Steps, 1, 10_000_000);
        if (t.FineTuneSteps is int fineTune)
        {
            f.Range($"{model}:Training:FineTuneSteps", fineTune, 1, 10_000_000);
        }

        if (t.BatchSize is int batch)
        {
            f.Range($"{model}:Training:BatchSize", batch, 1, 65_536);
        }

        if (t.LearningRate is double lr && !(lr > 0 && lr < 10))
        {
            f.Add($"{model}:Training:LearningRate", lr, "must be in (0, 10)");
        }

        if (t.Optimizer is { } optimizer && optimizer.ToLowerInvariant() is not ("sgd" or "adam" or "adamw"))
        {
            f.Add($"{model}:Training:Optimizer", optimizer, "must be sgd, adam or adamw");
        }

        if (t.WeightDecay is double wd && !(wd >= 0 && wd < 1))
        {
            f.Add($"{model}:Training:WeightDecay", wd, "must be in [0, 1)");
        }

        if (t.GradientClip is double clip && !(clip >= 0))
        {
            f.Add($"{model}:Training:GradientClip", clip, "must be 0 (off) or positive");
        }

        if (t.Width is int width)
        {
            f.Range($"{model}:Training:Width", width, 4, 4096);
        }

        if (!(t.Replay >= 0 && t.Replay <= 100))
        {
            f.Add($"{model}:Training:Replay", t.Replay, "must be in [0, 100]");
        }

        f.Range($"{model}:Training:MinTrainingSamples", t.MinTrainingSamples, 1, int.MaxValue);
        f.Range($"{model}:Training:MinHoldoutSamples", t.MinHoldoutSamples, 2, int.MaxValue);
        if (text)
        {
            f.Range($"{model}:Training:Layers", t.Layers, 1, 64);
            f.Range($"{model}:Training:Heads", t.Heads, 1, 64);
            f.Range($"{model}:Training:Context", t.Context, 8, 8192);
            f.Range($"{model}:Training:VocabularySize", t.VocabularySize, 300, 1_000_000);
            if (!(t.Dropout >= 0 && t.Dropout < 1))
            {
                f.Add($"{model}:Training:Dropout", t.Dropout, "must be in [0, 1)");
            }

            if (t.Width is int w && t.Heads > 0 && w % t.Heads != 0)
            {
                f.Add($"{model}:Training:Width", w, $"must be a multiple of Heads ({t.Heads.ToString(CultureInfo.InvariantCulture)})");
            }
        }

        if (t.Tune.Trials != 0)
        {
            f.Range($"{model}:Training:Tune:Trials", t.Tune.Trials, 0, 1000);
            f.Range($"{model}:Training:Tune:TrialSteps", t.Tune.TrialSteps, 1, 1_000_000);
            f.Positive($"{model}:Training:Tune:MaxTime", t.Tune.MaxTime);
            if (t.Tune.Method.ToLowerInvariant() is not ("grid" or "random" or "bayesian"))
            {
                f.Add($"{model}:Training:Tune:Method", t.Tune.Method, "must be grid, random or bayesian");
            }

            if (text)
            {
                f.Add($"{model}:Training:Tune:Trials", t.Tune.Trials, "the tuner searches image families only; set 0 for gpt models");
            }
        }

        Forward(f, new TriggerOptionsValidator($"{model}:Triggers").Validate(null, loop.Triggers));
        Forward(f, new RollbackOptionsValidator($"{model}:Rollback").Validate(null, loop.Rollback));
    }

    private static void Forward(Failures f, Microsoft.Extensions.Options.ValidateOptionsResult result)
    {
        if (result.Failed)
        {
            foreach (var failure in result.Failures ?? [])
            {
                f.AddRaw(failure);
            }
        }
    }
}
