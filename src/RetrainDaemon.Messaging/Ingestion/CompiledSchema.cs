using System.Text.Json;

namespace RetrainDaemon.Messaging.Ingestion;

/// <summary>
/// A JSON Schema (draft 2020-12) compiled into a tree of checks, for the subset of keywords our
/// message schemas use. The ingest path validates every message, and a general-purpose evaluator
/// (JsonSchema.Net) spent ~40% of the daemon's CPU there (keyword ordering and grapheme counting on
/// the base64 image). The unit tests run both engines over valid, invalid and mutated documents and
/// require the same verdict. A keyword outside the subset fails compilation, so a schema edit cannot
/// silently stop being enforced. String lengths count Unicode code points, as the specification says.
/// </summary>
public sealed class CompiledSchema
{
    private static readonly HashSet<string> Annotations = ["$schema", "$id", "$comment", "title", "description", "contentEncoding", "examples", "default"];

    private readonly List<Func<JsonElement, string, string?>> checks = [];

    private CompiledSchema(JsonElement schema, string location)
    {
        if (schema.ValueKind == JsonValueKind.True)
        {
            return;
        }

        if (schema.ValueKind == JsonValueKind.False)
        {
            checks.Add((_, path) => $"{path}: no value is allowed here (false schema)");
            return;
        }

        if (schema.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidOperationException($"schema at {location} must be an object or a boolean");
        }

        foreach (var keyword in schema.EnumerateObject())
        {
            if (Annotations.Contains(keyword.Name) || keyword.Name is "then" or "else")
            {
                continue;
            }

            checks.Add(Compile(keyword.Name, keyword.Value, schema, $"{location}/{keyword.Name}"));
        }
    }

    public static CompiledSchema FromText(string json)
    {
        using var document = JsonDocument.Parse(json);
        return new CompiledSchema(document.RootElement.Clone(), "#");
    }

    /// <summary>Null when <paramref name="instance"/> conforms; otherwise the first violation, with its JSON pointer.</summary>
    public string? Validate(JsonElement instance) => Validate(instance, "");

    private string? Validate(JsonElement instance, string path)
    {
        foreach (var check in checks)
        {
            if (check(instance, path) is { } problem)
            {
                return problem;
            }
        }

        return null;
    }

    private static string Where(string path) => path.Length == 0 ? "/" : path;

