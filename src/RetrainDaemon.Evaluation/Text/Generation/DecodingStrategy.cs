using System.Globalization;
using RetrainDaemon.Core.Text;

namespace RetrainDaemon.Evaluation.Text.Generation;

/// <summary>How <see cref="GptOnnxModel.Generate"/> picks tokens.</summary>
public enum DecodingKind
{
    /// <summary>The argmax at every step (the lowest id among equal maxima).</summary>
    Greedy,

    /// <summary>Beam search of width <see cref="DecodingStrategy.BeamWidth"/> (see <see cref="DecodingStrategy"/> for the convention).</summary>
    Beam,

    /// <summary>Seeded sampling through <see cref="TokenSampler"/>, one stream per prompt.</summary>
    Sample,
}

/// <summary>
/// A decoding strategy and its reproducibility signature.
/// <para><b>Beam search convention</b> (<see cref="DecodingKind.Beam"/>, width k): each step expands every
/// live beam by its 2k most likely tokens and ranks all candidates by cumulative log-probability
/// (natural log, double, from the untempered softmax), ties to the earlier beam and then the lower token id.
/// An end-of-sequence candidate finishes a hypothesis only if it ranks among the first k (as Hugging Face's
/// <c>BeamSearchScorer</c> does), so width 1 is exactly greedy; the first k other candidates become the next
/// beams. A finished hypothesis scores Σ log p / L, L = its generated tokens with the EOS (length penalty
/// α = 1, i.e. the mean log-probability per token). The search of a prompt ends as soon as k hypotheses have
/// finished (<c>early_stopping=True</c>) or at the token / context limit, where the live beams join the
/// finished ones, scored the same way without an EOS. The answer is the best score; ties go to the
/// hypothesis that finished first.</para>
/// <para><b>Sampling convention</b>: prompt i of a <see cref="GptOnnxModel.Generate"/> call draws from
/// <c>new TokenSampler(Sampling, Seed + i)</c>, so a sample does not depend on batch size or order.</para>
/// </summary>
public sealed record DecodingStrategy
{
    private DecodingStrategy(DecodingKind kind, int beamWidth, SamplingOptions? sampling, ulong seed)
    {
        Kind = kind;
        BeamWidth = beamWidth;
        Sampling = sampling;
        Seed = seed;
    }

    public DecodingKind Kind { get; }

    /// <summary>Beams per prompt (1 unless <see cref="DecodingKind.Beam"/>).</summary>
    public int BeamWidth { get; }

    /// <summary>The sampling policy (only for <see cref="DecodingKind.Sample"/>).</summary>
    public SamplingOptions? Sampling { get; }

    /// <summary>The base seed of the per-prompt samplers (only for <see cref="DecodingKind.Sample"/>).</summary>
    public ulong Seed { get; }

    public static DecodingStrategy Greedy { get; } = new(DecodingKind.Greedy, 1, null, 0);

    /// <summary>Beam search of <paramref name="width"/> beams (1..64).</summary>
    public static DecodingStrategy Beam(int width)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(width, 64);
        return new(DecodingKind.Beam, width, null, 0);
    }

    /// <summary>Seeded sampling; the options are checked as <see cref="TokenSampler"/> checks them.</summary>
    public static DecodingStrategy Sample(SamplingOptions options, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = SamplingOptions.Validate(options, int.MaxValue);
        if (problems.Count > 0)
        {
            throw new ArgumentException("invalid sampling options: " + string.Join("; ", problems), nameof(options));
        }

        return new(DecodingKind.Sample, 1, options, seed);
    }

    /// <summary>Parses <c>greedy</c> or <c>beam:k</c> (the configuration form of deterministic decoding).</summary>
    public static bool TryParse(string? text, out DecodingStrategy strategy, out string? problem)
    {
        strategy = Greedy;
        problem = null;
        string value = text?.Trim() ?? "";
        if (string.Equals(value, "greedy", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        const string prefix = "beam:";
        if (value.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)
            && int.TryParse(value.AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int width)
            && width is >= 1 and <= 64)
        {
            strategy = Beam(width);
            return true;
        }

        problem = "expected 'greedy' or 'beam:k' with k in 1..64 (e.g. beam:4)";
        return false;
    }

    /// <summary>
    /// What decoded the outputs, for metric signatures: <c>greedy</c>, <c>beam:4,lp:1,stop:k-finished</c>,
    /// or <c>sample:t=1,top_k=0,top_p=1,seed=42+i</c>.
    /// </summary>
    public string Signature => Kind switch
    {
        DecodingKind.Greedy => "greedy",
        DecodingKind.Beam => string.Create(CultureInfo.InvariantCulture, $"beam:{BeamWidth},lp:1,stop:k-finished"),
        _ => string.Create(CultureInfo.InvariantCulture, $"sample:t={Sampling!.Temperature:R},top_k={Sampling.TopK},top_p={Sampling.TopP:R},seed={Seed}+i"),
    };

    public override string ToString() => Signature;
}
