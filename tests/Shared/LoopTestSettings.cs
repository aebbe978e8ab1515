namespace RetrainDaemon.Tests.Shared;

/// <summary>Settings the loop's fault and cluster tests share for the fashion-mnist DCGAN.</summary>
public static class LoopTestSettings
{
    public const string Model = "fashion-mnist";
    public const string M = "Models:fashion-mnist:";

    /// <summary>The model under test trains only when told to by the setting under test: every automatic trigger off, a tiny generator.</summary>
    public static Dictionary<string, string> Quiet(IDictionary<string, string>? extra = null)
    {
        var settings = new Dictionary<string, string>
        {
            [M + "Retrain"] = "true",
            [M + "Schedule"] = "",
            // Its shipped nightly analysis must not land inside a test window.
            [M + "AnalysisSchedule"] = "",
            [M + "Triggers:MinNewSamples"] = "",
            [M + "Triggers:MaxDrift"] = "",
            [M + "Triggers:MinNewRatings"] = "",
            [M + "Triggers:MaxRatingDrop"] = "",
            [M + "Triggers:MaxStaleness"] = "",
            [M + "Triggers:Cooldown"] = "00:00:01",
            [M + "Training:Width"] = "16",
            [M + "Training:BatchSize"] = "32",
            [M + "Training:MinTrainingSamples"] = "1000",
            [M + "Training:MinHoldoutSamples"] = "50",
            [M + "Rollback:MaxErrorRate"] = "",
            [M + "Rollback:MinMeanRating"] = "",
        };
        return With(settings, extra ?? new Dictionary<string, string>());
    }

    /// <summary>The gate ContinuousLoopTests uses for seconds of training: a trained tiny generator passes it.</summary>
    public static readonly IReadOnlyDictionary<string, string> PassableGate = new Dictionary<string, string>
    {
        [M + "Gate:Checks:0:Metric"] = "fid",
        [M + "Gate:Checks:0:Max"] = "400",
        [M + "Gate:Checks:0:MaxRegressionRelative"] = "1.0",
        [M + "Gate:Checks:1:Metric"] = "is",
        [M + "Gate:Checks:1:Min"] = "1.0",
        [M + "Gate:Checks:2:Metric"] = "class_coverage",
        [M + "Gate:Checks:2:Min"] = "0.1",
        [M + "Gate:Checks:3:Metric"] = "memorized_share",
        [M + "Gate:Checks:3:Max"] = "0.5",
    };

    /// <summary>The parts merged left to right (a later part's key wins).</summary>
    public static Dictionary<string, string> With(params IEnumerable<KeyValuePair<string, string>>[] parts)
    {
        var all = new Dictionary<string, string>();
        foreach (var part in parts)
        {
            foreach (var (key, value) in part)
            {
                all[key] = value;
            }
        }

        return all;
    }
}
