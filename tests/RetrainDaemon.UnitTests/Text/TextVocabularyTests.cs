using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;
using RetrainDaemon.Core.Text;
using RetrainDaemon.Data.Datasets;
using RetrainDaemon.Data.Preprocessing;

namespace RetrainDaemon.UnitTests.Text;

/// <summary>
/// The compact vocabulary against the real Debian corpora (fortunes, German gettext catalogs) and
/// hand-picked hard strings.
/// </summary>
public class TextVocabularyTests
{
    /// <summary>
    /// The corpora, read once. The shared vocabulary is built from every other fortune and every fourth
    /// German pair only, so the rest of the corpus needs byte fallback for its unseen tokens.
    /// </summary>
    private static class Corpus
    {
        private static readonly Lazy<IReadOnlyList<string>> RawFortunesLazy = new(() => Fortunes.Read().Select(f => f.Text).ToList());
        private static readonly Lazy<IReadOnlyList<TranslationPair>> GermanLazy = new(() => GettextCatalog.ReadLanguage("de").ToList());
        private static readonly Lazy<TextVocabulary> PartialLazy = new(() => TextVocabulary.Build(
            NormalizedFortunes.Where((_, i) => i % 2 == 0)
                .Concat(German.Where((_, i) => i % 4 == 0).SelectMany(p => new[] { p.Source, p.Target }).Select(TextNormalizer.Normalize))));

        private static readonly Lazy<IReadOnlyList<string>> NormalizedLazy = new(() => RawFortunes.Select(TextNormalizer.Normalize).ToList());

        public static IReadOnlyList<string> RawFortunes => RawFortunesLazy.Value;

        public static IReadOnlyList<string> NormalizedFortunes => NormalizedLazy.Value;

        public static IReadOnlyList<TranslationPair> German => GermanLazy.Value;

        /// <summary>Default size and minCount, built from part of the corpus.</summary>
        public static TextVocabulary Partial => PartialLazy.Value;
    }

    private static readonly string[] SmallCorpus = ["hello world", "the quick brown fox", "hello there, world"];

    [Fact]
    public void EveryFortune_RoundTrips_AndTheHeldOutHalfUsesByteFallback()
    {
        var vocabulary = Corpus.Partial;
        Assert.Equal(8192, vocabulary.Count); // the corpus has far more than 8192 tokens seen twice

        // Every GPT-2 token of the corpus is in this one, so its encoding is GPT-2's own.
        var complete = TextVocabulary.Build(Corpus.NormalizedFortunes, maxSize: int.MaxValue, minCount: 1);
        int heldOutWithFallback = 0;
        var failures = new List<string>();
        for (int i = 0; i < Corpus.NormalizedFortunes.Count; i++)
        {
            foreach (string text in new[] { Corpus.NormalizedFortunes[i], Corpus.RawFortunes[i] })
            {
                int[] ids = vocabulary.Encode(text);
                AssertOrdinaryIds(vocabulary, ids);
                if (vocabulary.Decode(ids) != text)
                {
                    failures.Add($"fortune {i}: {text[..Math.Min(60, text.Length)]}");
                }
            }

            if (i % 2 == 1 && vocabulary.Encode(Corpus.NormalizedFortunes[i]).Length > complete.Encode(Corpus.NormalizedFortunes[i]).Length)
            {
                heldOutWithFallback++;
            }
        }

        Assert.Empty(failures);
        Assert.True(heldOutWithFallback > 1000, $"only {heldOutWithFallback} held-out fortunes needed byte fallback");
    }

    [Fact]
    public void EveryGermanPair_RoundTrips_SourceAndTarget()
    {
        var vocabulary = Corpus.Partial;
        Assert.True(Corpus.German.Count > 10_000, $"only {Corpus.German.Count} German pairs");
        var failures = new List<string>();
        foreach (var pair in Corpus.German)
        {
            foreach (string text in new[] { pair.Source, pair.Target, TextNormalizer.Normalize(pair.Source), TextNormalizer.Normalize(pair.Target) })
            {
                int[] ids = vocabulary.Encode(text);
                AssertOrdinaryIds(vocabulary, ids);
                if (vocabulary.Decode(ids) != text)
                {
                    failures.Add($"{pair.Catalog}#{pair.Index}: {text[..Math.Min(60, text.Length)]}");
                }
            }
        }

        Assert.Empty(failures);
    }

