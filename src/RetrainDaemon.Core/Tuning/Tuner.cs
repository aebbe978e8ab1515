using System.Diagnostics;

namespace RetrainDaemon.Core.Tuning;

public enum SearchMethod
{
    Grid,
    Random,

    /// <summary>Tree-structured Parzen estimator (Bergstra et al., 2011): sample where good trials are dense and bad ones sparse.</summary>
    Bayesian,
}

/// <summary>One hyperparameter: a range (log-scaled for rates and decays) or a fixed list of values.</summary>
public sealed record Dimension(string Name, double Min, double Max, bool Log = false, bool Integer = false, IReadOnlyList<double>? Choices = null)
{
    public static Dimension Of(string name, params double[] choices) => new(name, choices.Min(), choices.Max(), Choices: choices);
}

/// <summary>A finished trial: its parameters, its score (lower is better; +∞ when it failed) and how long it took.</summary>
public sealed record Trial(int Number, IReadOnlyDictionary<string, double> Parameters, double Score, TimeSpan Duration, string? Failure);

public sealed record TuningResult(IReadOnlyList<Trial> Trials, Trial? Best, string StopReason);

/// <summary>
/// Hyperparameter search with budgets in trials and wall time. The objective trains briefly and
/// returns a holdout loss; a failed or non-finite trial is recorded and scored +∞, never chosen.
/// Every trial is handed to <c>record</c> as it finishes (the run ledger keeps them). Deterministic
/// for a seed, given a deterministic objective.
/// </summary>
public static class Tuner
{
    public const int GridPointsPerRange = 3;
    private const double GoodFraction = 0.25;
    private const int Candidates = 64;

    public static TuningResult Search(
        IReadOnlyList<Dimension> space,
        SearchMethod method,
        int maxTrials,
        TimeSpan maxTime,
        long seed,
        Func<IReadOnlyDictionary<string, double>, CancellationToken, double> objective,
        Action<Trial>? record = null,
        CancellationToken cancellationToken = default)
    {
        if (space.Count == 0)
        {
            throw new ArgumentException("the search space is empty", nameof(space));
        }

        foreach (var d in space)
        {
            if (d.Choices is null && (!(d.Min < d.Max) || (d.Log && d.Min <= 0)))
            {
                throw new ArgumentException($"dimension '{d.Name}': need Min < Max (and Min > 0 on a log scale), got [{d.Min}, {d.Max}]");
            }
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(maxTrials, 1);
        var random = new Random(unchecked((int)seed));
        var trials = new List<Trial>();
        var grid = method == SearchMethod.Grid ? GridPoints(space).GetEnumerator() : null;
        var watch = Stopwatch.StartNew();
        string stop = $"trial budget of {maxTrials} used";
        while (trials.Count < maxTrials)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                stop = "cancelled";
                break;
            }

            if (watch.Elapsed >= maxTime)
            {
                stop = $"time budget of {maxTime} used after {trials.Count} trials";
                break;
            }

            Dictionary<string, double> parameters;
            if (grid is not null)
            {
                if (!grid.MoveNext())
                {
                    stop = $"grid exhausted after {trials.Count} trials";
                    break;
                }

                parameters = grid.Current;
            }
            else if (method == SearchMethod.Bayesian && trials.Count >= Math.Max(4, maxTrials / 3))
            {
                parameters = ParzenProposal(space, trials, random);
            }
            else
            {
                parameters = space.ToDictionary(d => d.Name, d => Sample(d, random));
            }

            var started = watch.Elapsed;
            double score;
            string? failure = null;
            try
            {
                score = objective(parameters, cancellationToken);
                if (!double.IsFinite(score))
                {
                    failure = $"score {score}";
                    score = double.PositiveInfinity;
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                failure = ex.Message;
                score = double.PositiveInfinity;
            }

            var trial = new Trial(trials.Count + 1, parameters, score, watch.Elapsed - started, failure);
            trials.Add(trial);
            record?.Invoke(trial);
        }

        var best = trials.Where(t => t.Failure is null).OrderBy(t => t.Score).ThenBy(t => t.Number).FirstOrDefault();
        return new TuningResult(trials, best, stop);
    }

    private static double ToUnit(Dimension d, double value) => d.Log
        ? (Math.Log(value) - Math.Log(d.Min)) / (Math.Log(d.Max) - Math.Log(d.Min))
        : (value - d.Min) / (d.Max - d.Min);