    private static Func<JsonElement, string, string?> Compile(string keyword, JsonElement value, JsonElement parent, string location)
    {
        switch (keyword)
        {
            case "type":
            {
                var types = value.ValueKind == JsonValueKind.Array ? value.EnumerateArray().Select(t => t.GetString()!).ToArray() : [value.GetString()!];
                return (x, p) => types.Any(t => HasType(x, t)) ? null : $"{Where(p)}: {Kind(x)} is not of type {string.Join(" or ", types)} (type)";
            }

            case "enum":
            {
                var options = value.EnumerateArray().Select(e => e.Clone()).ToArray();
                return (x, p) => options.Any(o => JsonElement.DeepEquals(o, x)) ? null : $"{Where(p)}: {Show(x)} is not one of {value.GetRawText()} (enum)";
            }

            case "const":
            {
                var expected = value.Clone();
                return (x, p) => JsonElement.DeepEquals(expected, x) ? null : $"{Where(p)}: {Show(x)} is not {expected.GetRawText()} (const)";
            }

            case "required":
            {
                var names = value.EnumerateArray().Select(n => n.GetString()!).ToArray();
                return (x, p) =>
                {
                    if (x.ValueKind != JsonValueKind.Object)
                    {
                        return null;
                    }

                    foreach (var name in names)
                    {
                        if (!x.TryGetProperty(name, out _))
                        {
                            return $"{Where(p)}: required property '{name}' is missing (required)";
                        }
                    }

                    return null;
                };
            }

            case "properties":
            {
                var properties = value.EnumerateObject().Select(o => (o.Name, Schema: new CompiledSchema(o.Value, $"{location}/{o.Name}"))).ToArray();
                return (x, p) =>
                {
                    if (x.ValueKind != JsonValueKind.Object)
                    {
                        return null;
                    }

                    foreach (var (name, schema) in properties)
                    {
                        if (x.TryGetProperty(name, out var child) && schema.Validate(child, $"{p}/{name}") is { } problem)
                        {
                            return problem;
                        }
                    }

                    return null;
                };
            }

            case "additionalProperties":
            {
                var known = parent.TryGetProperty("properties", out var props) ? props.EnumerateObject().Select(o => o.Name).ToHashSet(StringComparer.Ordinal) : [];
                var schema = new CompiledSchema(value, location);
                return (x, p) =>
                {
                    if (x.ValueKind != JsonValueKind.Object)
                    {
                        return null;
                    }

                    foreach (var member in x.EnumerateObject())
                    {
                        if (!known.Contains(member.Name))
                        {
                            if (value.ValueKind == JsonValueKind.False)
                            {
                                return $"{Where(p)}: property '{member.Name}' is not allowed (additionalProperties)";
                            }

                            if (schema.Validate(member.Value, $"{p}/{member.Name}") is { } problem)
                            {
                                return problem;
                            }
                        }
                    }

                    return null;
                };
            }

            case "minimum" or "maximum":
            {
                double bound = value.GetDouble();
                bool min = keyword == "minimum";
                return (x, p) => x.ValueKind != JsonValueKind.Number || (min ? x.GetDouble() >= bound : x.GetDouble() <= bound)
                    ? null
                    : $"{Where(p)}: {x.GetRawText()} is {(min ? "less than the minimum" : "greater than the maximum")} {value.GetRawText()} ({keyword})";
            }

            case "minLength" or "maxLength":
            {
                int bound = value.GetInt32();
                bool min = keyword == "minLength";
                return (x, p) =>
                {
                    if (x.ValueKind != JsonValueKind.String)
                    {
                        return null;
                    }

                    int length = CodePoints(x.GetString()!);
                    return (min ? length >= bound : length <= bound) ? null : $"{Where(p)}: string of length {length} is {(min ? "shorter" : "longer")} than {bound} ({keyword})";
                };
            }

            case "allOf" or "anyOf" or "oneOf":
            {
                var schemas = value.EnumerateArray().Select((s, i) => new CompiledSchema(s, $"{location}/{i}")).ToArray();
                return keyword switch
                {
                    "allOf" => (x, p) => schemas.Select(s => s.Validate(x, p)).FirstOrDefault(e => e is not null),
                    "anyOf" => (x, p) => schemas.Any(s => s.Validate(x, p) is null) ? null : $"{Where(p)}: matches none of the anyOf alternatives (anyOf)",
                    _ => (x, p) => schemas.Count(s => s.Validate(x, p) is null) switch
                    {
                        1 => null,
                        0 => $"{Where(p)}: matches none of the oneOf alternatives (oneOf)",
                        var n => $"{Where(p)}: matches {n} oneOf alternatives, exactly one is allowed (oneOf)",
                    },
                };
            }

            case "not":
            {
                var schema = new CompiledSchema(value, location);
                return (x, p) => schema.Validate(x, p) is null ? $"{Where(p)}: must not match the schema at {location} (not)" : null;
            }

            case "if":
            {
                var condition = new CompiledSchema(value, location);
                var then = parent.TryGetProperty("then", out var t) ? new CompiledSchema(t, location[..location.LastIndexOf('/')] + "/then") : null;
                var otherwise = parent.TryGetProperty("else", out var e) ? new CompiledSchema(e, location[..location.LastIndexOf('/')] + "/else") : null;
                return (x, p) => condition.Validate(x, p) is null ? then?.Validate(x, p) : otherwise?.Validate(x, p);
            }

            default:
                throw new InvalidOperationException($"schema keyword '{keyword}' at {location} is not supported by {nameof(CompiledSchema)}; extend it (and its differential test) first");
        }
    }

    private static bool HasType(JsonElement x, string type) => type switch
    {
        "object" => x.ValueKind == JsonValueKind.Object,
        "array" => x.ValueKind == JsonValueKind.Array,
        "string" => x.ValueKind == JsonValueKind.String,
        "boolean" => x.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "null" => x.ValueKind == JsonValueKind.Null,
        "number" => x.ValueKind == JsonValueKind.Number,
        "integer" => x.ValueKind == JsonValueKind.Number && (x.TryGetInt64(out _) || Math.Floor(x.GetDouble()) == x.GetDouble()),
        _ => throw new InvalidOperationException($"unknown JSON type '{type}'"),
    };

    private static string Kind(JsonElement x) => x.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    private static string Show(JsonElement x)
    {
        string raw = x.GetRawText();
        return raw.Length <= 40 ? raw : raw[..40] + "…";
    }

    private static int CodePoints(string s)
    {
        int surrogatePairs = 0;
        for (int i = 0; i + 1 < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && char.IsLowSurrogate(s[i + 1]))
            {
                surrogatePairs++;
                i++;
            }
        }

        return s.Length - surrogatePairs;
    }
}
