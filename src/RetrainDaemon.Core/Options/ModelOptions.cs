using RetrainDaemon.Core.Contracts;

namespace RetrainDaemon.Core.Options;

/// <summary>The models the daemon keeps (section <c>Models</c>, keyed by model name = CloudEvent <c>subject</c>).</summary>
public sealed class ModelCatalogOptions
{
    public const string Section = "Models";

    public Dictionary<string, ModelOptions> Models { get; set; } = new(StringComparer.Ordinal);

    public bool TryGet(string name, out ModelOptions model) => Models.TryGetValue(name, out model!);
}

/// <summary>One model's data contract. Later stages add family, schedule and gate.</summary>
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
