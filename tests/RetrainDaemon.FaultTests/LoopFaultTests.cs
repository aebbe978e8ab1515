using System.Diagnostics;
using System.Globalization;
using RetrainDaemon.Data.Store;
using RetrainDaemon.Tests.Shared;
using static RetrainDaemon.Tests.Shared.LoopTestSettings;
using Xunit.Abstractions;

namespace RetrainDaemon.FaultTests;

/// <summary>
/// reliability.md section 2, rows Q2–Q5: the Quartz jobs of the continuous loop under downtime, overlap,
/// SIGTERM and failure — the real daemon as a child process, its persistent Quartz store and run ledger in
/// the test directory, real Fashion-MNIST through the real broker, tiny DCGAN budgets.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class LoopFaultTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-loopfault")
{
    private const string Model = LoopTestSettings.Model;
    private const string M = LoopTestSettings.M;

    private static string At(DateTimeOffset t) => t.UtcDateTime.ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture);

    private static string Describe(RunRecord r) =>
        $"{r.RunId} [{r.Trigger}] {At(r.StartedAt)}–{(r.FinishedAt is { } f ? At(f) : "…")} {r.Status} attempts {r.Attempts}: {r.Detail}";

    private void Print(IEnumerable<RunRecord> runs)
    {
        foreach (var run in runs.OrderBy(r => r.StartedAt))
        {
            output.WriteLine("  " + Describe(run));
        }
    }

    /// <summary>
    /// Q2: a 10-second cron with a 2-second misfire threshold; the daemon is stopped (SIGTERM) across three
    /// firings and started again on the same Quartz store and ledger. Exactly one catch-up run starts before
    /// the first slot after the restart (neither none, as "do nothing" would give, nor one per missed slot,
    /// as "ignore misfires" would), then the schedule goes on: one run at each following slot, on time.
    /// The runs are skipped (empty store, with the reason), which keeps every firing a short, countable run.
    /// </summary>
    [Fact]
    public async Task Q2_MisfireAfterDowntime_ExactlyOneCatchUpRun_ThenOnSchedule()
    {
        var interval = TimeSpan.FromSeconds(10);
        var onTime = TimeSpan.FromSeconds(2);
        var settings = Quiet(new Dictionary<string, string>
        {
            [M + "Schedule"] = "0/10 * * * * ?",
            ["Loop:MisfireThreshold"] = "00:00:02",
        });

        DateTimeOffset stoppedAt;
        await using (var first = LoopDaemon.Start(Fixture.Broker, Directory, settings))
        {
            await first.WaitConsumingAsync();
            var before = await first.WaitForFinishedRunAsync(Model, 1, TimeSpan.FromSeconds(40));
            output.WriteLine($"before the stop: {Describe(before)}");
            Assert.Equal("schedule", before.Trigger);
            Assert.Equal(RunStatuses.Skipped, before.Status);
            Assert.Contains("snapshot too small", before.Detail, StringComparison.Ordinal);
            var stop = await first.Daemon.TerminateAsync(TimeSpan.FromSeconds(40));
            stoppedAt = DateTimeOffset.UtcNow;
            output.WriteLine($"SIGTERM -> exit {stop.TotalSeconds:0.00} s (exit code {first.Daemon.ExitCode})");
            Assert.Equal(0, first.Daemon.ExitCode);
        }

        // Down across three slots; back 3 s after the third, so the next regular slot is 7 s away and a
        // catch-up run, if any, has to come before it. Not sooner: the last missed slot must be later than
        // the misfire threshold (2 s), and a cron trigger created afresh at start (one that lost its missed
        // firings) fires a slot up to 1 s before its start time — neither may pass for a catch-up.
        var firstMissed = LoopFaultProbe.SlotAtOrAfter(stoppedAt, interval);
        var lastMissed = firstMissed + 2 * interval;
        var wake = lastMissed + TimeSpan.FromSeconds(3);
        await Task.Delay(wake - DateTimeOffset.UtcNow);

        var restartedAt = DateTimeOffset.UtcNow;
        var nextSlot = LoopFaultProbe.SlotAtOrAfter(restartedAt, interval);
        await using var second = LoopDaemon.Start(Fixture.Broker, Directory, settings);
        await second.WaitConsumingAsync();
        var readyAfter = DateTimeOffset.UtcNow - restartedAt;

        // Two regular slots after the catch-up window: the runs they start must have finished.
        var end = nextSlot + interval;
        await LoopFaultProbe.PollAsync(
            async () => (await second.RunsAsync(Model)).FirstOrDefault(r => r.StartedAt >= end && r.Status != RunStatuses.Running),
            TimeSpan.FromSeconds(60), () => $"no run at or after {At(end)} finished\n{second.Tail()}");

        var runs = (await second.RunsAsync(Model)).OrderBy(r => r.StartedAt).ToList();
        output.WriteLine($"stopped {At(stoppedAt)}; missed slots {At(firstMissed)}, {At(firstMissed + interval)}, {At(lastMissed)}; restarted {At(restartedAt)} (ready after {readyAfter.TotalSeconds:0.0} s); next slot {At(nextSlot)}");
        Print(runs);
        Assert.All(runs, r => Assert.Equal("schedule", r.Trigger));
        Assert.All(runs, r => Assert.Equal(RunStatuses.Skipped, r.Status));

        var whileDown = runs.Where(r => r.StartedAt > stoppedAt && r.StartedAt < restartedAt).ToList();
        Assert.Empty(whileDown);

        var catchUp = runs.Where(r => r.StartedAt >= restartedAt && r.StartedAt < nextSlot).ToList();
        Assert.True(catchUp.Count == 1,
            $"runs started in the catch-up window [{At(restartedAt)}, {At(nextSlot)}): {catchUp.Count} (expected exactly 1; daemon ready after {readyAfter.TotalSeconds:0.0} s)");
        var catchUpRun = catchUp[0];
        output.WriteLine($"catch-up run: {catchUp.Count} in the window; started {(catchUpRun.StartedAt - restartedAt).TotalSeconds:0.00} s after the restart, "
            + $"{(catchUpRun.StartedAt - lastMissed).TotalSeconds:0.00} s after the last missed slot, {(catchUpRun.StartedAt - firstMissed).TotalSeconds:0.00} s after the first");

        // Then on schedule: exactly one run per slot, each within a moment of its slot.
        foreach (var slot in new[] { nextSlot, nextSlot + interval })
        {
            var inSlot = runs.Where(r => r.StartedAt >= slot && r.StartedAt < slot + interval).ToList();
            Assert.True(inSlot.Count == 1, $"runs started in the slot of {At(slot)}: {inSlot.Count} (expected 1)");
            var late = inSlot[0].StartedAt - slot;
            output.WriteLine($"slot {At(slot)}: run started {late.TotalMilliseconds:0} ms after it");
            Assert.True(late < onTime, $"the run of slot {At(slot)} started {late} after it");
        }
    }

    /// <summary>
    /// Q3: a 5-second cron while each run trains for longer than that. The ledger's runs of the model never
    /// overlap; the firings that fell inside a run are printed, and what became of them (one catch-up run
    /// right after, by the fire-once misfire policy).
    /// </summary>
    [Fact]
    public async Task Q3_FiringWhileARunTrains_NoOverlappingRuns()
    {
        await LoopFaultProbe.PrefillAsync(Fixture, StorePath, 0, 2000);
        var interval = TimeSpan.FromSeconds(5);
        var settings = Quiet(new Dictionary<string, string>
        {
            [M + "Schedule"] = "0/5 * * * * ?",
            ["Loop:MisfireThreshold"] = "00:00:02",
            // ~8 s of training on an idle 2-core box: a firing or two fall inside every run.
            [M + "Training:Steps"] = "1000",
            // No tiny generator reaches an FID of 1: every run is rejected, so none becomes a champion and
            // every firing trains from scratch on the whole snapshot again (none is skipped for lack of data).
            [M + "Gate:Checks:0:Metric"] = "fid",
            [M + "Gate:Checks:0:Max"] = "1",
        });

        await using var daemon = LoopDaemon.Start(Fixture.Broker, Directory, settings);
        await daemon.WaitConsumingAsync();
        await daemon.WaitForFinishedRunAsync(Model, 2, TimeSpan.FromSeconds(150));
        var now = DateTimeOffset.UtcNow;
        var runs = (await daemon.RunsAsync(Model)).OrderBy(r => r.StartedAt).ToList();
        Print(runs);

        int maxConcurrent = LoopFaultProbe.MaxConcurrent(runs, now);
        var finished = runs.Where(r => r.Status != RunStatuses.Running).ToList();
        Assert.All(finished, r => Assert.Equal(RunStatuses.Rejected, r.Status));
        Assert.All(runs, r => Assert.Equal("schedule", r.Trigger));

        int firingsInsideRuns = 0, queued = 0;
        for (int i = 0; i < runs.Count; i++)
        {
            var run = runs[i];
            var runEnd = run.FinishedAt ?? now;
            var slots = new List<DateTimeOffset>();
            for (var s = LoopFaultProbe.SlotAtOrAfter(run.StartedAt + TimeSpan.FromTicks(1), interval); s < runEnd; s += interval)
            {
                slots.Add(s);
            }

            firingsInsideRuns += slots.Count;
            // A firing blocked by this run that runs as soon as it ends starts the next run within a moment.
            bool next = i + 1 < runs.Count && runs[i + 1].StartedAt - runEnd < TimeSpan.FromSeconds(2);
            if (slots.Count > 0 && next)
            {
                queued++;
            }

            output.WriteLine($"run {i + 1}: {(runEnd - run.StartedAt).TotalSeconds:0.0} s; {slots.Count} firing(s) fell inside it ({string.Join(", ", slots.Select(At))}); "
                + (i + 1 < runs.Count
                    ? $"the next run started {(runs[i + 1].StartedAt - runEnd).TotalSeconds:0.00} s after it finished{(slots.Count > 0 && next ? $" (the queued firing; {slots.Count - 1} more collapsed into it)" : "")}"
                    : "no next run yet"));
        }

        var slotsInWindow = new List<DateTimeOffset>();
        for (var s = LoopFaultProbe.SlotAtOrAfter(runs[0].StartedAt - TimeSpan.FromSeconds(1), interval); s <= now; s += interval)
        {
            slotsInWindow.Add(s);
        }

        output.WriteLine($"max concurrent runs: {maxConcurrent}; cron slots from the first run to the end: {slotsInWindow.Count}; runs started: {runs.Count}; "
            + $"firings inside a run: {firingsInsideRuns}, of which ran queued after it: {queued}, collapsed (fire once after a misfire): {firingsInsideRuns - queued}");

        Assert.True(firingsInsideRuns >= 1, "no firing fell inside a run: the test did not exercise an overlap");
        Assert.True(runs[0].Duration > interval, $"the first run took {runs[0].Duration}, not longer than the {interval} interval");
        Assert.Equal(1, maxConcurrent);
        // The firings blocked by run 1 collapse into one run right after it (fire-once misfire policy), not a burst.
        var afterFirst = runs.Skip(1).Where(r => r.StartedAt < runs[0].FinishedAt!.Value + interval).ToList();
        Assert.Single(afterFirst);
    }

    /// <summary>
    /// Q4: SIGTERM while a fine-tune trains. The daemon writes a checkpoint and exits 0 inside the host's
    /// 30-second shutdown budget; the ledger keeps the run "running" with its train stage "interrupted".
    /// The next start resumes the same run (attempt 2, same watermark) from that checkpoint — recomputing at
    /// most one checkpoint interval — and finishes it, with exactly one registry version for the run.
    /// </summary>
    [Fact]
    public async Task Q4_SigtermDuringTraining_CheckpointWritten_ResumedOnRestart()
    {
        const int steps = 1000;
        const int every = 50;
        await LoopFaultProbe.PrefillAsync(Fixture, StorePath, 0, 2000);
        var settings = With(Quiet(new Dictionary<string, string>
        {
            [M + "Triggers:MinNewSamples"] = "1500",
            [M + "Training:Steps"] = steps.ToString(CultureInfo.InvariantCulture),
            [M + "Training:CheckpointEvery"] = every.ToString(CultureInfo.InvariantCulture),
        }), PassableGate);

        RunRecord interrupted;
        long stepAtStop;
        (long Step, DateTimeOffset CreatedAt) lastCheckpoint;
        int rowsFirst;
        TimeSpan stopTime;
        await using (var first = LoopDaemon.Start(Fixture.Broker, Directory, settings))
        {
            // ~30 % of the training: the train stage is open and the checkpoint of step 300 is on disk.
            var training = await LoopFaultProbe.PollAsync(async () =>
            {
                if (first.Daemon.HasExited)
                {
                    throw new InvalidOperationException($"the daemon exited with {first.Daemon.ExitCode}:\n{first.Daemon.Output}");
                }

                var run = (await first.RunsAsync(Model)).FirstOrDefault();
                return run is { Directory: { } dir } && run.Stages.Any(s => s.Stage == "train" && s.FinishedAt is null)
                    && LoopFaultProbe.Checkpoints(dir).Any(c => c.Step >= 6 * every) ? run : null;
            }, TimeSpan.FromSeconds(120), () => $"no run reached a checkpoint at step {6 * every}\n{first.Tail()}");
            output.WriteLine($"training: {training.RunId}, checkpoints {string.Join(", ", LoopFaultProbe.Checkpoints(training.Directory!).Select(c => c.Step))} → SIGTERM");

            stopTime = await first.Daemon.TerminateAsync(TimeSpan.FromSeconds(45));
            var exitedAt = DateTimeOffset.UtcNow;
            Assert.Equal(0, first.Daemon.ExitCode);
            string log = first.Daemon.Output;
            Assert.DoesNotContain("fail:", log, StringComparison.Ordinal);
            Assert.DoesNotContain("crit:", log, StringComparison.Ordinal);

            interrupted = (await first.RunsAsync(Model)).Single();
            var train = interrupted.Stages.Single(s => s.Stage == "train");
            output.WriteLine($"after SIGTERM: {Describe(interrupted)}; train stage {train.Outcome}: {train.Detail}");
            Assert.Equal(RunStatuses.Running, interrupted.Status);
            Assert.Equal(1, interrupted.Attempts);
            Assert.Equal(StageOutcomes.Interrupted, train.Outcome);
            stepAtStop = long.Parse(System.Text.RegularExpressions.Regex.Match(train.Detail!, @"Cancelled after (\d+) steps").Groups[1].Value, CultureInfo.InvariantCulture);

            var checkpoints = LoopFaultProbe.Checkpoints(interrupted.Directory!);
            lastCheckpoint = checkpoints[^1];
            rowsFirst = LoopFaultProbe.LossRows(interrupted.Directory!);
            output.WriteLine($"SIGTERM -> exit {stopTime.TotalSeconds:0.00} s; stopped at step {stepAtStop}/{steps}; newest checkpoint step {lastCheckpoint.Step}, "
                + $"{(exitedAt - lastCheckpoint.CreatedAt).TotalSeconds:0.00} s old at exit; steps lost: {stepAtStop - lastCheckpoint.Step}; loss.csv rows of attempt 1: {rowsFirst}");
            Assert.Equal(stepAtStop, rowsFirst);
            Assert.True(stepAtStop - lastCheckpoint.Step <= every, $"{stepAtStop - lastCheckpoint.Step} steps would be lost");
            Assert.True(stepAtStop < steps, "training finished before the SIGTERM");
        }

        Assert.True(stopTime < TimeSpan.FromSeconds(30), $"SIGTERM -> exit took {stopTime} (budget 30 s)");

        var restartedAt = DateTimeOffset.UtcNow;
        var restart = Stopwatch.StartNew();
        await using var second = LoopDaemon.Start(Fixture.Broker, Directory, settings);
        await LoopFaultProbe.PollAsync(async () => (await second.RunsAsync(Model)).FirstOrDefault(r => r.Attempts == 2 && r.Stages.Any(s => s is { Attempt: 2, Stage: "train" })),
            TimeSpan.FromSeconds(60), () => $"the run was not resumed\n{second.Tail()}", TimeSpan.FromMilliseconds(100));
        var resumeLatency = restart.Elapsed;
        var done = await second.WaitForFinishedRunAsync(Model, 1, TimeSpan.FromSeconds(150));
        var all = await second.RunsAsync(Model);
        Print(all);
        foreach (var stage in done.Stages)
        {
            output.WriteLine($"  attempt {stage.Attempt} {stage.Stage} {stage.Outcome} {stage.Duration?.TotalSeconds:0.0}s: {stage.Detail}");
        }

        int rowsSecond = LoopFaultProbe.LossRows(done.Directory!);
        long resumedFrom = steps - rowsSecond;
        long recomputed = stepAtStop - resumedFrom;
        output.WriteLine($"restart -> resumed train stage: {resumeLatency.TotalSeconds:0.0} s; attempt 2 trained steps {resumedFrom + 1}..{steps} ({rowsSecond} rows); "
            + $"resumed from step {resumedFrom} (newest checkpoint at exit: {lastCheckpoint.Step}); steps recomputed: {recomputed} (checkpoint interval {every})");

        Assert.Single(all);
        Assert.Equal(interrupted.RunId, done.RunId);
        Assert.Equal(2, done.Attempts);
        Assert.Equal(interrupted.Watermark, done.Watermark);
        Assert.Equal(interrupted.PreviousWatermark, done.PreviousWatermark);
        Assert.Contains(done.Status, new[] { RunStatuses.Promoted, RunStatuses.Rejected });
        Assert.True(done.StartedAt < restartedAt);
        var train2 = done.Stages.Single(s => s is { Attempt: 2, Stage: "train" });
        Assert.Equal(StageOutcomes.Ok, train2.Outcome);
        Assert.Contains($"Completed after {steps} steps", train2.Detail, StringComparison.Ordinal);
        Assert.Equal(lastCheckpoint.Step, resumedFrom);
        Assert.InRange(recomputed, 0, every);

        var versions = second.Registry.List(Model).Versions.Where(v => v.Manifest?.RunId == done.RunId).ToList();
        Assert.Single(versions);
        Assert.Equal(done.Version, versions[0].Version);
    }

    /// <summary>
    /// Q5: a run fails for a real reason — a regular file where the run directory must be created. The
    /// ledger says failed with the reason, the registry holds nothing, the failed-run counter is 1. The
    /// file goes; the next firing of the schedule trains, passes the gate and is promoted.
    /// </summary>
    [Fact]
    public async Task Q5_ExceptionInsideARun_Failed_NothingPromoted_NextFiringRunsNormally()
    {
        await LoopFaultProbe.PrefillAsync(Fixture, StorePath, 0, 2000);
        string blocker = Path.Combine(Directory, "runs-is-a-file");
        await File.WriteAllTextAsync(blocker, "not a directory");
        var settings = With(Quiet(new Dictionary<string, string>
        {
            [M + "Schedule"] = "0/10 * * * * ?",
            ["Loop:MisfireThreshold"] = "00:00:02",
            ["Loop:RunsDirectory"] = blocker,
            [M + "Training:Steps"] = "150",
            [M + "Training:BatchSize"] = "64",
        }), PassableGate);

        await using var daemon = LoopDaemon.Start(Fixture.Broker, Directory, settings);
        await daemon.WaitConsumingAsync();
        var failed = await daemon.WaitForFinishedRunAsync(Model, 1, TimeSpan.FromSeconds(40));
        output.WriteLine($"first firing: {Describe(failed)}");
        Assert.Equal(RunStatuses.Failed, failed.Status);
        Assert.Equal("schedule", failed.Trigger);
        Assert.Null(failed.Version);
        Assert.Contains("DirectoryNotFoundException", failed.Detail, StringComparison.Ordinal);
        Assert.Contains(blocker, failed.Detail, StringComparison.Ordinal);
        Assert.Empty(daemon.Registry.List(Model).Versions);
        double failedCount = await daemon.Daemon.MetricAsync("retrain_finetune_runs_total", $"model=\"{Model}\"", "status=\"failed\"");
        output.WriteLine($"retrain_finetune_runs_total{{status=\"failed\"}} = {failedCount}");
        Assert.Equal(1, failedCount);

        File.Delete(blocker);
        var removedAt = DateTimeOffset.UtcNow;

        var next = await LoopFaultProbe.PollAsync(async () =>
        {
            if (daemon.Daemon.HasExited)
            {
                throw new InvalidOperationException($"the daemon exited with {daemon.Daemon.ExitCode}:\n{daemon.Daemon.Output}");
            }

            return (await daemon.RunsAsync(Model)).Where(r => r.StartedAt > failed.StartedAt).OrderBy(r => r.StartedAt).FirstOrDefault() is { Status: not RunStatuses.Running } run ? run : null;
        }, TimeSpan.FromSeconds(150), () => $"no run after the failed one finished\n{daemon.Tail()}", TimeSpan.FromMilliseconds(500));
        Print(await daemon.RunsAsync(Model));
        foreach (var stage in next.Stages)
        {
            output.WriteLine($"  {stage.Stage} {stage.Outcome} {stage.Duration?.TotalSeconds:0.0}s: {stage.Detail}");
        }

        output.WriteLine($"cause removed {At(removedAt)}; the next firing started {(next.StartedAt - removedAt).TotalSeconds:0.0} s later and ended {next.Status} v{next.Version}");
        Assert.True(next.StartedAt > removedAt, "a run started before the cause was removed");
        Assert.Equal("schedule", next.Trigger);
        Assert.Equal(RunStatuses.Promoted, next.Status);
        Assert.Equal(1, next.Version);
        Assert.Equal(["snapshot", "train", "export", "evaluate", "publish", "announce"], next.Stages.Select(s => s.Stage).ToArray());
        Assert.All(next.Stages, s => Assert.Equal(StageOutcomes.Ok, s.Outcome));
        Assert.Equal(next.RunId, daemon.Registry.Verify(Model, 1).Manifest.RunId);
        Assert.Single(daemon.Registry.List(Model).Versions);
        Assert.Equal(1, await daemon.Daemon.MetricAsync("retrain_finetune_runs_total", $"model=\"{Model}\"", "status=\"failed\""));
        Assert.Equal(1, await daemon.Daemon.MetricAsync("retrain_finetune_runs_total", $"model=\"{Model}\"", "status=\"promoted\""));
    }

    /// <summary>
    /// Q5, the NaN variant: an absurd learning rate (SGD at 9.9, the largest the configuration admits) drives
    /// the loss to NaN; the run fails at its train stage with the reason, nothing reaches the registry.
    /// </summary>
    [Fact]
    public async Task Q5_NonFiniteLoss_RunFailed_NothingPromoted()
    {
        await LoopFaultProbe.PrefillAsync(Fixture, StorePath, 0, 2000);
        var settings = With(Quiet(new Dictionary<string, string>
        {
            [M + "Triggers:MinNewSamples"] = "1500",
            [M + "Training:Steps"] = "200",
            [M + "Training:Optimizer"] = "sgd",
            [M + "Training:LearningRate"] = "9.9",
        }), PassableGate);

        await using var daemon = LoopDaemon.Start(Fixture.Broker, Directory, settings);
        var failed = await daemon.WaitForFinishedRunAsync(Model, 1, TimeSpan.FromSeconds(90));
        var train = failed.Stages.Single(s => s.Stage == "train");
        output.WriteLine($"{Describe(failed)}; train stage {train.Outcome}: {train.Detail}");
        Assert.Equal(RunStatuses.Failed, failed.Status);
        Assert.Null(failed.Version);
        Assert.Equal(StageOutcomes.Failed, train.Outcome);
        Assert.Contains("NonFiniteLoss after", train.Detail, StringComparison.Ordinal);
        Assert.Matches(@"loss is (NaN|-?∞|-?Infinity)", train.Detail);
        Assert.DoesNotContain(failed.Stages, s => s.Stage is "export" or "evaluate" or "publish");
        Assert.Empty(daemon.Registry.List(Model).Versions);
        double failedCount = await daemon.Daemon.MetricAsync("retrain_finetune_runs_total", $"model=\"{Model}\"", "status=\"failed\"");
        output.WriteLine($"retrain_finetune_runs_total{{status=\"failed\"}} = {failedCount}");
        Assert.Equal(1, failedCount);
    }
}
