using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Imaging;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Serving.Generation;
using RetrainDaemon.Serving.Http;
using RetrainDaemon.Serving.Observability;

namespace RetrainDaemon.UnitTests.Serving;

/// <summary>
/// The dynamic batcher against a fake generator: merging, the batch-size bound, batching off, the
/// bounded queue, the version a batch runs on, cancellation, and per-request validation.
/// </summary>
public sealed class GenerationBatcherTests : IAsyncDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private readonly FakeBackend backend = new();
    private GenerationBatcher? batcher;

    public async ValueTask DisposeAsync()
    {
        backend.Release();
        if (batcher is not null)
        {
            await batcher.DisposeAsync();
        }
    }

    private GenerationBatcher Batcher(int maxBatch = 64, int capacity = 256, bool batching = true, double delayMs = 20)
    {
        batcher = new GenerationBatcher(backend, Options.Create(new ServingOptions
        {
            MaxBatchSize = maxBatch,
            QueueCapacity = capacity,
            Batching = batching,
            MaxQueueDelay = TimeSpan.FromMilliseconds(delayMs),
        }), new ServingMetrics(), NullLogger<GenerationBatcher>.Instance);
        return batcher;
    }

    private static GenerationRequest Request(int count = 1, long seed = 1, int? cls = null) => new("gen", count, cls, seed, null);

    /// <summary>Starts a first request and waits until its run is blocked in the fake, so the following requests queue up behind it.</summary>
    private async Task<Task<GenerationResult>> Occupy(GenerationBatcher b)
    {
        backend.Hold();
        var first = b.GenerateAsync(Request(seed: 100), CancellationToken.None);
        Assert.True(await backend.Running.WaitAsync(Wait));
        return first;
    }

    [Fact]
    public async Task Concurrent_requests_are_merged_into_one_run()
    {
        var b = Batcher();
        var first = await Occupy(b);

        var queued = Enumerable.Range(1, 5).Select(i => b.GenerateAsync(Request(count: i, seed: i), CancellationToken.None)).ToList();
        backend.Release();
        var results = await Task.WhenAll(queued).WaitAsync(Wait);
        await first.WaitAsync(Wait);

        Assert.Equal([1, 15], backend.Batches.ToArray());
        Assert.All(results, r => Assert.Equal(15, r.BatchSamples));
        // Each request gets its own samples: the fake copies every sample's first latent into its pixels.
        for (int i = 0; i < results.Length; i++)
        {
            var r = results[i];
            var z = new float[r.Count * FakeBackend.Latent];
            LatentSampler.Sample(i + 1, r.Count, FakeBackend.Latent, null, null, null, z, default);
            for (int s = 0; s < r.Count; s++)
            {
                Assert.Equal(z[s * FakeBackend.Latent], r.Output.Values[(r.Offset + s) * FakeBackend.Pixels]);
            }
        }
    }

    [Fact]
    public async Task A_batch_never_exceeds_the_batch_size_and_requests_are_never_split()
    {
        var b = Batcher(maxBatch: 4);
        var first = await Occupy(b);

        var queued = new[] { 3, 2, 2, 1, 4 }.Select(n => b.GenerateAsync(Request(count: n), CancellationToken.None)).ToList();
        backend.Release();
        await Task.WhenAll(queued).WaitAsync(Wait);
        await first.WaitAsync(Wait);

        Assert.Equal([1, 3, 4, 1, 4], backend.Batches.ToArray());
    }

    [Fact]
    public async Task A_request_larger_than_the_batch_size_runs_alone()
    {
        var b = Batcher(maxBatch: 4);

        var result = await b.GenerateAsync(Request(count: 9), CancellationToken.None).WaitAsync(Wait);

        Assert.Equal(9, result.BatchSamples);
        Assert.Equal([9], backend.Batches.ToArray());
    }

    [Fact]
    public async Task With_batching_off_every_request_runs_alone()
    {
        var b = Batcher(batching: false);
        var first = await Occupy(b);

        var queued = Enumerable.Range(0, 4).Select(_ => b.GenerateAsync(Request(count: 2), CancellationToken.None)).ToList();
        backend.Release();
        await Task.WhenAll(queued).WaitAsync(Wait);
        await first.WaitAsync(Wait);

        Assert.Equal([1, 2, 2, 2, 2], backend.Batches.ToArray());
    }

    [Fact]
    public async Task A_full_queue_refuses_at_once_with_429()
    {
        var b = Batcher(capacity: 2);
        var first = await Occupy(b);
        var queued = new[] { b.GenerateAsync(Request(), CancellationToken.None), b.GenerateAsync(Request(), CancellationToken.None) };

        // Synchronously: a full queue answers at once, it does not wait.
        var refused = Assert.Throws<ServingException>(() => { _ = b.GenerateAsync(Request(), CancellationToken.None); });

        Assert.Equal(429, refused.Status);
        Assert.Equal(FailureReasons.QueueFull, refused.Reason);
        Assert.Equal(2, b.Waiting("gen"));
        backend.Release();
        await Task.WhenAll(queued).WaitAsync(Wait);
        await first.WaitAsync(Wait);
    }

    [Fact]
    public async Task A_batch_is_answered_by_the_version_current_when_it_started()
    {
        var b = Batcher();
        var first = await Occupy(b);
        backend.Version = 2; // a swap while v1 runs
        var second = b.GenerateAsync(Request(), CancellationToken.None);

        backend.Release();

        Assert.Equal(1, (await first.WaitAsync(Wait)).Spec.Version);
        Assert.Equal(2, (await second.WaitAsync(Wait)).Spec.Version);
        Assert.Equal(0, backend.OpenLeases);
    }

    [Fact]
    public async Task A_request_cancelled_while_queued_is_dropped_from_its_batch()
    {
        var b = Batcher();
        var first = await Occupy(b);
        using var cancel = new CancellationTokenSource();
        var gone = b.GenerateAsync(Request(count: 5), cancel.Token);
        var kept = b.GenerateAsync(Request(count: 2), CancellationToken.None);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => gone);
        backend.Release();
        await kept.WaitAsync(Wait);
        await first.WaitAsync(Wait);

        Assert.Equal([1, 2], backend.Batches.ToArray());
    }

    [Fact]
    public async Task The_run_is_terminated_only_when_every_request_of_its_batch_has_gone()
    {
        // Two requests fill a batch of two at once; the run then waits until it is terminated.
        var b = Batcher(maxBatch: 2, delayMs: 1000);
        backend.HoldUntilCancelled = true;
        backend.Hold();
        using var cancelA = new CancellationTokenSource();
        using var cancelC = new CancellationTokenSource();
        var a = b.GenerateAsync(Request(), cancelA.Token);
        var c = b.GenerateAsync(Request(), cancelC.Token);
        Assert.True(await backend.Running.WaitAsync(Wait));
        Assert.Equal([2], backend.Batches.ToArray());

        await cancelA.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => a);
        Assert.False(backend.RunCancelled);

        await cancelC.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => c);
        Assert.True(await backend.Terminated.WaitAsync(Wait));
        Assert.True(backend.RunCancelled);

        // The worker carries on with the next request.
        backend.HoldUntilCancelled = false;
        backend.Release();
        await b.GenerateAsync(Request(), CancellationToken.None).WaitAsync(Wait);
        Assert.Equal(0, backend.OpenLeases);
    }

    [Fact]
    public async Task Not_ready_is_a_503_with_the_reason()
    {
        backend.Failure = ServingException.NotReady("v4 is warming up");
        var b = Batcher();

        var refused = await Assert.ThrowsAsync<ServingException>(() => b.GenerateAsync(Request(), CancellationToken.None).WaitAsync(Wait));

        Assert.Equal(503, refused.Status);
        Assert.Equal("v4 is warming up", refused.Message);
    }

    [Fact]
    public async Task A_class_the_version_cannot_take_fails_only_its_own_request()
    {
        backend.Conditional = true;
        backend.Classes = 10;
        var b = Batcher();
        var first = await Occupy(b);
        var bad = b.GenerateAsync(Request(cls: 12), CancellationToken.None);
        var good = b.GenerateAsync(Request(count: 3, cls: 4), CancellationToken.None);
        backend.Release();

        var refused = await Assert.ThrowsAsync<ServingException>(() => bad.WaitAsync(Wait));
        var result = await good.WaitAsync(Wait);
        await first.WaitAsync(Wait);

        Assert.Equal(400, refused.Status);
        Assert.Equal(1, refused.Version);
        Assert.Contains("class 12 is out of range for model 'gen' v1: expected 0..9", refused.Message, StringComparison.Ordinal);
        Assert.Equal([4L, 4L, 4L], result.Labels ?? []);
        Assert.Equal([1, 3], backend.Batches.ToArray());
    }

    [Fact]
    public async Task A_failing_run_fails_every_request_of_the_batch()
    {
        var b = Batcher(maxBatch: 2, delayMs: 1000);
        backend.RunFailure = new ServingException(500, FailureReasons.Internal, "bad output", 1);

        var x = b.GenerateAsync(Request(), CancellationToken.None);
        var y = b.GenerateAsync(Request(), CancellationToken.None);

        Assert.Equal(500, (await Assert.ThrowsAsync<ServingException>(() => x.WaitAsync(Wait))).Status);
        Assert.Equal(500, (await Assert.ThrowsAsync<ServingException>(() => y.WaitAsync(Wait))).Status);
        Assert.Equal([2], backend.Batches.ToArray());
        Assert.Equal(0, backend.OpenLeases);
    }

    [Fact]
    public async Task Disposing_answers_queued_requests_with_503()
    {
        var b = Batcher();
        var first = await Occupy(b);
        var queued = b.GenerateAsync(Request(), CancellationToken.None);

        var disposing = b.DisposeAsync().AsTask();
        backend.Release();
        await disposing.WaitAsync(Wait);

        Assert.Equal(503, (await Assert.ThrowsAsync<ServingException>(() => queued.WaitAsync(Wait))).Status);
        Assert.Equal(1, (await first.WaitAsync(Wait)).Spec.Version); // the run in progress finished
        Assert.Equal(503, Assert.Throws<ServingException>(() => { _ = b.GenerateAsync(Request(), CancellationToken.None); }).Status);
    }

    public static TheoryData<bool, int?, int?, string?> ClassCases() => new()
    {
        { false, null, null, null },
        { false, 2, null, "is not class-conditioned" },
        { true, 3, 10, null },
        { true, 10, 10, "expected 0..9" },
        { true, -1, 10, "expected 0..9" },
        { true, null, 10, null },
        { true, 1000, null, null },
        { true, -1, null, "expected a non-negative class" },
        { true, null, null, "records no class count" },
    };

    [Theory]
    [MemberData(nameof(ClassCases))]
    public void Classes_are_validated_against_the_serving_version(bool conditional, int? cls, int? classes, string? problem)
    {
        var spec = new GeneratorSpec("gen", 1, "CPUExecutionProvider", 8, conditional, classes, GeneratorRange.Tanh);

        string? actual = GenerationBatcher.Validate(spec, Request(cls: cls));

        if (problem is null)
        {
            Assert.Null(actual);
        }
        else
        {
            Assert.Contains(problem, actual, StringComparison.Ordinal);
        }
    }

    /// <summary>A generator whose "image" is the sample's first latent in every pixel; runs can be held to build up a queue.</summary>
    private sealed class FakeBackend : IGeneratorBackend
    {
        public const int Latent = 8;
        public const int Pixels = 4; // 1×2×2

        private readonly ManualResetEventSlim gate = new(true);
        private int openLeases;

        public ConcurrentQueue<int> Batches { get; } = new();

        public SemaphoreSlim Running { get; } = new(0);

        public SemaphoreSlim Terminated { get; } = new(0);

        public int Version { get; set; } = 1;

        public bool Conditional { get; set; }

        public int? Classes { get; set; }

        public ServingException? Failure { get; set; }

        public ServingException? RunFailure { get; set; }

        public bool HoldUntilCancelled { get; set; }

        public bool RunCancelled { get; private set; }

        public int OpenLeases => Volatile.Read(ref openLeases);

        public void Hold() => gate.Reset();

        public void Release() => gate.Set();

        public bool TryLease(string model, [NotNullWhen(true)] out IGeneratorLease? lease, [NotNullWhen(false)] out ServingException? failure)
        {
            if (Failure is not null)
            {
                (lease, failure) = (null, Failure);
                return false;
            }

            Interlocked.Increment(ref openLeases);
            lease = new Lease(this, new GeneratorSpec(model, Version, "CPUExecutionProvider", Latent, Conditional, Classes, GeneratorRange.Tanh));
            failure = null;
            return true;
        }

        private sealed class Lease(FakeBackend owner, GeneratorSpec spec) : IGeneratorLease
        {
            public GeneratorSpec Spec => spec;

            public GeneratorOutput Run(float[] latents, long[]? labels, int batch, CancellationToken cancellationToken)
            {
                owner.Batches.Enqueue(batch);
                owner.Running.Release();
                if (owner.HoldUntilCancelled)
                {
                    try
                    {
                        owner.gate.Wait(cancellationToken);
                    }
                    catch (OperationCanceledException)
                    {
                        owner.RunCancelled = true;
                        owner.Terminated.Release();
                        throw;
                    }
                }
                else
                {
                    owner.gate.Wait(Wait);
                }

                if (owner.RunFailure is { } failure)
                {
                    throw failure;
                }

                Assert.Equal(batch * Latent, latents.Length);
                Assert.Equal(spec.Conditional, labels is not null);
                var values = new float[batch * Pixels];
                for (int i = 0; i < batch; i++)
                {
                    Array.Fill(values, latents[i * Latent], i * Pixels, Pixels);
                }

                return new GeneratorOutput(values, batch, 1, 2, 2);
            }

            public void Dispose() => Interlocked.Decrement(ref owner.openLeases);
        }
    }
}
