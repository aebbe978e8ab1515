using static TorchSharp.torch;

namespace RetrainDaemon.Training.Trainers;

/// <summary>Transfer learning: named parts of a warm-started model keep their weights.</summary>
public static class Freezing
{
    /// <summary>
    /// Turns off gradients for every parameter whose name is <paramref name="names"/>[i] or starts with
    /// it followed by a dot. A name that matches nothing is an error naming what exists.
    /// </summary>
    public static int Apply(nn.Module module, IReadOnlyList<string> names)
    {
        var parameters = module.named_parameters().ToList();
        int frozen = 0;
        foreach (var name in names)
        {
            var matching = parameters.Where(p => p.name == name || p.name.StartsWith(name + ".", StringComparison.Ordinal)).ToList();
            if (matching.Count == 0)
            {
                var layers = parameters.Select(p => p.name.Split('.')[0]).Distinct();
                throw new ArgumentException($"cannot freeze '{name}': {module.GetName()} has no such layer (layers: {string.Join(", ", layers)})");
            }

            foreach (var (_, parameter) in matching)
            {
                parameter.requires_grad = false;
                frozen++;
            }
        }

        return frozen;
    }
}
