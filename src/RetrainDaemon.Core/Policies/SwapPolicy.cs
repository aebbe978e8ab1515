namespace RetrainDaemon.Core.Policies;

/// <summary>What the server knows about one model when the registry may have changed.</summary>
/// <param name="Serving">The version serving now (verified, loaded, warmed), if any.</param>
/// <param name="Loading">A version whose load is in progress, if any.</param>
/// <param name="Target">The version the <c>champion</c> alias names now, if it could be read.</param>
/// <param name="TargetProblem">Why the target cannot be served (alias unreadable, verification failed), if so.</param>
/// <param name="FailedIdentities">Identities (version + manifest hash) whose load or warm-up already failed: not retried until they change.</param>
/// <param name="TargetIdentity">The target's identity (version + manifest hash) when it verified.</param>
public sealed record SwapSituation(int? Serving, int? Loading, int? Target, string? TargetProblem, IReadOnlySet<string> FailedIdentities, string? TargetIdentity);

public enum SwapActionKind
{
    /// <summary>Nothing to do: the target serves already, or is being loaded.</summary>
    Keep,

    /// <summary>Verify, load and warm up the target, then swap it in.</summary>
    Load,

    /// <summary>The target cannot be served; whatever serves keeps serving and the reason is reported.</summary>
    Refuse,
}

/// <summary>The decision, with the reason shown in model metadata and logs.</summary>
public sealed record SwapAction(SwapActionKind Kind, int? Version, string Reason);

/// <summary>
/// The hot-swap decision (pure; table-tested). Invariants: a serving version is never unloaded
/// without a verified, warmed replacement (a missing alias or a broken target leaves it serving);
/// a version that failed is never served and not retried until its manifest changes; any target
/// different from the serving one — higher or lower (a rollback) — is loaded.
/// </summary>
public static class SwapPolicy
{
    public static SwapAction Decide(SwapSituation situation)
    {
        ArgumentNullException.ThrowIfNull(situation);
        if (situation.TargetProblem is { } problem)
        {
            return new SwapAction(SwapActionKind.Refuse, situation.Target,
                situation.Serving is int s ? $"{problem}; v{s} keeps serving" : $"{problem}; nothing to serve");
        }

        if (situation.Target is not int target)
        {
            return new SwapAction(SwapActionKind.Keep, situation.Serving,
                situation.Serving is int s ? $"no champion in the registry; v{s} keeps serving" : "no champion in the registry yet");
        }

        if (situation.Serving == target)
        {
            return new SwapAction(SwapActionKind.Keep, target, $"v{target} is serving");
        }

        if (situation.Loading == target)
        {
            return new SwapAction(SwapActionKind.Keep, target, $"v{target} is being loaded");
        }

        if (situation.TargetIdentity is { } identity && situation.FailedIdentities.Contains(identity))
        {
            return new SwapAction(SwapActionKind.Refuse, target,
                situation.Serving is int s ? $"v{target} failed to load before; v{s} keeps serving" : $"v{target} failed to load before; nothing to serve");
        }

        return new SwapAction(SwapActionKind.Load, target, situation.Serving is int current ? $"champion moved from v{current} to v{target}" : $"first load of v{target}");
    }
}
