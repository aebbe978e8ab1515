using System.Text.Json.Nodes;

namespace RetrainDaemon.Loop;

/// <summary>Reads back what the loop needs from an analysis run's <c>report.json</c>.</summary>
public static class AnalysisReports
{
    /// <summary>The drift score of the report in <paramref name="directory"/>, or null (no report, or drift not measured).</summary>
    public static double? ReadDrift(string directory)
    {
        string path = Path.Combine(directory, Evaluation.Analysis.ErrorAnalysis.JsonFileName);
        if (!File.Exists(path))
        {
            return null;
        }

        var node = JsonNode.Parse(File.ReadAllText(path));
        return node?["drift"]?["value"]?.GetValueKind() == System.Text.Json.JsonValueKind.Number ? node["drift"]!["value"]!.GetValue<double>() : null;
    }
}
