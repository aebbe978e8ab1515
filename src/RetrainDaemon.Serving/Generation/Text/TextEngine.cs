using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Serving.Http;
using RetrainDaemon.Serving.Observability;
using RetrainDaemon.Serving.Runtime;

namespace RetrainDaemon.Serving.Generation.Text;

/// <summary>
/// Continuous batching for one loaded text version. Requests wait in a bounded queue
/// (<see cref="ServingOptions.QueueCapacity"/>; 429 beyond); a decode loop on a thread of its own
/// repeats:
/// <list type="number">
/// <item>admit waiting requests while fewer than <see cref="ServingOptions.MaxBatchSize"/> sequences
/// are active: each is prefilled alone (batch 1, zero-length past) and samples its first token;</item>
/// <item>drop sequences whose request was cancelled (client gone, timeout) or that finished;</item>
/// <item>one decode step for every active sequence: sequences with the same attention length
/// (<see cref="DecodeLayout"/>) share one ONNX Runtime run with batch = their count, each feeding its
/// last token; each samples its next token with its own seeded sampler.</item>
/// </list>
/// New requests therefore join between steps, after their prefill, and leave as soon as they end. A
/// prefill runs on the loop too, so it delays the active sequences' next step by its own duration
/// (milliseconds for these models); cancellation is looked at between runs, never inside one.
/// <para>
/// Reproducibility: a sequence's prefill runs alone, and its decode rows get the same bits whatever
/// shares the run (<see cref="DecodeLayout"/>); its sampler is its own. So the same request with the
/// same seed on the same version gives the same text, alone or among others — on ONNX Runtime's CPU
/// provider, where that was measured; a version warms up with a check of it (<see cref="TextWarmup"/>).
/// </para>
/// One loop per version: a step's run already uses the intra-op threads, and rows of different versions
/// cannot share a run. The loop's thread ends after <see cref="IdleExit"/> without work and is started
/// again by the next request. Every sequence holds its version's lease, so the session is alive
/// whenever the loop runs it. Thread-safe.
/// </summary>
internal sealed partial class TextEngine : IDisposable
{
    /// <summary>How long an idle loop waits for work before its thread ends.</summary>
    internal static readonly TimeSpan IdleExit = TimeSpan.FromSeconds(5);

    private readonly TextModel model;
    private readonly GptRunner runner;
    private readonly ServingOptions options;
    private readonly ServingMetrics metrics;
    private readonly ILogger logger;
    private readonly Lock gate = new();
    private readonly Queue<TextSequence> waiting = new();
    private readonly ManualResetEventSlim wake = new(false);
    private readonly List<TextSequence> active = []; // the loop's own
    private float[] logits = [];
    private bool running;
    private bool disposed;
    private long decodeRuns;
    private long decodeRows;
    private int largestRun;

    public TextEngine(TextModel model, GptRunner runner, ServingOptions options, ServingMetrics metrics, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(runner);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(logger);
        this.model = model;
        this.runner = runner;
        this.options = options;
        this.metrics = metrics;
        this.logger = logger;
    }

    public TextModel Model => model;

    /// <summary>Decode runs so far, rows decoded in them, and the largest run (tests observe batching through these).</summary>
    internal (long Runs, long Rows, int Largest) DecodeStatistics
    {
        get
        {
            lock (gate)
            {
                return (decodeRuns, decodeRows, largestRun);
            }
        }
    }

    /// <summary>
    /// Queues a generation. On success the sequence owns <paramref name="lease"/> (released when the
    /// engine is done with it); on failure the caller keeps it.
    /// </summary>
    /// <exception cref="ServingException">429 when the queue is full; 503 when the version is being unloaded.</exception>
    public TextSequence Start(TextGenerationRequest request, Lease lease, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        lock (gate)
        {
            if (disposed)
            {
                throw ServingException.NotReady($"{model.Name} is being unloaded; retry");
            }

            if (waiting.Count >= options.QueueCapacity)
            {
                throw new ServingException(429, FailureReasons.QueueFull,
                    string.Create(CultureInfo.InvariantCulture, $"the generation queue of {model.Name} is full ({options.QueueCapacity} requests waiting); retry later"), model.Version);
            }

            var sequence = new TextSequence(model, request, lease, request.Stream, cancellationToken, Stopwatch.GetTimestamp());
            waiting.Enqueue(sequence);
            wake.Set();
            if (!running)
            {
                running = true;
                new Thread(Loop) { IsBackground = true, Name = $"decode {model.Model} v{model.VersionLabel}" }.Start();
            }

            return sequence;
        }
    }

    /// <summary>No new requests (the version's last lease is gone); an idle loop ends at once.</summary>
    public void Dispose()
    {
        lock (gate)
        {
            disposed = true;
            wake.Set();
        }
    }

    private void Loop()
    {
        try
        {
            while (true)
            {
                Admit();
                Sweep();
                if (active.Count > 0)
                {
                    Step();
                    continue;
                }

                lock (gate)
                {
                    if (waiting.Count > 0)
                    {
                        continue;
                    }

                    if (disposed)
                    {
                        running = false;
                        return;
                    }

                    wake.Reset(); // under the lock: a Start after this line sets it again
                }

                if (!wake.Wait(IdleExit))
                {
                    lock (gate)
                    {
                        if (waiting.Count == 0)
                        {
                            running = false;
                            return;
                        }
                    }
                }
            }
        }
        catch (Exception ex)
        {
            // A bug must not leave requests hanging: answer every one and let the next request start a new loop.
            LogLoopFailed(logger, ex, model.Model, model.Version);
            List<TextSequence> stranded;
            lock (gate)
            {
                running = false;
                stranded = [.. active, .. waiting];
                waiting.Clear();
            }

            active.Clear();
            var failure = new ServingException(500, FailureReasons.Internal, $"the decode loop of {model.Name} failed; the server's log has the details", model.Version);
            foreach (var sequence in stranded)
            {
                sequence.Fail(failure);
            }
        }
    }

