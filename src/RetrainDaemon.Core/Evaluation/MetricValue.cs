namespace RetrainDaemon.Core.Evaluation;

/// <summary>
/// One scored metric: its catalog name (see <c>MetricCatalog</c>), the slice it was computed on
/// (<c>null</c> = the whole evaluation set; e.g. <c>class=3</c> for a per-class slice), its value in
/// full double precision, and the signature of the protocol that produced it (extractor hash and
/// layer, sample count, reference set and seed for images; sacreBLEU's signature for BLEU). Two
/// values are comparable only when their signatures are equal.
/// </summary>
public sealed record MetricValue(string Metric, string? Slice, double Value, string Signature)
{
    public override string ToString() => Slice is null
        ? $"{Metric} = {Value:R} [{Signature}]"
        : $"{Metric}[{Slice}] = {Value:R} [{Signature}]";
}
