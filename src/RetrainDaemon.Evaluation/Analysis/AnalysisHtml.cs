using System.Globalization;
using System.Net;
using System.Text;

namespace RetrainDaemon.Evaluation.Analysis;

/// <summary>
/// The report as one self-contained HTML page: no script, no external resource — inline SVG bar charts of the slice
/// metrics, badness, weights and the drift, sample strips as base64 PNG (images) or sample texts (text models). Every
/// string from data (catalog names, texts) is HTML-encoded.
/// </summary>
internal static class AnalysisHtml
{
    private const int ChartWidth = 640;
    private const int LabelWidth = 150;
    private const int RowHeight = 18;

    public static string Render(AnalysisReport report, IReadOnlyList<ClassStrip> strips)
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error analysis — ").Append(E(report.Model)).Append("</title>\n")
            .Append("<style>body{font-family:sans-serif;margin:1.5em;max-width:72em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;vertical-align:top}")
            .Append("th{background:#f2f2f2}.worst{background:#fde2e2}.muted{color:#777}img{image-rendering:pixelated;height:64px}svg{display:block;margin:.4em 0 1.2em}</style></head><body>\n");
        html.Append("<h1>Error analysis: ").Append(E(report.Model)).Append("</h1>\n<p>")
            .Append(E(report.Family)).Append(report.Task is null ? "" : " (" + E(report.Task) + ")")
            .Append(" · champion ").Append(report.Champion.Version is { } v ? "v" + v.ToString(CultureInfo.InvariantCulture) + " · " : "")
            .Append("sha256 ").Append(E(report.Champion.Sha256[..12])).Append(" · watermarks trained ").Append(N(report.Watermarks.Trained))
            .Append(" / now ").Append(N(report.Watermarks.Current)).Append(" · seed ").Append(N(report.Seed))
            .Append(" · ").Append(E(report.CreatedUtc.ToString("u", CultureInfo.InvariantCulture))).Append("</p>\n");
        html.Append("<p class=\"muted\">protocol: ").Append(E(report.Protocol)).Append("<br>holdout: ").Append(E(report.Holdout.Id))
            .Append(report.Holdout.Skipped > 0 ? $" ({N(report.Holdout.Skipped)} unusable samples skipped)" : "").Append("</p>\n");

        html.Append("<h2>Worst slices</h2>\n<p>");
        html.Append(report.Worst.Count == 0 ? "none could be judged" : string.Join(", ", report.Worst.Select(w => "<b>" + E(w) + "</b>")));
        html.Append("</p>\n<h3>Overall</h3>\n<ul>");
        foreach (var metric in report.Overall)
        {
            html.Append("<li>").Append(E(metric.Metric)).Append(" = ").Append(F(metric.Value)).Append(" <span class=\"muted\">").Append(E(metric.Signature)).Append("</span></li>");
        }

        html.Append("</ul>\n");
        foreach (var kind in report.Slices.GroupBy(s => s.Kind))
        {
            var slices = kind.ToList();
            html.Append("<h2>Slices by ").Append(E(kind.Key)).Append("</h2>\n");
            html.Append(Chart("badness (0 = as good as the best slice, 1 = worst possible)", slices.Select(s => (s.Slice, s.Badness, s.Note)).ToList(), 1.0));
            html.Append(Chart("sampling weight for the next fine-tune", slices.Select(s => (s.Slice, (double?)s.Weight, (string?)null)).ToList(), null));
            foreach (string metric in slices.SelectMany(s => s.Metrics.Keys).Distinct().Order(StringComparer.Ordinal))
            {
                html.Append(Chart(metric, slices.Select(s => (s.Slice, s.Metrics.TryGetValue(metric, out double value) ? value : (double?)null, s.Note)).ToList(), null));
            }

            html.Append(Table(slices, report.Worst));
        }

