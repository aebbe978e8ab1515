using System.Text.Json;
using RetrainDaemon.Evaluation.Features;
using RetrainDaemon.Evaluation.Images;

namespace RetrainDaemon.UnitTests.Evaluation.Images;

/// <summary>
/// FID, IS, KID, MiFID and nearest neighbours against numbers computed by the reference
/// implementations (pytorch-fid v0.3.0's calculate_frechet_distance run unchanged; improved-gan's IS;
/// torch-fidelity's KID estimator; torchmetrics' MiFID distance) — see reference/image_metrics_reference.py.
/// </summary>
public sealed class ImageMetricTests
{
    private static readonly JsonElement Cases = LoadCases();

    private static JsonElement LoadCases()
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "reference", "image-metrics.json")));
        return document.RootElement.GetProperty("cases").Clone();
    }

    private static double[] Doubles(JsonElement element) => element.EnumerateArray().Select(e => e.GetDouble()).ToArray();

    private static FeatureMatrix Matrix(JsonElement c, string values, string rows, string dims = "dims") =>
        new(c.GetProperty(rows).GetInt32(), c.GetProperty(dims).GetInt32(), Doubles(c.GetProperty(values)), values);

    public static TheoryData<string> FidCases() => new(Cases.GetProperty("fid").EnumerateArray().Select(c => c.GetProperty("name").GetString()!));

    [Theory]
    [MemberData(nameof(FidCases))]
    public void Fid_from_features_matches_pytorch_fid_to_1e6_relative(string name)
    {
        var c = Cases.GetProperty("fid").EnumerateArray().Single(e => e.GetProperty("name").GetString() == name);
        var a = Matrix(c, "features1", "rows1");
        var b = Matrix(c, "features2", "rows2");
        double expected = c.GetProperty("expected").GetDouble();

        var result = Fid.FromFeatures(a, b);

        Assert.True(Math.Abs(result.Value - expected) <= 1e-6 * Math.Abs(expected), $"{name}: {result.Value:R} vs pytorch-fid {expected:R} ({result.Method})");
        // The statistics themselves match numpy's mean and np.cov (ddof = 1).
        var statistics = FeatureStatistics.Compute(a);
        var mu = Doubles(c.GetProperty("mu1"));
        var sigma = Doubles(c.GetProperty("sigma1"));
        double scale = sigma.Max(Math.Abs);
        Assert.All(mu.Zip(statistics.Mean), p => Assert.True(Math.Abs(p.First - p.Second) <= 1e-12 * Math.Max(1, Math.Abs(p.First))));
        Assert.All(sigma.Zip(statistics.Covariance), p => Assert.True(Math.Abs(p.First - p.Second) <= 1e-12 * scale));
    }

    [Fact]
    public void Singular_sets_take_the_eigen_route_and_well_conditioned_ones_cholesky()
    {
        var cases = Cases.GetProperty("fid").EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!);
        Assert.Equal(FidTraceMethod.Eigen, Fid.FromFeatures(Matrix(cases["singular-n-le-d"], "features1", "rows1"), Matrix(cases["singular-n-le-d"], "features2", "rows2")).Method);
        Assert.Equal(FidTraceMethod.Cholesky, Fid.FromFeatures(Matrix(cases["correlated"], "features1", "rows1"), Matrix(cases["correlated"], "features2", "rows2")).Method);
    }

    [Fact]
    public void Rank_one_covariances_give_the_exact_value_where_pytorch_fid_falls_back_to_eps()
    {
        var c = Cases.GetProperty("fid_rank1");
        var a = new FeatureStatistics(Doubles(c.GetProperty("mu1")), Doubles(c.GetProperty("sigma1")), 0);
        var b = new FeatureStatistics(Doubles(c.GetProperty("mu2")), Doubles(c.GetProperty("sigma2")), 0);
        double exact = c.GetProperty("exact").GetDouble();

        double value = Fid.FromStatistics(a, b).Value;

        // Exactly singular inputs: √ of round-off-sized eigenvalues (~1e-16 · ‖Σ‖) contributes ~1e-8 per
        // eigenvalue, which is the ~1e-8 relative agreement metrics.md §3.3 gives for every float64 method.
        Assert.True(Math.Abs(value - exact) <= 1e-7 * exact, $"{value:R} vs exact {exact:R}");
        // pytorch-fid answers for Σ + 1e-6·I instead (documented difference, metrics.md §3.4).
        Assert.True(Math.Abs(value - c.GetProperty("pytorch_fid").GetDouble()) < 1e-7 * exact);
    }

    [Fact]
    public void Fid_of_a_set_against_itself_is_zero_and_a_mean_shift_gives_its_squared_norm()
    {
        var c = Cases.GetProperty("fid").EnumerateArray().First();
        var a = Matrix(c, "features1", "rows1");
        var shift = Enumerable.Range(0, a.Dimensions).Select(i => 0.25 * (i % 5) - 0.4).ToArray();
        var shifted = new double[a.Rows * a.Dimensions];
        for (int i = 0; i < shifted.Length; i++)
        {
            shifted[i] = a.Values[i] + shift[i % a.Dimensions];
        }

        Assert.Equal(0, Fid.FromFeatures(a, a).Value, 1e-6);
        double normSquared = shift.Sum(x => x * x);
        Assert.True(Math.Abs(Fid.FromFeatures(a, new FeatureMatrix(a.Rows, a.Dimensions, shifted)).Value - normSquared) <= 1e-6 * normSquared);
    }

    [Fact]
    public void Statistics_round_trip_through_npz_bit_for_bit()
    {
        var c = Cases.GetProperty("fid").EnumerateArray().First();
        var statistics = FeatureStatistics.Compute(Matrix(c, "features1", "rows1"), "extractor:abc|n:500");
        string path = Path.Combine(Path.GetTempPath(), $"stats-{Guid.NewGuid():N}.npz");
        try
        {
            statistics.Save(path);
            var loaded = FeatureStatistics.Load(path);
            Assert.Equal(statistics.Mean, loaded.Mean);
            Assert.Equal(statistics.Covariance, loaded.Covariance);
            Assert.Equal(500, loaded.Count);
            Assert.Equal("extractor:abc|n:500", loaded.Signature);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Bad_feature_input_is_refused_with_a_clear_error()
    {
        var nan = Assert.Throws<ArgumentException>(() => new FeatureMatrix(2, 2, [1, 2, double.NaN, 4], "generated"));
        Assert.Contains("row 1, dimension 0 is not finite", nan.Message, StringComparison.Ordinal);
        Assert.Contains("generated", nan.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new FeatureMatrix(2, 2, [1, 2, double.PositiveInfinity, 4]));
        Assert.Throws<ArgumentException>(() => new FeatureMatrix(2, 3, [1, 2, 3, 4]));

        var one = new FeatureMatrix(1, 2, [1, 2], "tiny");
        var few = Assert.Throws<ArgumentException>(() => FeatureStatistics.Compute(one));
        Assert.Contains("at least 2 samples", few.Message, StringComparison.Ordinal);

        var a = new FeatureMatrix(3, 2, [1, 2, 3, 4, 5, 7], "a");
        var b = new FeatureMatrix(3, 3, [1, 2, 3, 4, 5, 6, 7, 8, 10], "b");
        var mismatch = Assert.Throws<ArgumentException>(() => Fid.FromFeatures(a, b));
        Assert.Contains("a has 2, b has 3", mismatch.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new FeatureStatistics([0, double.NaN], [1, 0, 0, 1], 2));
        Assert.Throws<ArgumentException>(() => InceptionScore.FromProbabilities(new FeatureMatrix(2, 2, [0.5, 0.6, 0.5, 0.5]), 1));
    }

    [Fact]
    public void Statistics_files_that_are_not_npz_are_refused_naming_the_file()
    {
        string path = Path.Combine(Path.GetTempPath(), $"not-stats-{Guid.NewGuid():N}.npz");
        File.WriteAllText(path, "hello");
        try
        {
            var error = Assert.Throws<InvalidDataException>(() => FeatureStatistics.Load(path));
            Assert.Contains(path, error.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    public static TheoryData<int> IsCases() => new(Enumerable.Range(0, Cases.GetProperty("is").GetArrayLength()));

    [Theory]
    [MemberData(nameof(IsCases))]
    public void Inception_score_matches_improved_gan_to_1e9(int index)
    {
        var c = Cases.GetProperty("is")[index];
        var p = Matrix(c, "probabilities", "rows", "classes");

        var result = InceptionScore.FromProbabilities(p, c.GetProperty("splits").GetInt32());

        Assert.Equal(c.GetProperty("mean").GetDouble(), result.Mean, 1e-9);
        Assert.Equal(c.GetProperty("std").GetDouble(), result.StandardDeviation, 1e-9);
    }

    [Fact]
    public void Inception_score_of_uniform_rows_is_one_and_of_balanced_confident_rows_is_near_c()
    {
        var uniform = new FeatureMatrix(20, 4, Enumerable.Repeat(0.25, 80).ToArray());
        Assert.Equal(1.0, InceptionScore.FromProbabilities(uniform, 2).Mean, 1e-12);
        var confident = new double[40 * 4];
        for (int i = 0; i < 40; i++)
        {
            for (int j = 0; j < 4; j++)
            {
                confident[i * 4 + j] = j == i % 4 ? 0.97 : 0.01;
            }
        }

        Assert.InRange(InceptionScore.FromProbabilities(new FeatureMatrix(40, 4, confident), 1).Mean, 3.3, 4.0);
    }

    [Fact]
    public void Kid_on_whole_sets_matches_torch_fidelity_estimator_to_1e9()
    {
        var c = Cases.GetProperty("kid")[0];
        var a = Matrix(c, "features1", "rows");
        var b = Matrix(c, "features2", "rows");

        var result = Kid.Compute(a, b, subsets: 1, subsetSize: a.Rows);

        Assert.Equal(c.GetProperty("expected").GetDouble(), result.Mean, 1e-9);
        Assert.Equal(0, result.StandardDeviation);
    }

    public static TheoryData<string> MiFidCases() => new(Cases.GetProperty("mifid").EnumerateArray().Select(c => c.GetProperty("name").GetString()!));

    [Theory]
    [MemberData(nameof(MiFidCases))]
    public void Mifid_memorization_distance_matches_torchmetrics_to_1e9(string name)
    {
        var c = Cases.GetProperty("mifid").EnumerateArray().Single(e => e.GetProperty("name").GetString() == name);

        var (mean, thresholded) = Novelty.MemorizationDistance(Matrix(c, "features1", "rows1"), Matrix(c, "features2", "rows2"));

        Assert.Equal(c.GetProperty("mean_min").GetDouble(), mean, 1e-9);
        Assert.Equal(c.GetProperty("thresholded").GetDouble(), thresholded, 1e-9);
        Assert.Equal(50.0 / (thresholded + 1e-14), Novelty.MiFid(50.0, thresholded));
        Assert.Equal(0, Novelty.MiFid(1e-9, thresholded));
    }

    [Fact]
    public void Nearest_neighbours_match_brute_force_with_copies_at_distance_zero()
    {
        var c = Cases.GetProperty("nearest")[0];
        var generated = Matrix(c, "generated", "rows1");
        var training = Matrix(c, "training", "rows2");

        var result = Novelty.Nearest(generated, training);

        Assert.Equal(c.GetProperty("index").EnumerateArray().Select(e => e.GetInt32()), result.NearestIndex);
        var d1 = Doubles(c.GetProperty("d1"));
        var d2 = Doubles(c.GetProperty("d2"));
        for (int i = 0; i < d1.Length; i++)
        {
            Assert.Equal(d1[i], result.Nearest[i], 1e-12);
            Assert.Equal(d2[i], result.SecondNearest[i], 1e-12);
        }

        Assert.Equal(0, result.Nearest[0]);
        Assert.Equal(0, result.Nearest[2]);
        Assert.Equal(c.GetProperty("memorized_share").GetDouble(), result.MemorizedShare(), 1e-12);
        Assert.True(result.MemorizedShare() >= 3.0 / generated.Rows);
    }

    [Fact]
    public void Class_coverage_entropy_and_pairwise_distance_follow_their_definitions()
    {
        // 4 samples over 3 classes: predicted 0, 0, 2, 2 → coverage 2/3, entropy ln 2.
        var p = new FeatureMatrix(4, 3, [0.8, 0.1, 0.1, 0.5, 0.3, 0.2, 0.1, 0.2, 0.7, 0.3, 0.3, 0.4]);
        var coverage = Diversity.Coverage(p);
        Assert.Equal([2, 0, 2], coverage.Counts);
        Assert.Equal(2.0 / 3, coverage.Coverage, 1e-15);
        Assert.Equal(Math.Log(2), coverage.Entropy, 1e-15);
        Assert.Equal(0.5, Diversity.ConditionalAccuracy(p, [0, 1, 2, 1]), 1e-15);

        var points = new FeatureMatrix(3, 2, [0, 0, 3, 4, 0, 8]);
        Assert.Equal((5 + 8 + 5) / 3.0, Diversity.MeanPairwiseDistance(points), 1e-12);
    }
}