    [Fact]
    public void CompleteVocabulary_TokenizesExactlyLikeTheLibrarysGpt2()
    {
        // Checks the pre-tokenizer pattern and the table this class loads against the library's own
        // "gpt2" tokenizer. (Fortunes do not contain GPT-2's special token, the one intended difference.)
        var texts = Corpus.NormalizedFortunes.Take(4000).ToList();
        Assert.DoesNotContain(texts, t => t.Contains("<|endoftext|>", StringComparison.Ordinal));
        var complete = TextVocabulary.Build(texts, maxSize: int.MaxValue, minCount: 1);
        int[] gpt2IdOf = Gpt2IdsOf(complete);
        var library = TiktokenTokenizer.CreateForModel("gpt2");
        foreach (string text in texts)
        {
            var expected = library.EncodeToIds(text);
            var actual = complete.Encode(text).Select(id => gpt2IdOf[id]).ToArray();
            Assert.Equal(expected, actual);
        }
    }

    public static TheoryData<string> UnusualTexts => new()
    {
        "grinning 😀 face",
        "👩‍👩‍👧 family joined by ZWJ",
        "汉字とカタカナのテスト",
        "e\u0301 and a\u0308: combining marks",
        "שלום עולם",
        "\t",
        "\n",
        "\u200D",
        "\u0000",
        "<|endoftext|>",
        "before<|endoftext|>after <|endoftext|>",
        "<pad><bos><sep><eos>",
        "   spaces   ",
        "\U0001D49C\U0001D4B7 mathematical letters outside the BMP",
    };

    [Theory]
    [MemberData(nameof(UnusualTexts))]
    public void UnusualText_RoundTrips_ThroughByteFallback(string text)
    {
        // With no learned tokens, every id must be exactly one byte of the UTF-8 text.
        var byteOnly = TextVocabulary.Build([]);
        byte[] utf8 = Encoding.UTF8.GetBytes(text);
        int[] ids = byteOnly.Encode(text);
        Assert.Equal(utf8.Select(b => TextVocabulary.FirstByteToken + b), ids);
        Assert.Equal(text, byteOnly.Decode(ids));

        // With learned tokens from a corpus that never saw these characters: still no specials, still exact.
        foreach (var vocabulary in new[] { TextVocabulary.Build(SmallCorpus, minCount: 1), Corpus.Partial })
        {
            int[] encoded = vocabulary.Encode(text);
            AssertOrdinaryIds(vocabulary, encoded);
            Assert.Equal(text, vocabulary.Decode(encoded));
        }
    }

    [Fact]
    public void GptSpecialTokenText_IsNeverASingleToken()
    {
        // The literal is ordinary text here; GPT-2's special id would be outside the table anyway.
        int[] ids = Corpus.Partial.Encode("<|endoftext|>");
        Assert.True(ids.Length > 1, $"'<|endoftext|>' encoded as {ids.Length} id(s)");
        Assert.Equal("<|endoftext|>", Corpus.Partial.Decode(ids));
    }

