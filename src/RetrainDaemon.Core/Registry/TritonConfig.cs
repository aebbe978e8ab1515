using System.Globalization;
using System.Text;

namespace RetrainDaemon.Core.Registry;

/// <summary>
/// Writes <c>config.pbtxt</c> (Triton's model configuration, protobuf text format) for the ONNX
/// Runtime backend from the champion's manifest. <c>version_policy: { specific: ... }</c> names the
/// champion alone, because Triton's default policy (<c>latest: 1</c>) would serve the newest passed
/// version whether or not it was promoted.
/// </summary>
public static class TritonConfig
{
    /// <summary>The configuration text for serving <paramref name="champion"/>.</summary>
    public static string Render(VersionManifest champion)
    {
        ArgumentNullException.ThrowIfNull(champion);
        var inv = CultureInfo.InvariantCulture;
        // Triton's dims leave out the batch dimension when max_batch_size > 0; that is only right when
        // every tensor's first dimension is dynamic, otherwise the shapes are written whole.
        bool batched = champion.MaxBatchSize > 0
            && champion.Inputs.Concat(champion.Outputs).All(t => t.Shape.Count > 0 && t.Shape[0] == -1);
        var text = new StringBuilder();
        text.Append("# Written by RetrainDaemon's model registry whenever the champion changes; edits are overwritten.\n");
        // The run id is free text from the pipeline: escaped, so a newline in it cannot start a config line.
        text.Append(inv, $"# champion: version {champion.Version}, run {Escape(champion.RunId ?? "-")}, created {champion.CreatedAt:O}\n");
        text.Append(inv, $"name: \"{Escape(champion.Model)}\"\n");
        text.Append("backend: \"onnxruntime\"\n");
        text.Append("platform: \"onnxruntime_onnx\"\n");
        text.Append(inv, $"max_batch_size: {(batched ? champion.MaxBatchSize : 0)}\n");
        Tensors(text, "input", champion.Inputs, batched);
        Tensors(text, "output", champion.Outputs, batched);
        text.Append(inv, $"version_policy: {{ specific: {{ versions: [ {champion.Version} ] }} }}\n");
        return text.ToString();
    }

    private static void Tensors(StringBuilder text, string kind, IReadOnlyList<TensorSpec> tensors, bool batched)
    {
        if (tensors.Count == 0)
        {
            return;
        }

        var inv = CultureInfo.InvariantCulture;
        text.Append(kind).Append(" [\n");
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            var dims = batched ? t.Shape.Skip(1) : t.Shape;
            string type = OnnxElementTypes.Triton(t.ElementType)
                ?? throw new RegistryException($"{t.Name}: element type {t.ElementType} has no Triton data type");
            text.Append("  {\n");
            text.Append(inv, $"    name: \"{Escape(t.Name)}\"\n");
            text.Append(inv, $"    data_type: {type}\n");
            text.Append(inv, $"    dims: [ {string.Join(", ", dims.Select(d => d.ToString(inv)))} ]\n");
            text.Append(i == tensors.Count - 1 ? "  }\n" : "  },\n");
        }

        text.Append("]\n");
    }

    /// <summary>Protobuf text-format string escaping: backslash, quote and control characters.</summary>
    private static string Escape(string value)
    {
        var s = new StringBuilder(value.Length);
        foreach (char c in value)
        {
            switch (c)
            {
                case '\\':
                    s.Append("\\\\");
                    break;
                case '"':
                    s.Append("\\\"");
                    break;
                case '\n':
                    s.Append("\\n");
                    break;
                default:
                    if (char.IsControl(c))
                    {
                        s.Append('\\').Append(Convert.ToString((int)c, 8).PadLeft(3, '0'));
                    }
                    else
                    {
                        s.Append(c);
                    }

                    break;
            }
        }

        return s.ToString();
    }
}
