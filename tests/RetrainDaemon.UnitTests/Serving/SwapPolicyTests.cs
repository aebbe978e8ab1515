using RetrainDaemon.Core.Policies;

namespace RetrainDaemon.UnitTests.Serving;

/// <summary>
/// The hot-swap decision as a table (TF Serving's availability-preserving policy is tested the same
/// way), then its invariants over every combination of a small state space: a serving version is
/// never given up for a missing or broken target, a failed identity is never loaded again, a
/// rollback (lower number) is a load like any other, a load in progress is not started twice.
/// </summary>
public sealed class SwapPolicyTests
{
    private static readonly HashSet<string> None = new(StringComparer.Ordinal);

    /// <summary>One row: the situation, the expected decision, and a fragment its reason must contain.</summary>
    public sealed record Row(string Name, SwapSituation Situation, SwapActionKind Kind, int? Version, string Reason)
    {
        public override string ToString() => Name;
    }

    private static SwapSituation S(int? serving, int? loading, int? target, string? problem = null, string? identity = null, params string[] failed) =>
        new(serving, loading, target, problem, failed.ToHashSet(StringComparer.Ordinal), identity ?? (target is int t && problem is null ? $"{t}:sha-{t}" : null));

    public static TheoryData<Row> Table() =>
    [
        new("empty registry, nothing serving", S(null, null, null), SwapActionKind.Keep, null, "no champion in the registry yet"),
        new("first champion appears", S(null, null, 1), SwapActionKind.Load, 1, "first load of v1"),
        new("champion serves already", S(2, null, 2), SwapActionKind.Keep, 2, "v2 is serving"),
        new("promotion", S(1, null, 2), SwapActionKind.Load, 2, "champion moved from v1 to v2"),
        new("rollback to a lower version loads it", S(3, null, 2), SwapActionKind.Load, 2, "champion moved from v3 to v2"),
        new("alias removed: the current keeps serving", S(2, null, null), SwapActionKind.Keep, 2, "no champion in the registry; v2 keeps serving"),
        new("broken target: the current keeps serving", S(1, null, 2, problem: "model.onnx does not match its sha256"), SwapActionKind.Refuse, 2, "model.onnx does not match its sha256; v1 keeps serving"),
        new("broken target, nothing serving", S(null, null, 2, problem: "model.onnx is missing"), SwapActionKind.Refuse, 2, "model.onnx is missing; nothing to serve"),
        new("unreadable aliases: the current keeps serving", S(1, null, null, problem: "aliases.json is not readable"), SwapActionKind.Refuse, null, "aliases.json is not readable; v1 keeps serving"),
        new("the serving version's files damaged on disk: it keeps serving from memory", S(2, null, 2, problem: "model.onnx has 10 bytes"), SwapActionKind.Refuse, 2, "model.onnx has 10 bytes; v2 keeps serving"),
        new("target loading already", S(1, 2, 2), SwapActionKind.Keep, 2, "v2 is being loaded"),
        new("target loading, nothing serving", S(null, 2, 2), SwapActionKind.Keep, 2, "v2 is being loaded"),
        new("champion moved again during a load", S(1, 2, 3), SwapActionKind.Load, 3, "champion moved from v1 to v3"),
        new("target failed before: not retried", S(1, null, 2, identity: "2:sha-2", failed: "2:sha-2"), SwapActionKind.Refuse, 2, "v2 failed to load before; v1 keeps serving"),
        new("target failed before, nothing serving", S(null, null, 2, identity: "2:sha-2", failed: "2:sha-2"), SwapActionKind.Refuse, 2, "v2 failed to load before; nothing to serve"),
        new("same number, other manifest: tried again", S(1, null, 2, identity: "2:sha-new", failed: "2:sha-old"), SwapActionKind.Load, 2, "champion moved from v1 to v2"),
        new("a failed rollback target is not retried either", S(3, null, 2, identity: "2:sha-2", failed: "2:sha-2"), SwapActionKind.Refuse, 2, "v2 failed to load before; v3 keeps serving"),
        new("a target problem wins over a remembered failure", S(1, null, 2, problem: "manifest.json was modified", identity: null, failed: "2:sha-2"), SwapActionKind.Refuse, 2, "manifest.json was modified; v1 keeps serving"),
    ];

    [Theory]
    [MemberData(nameof(Table))]
    public void Decide_FollowsTheTable(Row row)
    {
        var action = SwapPolicy.Decide(row.Situation);

        Assert.Equal(row.Kind, action.Kind);
        Assert.Equal(row.Version, action.Version);
        Assert.Contains(row.Reason, action.Reason, StringComparison.Ordinal);
    }

    /// <summary>Every combination of serving, loading and target in {none, 1, 2, 3}, with or without a target problem and a failed target.</summary>
    public static IEnumerable<SwapSituation> StateSpace()
    {
        int?[] versions = [null, 1, 2, 3];
        foreach (var serving in versions)
        {
            foreach (var loading in versions)
            {
                foreach (var target in versions)
                {
                    foreach (var problem in new[] { null, "broken" })
                    {
                        foreach (bool failedBefore in new[] { false, true })
                        {
                            string? identity = target is int t && problem is null ? $"{t}:sha" : null;
                            var failed = failedBefore && identity is not null ? new HashSet<string>(StringComparer.Ordinal) { identity } : None;
                            yield return new SwapSituation(serving, loading, target, problem, failed, identity);
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void Invariants_HoldOverTheWholeStateSpace()
    {
        int checkedStates = 0;
        foreach (var s in StateSpace())
        {
            var action = SwapPolicy.Decide(s);
            string state = $"serving {s.Serving}, loading {s.Loading}, target {s.Target}, problem {s.TargetProblem}, failed [{string.Join(",", s.FailedIdentities)}] → {action}";
            Assert.False(string.IsNullOrWhiteSpace(action.Reason), state);

            // A load is only ever of a verified target that neither serves, nor loads, nor failed before.
            if (action.Kind == SwapActionKind.Load)
            {
                Assert.True(s.Target is not null && s.TargetProblem is null, state);
                Assert.Equal(s.Target, action.Version);
                Assert.NotEqual(s.Serving, s.Target);
                Assert.NotEqual(s.Loading, s.Target);
                Assert.False(s.TargetIdentity is { } id && s.FailedIdentities.Contains(id), state);
            }

            // Never unload the only ready version: a missing alias or a broken target leaves it in place
            // (keep or refuse, both of which change nothing that serves).
            if (s.Serving is not null && (s.Target is null || s.TargetProblem is not null))
            {
                Assert.NotEqual(SwapActionKind.Load, action.Kind);
                if (action.Kind == SwapActionKind.Refuse)
                {
                    Assert.EndsWith($"v{s.Serving} keeps serving", action.Reason, StringComparison.Ordinal);
                }
            }

            // Never serve a failed one.
            if (s.TargetIdentity is { } failedId && s.FailedIdentities.Contains(failedId) && s.Serving != s.Target && s.Loading != s.Target)
            {
                Assert.Equal(SwapActionKind.Refuse, action.Kind);
            }

            // A load in progress for the target is not started again.
            if (s.Loading is not null && s.Loading == s.Target && s.TargetProblem is null)
            {
                Assert.Equal(SwapActionKind.Keep, action.Kind);
            }

            checkedStates++;
        }

        Assert.Equal(4 * 4 * 4 * 2 * 2, checkedStates);
    }

    [Fact]
    public void Decide_RefusesNull() => Assert.Throws<ArgumentNullException>(() => SwapPolicy.Decide(null!));
}
