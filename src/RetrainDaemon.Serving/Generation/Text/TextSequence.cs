using System.Threading.Channels;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Serving.Runtime;

namespace RetrainDaemon.Serving.Generation.Text;

/// <summary>
/// A validated text generation request: the prompt as model tokens (<c>[BOS] prompt</c> for lm models,
/// <c>[BOS] source [SEP]</c> for conditional ones), sampling, the seed (drawn when the client gave
/// none), the token budget, stop sequences, and whether the answer streams.
/// </summary>
internal sealed record TextGenerationRequest(int[] PromptTokens, SamplingOptions Sampling, long Seed, int MaxNewTokens, IReadOnlyList<string> Stops, bool Stream);

/// <summary>Text released by one generated token (<c>event: token</c>): <paramref name="Index"/> is that token's 0-based index among the generated ones.</summary>
internal sealed record TextChunk(string Text, int Index);

/// <summary>How a generation ended: its text (the completion only, without the prompt), why it ended, and token counts.</summary>
/// <param name="CompletionTokens">Tokens the model generated, the end token and the tokens of a stop sequence included.</param>
internal sealed record TextCompletion(string Text, string FinishReason, int PromptTokens, int CompletionTokens);

/// <summary>
/// One generation in a <see cref="TextEngine"/>: the request, its sampler (seeded from the request),
/// its cache, the text built so far, and the channels the HTTP side reads — released chunks (when
/// streaming) and the completion. The sequence owns its version's <see cref="Lease"/> from the moment
/// the engine accepts it and releases it when the engine lets go of it (finished, failed, cancelled),
/// so a retired version's session is never disposed under a running step.
/// Touched by the engine's decode loop only, apart from the channels.
/// </summary>
internal sealed class TextSequence
{
    private readonly TextModel model;
    private readonly bool streaming;
    private Lease lease;
    private int released;

    public TextSequence(TextModel model, TextGenerationRequest request, Lease lease, bool streaming, CancellationToken token, long submitted)
    {
        this.model = model;
        this.lease = lease;
        this.streaming = streaming;
        Request = request;
        Token = token;
        Submitted = submitted;
        // The seed is 0..2^53-1 (validated); the sampler's stream is fixed forever for a seed.
        Sampler = new TokenSampler(request.Sampling, (ulong)request.Seed);
        Decoder = new Utf8TokenStream(model.Vocabulary);
        Text = new CompletionText(request.Stops);
    }

    public TextGenerationRequest Request { get; }

    /// <summary>The request's cancellation (client gone, request timeout): checked by the loop between steps.</summary>
    public CancellationToken Token { get; }

    /// <summary>When the request was accepted (<see cref="System.Diagnostics.Stopwatch"/> ticks).</summary>
    public long Submitted { get; }

    /// <summary>When the previous token was produced (ticks), for the time-per-token histogram.</summary>
    public long LastTokenAt { get; set; }

    public TokenSampler Sampler { get; }

    public Utf8TokenStream Decoder { get; }

    public CompletionText Text { get; }

    /// <summary>Keys and values of the fed tokens; set by the prefill, dropped when done.</summary>
    public KvCache? Cache { get; set; }

    /// <summary>The last sampled token, fed by the next decode step.</summary>
    public int NextToken { get; private set; }

    /// <summary>Tokens generated so far.</summary>
    public int Generated { get; private set; }

    public bool Done => Volatile.Read(ref released) == 1;

    /// <summary>Released text as it comes (streaming requests only); completes with the generation, or with its failure.</summary>
    public Channel<TextChunk> Chunks { get; } = Channel.CreateUnbounded<TextChunk>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    /// <summary>The end of the generation. Continuations run elsewhere: the decode loop never runs request code.</summary>
    public TaskCompletionSource<TextCompletion> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Takes the next sampled token: decodes it, applies the stop sequences, publishes the released
    /// text, and returns why the generation ends here, or null to continue (the token is then fed next).
    /// </summary>
    public string? Accept(int token)
    {
        Generated++;
        bool eos = token == TextVocabulary.Eos;
        string text = eos ? "" : Text.Append(Decoder.Push(token));
        string? finish = TextFinish.Decide(eos, Text.Stopped, Generated, Request.MaxNewTokens, Request.PromptTokens.Length + Generated, model.Context);
        if (finish is not null && !Text.Stopped)
        {
            // What the UTF-8 decoder still holds (an incomplete character becomes U+FFFD) may itself complete a stop sequence.
            text += Text.Finish(Decoder.Flush());
            if (Text.Stopped)
            {
                finish = TextFinish.Stop;
            }
        }

        if (streaming && text.Length > 0)
        {
            Chunks.Writer.TryWrite(new TextChunk(text, Generated - 1));
        }

        NextToken = token;
        return finish;
    }

    public void Complete(string finishReason)
    {
        if (Release())
        {
            Chunks.Writer.TryComplete();
            Completion.TrySetResult(new TextCompletion(Text.Text, finishReason, Request.PromptTokens.Length, Generated));
        }
    }

    public void Fail(Exception failure)
    {
        if (Release())
        {
            Chunks.Writer.TryComplete(failure);
            Completion.TrySetException(failure);
        }
    }

    public void Cancel()
    {
        if (Release())
        {
            var cancelled = new OperationCanceledException("the generation was cancelled", Token);
            Chunks.Writer.TryComplete(cancelled);
            Completion.TrySetCanceled(Token.IsCancellationRequested ? Token : CancellationToken.None);
        }
    }

    /// <summary>Lets go of the cache and the lease, once; true for the first call.</summary>
    private bool Release()
    {
        if (Interlocked.Exchange(ref released, 1) != 0)
        {
            return false;
        }

        Cache = null;
        var held = lease;
        lease = default;
        held.Dispose();
        return true;
    }
}
