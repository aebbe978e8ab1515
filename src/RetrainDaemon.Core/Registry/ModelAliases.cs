namespace RetrainDaemon.Core.Registry;

/// <summary>The alias names of <c>aliases.json</c>.</summary>
public static class AliasNames
{
    /// <summary>The version that is served.</summary>
    public const string Champion = "champion";

    /// <summary>The champion before the current one: where <see cref="ModelRegistry.Rollback"/> goes.</summary>
    public const string Previous = "previous";

    /// <summary>An optional passed version under evaluation (shadow or canary); never served as the champion by itself.</summary>
    public const string Challenger = "challenger";
}

/// <summary>The kinds of alias change that the history records.</summary>
public static class AliasActions
{
    public const string Promote = "promote";
    public const string Rollback = "rollback";
    public const string SetChallenger = "set-challenger";
    public const string ClearChallenger = "clear-challenger";
}

/// <summary>One recorded alias change: when, what, from which version to which, and the operator's or pipeline's reason.</summary>
public sealed record AliasChange(DateTimeOffset At, string Action, string Alias, int? From, int? To, string Reason);

/// <summary>
/// <c>aliases.json</c>: which versions the names point to, and the recent history of changes.
/// Replaced atomically as a whole (temp + fsync + rename + fsync of the folder) under the model's
/// lock, so a reader sees either the old document or the new one.
/// </summary>
public sealed record ModelAliases
{
    /// <summary>How many changes the history keeps; older ones are dropped.</summary>
    public const int HistoryLimit = 100;

    public int Format { get; init; } = 1;

    public int? Champion { get; init; }

    public int? Previous { get; init; }

    public int? Challenger { get; init; }

    public DateTimeOffset? UpdatedAt { get; init; }

    /// <summary>Newest last.</summary>
    public IReadOnlyList<AliasChange> History { get; init; } = [];

    /// <summary>The version an alias names, or null (also for unknown alias names).</summary>
    public int? Get(string alias) => alias switch
    {
        AliasNames.Champion => Champion,
        AliasNames.Previous => Previous,
        AliasNames.Challenger => Challenger,
        _ => null,
    };

    /// <summary>The aliases that name <paramref name="version"/>, e.g. <c>["champion"]</c>.</summary>
    public IReadOnlyList<string> AliasesOf(int version)
    {
        var names = new List<string>(3);
        if (Champion == version)
        {
            names.Add(AliasNames.Champion);
        }

        if (Previous == version)
        {
            names.Add(AliasNames.Previous);
        }

        if (Challenger == version)
        {
            names.Add(AliasNames.Challenger);
        }

        return names;
    }

    internal ModelAliases With(AliasChange change, int? champion, int? previous, int? challenger)
    {
        var history = History.Skip(Math.Max(0, History.Count - (HistoryLimit - 1))).Append(change).ToList();
        return this with { Champion = champion, Previous = previous, Challenger = challenger, UpdatedAt = change.At, History = history };
    }
}

/// <summary><c>versions.json</c>: the last version number handed out, so that no number is ever given twice.</summary>
internal sealed record VersionCounter(int Format, int LastVersion);