        html.Append("<h2>Drift: fresh data vs the training window</h2>\n");
        var drift = report.Drift;
        html.Append(Chart($"{drift.Metric} (fresh {N(drift.FreshCount)} of {N(drift.FreshAvailable)}, training window {N(drift.TrainingCount)})",
            [("drift", drift.Value, drift.Status == DriftStatus.Ok ? null : DriftWindows.Describe(drift.Status, drift.FreshCount, drift.TrainingCount, drift.MinSamples))],
            drift.Metric == "token_jsd" ? 1.0 : null));
        html.Append("<p class=\"muted\">").Append(E(drift.Signature)).Append("</p>\n");
        if (drift.Details.Count > 0)
        {
            html.Append("<ul>");
            foreach (var (key, value) in drift.Details)
            {
                html.Append("<li>").Append(E(key)).Append(" = ").Append(F(value)).Append("</li>");
            }

            html.Append("</ul>\n");
        }

        html.Append("<h2>Feedback</h2>\n<p>").Append(N(report.Feedback.Total)).Append(" ratings");
        if (report.Feedback.IgnoredOutOfRange > 0)
        {
            html.Append(" (").Append(N(report.Feedback.IgnoredOutOfRange)).Append(" outside 1–5 ignored)");
        }

        html.Append("</p>\n").Append(Chart("ratings", report.Feedback.Ratings.Select(r => (r.Slice, (double?)r.Count, (string?)null)).ToList(), null));
        if (report.Feedback.Unmatched.Count > 0)
        {
            html.Append("<p>Feedback for slices this analysis does not have: ")
                .Append(string.Join(", ", report.Feedback.Unmatched.Select(u => $"{E(u.Slice)} ({N(u.Count)}, mean {F(u.MeanRating)})"))).Append("</p>\n");
        }

        if (strips.Count > 0)
        {
            html.Append("<h2>Samples per class</h2>\n<table><tr><th>slice</th><th>champion's samples</th><th>holdout</th></tr>\n");
            foreach (var strip in strips)
            {
                html.Append("<tr").Append(report.Worst.Contains(strip.Slice) ? " class=\"worst\"" : "").Append("><td>").Append(E(strip.Slice)).Append("</td><td>")
                    .Append(Image(strip.GeneratedPng, strip.Generated, "generated")).Append("</td><td>").Append(Image(strip.HoldoutPng, strip.Holdout, "holdout")).Append("</td></tr>\n");
            }

            html.Append("</table>\n");
        }

        if (report.Examples.Count > 0)
        {
            html.Append("<h2>").Append(report.Task == "lm" ? "Samples" : "Outputs of the worst slices").Append("</h2>\n<table><tr><th>slice</th>")
                .Append(report.Task == "lm" ? "" : "<th>source</th><th>reference</th>").Append("<th>output</th></tr>\n");
            foreach (var example in report.Examples)
            {
                html.Append("<tr><td>").Append(E(example.Slice)).Append("</td>");
                if (report.Task != "lm")
                {
                    html.Append("<td>").Append(E(example.Source ?? "")).Append("</td><td>").Append(E(example.Reference ?? "")).Append("</td>");
                }

                html.Append("<td>").Append(E(example.Output)).Append("</td></tr>\n");
            }

            html.Append("</table>\n");
        }

