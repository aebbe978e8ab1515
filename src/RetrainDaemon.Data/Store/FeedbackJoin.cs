using System.Globalization;
using RetrainDaemon.Core.Contracts;

namespace RetrainDaemon.Data.Store;

/// <summary>
/// How feedback is joined to the generation it cites, shared by both stores so they settle every item
/// the same way: which feedback is refused (and with which words), which version spellings match, and
/// which corrections become training samples.
/// </summary>
public static class FeedbackJoin
{
    /// <summary>The event id of the sample a correction becomes: derived from the feedback's id, so a redelivery makes no second sample.</summary>
    public static string CorrectionSampleId(string feedbackEventId) => "correction:" + feedbackEventId;

    /// <summary>
    /// Why <paramref name="feedback"/> cannot be stored against <paramref name="generation"/> (null when it was
    /// never recorded): a <see cref="RejectReasons"/> value and a detail naming the ids and versions; null when it can.
    /// </summary>
    internal static (string Reason, string Detail)? Refusal(FeedbackRecord feedback, GenerationRecord? generation)
    {
        if (generation is null)
        {
            return (RejectReasons.UnknownGeneration,
                $"event {feedback.EventId}: generation '{feedback.GenerationId}' was never handed out by the serving API (no record of it); "
                + "feedback must cite the generation_id of a generate response");
        }

        if (!string.Equals(generation.Model, feedback.Model, StringComparison.Ordinal) || !VersionMatches(feedback.Version, generation.Version))
        {
            return (RejectReasons.GenerationMismatch, string.Create(CultureInfo.InvariantCulture,
                $"event {feedback.EventId}: generation '{feedback.GenerationId}' was made by model '{generation.Model}' version {generation.Version}, but the feedback names model '{feedback.Model}' version '{feedback.Version}'"));
        }

        return null;
    }

    /// <summary>"3", "03" and 3 (already text) all name version 3; anything else names no recorded version.</summary>
    internal static bool VersionMatches(string feedbackVersion, int generationVersion) =>
        int.TryParse(feedbackVersion, NumberStyles.None, CultureInfo.InvariantCulture, out int version) && version == generationVersion;

    /// <summary>
    /// The training sample a correction becomes, or null. A correction of the generation's own modality becomes
    /// one: a text correction keeps the generation's input as its source (a conditional model's source ⇒ corrected
    /// target; for an lm the prompt, which lm snapshots ignore); an image correction is labelled with the
    /// generation's slice. A text correction of an image generation (a caption, say) stays on the feedback row
    /// only: no image model can train on it.
    /// </summary>
    internal static SampleRecord? CorrectionSample(FeedbackRecord feedback, GenerationRecord generation)
    {
        SampleRecord sample;
        string id = CorrectionSampleId(feedback.EventId);
        if (feedback.CorrectionText is { } text && generation.Modality == GenerationModalities.Text)
        {
            string? source = string.IsNullOrEmpty(generation.Input) ? null : generation.Input;
            sample = new SampleRecord(id, feedback.Model, feedback.Source, feedback.EventTime, Modality.Text, Splits.Train, null, 0, 0, 0, null, text, source);
        }
        else if (feedback.CorrectionImage is { } pixels && generation.Modality == GenerationModalities.Image)
        {
            var (width, height, channels) = feedback.CorrectionShape;
            if (width <= 0 || height <= 0 || channels <= 0 || (long)width * height * channels != pixels.Length)
            {
                throw new ArgumentException(
                    $"feedback {feedback.EventId}: its correction image has {pixels.Length} bytes but CorrectionShape says {width}x{height}x{channels}; "
                    + "the decoder must set the canonical shape of the image it made", nameof(feedback));
            }

            sample = new SampleRecord(id, feedback.Model, feedback.Source, feedback.EventTime, Modality.Image, Splits.Train, generation.Slice, width, height, channels, pixels, null, null);
        }
        else
        {
            return null;
        }

        return sample with { Origin = SampleOrigins.Correction, CorrectionOf = feedback.GenerationId };
    }

    /// <summary>Refuses a generation whose modality the store does not know, naming it.</summary>
    internal static void CheckModalities(IReadOnlyList<GenerationRecord> generations)
    {
        foreach (var g in generations)
        {
            if (g.Modality is not (GenerationModalities.Image or GenerationModalities.Text))
            {
                throw new ArgumentException($"generation '{g.GenerationId}' has modality '{g.Modality}'; expected '{GenerationModalities.Image}' or '{GenerationModalities.Text}'", nameof(generations));
            }
        }
    }
}