    /// <summary>Prefills waiting requests into free decode slots, oldest first.</summary>
    private void Admit()
    {
        while (active.Count < options.MaxBatchSize)
        {
            TextSequence? next;
            lock (gate)
            {
                if (!waiting.TryDequeue(out next))
                {
                    return;
                }
            }

            if (next.Token.IsCancellationRequested)
            {
                next.Cancel();
                continue;
            }

            Prefill(next);
            if (!next.Done)
            {
                active.Add(next);
            }
        }
    }

    private void Sweep()
    {
        foreach (var sequence in active)
        {
            if (!sequence.Done && sequence.Token.IsCancellationRequested)
            {
                sequence.Cancel();
            }
        }

        active.RemoveAll(s => s.Done);
        metrics.ActiveSequences.WithLabels(model.Model).Set(active.Count);
    }

    private void Prefill(TextSequence sequence)
    {
        var prompt = sequence.Request.PromptTokens;
        // Tokens ever fed: the prompt and every generated token but the last, within the context.
        int capacity = Math.Max(prompt.Length, Math.Min(model.Context, prompt.Length + sequence.Request.MaxNewTokens - 1));
        var cache = new KvCache(model.Shape, capacity);
        int vocabulary = runner.Vocabulary;
        Ensure(vocabulary);
        long start = Stopwatch.GetTimestamp();
        try
        {
            runner.Prefill(prompt, cache, logits.AsSpan(0, vocabulary));
        }
        catch (OnnxRuntimeException ex)
        {
            LogRunFailed(logger, ex, model.Model, model.Version, "prefill", 1);
            sequence.Fail(RunFailure(ex));
            return;
        }

        metrics.ComputeSeconds.WithLabels(model.Model, model.VersionLabel).Observe(Stopwatch.GetElapsedTime(start).TotalSeconds);
        metrics.PromptTokens.WithLabels(model.Model, model.VersionLabel).Inc(prompt.Length);
        sequence.Cache = cache;
        Sample(sequence, logits.AsSpan(0, vocabulary));
    }

    private void Step()
    {
        int vocabulary = runner.Vocabulary;
        // Rows decode at a length that depends on themselves only (DecodeLayout): one run per length.
        foreach (var group in active.GroupBy(s => DecodeLayout.Total(s.Cache!.Length, model.Context)).OrderBy(g => g.Key))
        {
            var sequences = group.ToList();
            var rows = sequences.Select(s => new DecodeRow(s.Cache!, s.NextToken)).ToList();
            Ensure(rows.Count * vocabulary);
            long start = Stopwatch.GetTimestamp();
            try
            {
                runner.Decode(rows, group.Key, logits.AsSpan(0, rows.Count * vocabulary));
            }
            catch (OnnxRuntimeException ex)
            {
                LogRunFailed(logger, ex, model.Model, model.Version, "decode", rows.Count);
                var failure = RunFailure(ex);
                foreach (var sequence in sequences)
                {
                    sequence.Fail(failure);
                }

                continue;
            }

            metrics.ComputeSeconds.WithLabels(model.Model, model.VersionLabel).Observe(Stopwatch.GetElapsedTime(start).TotalSeconds);
            metrics.DecodeBatchSize.WithLabels(model.Model).Observe(rows.Count);
            lock (gate)
            {
                decodeRuns++;
                decodeRows += rows.Count;
                largestRun = Math.Max(largestRun, rows.Count);
            }

            for (int i = 0; i < sequences.Count; i++)
            {
                Sample(sequences[i], logits.AsSpan(i * vocabulary, vocabulary));
            }
        }

        active.RemoveAll(s => s.Done);
    }

    private void Sample(TextSequence sequence, ReadOnlySpan<float> row)
    {
        int token;
        try
        {
            token = sequence.Sampler.Next(row);
        }
        catch (ArgumentException ex)
        {
            // NaN or +∞ logits: the weights are broken; never answer with text drawn from them.
            sequence.Fail(new ServingException(500, FailureReasons.Internal, $"{model.Name} produced unusable logits ({ex.Message}); refused", model.Version));
            return;
        }

        long now = Stopwatch.GetTimestamp();
        var histogram = sequence.Generated == 0 ? metrics.TimeToFirstToken : metrics.TimePerToken;
        histogram.WithLabels(model.Model, model.VersionLabel).Observe(Stopwatch.GetElapsedTime(sequence.Generated == 0 ? sequence.Submitted : sequence.LastTokenAt, now).TotalSeconds);
        sequence.LastTokenAt = now;
        metrics.GeneratedTokens.WithLabels(model.Model, model.VersionLabel).Inc();
        if (sequence.Accept(token) is { } finish)
        {
            sequence.Complete(finish);
        }
    }

    private ServingException RunFailure(OnnxRuntimeException ex) =>
        new(500, FailureReasons.Internal, $"{model.Name} failed to generate: {ex.Message}", model.Version);

    private void Ensure(int length)
    {
        if (logits.Length < length)
        {
            logits = new float[length];
        }
    }

    [LoggerMessage(EventId = 730, Level = LogLevel.Error, Message = "Text {Stage} run of {Model} v{Version} ({Rows} sequences) failed")]
    private static partial void LogRunFailed(ILogger logger, Exception exception, string model, int version, string stage, int rows);

    [LoggerMessage(EventId = 731, Level = LogLevel.Critical, Message = "The decode loop of {Model} v{Version} failed; its sequences were answered with 500")]
    private static partial void LogLoopFailed(ILogger logger, Exception exception, string model, int version);
}