        html.Append("<p class=\"muted\">weights: ").Append(E(report.Weighting.Function)).Append(string.Create(CultureInfo.InvariantCulture,
            $" with sharpness {report.Weighting.Sharpness}, feedback influence {report.Weighting.FeedbackInfluence}, at least {report.Weighting.MinFeedbackRatings} ratings, bounds [{report.Weighting.MinWeight}, {report.Weighting.MaxWeight}]"))
            .Append("</p>\n</body></html>\n");
        return html.ToString();
    }

    /// <summary>A horizontal bar chart; a row without a value shows its note (e.g. "too few samples") instead of a bar.</summary>
    internal static string Chart(string title, IReadOnlyList<(string Label, double? Value, string? Note)> rows, double? scaleMax)
    {
        double max = scaleMax ?? Math.Max(1e-12, rows.Where(r => r.Value is not null).Select(r => Math.Abs(r.Value!.Value)).DefaultIfEmpty(1).Max());
        int height = rows.Count * RowHeight + 24;
        int barSpace = ChartWidth - LabelWidth - 90;
        var svg = new StringBuilder();
        svg.Append(string.Create(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{ChartWidth}\" height=\"{height}\" role=\"img\" aria-label=\"{E(title)}\">"))
            .Append("<text x=\"0\" y=\"14\" font-size=\"13\" font-weight=\"bold\">").Append(E(title)).Append("</text>");
        for (int i = 0; i < rows.Count; i++)
        {
            var (label, value, note) = rows[i];
            int y = 22 + i * RowHeight;
            svg.Append(string.Create(CultureInfo.InvariantCulture, $"<text x=\"{LabelWidth - 6}\" y=\"{y + 12}\" font-size=\"12\" text-anchor=\"end\">")).Append(E(label)).Append("</text>");
            if (value is { } v)
            {
                double width = Math.Max(0, v) / max * barSpace;
                svg.Append(string.Create(CultureInfo.InvariantCulture, $"<rect x=\"{LabelWidth}\" y=\"{y + 2}\" width=\"{width:0.##}\" height=\"{RowHeight - 5}\" fill=\"#4a7ab5\"/>"))
                    .Append(string.Create(CultureInfo.InvariantCulture, $"<text x=\"{LabelWidth + width + 4:0.##}\" y=\"{y + 12}\" font-size=\"11\">")).Append(F(v)).Append("</text>");
            }
            else
            {
                svg.Append(string.Create(CultureInfo.InvariantCulture, $"<text x=\"{LabelWidth}\" y=\"{y + 12}\" font-size=\"11\" fill=\"#a33\">")).Append(E(note ?? "no value")).Append("</text>");
            }
        }

        return svg.Append("</svg>\n").ToString();
    }

    private static string Table(IReadOnlyList<SliceReport> slices, IReadOnlyList<string> worst)
    {
        var metrics = slices.SelectMany(s => s.Metrics.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        var table = new StringBuilder("<table><tr><th>slice</th><th>status</th><th>holdout</th><th>generated</th>");
        foreach (string metric in metrics)
        {
            table.Append("<th>").Append(E(metric)).Append("</th>");
        }

        table.Append("<th>feedback</th><th>badness</th><th>score</th><th>weight</th></tr>\n");
        foreach (var slice in slices)
        {
            table.Append("<tr").Append(worst.Contains(slice.Slice) ? " class=\"worst\"" : "").Append("><td>").Append(E(slice.Slice)).Append("</td><td>").Append(E(slice.Status))
                .Append("</td><td>").Append(N(slice.HoldoutCount)).Append("</td><td>").Append(slice.GeneratedCount is { } g ? N(g) : "—").Append("</td>");
            foreach (string metric in metrics)
            {
                table.Append("<td>").Append(slice.Metrics.TryGetValue(metric, out double value) ? F(value) : "—").Append("</td>");
            }

            table.Append("<td>").Append(slice.FeedbackCount == 0 ? "—" : $"{N(slice.FeedbackCount)} × mean {F(slice.MeanRating!.Value)}").Append("</td><td>")
                .Append(slice.Badness is { } b ? F(b) : "—").Append("</td><td>").Append(F(slice.Score)).Append("</td><td>").Append(F(slice.Weight)).Append("</td></tr>\n");
        }

        return table.Append("</table>\n").ToString();
    }

    private static string Image(byte[]? png, int count, string what) => png is null
        ? $"<span class=\"muted\">no {E(what)} samples</span>"
        : $"<img alt=\"{N(count)} {E(what)} samples\" src=\"data:image/png;base64,{Convert.ToBase64String(png)}\">";

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string F(double value) => value.ToString(Math.Abs(value) >= 100 ? "0.#" : "0.####", CultureInfo.InvariantCulture);
}
