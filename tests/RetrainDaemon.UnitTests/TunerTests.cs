using RetrainDaemon.Core.Tuning;

namespace RetrainDaemon.UnitTests;

public class TunerTests
{
    private static readonly Dimension[] Space =
    [
        new("lr", 1e-5, 1e-1, Log: true),
        new("beta", 0, 4),
    ];

    // A bowl with its minimum at lr = 1e-3, beta = 1 (in the log space the tuner searches).
    private static double Bowl(IReadOnlyDictionary<string, double> p, CancellationToken _) =>
        Math.Pow(Math.Log10(p["lr"]) + 3, 2) + Math.Pow(p["beta"] - 1, 2);

    [Fact]
    public void Grid_EnumeratesTheCartesianProduct_ThenStops()
    {
        var result = Tuner.Search([Dimension.Of("batch", 32, 64), new("lr", 1e-4, 1e-2, Log: true)], SearchMethod.Grid, 100, TimeSpan.FromMinutes(1), 1, (p, _) => p["batch"] * p["lr"]);
        Assert.Equal(6, result.Trials.Count);
        Assert.Equal("grid exhausted after 6 trials", result.StopReason);
        Assert.Equal([1e-4, 1e-3, 1e-2], result.Trials.Take(3).Select(t => Math.Round(t.Parameters["lr"], 8)).ToArray());
        Assert.Equal(32 * 1e-4, result.Best!.Score, 12);
    }

    [Fact]
    public void Random_StaysInBounds_AndIsLogUniformWhereAsked()
    {
        var result = Tuner.Search(Space, SearchMethod.Random, 400, TimeSpan.FromMinutes(1), 2, Bowl);
        Assert.All(result.Trials, t => Assert.InRange(t.Parameters["lr"], 1e-5, 1e-1));
        Assert.All(result.Trials, t => Assert.InRange(t.Parameters["beta"], 0, 4));
        // Log-uniform: about a quarter of the draws per decade of the four.
        int lowDecade = result.Trials.Count(t => t.Parameters["lr"] < 1e-4);
        Assert.InRange(lowDecade, 60, 140);
    }

    [Fact]
    public void Bayesian_BeatsRandom_OnTheSameBudget()
    {
        var bayes = new List<double>();
        var random = new List<double>();
        for (int seed = 1; seed <= 15; seed++)
        {
            bayes.Add(Tuner.Search(Space, SearchMethod.Bayesian, 30, TimeSpan.FromMinutes(1), seed, Bowl).Best!.Score);
            random.Add(Tuner.Search(Space, SearchMethod.Random, 30, TimeSpan.FromMinutes(1), seed, Bowl).Best!.Score);
        }

        double Median(List<double> v) => v.Order().ElementAt(v.Count / 2);
        Assert.True(Median(bayes) < Median(random) * 0.7, $"median best: TPE {Median(bayes):0.0000}, random {Median(random):0.0000}");
        Console.WriteLine($"median best over 15 seeds, 30 trials: TPE {Median(bayes):0.0000}, random {Median(random):0.0000}");
    }

    [Fact]
    public void FailedTrials_AreRecorded_AndNeverChosen()
    {
        var recorded = new List<Trial>();
        var result = Tuner.Search(Space, SearchMethod.Random, 20, TimeSpan.FromMinutes(1), 3,
            (p, _) => p["beta"] > 2 ? double.NaN : p["beta"] > 1.5 ? throw new InvalidOperationException("diverged") : Bowl(p, default), recorded.Add);
        Assert.Equal(20, recorded.Count);
        Assert.Contains(recorded, t => t.Failure == "score NaN");
        Assert.Contains(recorded, t => t.Failure == "diverged");
        Assert.Null(result.Best!.Failure);
        Assert.True(result.Best.Parameters["beta"] <= 1.5);
    }

    [Fact]
    public void TimeBudget_StopsTheSearch()
    {
        var result = Tuner.Search(Space, SearchMethod.Random, 1000, TimeSpan.FromMilliseconds(200), 4, (p, _) => { Thread.Sleep(50); return Bowl(p, default); });
        Assert.InRange(result.Trials.Count, 2, 6);
        Assert.StartsWith("time budget", result.StopReason, StringComparison.Ordinal);
    }

    [Fact]
    public void BadSpace_IsRefused_NamingTheDimension()
    {
        var ex = Assert.Throws<ArgumentException>(() => Tuner.Search([new Dimension("lr", 0, 1, Log: true)], SearchMethod.Random, 5, TimeSpan.FromSeconds(1), 1, Bowl));
        Assert.Contains("dimension 'lr'", ex.Message, StringComparison.Ordinal);
    }
}