    [Fact]
    public void UnpairedSurrogates_AreEncodedAsOneReplacementCharacterEach()
    {
        // A table in the body: xunit's theory-data serialization would mangle lone surrogates itself.
        (string Text, string Expected)[] cases =
        [
            ("a\uD800b", "a\uFFFDb"),
            ("\uDC00 low first", "\uFFFD low first"),
            ("high last \uD83D", "high last \uFFFD"),
            ("\uD83D\uD83D\uDE00 then a pair", "\uFFFD\U0001F600 then a pair"),
        ];
        foreach (var (text, expected) in cases)
        {
            // The same single U+FFFD that Encoding.UTF8 gives (the library alone would emit three).
            Assert.Equal(expected, Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text)));
            foreach (var vocabulary in new[] { TextVocabulary.Build([]), Corpus.Partial })
            {
                Assert.Equal(expected, vocabulary.Decode(vocabulary.Encode(text)));
            }
        }
    }

    [Fact]
    public void EmptyCorpus_GivesTheSpecialsAndTheByteTokens()
    {
        var vocabulary = TextVocabulary.Build([]);
        Assert.Equal(260, vocabulary.Count);
        Assert.Equal(TextVocabulary.FirstMergedToken, vocabulary.Count);
        for (int id = 0; id < TextVocabulary.SpecialCount; id++)
        {
            Assert.True(vocabulary.TokenBytes(id).IsEmpty);
            Assert.True(TextVocabulary.IsSpecial(id));
        }

        for (int b = 0; b < 256; b++)
        {
            Assert.Equal(new[] { (byte)b }, vocabulary.TokenBytes(TextVocabulary.FirstByteToken + b).ToArray());
            Assert.False(TextVocabulary.IsSpecial(TextVocabulary.FirstByteToken + b));
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => vocabulary.TokenBytes(260).Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => vocabulary.TokenBytes(-1).Length);
        Assert.Equal(256, JsonNode.Parse(vocabulary.ToJson())!["ids"]!.AsArray().Count);
        Assert.Equal("hello", vocabulary.Decode(vocabulary.Encode("hello")));
    }

    // GPT-2 ids: " the" 262, " dog" 3290, " cat" 3797; counts below: cat 3, the 2, dog 2, bird 1.
    public static TheoryData<int, int, string[]> BuildCases => new()
    {
        { 8192, 2, [" cat", " the", " dog"] }, // " the" before " dog": equal counts, lower GPT-2 id first
        { 8192, 1, [" cat", " the", " dog", " bird"] },
        { 262, 1, [" cat", " the"] }, // maxSize counts every id, specials and bytes included
        { 260, 1, [] },
        { 8192, 3, [" cat"] },
        { 8192, 4, [] },
    };

    [Theory]
    [MemberData(nameof(BuildCases))]
    public void Build_KeepsFrequentTokens_MostFrequentFirst(int maxSize, int minCount, string[] expected)
    {
        string[] corpus = [" cat", " cat", " the", " cat", " dog", " the", " dog", " bird"];
        var vocabulary = TextVocabulary.Build(corpus, maxSize, minCount);
        var learned = Enumerable.Range(TextVocabulary.FirstMergedToken, vocabulary.Count - TextVocabulary.FirstMergedToken)
            .Select(id => Encoding.UTF8.GetString(vocabulary.TokenBytes(id)))
            .ToArray();
        Assert.Equal(expected, learned);
        foreach (string word in expected)
        {
            Assert.Single(vocabulary.Encode(word)); // a learned token encodes as itself
        }
    }

    [Fact]
    public void Build_RefusesBadArguments()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => TextVocabulary.Build([], maxSize: 259));
        Assert.Throws<ArgumentOutOfRangeException>(() => TextVocabulary.Build([], minCount: 0));
        Assert.Throws<ArgumentNullException>(() => TextVocabulary.Build(null!));
        Assert.Throws<ArgumentException>(() => TextVocabulary.Build(["ok", null!]));
    }

    public static TheoryData<byte[]> InvalidUtf8 => new()
    {
        new byte[] { 0xE2, 0x82 }, // truncated euro sign
        new byte[] { 0xFF },
        new byte[] { 0xC0, 0xAF }, // overlong '/'
        new byte[] { 0xED, 0xA0, 0x80 }, // an encoded surrogate
        new byte[] { 0xF0, 0x9F, 0x98, (byte)'A', 0x80 },
    };

    [Theory]
    [MemberData(nameof(InvalidUtf8))]
    public void Decode_ReplacesInvalidUtf8_AsEncodingUtf8Does(byte[] bytes)
    {
        var vocabulary = TextVocabulary.Build(SmallCorpus);
        int[] ids = bytes.Select(b => TextVocabulary.FirstByteToken + b).ToArray();
        string expected = Encoding.UTF8.GetString(bytes);
        Assert.Contains('\uFFFD', expected);
        Assert.Equal(expected, vocabulary.Decode(ids));
    }

    [Fact]
    public void Decode_SkipsSpecials()
    {
        var vocabulary = TextVocabulary.Build(SmallCorpus, minCount: 1);
        int[] text = vocabulary.Encode("hello world");
        int[] framed = [TextVocabulary.Pad, TextVocabulary.Bos, .. text[..1], TextVocabulary.Sep, .. text[1..], TextVocabulary.Eos, TextVocabulary.Pad];
        Assert.Equal("hello world", vocabulary.Decode(framed));
        Assert.Equal(string.Empty, vocabulary.Decode([TextVocabulary.Bos, TextVocabulary.Eos]));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(260)]
    [InlineData(int.MaxValue)]
    public void Decode_RefusesIdsOutsideTheVocabulary(int id)
    {
        var vocabulary = TextVocabulary.Build([]);
        Assert.Throws<ArgumentOutOfRangeException>(() => vocabulary.Decode([TextVocabulary.FirstByteToken + 'a', id]));
    }

    [Fact]
    public void Json_RoundTrip_GivesIdenticalEncodingsAndHash()
    {
        var original = Corpus.Partial;
        string json = original.ToJson();
        Assert.StartsWith("{\"format\":1,\"base\":\"gpt2\",\"specials\":[\"<pad>\",\"<bos>\",\"<sep>\",\"<eos>\"],\"ids\":[", json, StringComparison.Ordinal);
        var restored = TextVocabulary.FromJson(json);

        Assert.Equal(original.Count, restored.Count);
        Assert.Equal(json, restored.ToJson());
        Assert.Equal(original.Sha256, restored.Sha256);
        Assert.Matches("^[0-9a-f]{64}$", original.Sha256);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(json))), original.Sha256);
        foreach (string text in Corpus.NormalizedFortunes.Take(500).Append("naïve 😀 <|endoftext|>"))
        {
            Assert.Equal(original.Encode(text), restored.Encode(text));
        }

        for (int id = 0; id < original.Count; id++)
        {
            Assert.True(original.TokenBytes(id).SequenceEqual(restored.TokenBytes(id)), $"token {id} differs");
        }

        Assert.NotEqual(original.Sha256, TextVocabulary.Build(SmallCorpus).Sha256);
    }

    public static TheoryData<string, string> TamperedJson => new()
    {
        { "missing byte token", "ids[5]: expected" },
        { "too few ids", "the 256 byte tokens are missing" },
        { "swapped byte tokens", "byte 0x00" },
        { "duplicate id", "duplicate GPT-2 id" },
        { "unknown base", "unknown base tokenizer \"gpt3\"" },
        { "wrong format", "format: expected 1, got 2" },
        { "missing format", "format: missing" },
        { "id out of range", "50257 is out of range" },
        { "negative id", "-1 is out of range" },
        { "GPT-2's special id", "50256 is out of range" },
        { "fractional id", "1.5 is not an integer" },
        { "bad specials", "specials: expected" },
        { "specials reordered", "specials: expected" },
        { "unknown property", "unknown property 'extra'" },
        { "repeated property", "property 'format' appears more than once" },
        { "missing ids", "ids: missing" },
        { "ids not an array", "ids: expected an array" },
        { "not an object", "root must be an object" },
        { "not json", "not valid JSON" },
    };

    [Theory]
    [MemberData(nameof(TamperedJson))]
    public void FromJson_RefusesTamperedVocabulary_NamingTheProblem(string tampering, string expectedInMessage)
    {
        string json = Tamper(TextVocabulary.Build(SmallCorpus, minCount: 1).ToJson(), tampering);
        var error = Assert.Throws<InvalidDataException>(() => TextVocabulary.FromJson(json));
        Assert.Contains(expectedInMessage, error.Message, StringComparison.Ordinal);
    }

    private static string Tamper(string json, string tampering)
    {
        var root = JsonNode.Parse(json)!.AsObject();
        var ids = root["ids"]!.AsArray();
        switch (tampering)
        {
            case "missing byte token": ids.RemoveAt(5); break;
            case "too few ids":
                while (ids.Count > 100)
                {
                    ids.RemoveAt(ids.Count - 1);
                }

                break;
            case "swapped byte tokens":
                int first = (int)ids[0]!, second = (int)ids[1]!;
                ids[0] = second;
                ids[1] = first;
                break;
            case "duplicate id": ids.Add((int)ids[^1]!); break;
            case "unknown base": root["base"] = "gpt3"; break;
            case "wrong format": root["format"] = 2; break;
            case "missing format": root.Remove("format"); break;
            case "id out of range": ids.Add(50257); break;
            case "negative id": ids.Add(-1); break;
            case "GPT-2's special id": ids.Add(50256); break; // <|endoftext|> is not a token of the table
            case "fractional id": ids.Add(1.5); break;
            case "bad specials": root["specials"]![2] = "<unk>"; break;
            case "specials reordered": root["specials"] = new JsonArray("<bos>", "<pad>", "<sep>", "<eos>"); break;
            case "unknown property": root["extra"] = true; break;
            case "ids not an array": root["ids"] = "1,2,3"; break;
            case "repeated property": return json.Replace("{\"format\":1,", "{\"format\":1,\"format\":1,", StringComparison.Ordinal);
            case "missing ids": root.Remove("ids"); break;
            case "not an object": return "[1,2,3]";
            case "not json": return json[..^3];
            default: throw new ArgumentException(tampering);
        }

        return root.ToJsonString();
    }

    public static TheoryData<string> StreamedTexts => new()
    {
        "Grüße aus Köln — 5 €",
        "😀👍🏽 漢字 ﷺ",
        "plain ASCII only",
        "Übergrößenträger",
    };

    [Theory]
    [MemberData(nameof(StreamedTexts))]
    public void Utf8TokenStream_EqualsDecode_TokenByToken(string text)
    {
        foreach (var vocabulary in new[] { TextVocabulary.Build([]), TextVocabulary.Build(SmallCorpus, minCount: 1), Corpus.Partial })
        {
            int[] ids = [TextVocabulary.Bos, .. vocabulary.Encode(text), TextVocabulary.Eos];
            var stream = new Utf8TokenStream(vocabulary);
            var pieces = ids.Select(stream.Push).Append(stream.Flush()).ToList();
            Assert.Equal(vocabulary.Decode(ids), string.Concat(pieces));
            Assert.Equal(text, string.Concat(pieces));
            Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD', StringComparison.Ordinal)); // no half character ever escaped
        }
    }

    [Fact]
    public void Utf8TokenStream_HoldsBackAnIncompleteCharacter()
    {
        var vocabulary = TextVocabulary.Build([]);
        var stream = new Utf8TokenStream(vocabulary);
        int[] euro = vocabulary.Encode("€"); // three byte tokens
        Assert.Equal(3, euro.Length);
        Assert.Equal(string.Empty, stream.Push(euro[0]));
        Assert.Equal(string.Empty, stream.Push(TextVocabulary.Sep)); // a special in between adds no bytes
        Assert.Equal(string.Empty, stream.Push(euro[1]));
        Assert.Equal("€", stream.Push(euro[2]));
        Assert.Equal(string.Empty, stream.Flush());

        // A stream that ends inside a character: the flush releases it as U+FFFD, as Decode would.
        Assert.Equal(string.Empty, stream.Push(euro[0]));
        Assert.Equal("\uFFFD", stream.Flush());
    }

    [Fact]
    public void Utf8TokenStream_EqualsDecode_OnRandomBytes()
    {
        // Random byte tokens are mostly invalid UTF-8: the replacement must match Decode exactly.
        var vocabulary = TextVocabulary.Build([]);
        var random = new Random(20_240_611);
        for (int round = 0; round < 500; round++)
        {
            int[] ids = Enumerable.Range(0, random.Next(1, 40))
                .Select(_ => random.Next(8) == 0 ? random.Next(TextVocabulary.SpecialCount) : TextVocabulary.FirstByteToken + PickByte(random))
                .ToArray();
            var stream = new Utf8TokenStream(vocabulary);
            string streamed = string.Concat(ids.Select(stream.Push)) + stream.Flush();
            Assert.Equal(vocabulary.Decode(ids), streamed);
        }
    }

    [Fact]
    public void EncodeAndDecode_AreThreadSafe()
    {
        var vocabulary = Corpus.Partial;
        var texts = Corpus.NormalizedFortunes.Take(3000).ToArray();
        var sequential = texts.Select(vocabulary.Encode).ToArray();
        var parallel = new int[texts.Length][];
        var decoded = new string[texts.Length];
        Parallel.For(0, texts.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            parallel[i] = vocabulary.Encode(texts[i]);
            decoded[i] = vocabulary.Decode(parallel[i]);
        });
        for (int i = 0; i < texts.Length; i++)
        {
            Assert.Equal(sequential[i], parallel[i]);
            Assert.Equal(texts[i], decoded[i]);
        }
    }

    // Biased toward UTF-8 lead and continuation bytes so that valid, truncated and overlong sequences all occur.
    private static int PickByte(Random random) => random.Next(4) switch
    {
        0 => random.Next(0x80),
        1 => 0x80 + random.Next(0x40),
        2 => 0xC0 + random.Next(0x40),
        _ => random.Next(256),
    };

    private static void AssertOrdinaryIds(TextVocabulary vocabulary, int[] ids)
    {
        foreach (int id in ids)
        {
            Assert.InRange(id, TextVocabulary.FirstByteToken, vocabulary.Count - 1);
        }
    }

    private static int[] Gpt2IdsOf(TextVocabulary vocabulary)
    {
        var ids = JsonNode.Parse(vocabulary.ToJson())!["ids"]!.AsArray().Select(n => (int)n!).ToArray();
        return [-1, -1, -1, -1, .. ids];
    }
}
