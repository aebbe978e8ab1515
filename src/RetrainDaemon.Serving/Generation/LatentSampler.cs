using RetrainDaemon.Core.Text;

namespace RetrainDaemon.Serving.Generation;

/// <summary>
/// Deterministic generator inputs from a seed: the same seed, latent size, count, truncation and
/// class give the same latents and labels in every run and release (Core's <see cref="Xoshiro256StarStar"/>,
/// the generator the token sampler uses too, not <see cref="Random"/>, whose algorithm is not a contract; the float latents hide
/// the last-bit differences <see cref="Math.Log(double)"/> may have between platforms). A unit test
/// pins the first values.
/// </summary>
/// <remarks>
/// The stream is consumed sample by sample: the sample's <c>L</c> latent components in order, then,
/// for a class-conditioned generator asked for no particular class, one class drawn uniformly from
/// <c>[0, classes)</c>. Components are standard normal (Box–Muller). With a truncation ψ ∈ (0, 1]
/// each component is redrawn until |z| ≤ 2ψ — a normal truncated at 2ψ standard deviations (the
/// "truncation trick": smaller ψ gives more typical, less varied samples; ψ = 1 only drops the
/// 4.6% of draws beyond ±2σ).
/// </remarks>
internal sealed class LatentSampler
{
    /// <summary>Largest accepted seed: 2^53 − 1, so that JavaScript clients can echo it exactly.</summary>
    public const long MaxSeed = (1L << 53) - 1;

    private readonly Xoshiro256StarStar random;
    private double? spare;

    public LatentSampler(long seed) => random = new Xoshiro256StarStar(unchecked((ulong)seed));

    /// <summary>A fresh random seed in <c>[0, <see cref="MaxSeed"/>]</c> for requests that gave none.</summary>
    public static long NewSeed() => Random.Shared.NextInt64(0, MaxSeed + 1);

    /// <summary>
    /// Fills <paramref name="latents"/> (<c>count × latentSize</c>) and, when <paramref name="labels"/>
    /// is given, one label per sample: <paramref name="fixedClass"/> if set, else drawn from <c>[0, classes)</c>.
    /// </summary>
    public static void Sample(long seed, int count, int latentSize, double? truncation, int? fixedClass, int? classes, Span<float> latents, Span<long> labels)
    {
        if (truncation is { } psi && !(psi > 0 && psi <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(truncation), psi, "truncation must be in (0, 1]");
        }

        if (latents.Length != count * latentSize)
        {
            throw new ArgumentException($"{count} samples of {latentSize} need {count * latentSize} latents, got {latents.Length}", nameof(latents));
        }

        var sampler = new LatentSampler(seed);
        double bound = truncation is { } t ? 2 * t : double.PositiveInfinity;
        for (int i = 0; i < count; i++)
        {
            var z = latents.Slice(i * latentSize, latentSize);
            for (int j = 0; j < z.Length; j++)
            {
                double v;
                do
                {
                    v = sampler.NextGaussian();
                }
                while (Math.Abs(v) > bound);
                z[j] = (float)v;
            }

            if (!labels.IsEmpty)
            {
                labels[i] = fixedClass ?? (classes is > 0 ? sampler.NextInt(classes.Value) : 0);
            }
        }
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => random.NextDouble();

    public int NextInt(int exclusiveMax) => (int)Math.Min(exclusiveMax - 1, (long)(NextDouble() * exclusiveMax));

    /// <summary>Standard normal by Box–Muller; both values of a pair are used.</summary>
    public double NextGaussian()
    {
        if (spare is { } cached)
        {
            spare = null;
            return cached;
        }

        double u1 = 1.0 - NextDouble(); // (0, 1]: the logarithm stays finite
        double u2 = NextDouble();
        double r = Math.Sqrt(-2.0 * Math.Log(u1));
        spare = r * Math.Sin(2 * Math.PI * u2);
        return r * Math.Cos(2 * Math.PI * u2);
    }
}
