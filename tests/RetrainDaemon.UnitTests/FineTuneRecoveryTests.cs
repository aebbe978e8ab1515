using RetrainDaemon.Data.Store;


namespace RetrainDaemon.UnitTests;

public class FineTuneRecoveryTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 28, 5, 0, 0, TimeSpan.Zero);

    /// <summary>"id:status:attempts:startedMinutes" newest first, e.g. "b:running:1:10 a:promoted:1:0".</summary>
    private static List<RunRecord> Runs(string spec) => spec.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(r =>
    {
        var p = r.Split(':');
        return new RunRecord(p[0], "m", RunKinds.FineTune, p[1], "t", T0.AddMinutes(int.Parse(p[3], System.Globalization.CultureInfo.InvariantCulture)), null,
            null, null, null, null, null, null, int.Parse(p[2], System.Globalization.CultureInfo.InvariantCulture), []);
    }).ToList();

    [Theory]
    // An ordinary firing starts a run whatever the ledger holds (the trigger policy does not fire while one runs).
    [InlineData(null, false, null, "", "StartNew", null)]
    [InlineData(null, false, null, "a:promoted:1:0", "StartNew", null)]
    // A firing that names a run: resume it while it is open and has attempts left; skip it once it finished.
    [InlineData("b", false, null, "b:running:1:10 a:promoted:1:0", "Resume", "b")]
    [InlineData("b", false, null, "b:running:2:10", "Resume", "b")]
    [InlineData("b", false, null, "b:running:3:10", "CloseFailed", "b")]
    [InlineData("b", false, null, "b:promoted:2:10", "Skip", "b")]
    [InlineData("x", false, null, "b:running:1:10", "Resume", "x")]
    // A recovery firing (a node died, or a shutdown handed the firing back): the open run, whichever it is.
    [InlineData(null, true, 10, "b:running:1:10 a:promoted:1:0", "Resume", "b")]
    [InlineData(null, true, 10, "b:running:3:10", "CloseFailed", "b")]
    // ... no open run but one started after the firing: it finished before Quartz heard; nothing left to do.
    [InlineData(null, true, 10, "b:rejected:1:10 a:promoted:1:0", "Skip", "b")]
    // ... no run since the firing: the node died before recording one; the firing's work is still to do.
    [InlineData(null, true, 20, "b:rejected:1:10", "StartNew", null)]
    [InlineData(null, true, 20, "", "StartNew", null)]
    [InlineData(null, true, null, "b:rejected:1:10", "StartNew", null)]
    public void Decide(string? resume, bool recovering, int? firedMinutes, string runs, string action, string? runId)
    {
        var plan = FineTuneRecovery.Decide(resume, recovering, firedMinutes is int m ? T0.AddMinutes(m) : null, Runs(runs), maxAttempts: 3);
        Assert.Equal(action, plan.Action.ToString());
        Assert.Equal(runId, plan.RunId);
        Assert.False(string.IsNullOrWhiteSpace(plan.Reason));
    }
}
