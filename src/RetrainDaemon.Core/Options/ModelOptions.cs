using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Policies;

namespace RetrainDaemon.Core.Options;

/// <summary>The models the daemon keeps (section <c>Models</c>, keyed by model name = CloudEvent <c>subject</c>).</summary>
public sealed class ModelCatalogOptions
{
    public const string Section = "Models";

    public Dictionary<string, ModelOptions> Models { get; set; } = new(StringComparer.Ordinal);

    public bool TryGet(string name, out ModelOptions model) => Models.TryGetValue(name, out model!);
}

/// <summary>
/// One model: its data contract, its gate, and how the loop keeps it fresh (family, dataset,
/// hyperparameters, schedules, triggers, rollback bounds).
/// </summary>
public sealed class ModelOptions
{
    /// <summary><c>image</c> or <c>text</c>. A string so a typo is a validation failure, not a binder crash.</summary>
    public string Modality { get; set; } = "";

    public string Description { get; set; } = "";

    /// <summary>Share of samples assigned to holdout by <see cref="Policies.SplitPolicy"/>.</summary>
    public double HoldoutFraction { get; set; } = 0.1;

    public ImageShapeOptions Image { get; set; } = new();

    public TextLimitOptions Text { get; set; } = new();

    /// <summary>The promotion gate; empty (no checks) is valid but admits no candidate.</summary>
    public Gate.GateOptions Gate { get; set; } = new();

    /// <summary>Whether the loop trains this model at all (its data is ingested either way).</summary>
    public bool Retrain { get; set; } = true;

    /// <summary>dcgan or vae for image models, gpt for text models; empty = dcgan (image) or gpt (text).</summary>
    public string Family { get; set; } = "";

    /// <summary>
    /// The CloudEvent <c>subject</c> whose samples this model trains on; empty = the model's own name. Two
    /// models may learn from one dataset (a DCGAN and a VAE on fashion-mnist) and are gated and served apart.
    /// </summary>
    public string Dataset { get; set; } = "";

    public ModelTrainingOptions Training { get; set; } = new();

    /// <summary>Quartz cron expression (seconds first: <c>0 0 3 * * ?</c>) for scheduled fine-tunes; empty = none.</summary>
    public string Schedule { get; set; } = "";

    /// <summary>Quartz cron expression for scheduled error analysis; empty = none.</summary>
    public string AnalysisSchedule { get; set; } = "";

    public TriggerOptions Triggers { get; set; } = new();

    public RollbackOptions Rollback { get; set; } = new();

    public string ResolvedFamily =>
        Family.Length > 0 ? Family.ToLowerInvariant() : ParsedModality == Contracts.Modality.Text ? ModelFamilies.Gpt : ModelFamilies.Dcgan;

    public string ResolvedDataset(string model) => Dataset.Length > 0 ? Dataset : model;

    public Modality ParsedModality => string.Equals(Modality, "image", StringComparison.OrdinalIgnoreCase)
        ? Contracts.Modality.Image
        : Contracts.Modality.Text;
}

/// <summary>The canonical image shape of a model.</summary>
public sealed class ImageShapeOptions
{
    public int Width { get; set; } = 28;

    public int Height { get; set; } = 28;

    /// <summary>1 (grayscale) or 3 (RGB).</summary>
    public int Channels { get; set; } = 1;

    /// <summary><c>reject</c>: a wrong size or channel count is dead-lettered; <c>resize</c>: converted to the model's shape.</summary>
    public string OnMismatch { get; set; } = "reject";

    public bool ResizeAllowed => string.Equals(OnMismatch, "resize", StringComparison.OrdinalIgnoreCase);
}

/// <summary>Text limits of a model, in characters after normalization.</summary>
public sealed class TextLimitOptions
{
    public int MaxChars { get; set; } = 2048;

    /// <summary>Conditional models (source ⇒ target) require <c>source_text</c>.</summary>
    public bool Conditional { get; set; }

    public int MaxSourceChars { get; set; } = 2048;
}
