namespace RetrainDaemon.Core.Contracts;

/// <summary>
/// One generation the serving API handed out an id for, so that feedback citing that id can be joined
/// to what was generated: which model and version, which slice (the image class it was generated for)
/// and from which input (a text prompt or source). Feedback for an id that was never recorded is
/// dead-lettered (<see cref="RejectReasons.UnknownGeneration"/>).
/// </summary>
/// <param name="GenerationId">The id in the response (<c>&lt;model&gt;/&lt;version&gt;/&lt;uuid&gt;</c>); at most 200 characters, as the feedback schema allows.</param>
/// <param name="Modality"><see cref="GenerationModalities.Image"/> or <see cref="GenerationModalities.Text"/>.</param>
/// <param name="Slice">Images: the class label the sample was generated with (as text, like sample labels), else null. Text: null.</param>
/// <param name="Input">Text: the prompt (lm) or the source (conditional); images: null.</param>
public sealed record GenerationRecord(
    string GenerationId,
    string Model,
    int Version,
    DateTimeOffset CreatedAt,
    string Modality,
    string? Slice,
    string? Input);

/// <summary>The values of <see cref="GenerationRecord.Modality"/>, the same words the store uses for samples.</summary>
public static class GenerationModalities
{
    public const string Image = "image";
    public const string Text = "text";
}

/// <summary>
/// Where serving reports every generation it answered. <see cref="Record"/> must never block or throw
/// into a request: implementations buffer and write in the background, and may drop (counted) when
/// their buffer is full — a dropped generation only means its feedback will be refused as unknown.
/// </summary>
public interface IGenerationJournal
{
    /// <summary>Queues <paramref name="record"/> for writing; returns at once.</summary>
    void Record(GenerationRecord record);

    /// <summary>
    /// Writes everything queued before the call. Ingestion calls it before it refuses feedback as citing an
    /// unknown generation, since a client may publish feedback faster than the buffer is written.
    /// </summary>
    Task FlushAsync(CancellationToken cancellationToken);
}
