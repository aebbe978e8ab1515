using System.Text;

namespace RetrainDaemon.Serving.Generation.Text;

/// <summary>
/// Why a generation ended (<c>finish_reason</c>):
/// <list type="bullet">
/// <item><see cref="Eos"/>: the model produced its end-of-sequence token (not part of the text);</item>
/// <item><see cref="Stop"/>: the text reached one of the request's stop sequences (cut before it);</item>
/// <item><see cref="Length"/>: <c>max_new_tokens</c> tokens were generated;</item>
/// <item><see cref="Context"/>: the sequence filled the model's context — every position the graph has
/// was fed, so no further token can be computed.</item>
/// </list>
/// </summary>
internal static class TextFinish
{
    public const string Eos = "eos";
    public const string Stop = "stop";
    public const string Length = "length";
    public const string Context = "context";

    /// <summary>
    /// Whether the generation ends after a token, and why. First match wins: the model's end
    /// (<paramref name="eos"/>), then a stop sequence, then the request's budget, then the context.
    /// <paramref name="sequenceLength"/> counts the prompt's tokens (BOS/SEP included) and the
    /// generated ones; the newest token still has to be fed at position <c>sequenceLength − 1</c>, so
    /// a sequence longer than <paramref name="context"/> can go no further.
    /// </summary>
    public static string? Decide(bool eos, bool stopped, int generated, int maxNewTokens, int sequenceLength, int context) =>
        eos ? Eos
        : stopped ? Stop
        : generated >= maxNewTokens ? Length
        : sequenceLength > context ? Context
        : null;
}

/// <summary>Where the earliest stop sequence starts in a text, and how much of it can be released without risking one.</summary>
/// <param name="Match">Index of the earliest complete stop sequence, or -1.</param>
/// <param name="Safe">Without a match: the text before this index can never become part of a stop sequence; the rest is held back.</param>
internal readonly record struct StopScan(int Match, int Safe);

/// <summary>Stop sequences as pure functions of the text.</summary>
internal static class StopSequences
{
    /// <summary>
    /// Scans <paramref name="text"/> for <paramref name="stops"/>: the earliest complete occurrence
    /// (ordinal) wins; without one, everything is safe except the longest suffix that is the start of
    /// some stop sequence (it may complete with the next token).
    /// </summary>
    public static StopScan Scan(string text, IReadOnlyList<string> stops)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(stops);
        int match = -1;
        int longest = 0;
        foreach (string stop in stops)
        {
            int at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (match < 0 || at < match))
            {
                match = at;
            }

            longest = Math.Max(longest, stop.Length);
        }

        if (match >= 0)
        {
            return new StopScan(match, match);
        }

        // A held-back suffix is shorter than the longest stop (a full one would have matched).
        for (int start = Math.Max(0, text.Length - longest + 1); start < text.Length; start++)
        {
            var suffix = text.AsSpan(start);
            foreach (string stop in stops)
            {
                if (stop.AsSpan().StartsWith(suffix, StringComparison.Ordinal))
                {
                    return new StopScan(-1, start);
                }
            }
        }

        return new StopScan(-1, text.Length);
    }
}

/// <summary>
/// The text of a generation as it grows, with stop sequences applied: <see cref="Append"/> takes each
/// decoded piece and returns what can be shown now — never text that a later token could turn into a
/// stop sequence, and never a stop sequence itself. The concatenation of everything returned
/// (<see cref="Append"/> and <see cref="Finish"/>) is <see cref="Text"/>. Only the held-back tail is
/// ever searched (a stop sequence cannot start in text already released: it was released because no
/// stop sequence could start there), so each token costs O(longest stop). Not thread-safe.
/// </summary>
internal sealed class CompletionText(IReadOnlyList<string> stops)
{
    private readonly StringBuilder released = new();
    private string pending = "";

    /// <summary>True once a stop sequence was reached: <see cref="Text"/> ends before it and nothing more is added.</summary>
    public bool Stopped { get; private set; }

    /// <summary>The text so far: released text plus whatever is held back (after <see cref="Finish"/> or a stop, all of it is released).</summary>
    public string Text => released.ToString() + pending;

    /// <summary>Adds a decoded piece; returns the text that became safe to release (possibly empty).</summary>
    public string Append(string piece)
    {
        ArgumentNullException.ThrowIfNull(piece);
        if (Stopped)
        {
            throw new InvalidOperationException("the text already reached a stop sequence");
        }

        if (stops.Count == 0)
        {
            released.Append(piece);
            return piece;
        }

        pending += piece;
        var scan = StopSequences.Scan(pending, stops);
        if (scan.Match >= 0)
        {
            Stopped = true;
            string before = pending[..scan.Match];
            pending = "";
            released.Append(before);
            return before;
        }

        string safe = pending[..scan.Safe];
        pending = pending[scan.Safe..];
        released.Append(safe);
        return safe;
    }

    /// <summary>
    /// The generation ended without a stop sequence (end token, budget, context): <paramref name="tail"/>
    /// (what the UTF-8 decoder still held) is added, the text is scanned one last time, and everything
    /// left is released.
    /// </summary>
    public string Finish(string tail)
    {
        ArgumentNullException.ThrowIfNull(tail);
        if (Stopped)
        {
            return "";
        }

        string out1 = tail.Length > 0 ? Append(tail) : "";
        if (Stopped)
        {
            return out1;
        }

        string rest = pending;
        pending = "";
        released.Append(rest);
        return out1 + rest;
    }
}
