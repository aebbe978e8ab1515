using RetrainDaemon.Training.Data;

namespace RetrainDaemon.ModelTests.Analysis;

/// <summary>Weighted resampling of a snapshot: proportional copies, deterministic per seed, never a zero-weight item.</summary>
public sealed class SliceWeightingTests
{
    [Fact]
    public void Each_item_appears_floor_or_ceiling_of_its_share_times_n()
    {
        var random = new Random(3);
        for (int trial = 0; trial < 200; trial++)
        {
            int n = random.Next(1, 400);
            var weights = Enumerable.Range(0, n).Select(_ => random.NextDouble() < 0.2 ? 0 : random.NextDouble() * 4).ToArray();
            if (weights.Sum() == 0)
            {
                weights[0] = 1;
            }

            var indices = SliceWeighting.ResampleIndices(weights, seed: trial);
            Assert.Equal(n, indices.Length);
            double total = weights.Sum();
            var copies = new int[n];
            foreach (int i in indices)
            {
                copies[i]++;
            }

            for (int i = 0; i < n; i++)
            {
                double expected = n * weights[i] / total;
                Assert.True(copies[i] >= Math.Floor(expected - 1e-9) && copies[i] <= Math.Ceiling(expected + 1e-9),
                    $"trial {trial}: item {i} (weight {weights[i]}) drawn {copies[i]} times, expected {expected}");
                if (weights[i] == 0)
                {
                    Assert.Equal(0, copies[i]);
                }
            }

            Assert.Equal(indices, indices.Order()); // input order kept
        }
    }

    [Fact]
    public void Same_seed_same_draw_and_uniform_weights_keep_every_item_once()
    {
        double[] weights = [1, 3, 0.5, 2, 1, 1, 0.25];
        Assert.Equal(SliceWeighting.ResampleIndices(weights, 42), SliceWeighting.ResampleIndices(weights, 42));
        Assert.Equal(Enumerable.Range(0, 50), SliceWeighting.ResampleIndices(Enumerable.Repeat(2.0, 50).ToArray(), 7));
        // A slice held together (as a snapshot in class order would be) weighted 3:1 over 8 draws: exactly 6 and 2, whatever the
        // seed — its cumulative weight is 12 of 16 and the draw points are 2 apart. Interleaved, each item is 1 or 2 copies.
        string[] items = ["weak", "weak", "weak", "weak", "strong", "strong", "strong", "strong"];
        for (long seed = 0; seed < 20; seed++)
        {
            Assert.Equal(6, SliceWeighting.Resample(items, s => s == "weak" ? 3 : 1, seed).Count(s => s == "weak"));
            string[] interleaved = ["weak", "strong", "weak", "strong", "weak", "strong", "weak", "strong"];
            Assert.InRange(SliceWeighting.Resample(interleaved, s => s == "weak" ? 3 : 1, seed).Count(s => s == "weak"), 4, 8);
        }
    }

    [Fact]
    public void Bad_weights_are_refused()
    {
        Assert.Contains("all 2 sampling weights are 0", Assert.Throws<ArgumentException>(() => SliceWeighting.ResampleIndices([0, 0], 1)).Message, StringComparison.Ordinal);
        Assert.Contains("weight 1 is -1", Assert.Throws<ArgumentException>(() => SliceWeighting.ResampleIndices([1, -1], 1)).Message, StringComparison.Ordinal);
        Assert.Contains("weight 0 is NaN", Assert.Throws<ArgumentException>(() => SliceWeighting.ResampleIndices([double.NaN], 1)).Message, StringComparison.Ordinal);
        Assert.Empty(SliceWeighting.ResampleIndices([], 1));
    }
}
