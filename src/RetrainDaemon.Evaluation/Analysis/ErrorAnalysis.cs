using System.Globalization;
using System.Text;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Core.IO;

namespace RetrainDaemon.Evaluation.Analysis;

/// <summary>What one error analysis produced: the report, where it was written, and the parts the caller acts on.</summary>
/// <param name="Report">The report (also in <paramref name="JsonPath"/>).</param>
/// <param name="JsonPath"><c>report.json</c>: the report; <see cref="SliceWeights.Read"/> reads the next fine-tune's weights from it.</param>
/// <param name="HtmlPath"><c>report.html</c>: the self-contained page.</param>
public sealed record AnalysisResult(AnalysisReport Report, string JsonPath, string HtmlPath)
{
    /// <summary>The worst judged slices, worst first.</summary>
    public IReadOnlyList<string> Worst => Report.Worst;

    /// <summary>The sampling weights for the next fine-tune (the same as reading <see cref="JsonPath"/>).</summary>
    public SliceWeights Weights => new(Report.Model, Report.Weights);

    public DriftReport Drift => Report.Drift;

    /// <summary>Text models: every recent holdout record with its slices and the champion's output / likelihood; empty for images.</summary>
    public IReadOnlyList<TextAnalysisRecord> TextRecords { get; init; } = [];
}

/// <summary>
/// Error analysis of a model's champion (issue 7, <c>ErrorAnalysisJob</c>; docs/architecture.md, "Error analysis"):
/// per-slice metrics on the recent holdout and feedback, the worst slices, drift of fresh data against the training
/// window, and sampling weights for the next fine-tune. Writes <c>report.json</c> and <c>report.html</c> atomically
/// (temp + fsync + rename) into the request's output directory. Runs the champion's ONNX file through ONNX Runtime only.
/// </summary>
public static class ErrorAnalysis
{
    public const string JsonFileName = "report.json";
    public const string HtmlFileName = "report.html";

    private static readonly string[] ImageFamilies = ["dcgan", "vae"];

    /// <exception cref="ArgumentException">The request is inconsistent; the message lists every problem.</exception>
    /// <exception cref="InvalidDataException">The store has no usable holdout, or the champion file is not what the model's configuration says.</exception>
    public static async Task<AnalysisResult> RunAsync(AnalysisRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var problems = Validate(request);
        if (problems.Count > 0)
        {
            throw new ArgumentException($"error analysis of model '{request.Model}' cannot start: " + string.Join("; ", problems), nameof(request));
        }

        AnalysisReport report;
        IReadOnlyList<ClassStrip> strips = [];
        IReadOnlyList<TextAnalysisRecord> records = [];
        if (IsImage(request.Family))
        {
            (report, strips) = await ImageErrorAnalysis.RunAsync(request, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            (report, records) = await TextErrorAnalysis.RunAsync(request, cancellationToken).ConfigureAwait(false);
        }

        cancellationToken.ThrowIfCancellationRequested();
        Directory.CreateDirectory(request.OutputDirectory);
        string json = Path.GetFullPath(Path.Combine(request.OutputDirectory, JsonFileName));
        string html = Path.GetFullPath(Path.Combine(request.OutputDirectory, HtmlFileName));
        // The page first: a reader that sees the new JSON also finds the page that belongs to it.
        var page = Encoding.UTF8.GetBytes(AnalysisHtml.Render(report, strips));
        DurableFiles.ReplaceFile(html, s => s.Write(page));
        var text = Encoding.UTF8.GetBytes(report.ToJson());
        DurableFiles.ReplaceFile(json, s => s.Write(text));
        return new AnalysisResult(report, json, html) { TextRecords = records };
    }

    private static bool IsImage(string family) => ImageFamilies.Contains(family, StringComparer.OrdinalIgnoreCase);

    private static List<string> Validate(AnalysisRequest request)
    {
        var problems = new List<string>();
        if (string.IsNullOrWhiteSpace(request.Model))
        {
            problems.Add("Model is empty");
        }

        if (request.ModelOptions is null)
        {
            problems.Add("ModelOptions is missing");
        }

        if (request.Store is null)
        {
            problems.Add("Store is missing");
        }

        bool image = IsImage(request.Family ?? "");
        bool text = string.Equals(request.Family, "gpt", StringComparison.OrdinalIgnoreCase);
        if (!image && !text)
        {
            problems.Add($"Family = '{request.Family}': expected dcgan, vae or gpt");
        }
        else if (request.ModelOptions is not null && (image ? Modality.Image : Modality.Text) != request.ModelOptions.ParsedModality)
        {
            problems.Add($"Family = '{request.Family}' is {(image ? "an image" : "a text")} family, but the model's Modality is '{request.ModelOptions.Modality}'");
        }

        if (image && request.Extractor is null)
        {
            problems.Add("Extractor is missing: image models are analysed in an extractor's feature space");
        }

        if (string.IsNullOrWhiteSpace(request.ChampionOnnx) || !File.Exists(request.ChampionOnnx))
        {
            problems.Add($"ChampionOnnx = '{request.ChampionOnnx}': no such file");
        }

        if (request.TrainedWatermark < 0)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"TrainedWatermark = {request.TrainedWatermark}: must be ≥ 0"));
        }

        if (request.Watermark < request.TrainedWatermark)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"Watermark = {request.Watermark}: must not be below TrainedWatermark ({request.TrainedWatermark})"));
        }

        if (string.IsNullOrWhiteSpace(request.OutputDirectory))
        {
            problems.Add("OutputDirectory is empty");
        }

        if (request.Evaluation is null)
        {
            problems.Add("Evaluation is missing");
        }
        else if (request.Evaluation.SampleCount < 2 || request.Evaluation.Threads < 1)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"Evaluation: SampleCount = {request.Evaluation.SampleCount} (≥ 2) and Threads = {request.Evaluation.Threads} (≥ 1) required"));
        }

        if (request.TextEvaluation is null)
        {
            problems.Add("TextEvaluation is missing");
        }
        else if (text)
        {
            var validation = new Text.TextEvaluationOptionsValidator().Validate(null, request.TextEvaluation);
            if (validation.Failed)
            {
                problems.AddRange(validation.Failures);
            }
        }

        if (request.Feedback is null)
        {
            problems.Add("Feedback is null (pass an empty list for none)");
        }

        if (request.Options is null)
        {
            problems.Add("Options is missing");
        }
        else
        {
            problems.AddRange(request.Options.Validate().Select(p => "Options." + p));
        }

        return problems;
    }
}