    private static double FromUnit(Dimension d, double unit)
    {
        unit = Math.Clamp(unit, 0, 1);
        double value = d.Log ? Math.Exp(Math.Log(d.Min) + unit * (Math.Log(d.Max) - Math.Log(d.Min))) : d.Min + unit * (d.Max - d.Min);
        return d.Integer ? Math.Round(value) : value;
    }

    private static double Sample(Dimension d, Random random) =>
        d.Choices is { } choices ? choices[random.Next(choices.Count)] : FromUnit(d, random.NextDouble());

    private static IEnumerable<Dictionary<string, double>> GridPoints(IReadOnlyList<Dimension> space)
    {
        var axes = space.Select(d => d.Choices ?? Enumerable.Range(0, GridPointsPerRange).Select(i => FromUnit(d, i / (double)(GridPointsPerRange - 1))).Distinct().ToList()).ToList();
        var index = new int[space.Count];
        while (true)
        {
            yield return space.Select((d, i) => (d.Name, axes[i][index[i]])).ToDictionary(p => p.Name, p => p.Item2);
            int k = space.Count - 1;
            while (k >= 0 && ++index[k] == axes[k].Count)
            {
                index[k--] = 0;
            }

            if (k < 0)
            {
                yield break;
            }
        }
    }

    /// <summary>
    /// TPE: split finished trials into the best quarter and the rest, fit a Parzen (Gaussian kernel)
    /// density to each in the unit cube, draw candidates from the good density and keep the one with
    /// the highest good/bad density ratio. Choice dimensions use smoothed frequencies.
    /// </summary>
    private static Dictionary<string, double> ParzenProposal(IReadOnlyList<Dimension> space, List<Trial> trials, Random random)
    {
        var ranked = trials.OrderBy(t => t.Score).ToList();
        int goodCount = Math.Max(2, (int)Math.Ceiling(ranked.Count * GoodFraction));
        var good = ranked.Take(goodCount).ToList();
        var bad = ranked.Skip(goodCount).ToList();
        Dictionary<string, double>? best = null;
        double bestRatio = double.NegativeInfinity;
        for (int c = 0; c < Candidates; c++)
        {
            var candidate = new Dictionary<string, double>();
            double logRatio = 0;
            foreach (var d in space)
            {
                if (d.Choices is { } choices)
                {
                    double Frequency(List<Trial> set, double v) => (set.Count(t => t.Parameters[d.Name] == v) + 1.0) / (set.Count + choices.Count);
                    var weights = choices.Select(v => Frequency(good, v)).ToList();
                    double pick = random.NextDouble() * weights.Sum();
                    int i = 0;
                    while (i < choices.Count - 1 && (pick -= weights[i]) > 0)
                    {
                        i++;
                    }

                    candidate[d.Name] = choices[i];
                    logRatio += Math.Log(Frequency(good, choices[i])) - Math.Log(Frequency(bad, choices[i]));
                    continue;
                }

                var goodUnits = good.Select(t => ToUnit(d, t.Parameters[d.Name])).ToList();
                var badUnits = bad.Select(t => ToUnit(d, t.Parameters[d.Name])).ToList();
                double bandwidth = Bandwidth(goodUnits);
                double centre = goodUnits[random.Next(goodUnits.Count)];
                double unit = Math.Clamp(centre + bandwidth * Gaussian(random), 0, 1);
                candidate[d.Name] = FromUnit(d, unit);
                logRatio += Math.Log(Density(goodUnits, ToUnit(d, candidate[d.Name]), bandwidth)) - Math.Log(Density(badUnits, ToUnit(d, candidate[d.Name]), bandwidth));
            }

            if (logRatio > bestRatio)
            {
                bestRatio = logRatio;
                best = candidate;
            }
        }

        return best!;
    }

    /// <summary>Scott's rule on the unit interval, floored so that a tight cluster still explores a little.</summary>
    private static double Bandwidth(List<double> units)
    {
        if (units.Count < 2)
        {
            return 0.1;
        }

        double mean = units.Average();
        double std = Math.Sqrt(units.Sum(u => (u - mean) * (u - mean)) / (units.Count - 1));
        return Math.Clamp(1.06 * std * Math.Pow(units.Count, -0.2), 0.02, 0.3);
    }

    /// <summary>Parzen density with a uniform prior component, so an empty or distant set never gives 0.</summary>
    private static double Density(List<double> points, double x, double bandwidth)
    {
        double sum = 1.0; // the prior: uniform density 1 on [0, 1]
        foreach (var p in points)
        {
            double z = (x - p) / bandwidth;
            sum += Math.Exp(-0.5 * z * z) / (bandwidth * Math.Sqrt(2 * Math.PI));
        }

        return sum / (points.Count + 1);
    }

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
