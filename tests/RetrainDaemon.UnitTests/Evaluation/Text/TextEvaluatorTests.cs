using System.Text.Json;
using RetrainDaemon.Core.Evaluation;
using RetrainDaemon.Evaluation.Text;
using RetrainDaemon.Evaluation.Text.Generation;

namespace RetrainDaemon.UnitTests.Evaluation.Text;

/// <summary>
/// The text evaluator's metric layer, without a model: chrF against sacreBLEU 2.6.0's own numbers, the
/// evaluator's metric values against the metric classes they must come from, and the copy check.
/// </summary>
public class TextEvaluatorTests
{
    private static readonly string[] Hypotheses =
    [
        "Die Datei wurde gespeichert.", "Fenster schließen", "", "Drucken…", "Öffnen Sie die Datei „x“.", "Abbrechen",
    ];

    private static readonly string[] References =
    [
        "Die Datei wurde gespeichert.", "Das Fenster schließen", "Beenden", "Drucken …", "Die Datei „x“ öffnen.", "Abbrechen",
    ];

    [Fact]
    public void Chrf_MatchesSacreBleuOnEveryReferenceCase()
    {
        using var document = JsonDocument.Parse(ChrfReference.Json);
        var inputs = document.RootElement.GetProperty("inputs");
        var failures = new List<string>();
        int count = 0;
        foreach (var c in document.RootElement.GetProperty("cases").EnumerateArray())
        {
            var input = inputs.GetProperty(c.GetProperty("inputs").GetString()!);
            var hypotheses = input.GetProperty("hyps").EnumerateArray().Select(h => h.GetString()!).ToList();
            var references = input.GetProperty("refs").EnumerateArray()
                .Select(segment => (IReadOnlyList<string?>)[.. segment.EnumerateArray().Select(r => r.ValueKind == JsonValueKind.Null ? null : r.GetString())]).ToList();
            var o = c.GetProperty("options");
            var options = new ChrfOptions
            {
                CharOrder = o.TryGetProperty("char_order", out var nc) ? nc.GetInt32() : 6,
                WordOrder = o.TryGetProperty("word_order", out var nw) ? nw.GetInt32() : 0,
                Beta = o.TryGetProperty("beta", out var beta) ? beta.GetInt32() : 2,
                Lowercase = o.TryGetProperty("lowercase", out var lc) && lc.GetBoolean(),
                Whitespace = o.TryGetProperty("whitespace", out var ws) && ws.GetBoolean(),
                EpsSmoothing = o.TryGetProperty("eps_smoothing", out var eps) && eps.GetBoolean(),
            };

            var result = Chrf.Corpus(hypotheses, references, options);
            double expected = c.GetProperty("score").GetDouble();
            long[] stats = [.. c.GetProperty("stats").EnumerateArray().Select(s => s.GetInt64())];
            count++;
            string name = c.GetProperty("name").GetString()!;
            if (Math.Abs(result.Score - expected) > 1e-9 || !result.Statistics.SequenceEqual(stats))
            {
                failures.Add($"{name}: {result.Score:R} [{string.Join(",", result.Statistics)}] vs sacreBLEU {expected:R} [{string.Join(",", stats)}]");
            }

            if (result.Signature != c.GetProperty("signature").GetString() || result.Name != c.GetProperty("scoreName").GetString())
            {
                failures.Add($"{name}: {result.Name} {result.Signature} vs {c.GetProperty("scoreName").GetString()} {c.GetProperty("signature").GetString()}");
            }
        }

        Assert.True(count >= 20, $"only {count} cases");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void Chrf_HandChecked_IdenticalIs100_DisjointIs0_FirstReferenceWinsTies()
    {
        Assert.Equal(100.0, Chrf.Sentence("the cat sat", ["the cat sat"]).Score);
        Assert.Equal(0.0, Chrf.Sentence("xyz", ["abc"]).Score);
        // "abc" vs "abd" / "abe": equal F, so the statistics are those of the first reference.
        var both = Chrf.Sentence("abc", ["abd", "abe"]);
        Assert.Equal(Chrf.Sentence("abc", ["abd"]).Statistics, both.Statistics);
        Assert.Throws<ArgumentException>(() => Chrf.Corpus(["a"], [[null]]));
        Assert.Throws<ArgumentException>(() => Chrf.Corpus(["a", "b"], [["a"]]));
    }

    [Theory]
    // hypotheses | sources | references → share of eligible outputs that are (nearly) their source
    [InlineData(new[] { "Datei öffnen" }, new[] { "Open file" }, new[] { "Datei öffnen" }, 0.0)]
    [InlineData(new[] { "Open file" }, new[] { "Open file" }, new[] { "Datei öffnen" }, 1.0)]
    [InlineData(new[] { " Open   file " }, new[] { "Open file" }, new[] { "Datei öffnen" }, 1.0)]  // whitespace does not hide a copy
    [InlineData(new[] { "Open fle" }, new[] { "Open file" }, new[] { "Datei öffnen" }, 1.0)]        // a garbled echo is still a copy (similarity 8/9)
    [InlineData(new[] { "Open" }, new[] { "Open file" }, new[] { "Datei öffnen" }, 0.0)]            // 4/9 of it is not
    [InlineData(new[] { "%s", "Open file", "Datei" }, new[] { "%s", "Open file", "File" }, new[] { "%s", "Datei öffnen", "Datei" }, 0.5)] // "%s" → "%s" is right: not eligible
    [InlineData(new[] { "%s" }, new[] { "%s" }, new[] { "%s" }, 0.0)]                              // nothing eligible
    public void SourceCopyShare_CountsOutputsThatRepeatTheirSource_WhereTheReferenceDiffers(string[] hypotheses, string[] sources, string[] references, double expected)
    {
        var metric = TextEvaluator.SourceCopyShare(hypotheses, sources, references, "basis");
        Assert.Equal("source_copy_share", metric.Metric);
        Assert.Equal(expected, metric.Value, 12);
        Assert.StartsWith("basis|copy:", metric.Signature, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "", 1.0)]
    [InlineData("abc", "", 0.0)]
    [InlineData("kitten", "sitting", 1 - 3 / 7.0)] // the textbook distance 3
    [InlineData("flaw", "lawn", 0.5)]
    [InlineData("Datei", "Datei", 1.0)]
    public void Similarity_IsOneMinusLevenshteinOverTheLongerLength(string a, string b, double expected)
    {
        Assert.Equal(expected, TextEvaluator.Similarity(a, b), 12);
        Assert.Equal(expected, TextEvaluator.Similarity(b, a), 12);
    }

    [Fact]
    public void TranslationMetrics_AreExactlyWhatBleuChrfAndRougeGiveOnTheSameHypotheses()
    {
        var metrics = TextEvaluator.TranslationMetrics(Hypotheses, References, "basis");
        var referenceLists = References.Select(r => (IReadOnlyList<string?>)[r]).ToList();
        var bleu = Bleu.Corpus(Hypotheses, referenceLists);
        var chrf = Chrf.Corpus(Hypotheses, referenceLists);
        var rouge = new RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"]).Corpus(References, Hypotheses);

        Assert.Equal(bleu.Score, Value(metrics, "bleu"));
        Assert.Equal(chrf.Score, Value(metrics, "chrf"));
        Assert.Equal(rouge["rouge1"].FMeasure, Value(metrics, "rouge1"));
        Assert.Equal(rouge["rouge2"].FMeasure, Value(metrics, "rouge2"));
        Assert.Equal(rouge["rougeL"].FMeasure, Value(metrics, "rougeL"));
        Assert.Equal(rouge["rougeLsum"].FMeasure, Value(metrics, "rougeLsum"));
        Assert.All(metrics, m => Assert.StartsWith("basis|", m.Signature, StringComparison.Ordinal));
        Assert.EndsWith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0", Single(metrics, "bleu").Signature, StringComparison.Ordinal);
        Assert.EndsWith("chrF2:nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0", Single(metrics, "chrf").Signature, StringComparison.Ordinal);
    }

    [Fact]
    public void SampleMetrics_AreExactlyWhatTexygenBleuSelfBleuDistinctAndTheCopyCheckGive()
    {
        string[] holdout = ["The cat sat on the mat.", "A dog barked at the moon tonight.", "Rain falls softly on the roof.", "The cat ran away."];
        string[] samples = ["The cat sat on the roof.", "A dog barked at the cat.", "Rain rain rain.", "", "The cat sat on the mat."];
        var options = new TextEvaluationOptions { TestBleuReferences = 3 };
        var evaluator = new TextEvaluator(options, threads: 2);
        var copies = new CopyDetector(holdout, ngram: 4);
        var metrics = evaluator.SampleMetrics(samples, holdout, copies, "set", "basis", "set-train:4:abc");

        var tokens = samples.Select(s => (IReadOnlyList<string>)TextTokenizers.Tokenize(s, TextTokenizer.Mteval13a)).ToList();
        var pool = holdout.Take(3).Select(s => (IReadOnlyList<string>)TextTokenizers.Tokenize(s, TextTokenizer.Mteval13a)).ToList();
        double testBleu = 0;
        foreach (var sample in tokens)
        {
            testBleu += SelfBleu.SentenceBleu(pool, sample, 3);
        }

        Assert.Equal(testBleu / samples.Length, Value(metrics, "test_bleu"));
        Assert.Equal(SelfBleu.Compute(samples, TextTokenizer.Mteval13a).Score, Value(metrics, "self_bleu"));
        Assert.Equal(DistinctN.Compute(samples, 1, TextTokenizer.Mteval13a).Value, Value(metrics, "distinct_1"));
        Assert.Equal(DistinctN.Compute(samples, 2, TextTokenizer.Mteval13a).Value, Value(metrics, "distinct_2"));
        Assert.Equal(1.0 / samples.Length, Value(metrics, "copy_share")); // only the last sample is a training record
        Assert.Contains("|ngram:3|smooth:method1|tok:13a|version:nltk-3.8", Single(metrics, "test_bleu").Signature, StringComparison.Ordinal);
        Assert.Contains("tok:13a|version:nltk-3.8", Single(metrics, "self_bleu").Signature, StringComparison.Ordinal);
        Assert.Contains("train:set-train:4:abc|copy:tok=13a-lower,n=4,share>=0.9,short=whole-record", Single(metrics, "copy_share").Signature, StringComparison.Ordinal);
        Assert.Equal(["test_bleu", "self_bleu", "distinct_1", "distinct_2", "copy_share"], metrics.Select(m => m.Metric));
    }

    [Fact]
    public void CopyDetector_FindsVerbatimAndNearCopies_AndNotRandomOrStitchedTexts()
    {
        var training = Enumerable.Range(0, 300).Select(i => RandomSentence(new Random(i), 12 + (i % 20))).ToList();
        training.Add("Thank you.");
        var detector = new CopyDetector(training);

        // Copied training texts: every one is a copy (case and spacing do not matter).
        var copied = training.Take(100).Select((t, i) => i % 2 == 0 ? t : "  " + t.ToUpperInvariant() + " ").ToList();
        Assert.Equal(1.0, detector.CopyShare(copied));
        Assert.Equal(1.0, detector.CopyShare(["thank you ."]));

        // A long stretch of one record is a copy; fresh random texts and short phrases inside records are not.
        var stretch = string.Join(' ', training[5].Split(' ').Skip(2).Take(10));
        Assert.Equal(5, detector.Find(stretch)?.TrainingRecord);
        var fresh = Enumerable.Range(1000, 200).Select(i => RandomSentence(new Random(i), 20)).ToList();
        Assert.True(detector.CopyShare(fresh) <= 0.01, $"copy share of random texts {detector.CopyShare(fresh)}");
        Assert.Null(detector.Find(string.Join(' ', training[7].Split(' ').Take(3))));
        Assert.Null(detector.Find(""));

        // Two records stitched half and half reach 0.9 against neither.
        var half = training[10].Split(' ').Take(15).Concat(training[11].Split(' ').Take(15));
        Assert.Null(detector.Find(string.Join(' ', half)));

        // One word in 30 changed: 8 of 23 n-gram positions touch it, so the share is 15/23 < 0.9 — not a copy;
        // one changed word at the very end touches only one n-gram of 23 (share 22/23): a copy.
        var words = training[39].Split(' ');
        Assert.Equal(31, words.Length);
        var middle = (string[])words.Clone();
        middle[15] = "zzzq";
        Assert.Null(detector.Find(string.Join(' ', middle[..30])));
        var end = (string[])words.Clone();
        end[29] = "zzzq";
        var match = detector.Find(string.Join(' ', end[..30]));
        Assert.Equal(39, match?.TrainingRecord);
        Assert.Equal(22.0 / 23, match!.Value.Share, 12);
    }

    [Fact]
    public void DecodingStrategy_ParsesGreedyAndBeam_AndNamesItselfInSignatures()
    {
        Assert.True(DecodingStrategy.TryParse("greedy", out var greedy, out _));
        Assert.Equal(DecodingKind.Greedy, greedy.Kind);
        Assert.Equal("greedy", greedy.Signature);
        Assert.True(DecodingStrategy.TryParse("beam:4", out var beam, out _));
        Assert.Equal(4, beam.BeamWidth);
        Assert.Equal("beam:4,lp:1,stop:k-finished", beam.Signature);
        Assert.False(DecodingStrategy.TryParse("beam:0", out _, out var problem));
        Assert.Contains("beam:k", problem, StringComparison.Ordinal);
        Assert.False(DecodingStrategy.TryParse("nucleus", out _, out _));
        var sample = DecodingStrategy.Sample(new RetrainDaemon.Core.Text.SamplingOptions(0.8, 40, 0.95), 7);
        Assert.Equal("sample:t=0.8,top_k=40,top_p=0.95,seed=7+i", sample.Signature);
    }

    [Fact]
    public void Options_Validator_ListsEveryProblemWithItsKey()
    {
        var options = new TextEvaluationOptions { Decoding = "beam:x", MaxNewTokens = 0, Temperature = 0, CopyMinShare = 1.5, SampleCount = 1 };
        var result = new TextEvaluationOptionsValidator().Validate(null, options);
        Assert.True(result.Failed);
        var text = string.Join("\n", result.Failures);
        foreach (string key in new[] { "Evaluation:Text:Decoding", "Evaluation:Text:MaxNewTokens", "Evaluation:Text:Temperature", "Evaluation:Text:CopyMinShare", "Evaluation:Text:SampleCount" })
        {
            Assert.Contains(key, text, StringComparison.Ordinal);
        }

        Assert.False(new TextEvaluationOptionsValidator().Validate(null, new TextEvaluationOptions()).Failed);
    }

    private static double Value(IReadOnlyList<MetricValue> metrics, string name) => Single(metrics, name).Value;

    private static MetricValue Single(IReadOnlyList<MetricValue> metrics, string name) => Assert.Single(metrics, m => m.Metric == name && m.Slice is null);

    private static string RandomSentence(Random random, int words)
    {
        const string letters = "abcdefghijklmnopqrstuvwxyz";
        return string.Join(' ', Enumerable.Range(0, words).Select(_ => new string([.. Enumerable.Range(0, random.Next(2, 7)).Select(_ => letters[random.Next(letters.Length)])])));
    }

    /// <summary>
    /// chrF reference values computed by sacreBLEU 2.6.0 itself (<c>CHRF(...).corpus_score</c>, from the
    /// v2.6.0 tag of github.com/mjpost/sacrebleu imported through tests/reference/refimpl.py): hand-written
    /// edge cases (empty sides, astral and combining characters, Python whitespace, variable reference
    /// counts, reference ties, lowercasing with İ and Σ, whitespace mode, chrF++ punctuation split, ε
    /// smoothing, β and order) and tests/reference/generate.py's seeded perturbations (seed + 101) of
    /// German gettext strings and fortunes from this machine.
    /// </summary>
    private static class ChrfReference
    {
        public const string Json = """
{"sacrebleu":"2.6.0","inputs":{"identical":{"hyps":["the cat sat on the mat"],"refs":[["the cat sat on the mat"]]},"no-match":{"hyps":["xyz"],"refs":[["abc def"]]},"empty-hyp":{"hyps":[""],"refs":[["Guten Morgen"]]},"empty-ref":{"hyps":["Guten Morgen"],"refs":[[""]]},"both-empty":{"hyps":[""],"refs":[[""]]},"short":{"hyps":["ab","a"],"refs":[["abc"],["a b c"]]},"unicode":{"hyps":["Gr\u00f6\u00dfe \u00e4ndern \u201eZitat\u201c \ud83d\ude00 \ud835\udc00\ud835\udc01 e\u0301","na\u00efve caf\u00e9"],"refs":[["Gr\u00f6sse \u00e4ndern \u00abZitat\u00bb \ud83d\ude00\ud835\udc00 \u00e9"],["naive cafe"]]},"whitespace-kinds":{"hyps":["a\tb\nc\u3000d\u001ce\u00a0f","  lead and trail  "],"refs":[["ab c d e f"],["leadandtrail"]]},"astral-ngrams":{"hyps":["\ud83d\ude00\ud83d\ude00\ud835\udc00x\ud83d\ude00"],"refs":[["\ud83d\ude00\ud835\udc00x\ud83d\ude00\ud83d\ude00","x\ud83d\ude00"]]},"multi-ref-null":{"hyps":["Datei \u00f6ffnen","Speichern unter","Beenden"],"refs":[["Datei \u00f6ffnen","\u00d6ffne Datei"],["Speichern als",null],[null,"Programm beenden"]]},"ref-tie-first-wins":{"hyps":["abc"],"refs":[["abd","abe"]]},"corpus-sum":{"hyps":["the quick brown fox","jumps over","the lazy dog."],"refs":[["a quick brown fox"],["jumped over"],["the lazy dogs"]]},"lowercase":{"hyps":["\u0130stanbul \u03a3\u039f\u03a6\u039f\u03a3 Stra\u00dfe","HELLO World"],"refs":[["istanbul \u03c3\u03bf\u03c6\u03bf\u03c2 strasse"],["hello world"]]},"whitespace-kept":{"hyps":["the cat  sat","a b"],"refs":[["the cat sat"],["ab"]]},"chrf++":{"hyps":["(hi) there, friend!","hello, ,start x","a ( b ) c.","\ud83d\ude00, ok"],"refs":[["hi there friend"],["hello start x"],["a (b) c"],["\ud83d\ude00 , ok"]]},"eps-smoothing":{"hyps":["abc","the cat",""],"refs":[["abd"],["the hat"],["x"]]},"beta1-order3":{"hyps":["Datei speichern","Fenster schlie\u00dfen"],"refs":[["Datei sichern"],["Fenster schliessen"]]},"chrf++-eps":{"hyps":["(hi) there, friend!","x"],"refs":[["hi there friend"],["y z"]]},"german-perturbed":{"hyps":["liegendem aktualisiert Aktualisierung","Legitimation ist zum Festlegen eines Netzwerk-Proxys zum Herunterladen von von Software erforderlich","Signierte Pakete installieren","Systemaktualisierungen! werden bezogen\n","Benutzerkonto ist ist abgelaufen","Um Probleme zu vermeiden, d\u00fcrfen Benutzernamen nicht mit einem Bindestrich, Pluszeichen oder einer beginnen Tilde und d\u00fcrfen keines der folgenden folgenden Zeichen enthalten: Doppelpunkt, Komma, Schr\u00e4gstrich oder eines &amp; x,1 der Leerraumzeichen, einschlie\u00dflich Leerzeichen, Tabulator und Zeilenumbruch.","Suche Dateien zum 12,000 Aktualisierungen \u2026","Fehler beim Zwischenspeichern","Es gab %d fehlgeschlagene Versuche seit der letzten erfolgreichen Anmeldung.","folgende Paket stellt nicht Datei bereit:","Der R\u00fcckgabewert sollte von SIGNATUR ignoriert; werden","Pakete, die diese Datei bereitstellen, sind:","Signatur; nicht wurde","Der Benutzer von \u201eZitat\u201c ist ist kein Mitglied der Gruppe \u00bb%s\u00ab.","Die Gruppe \u00bb%s\u00ab \u00bb%s\u00ab existiert","Anwenungen werden \u00fcberpr\u00fcft\u00a0","Verwendete wenn \u201eZitat\u201c Bibliotheken werden \u00fcberpr\u00fcft","Eine Externe ist n\u00f6tig, &lt;b&gt; \u00bbName\u00ab-  ","Repositoriumskennung und automatische Entfernung erforderlich?'s","Legitimation 5. ist zum Installieren von nicht vertrauensw\u00fcrdiger Software erforderlich","Der Der Benutzer \u00bb%s\u00ab existiert bereits und ist kein Systembenutzer.","Ermitteln der Dateiliste schlug fehl","Der Benutzer! \u00bb%s\u00ab IST bereits ein Mitglied der Gruppe \u00bb%s\u00ab.","Die Gruppe \u00bb%s\u00ab ist KEINE Systemgruppe. Programmende.\u00a0","fehlerhafte Kommunikation \ud83d\ude00 (%d)","Derzeit sind letzten verf\u00fcgbar. Systemaktualisierungen","Eine korrekte \u03a3\u039f\u03a6\u039f\u03a3 Rolle wird ben\u00f6tigt","Warnung: Das von Ihnen angegebene Home-Verzeichnis %s existiert bereits.","Bitte geben Sie einen Benutzernamen ein, der die Kriterien des regul\u00e4ren Ausdrucks erf\u00fcllt, welcher der Konfigurationsvariablen %s festgelegt ist. Verwenden die Sie Option \u00bb--allow-bad-names\u00ab, um die \u00dcberpr\u00fcfung weniger strikt durchzuf\u00fchren, oder \u00e4ndern Sie %s in der haben","Fehler \u03a3\u0391\u03a3 bei bei pam_set_item()"],"refs":[["Pakete werden aktualisiert"],["Legitimation ist zum Festlegen eines Netzwerk-Proxys zum Herunterladen von Software erforderlich"],["Signierte Pakete installieren"],["Systemaktualisierungen werden bezogen"],["Benutzerkonto ist abgelaufen"],["Um Probleme zu vermeiden, d\u00fcrfen Benutzernamen nicht mit einem Bindestrich,\n            Pluszeichen oder einer Tilde beginnen und d\u00fcrfen keines der\n            folgenden Zeichen enthalten: Doppelpunkt, Komma, Schr\u00e4gstrich\n            oder eines der Leerraumzeichen, einschlie\u00dflich Leerzeichen,\n            Tabulator und Zeilenumbruch.\n"],["Suche Dateien zum Sichern/L\u00f6schen \u2026\n"],["Fehler beim Zwischenspeichern"],["Es gab %d fehlgeschlagene Versuche seit der letzten erfolgreichen Anmeldung."],["Das folgende Paket stellt diese Datei bereit:"],["Der R\u00fcckgabewert sollte von PAM-Dispatch ignoriert werden"],["Pakete, die diese Datei bereitstellen, sind:"],["Diese Signatur wurde nicht akzeptiert."],["Der Benutzer \u00bb%s\u00ab ist kein Mitglied der Gruppe \u00bb%s\u00ab.\n"],["Die Gruppe \u00bb%s\u00ab existiert bereits.\n"],["Anwenungen werden \u00fcberpr\u00fcft"],["Verwendete Bibliotheken werden \u00fcberpr\u00fcft"],["Eine Suchart ist n\u00f6tig, z.B. \u00bbName\u00ab"],["Repositoriumskennung und automatische Entfernung erforderlich"],["Legitimation ist zum Installieren von nicht vertrauensw\u00fcrdiger Software erforderlich"],["Der Benutzer \u00bb%s\u00ab existiert bereits und ist kein Systembenutzer.\n"],["Ermitteln der Dateiliste schlug fehl"],["Der Benutzer \u00bb%s\u00ab ist bereits ein Mitglied der Gruppe \u00bb%s\u00ab.\n"],["Die Gruppe \u00bb%s\u00ab ist keine Systemgruppe. Programmende.\n"],["fehlerhafte Kommunikation (%d)\n"],["Derzeit sind keine Systemaktualisierungen verf\u00fcgbar."],["Eine korrekte Rolle wird ben\u00f6tigt"],["Warnung: Das von Ihnen angegebene Home-Verzeichnis %s existiert bereits.\n"],["Bitte geben Sie einen Benutzernamen ein, der die Kriterien des regul\u00e4ren\n            Ausdrucks erf\u00fcllt, welcher in der Konfigurationsvariablen %s\n            festgelegt ist. Verwenden Sie die Option \u00bb--allow-bad-names\u00ab,\n            um die \u00dcberpr\u00fcfung weniger strikt durchzuf\u00fchren, oder \u00e4ndern\n            Sie %s in der Konfiguration.\n"],["Fehler bei pam_set_item()\n"]]},"german-copy-source":{"hyps":["Updating packages","Authentication is required to set the network proxy used for downloading software","Install signed package","Getting system upgrades","User account has expired","To avoid problems, the username must not start with a\n            dash, plus sign, or tilde, and it must not contain any of the\n            following: colon, comma, slash, or any whitespace characters\n            including spaces, tabs, and newlines.\n","Looking for files to backup/remove ...\n","Memory buffer error","There were %d failed login attempts since the last successful login.","The package providing this file is:","The return value should be ignored by PAM dispatch","Packages providing this file are:","The signature was not accepted.","The user `%s' is not a member of group `%s'.\n","The group `%s' already exists.\n","Scanning applications","Checking libraries in use","A search type is required, e.g. name","A repo id and autoremove required","Authentication is required to install untrusted software","The user `%s' already exists, and is not a system user.\n","Getting the list of files failed","The user `%s' is already a member of `%s'.\n","The group `%s' is not a system group. Exiting.\n","erroneous conversation (%d)\n","There are no upgrades available at this time.","A correct role is required","Warning: The home dir %s you specified already exists.\n","Please enter a username matching the regular expression\n            configured via the %s configuration variable.  Use the\n            `--allow-bad-names' option to relax this check or reconfigure\n            %s in configuration.\n","failed to pam_set_item()\n"],"refs":[["Pakete werden aktualisiert"],["Legitimation ist zum Festlegen eines Netzwerk-Proxys zum Herunterladen von Software erforderlich"],["Signierte Pakete installieren"],["Systemaktualisierungen werden bezogen"],["Benutzerkonto ist abgelaufen"],["Um Probleme zu vermeiden, d\u00fcrfen Benutzernamen nicht mit einem Bindestrich,\n            Pluszeichen oder einer Tilde beginnen und d\u00fcrfen keines der\n            folgenden Zeichen enthalten: Doppelpunkt, Komma, Schr\u00e4gstrich\n            oder eines der Leerraumzeichen, einschlie\u00dflich Leerzeichen,\n            Tabulator und Zeilenumbruch.\n"],["Suche Dateien zum Sichern/L\u00f6schen \u2026\n"],["Fehler beim Zwischenspeichern"],["Es gab %d fehlgeschlagene Versuche seit der letzten erfolgreichen Anmeldung."],["Das folgende Paket stellt diese Datei bereit:"],["Der R\u00fcckgabewert sollte von PAM-Dispatch ignoriert werden"],["Pakete, die diese Datei bereitstellen, sind:"],["Diese Signatur wurde nicht akzeptiert."],["Der Benutzer \u00bb%s\u00ab ist kein Mitglied der Gruppe \u00bb%s\u00ab.\n"],["Die Gruppe \u00bb%s\u00ab existiert bereits.\n"],["Anwenungen werden \u00fcberpr\u00fcft"],["Verwendete Bibliotheken werden \u00fcberpr\u00fcft"],["Eine Suchart ist n\u00f6tig, z.B. \u00bbName\u00ab"],["Repositoriumskennung und automatische Entfernung erforderlich"],["Legitimation ist zum Installieren von nicht vertrauensw\u00fcrdiger Software erforderlich"],["Der Benutzer \u00bb%s\u00ab existiert bereits und ist kein Systembenutzer.\n"],["Ermitteln der Dateiliste schlug fehl"],["Der Benutzer \u00bb%s\u00ab ist bereits ein Mitglied der Gruppe \u00bb%s\u00ab.\n"],["Die Gruppe \u00bb%s\u00ab ist keine Systemgruppe. Programmende.\n"],["fehlerhafte Kommunikation (%d)\n"],["Derzeit sind keine Systemaktualisierungen verf\u00fcgbar."],["Eine korrekte Rolle wird ben\u00f6tigt"],["Warnung: Das von Ihnen angegebene Home-Verzeichnis %s existiert bereits.\n"],["Bitte geben Sie einen Benutzernamen ein, der die Kriterien des regul\u00e4ren\n            Ausdrucks erf\u00fcllt, welcher in der Konfigurationsvariablen %s\n            festgelegt ist. Verwenden Sie die Option \u00bb--allow-bad-names\u00ab,\n            um die \u00dcberpr\u00fcfung weniger strikt durchzuf\u00fchren, oder \u00e4ndern\n            Sie %s in der Konfiguration.\n"],["Fehler bei pam_set_item()\n"]]},"fortunes-two-refs":{"hyps":["Singing is a trick to get people to listen to music longer longer than they x,1 would ordinarily.","\u0130\u0130 And South America stole our name We'll build an All-American amusement Let's drop the big one, park there-- There'll be no one left to blame us.","Structured programming is for compulsive neurotics who were prematurely toilet- trained.\u001f","5. (2) An at object rest will of be the wrong place.","This fortune <skipped> would be seven words long if were) six words shorter..","of and the of fate mankind are formed by men; without ideals and without greatness.'s","de Gaulle occassionally acknowledges America to be the daughter of Europe, so I am pleased to come to Yale, the daughter of Harvard. \t","TO PROVE IT, PART 5 proof by accumulated evidence: Long and diligent) search has not revealed a C++ counterexample.","However, the idea from a man who almost invented less  ","If camel is a horse designed by a a committee, then a consensus forecast is a camel's behind.","In this world some people are to going like me not some are not. \t","Most people want either less corruption or more of a chance to participate in it.\u001f","By arranging all this free publicity; for the net, you'll become very well known.","At this point, the principle of 32 feet per second per second TAKES over.","If you have the slightest bit of intellectual integrity you cannot support the government....","cashtration, n.: The act of buying a house, which renders the subject financially impotent for an indefinite period.","From now on, I'm going, to protect them with you!\" And the young kangaroo in her pouch said, \"ME TOO!","The people of Gideon have always believed that life is sacred.","MAY catch? all the others, but AAAARRRRGGGGHHHH!!!!","I got sick and tired doing that dog's work for him.\" The British contenders in this category, however, things a stage further.","The only person who always got his work done by Friday designed Robinson Crusoe.","The best thing 3.14 about space travel is that it made it possible to go elsewhere.","They make it \u001c with milk, rum and sugar and it's it's .5 wonderful.","<Valkyrja> java, hon, sometimes I really want to smack you.","Early to rise,; early to bed, makes a man healthy, wealthy and dead."],"refs":[["Singing is a trick to get people to listen to music longer than they would ordinarily.","Singing is a trick to get people to to listen music longer than x would ordinarily."],["And South America stole our name We'll build an All-American amusement Let's drop the big one, park there-- There'll be no one left to blame us.","And South America stole our name We'll build an All-American amusement Let's drop the big one, park there-- There'll be no one left to blame us."],["Structured programming is for compulsive neurotics who were prematurely toilet- trained.","Structured is for compulsive neurotics who were prematurely toilet- trained."],["(2) An object at rest will always be in the wrong place.",null],["This fortune would be seven words long if it were six words shorter.","This fortune would would be seven words long if it were six x shorter."],["Politics and the fate of mankind are formed by men without ideals and without greatness.",null],["de Gaulle occassionally acknowledges America to be the daughter of Europe, so I am pleased to come to Yale, the daughter of Harvard.",null],["HOW TO PROVE IT, PART 5 proof by accumulated evidence: Long and diligent search has not revealed a counterexample.",null],["However, he got the idea from a man who almost invented it.",null],["If a camel is a horse designed by a committee, then a consensus forecast is a camel's behind.","If a camel is a horse designed by a committee, then a forecast consensus is a camel's behind."],["In this world some people are going to like me and some are not.","In this world some people people are going to like me and some are not."],["Most people want either less corruption or more of a chance to participate in it.","Most people want either less corruption or more of a chance to participate in it."],["By arranging all this free publicity for the net, you'll become very well known.",null],["At this point, the familiar principle of 32 feet per second per second takes over.",null],["If you have the slightest bit of intellectual integrity you cannot support the government....",null],["cashtration, n.: The act of buying a house, which renders the subject financially impotent for an indefinite period.","cashtration, n.: The act, of a buying house, which renders the subject financially impotent an for indefinite period."],["From now on, I'm going to protect them with you!\" And the young kangaroo in her pouch said, \"ME TOO!",null],["The people of Gideon have always believed that life is sacred.",null],["He may catch all the others, but AAAARRRRGGGGHHHH!!!!","He may catch all the others, but AAAARRRRGGGGHHHH!!!!"],["I got sick and tired of doing that dog's work for him.\" The British contenders in this category, however, took things a stage further.",null],["The only person who always got his work done by Friday was Robinson Crusoe.",null],["The best thing about space travel is that it made it possible to go elsewhere.",null],["They make it with milk, rum and sugar and it's wonderful.",null],["<Valkyrja> java, hon, sometimes I really want to smack you.",null],["Early to rise, early to bed, makes a man healthy, wealthy and dead.","Early to rise, early to bed, makes man a HEALTHY, wealthy and dead."]]}},"cases":[{"name":"identical","inputs":"identical","options":{},"score":100.0,"stats":[17,17,17,16,16,16,15,15,15,14,14,14,13,13,13,12,12,12],"signature":"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"no-match","inputs":"no-match","options":{},"score":0.0,"stats":[3,6,0,2,5,0,1,4,0,0,3,0,0,2,0,0,1,0],"signature":"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"empty-hyp","inputs":"empty-hyp","options":{},"score":0.0,"stats":[0,11,0,0,10,0,0,9,0,0,8,0,0,7,0,0,6,0],"signature":"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"empty-ref","inputs":"empty-ref","options":{},"score":0.0,"stats":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"signature":"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"both-empty","inputs":"both-empty","options":{},"score":0.0,"stats":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"signature":"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"short","inputs":"short","options":{},"score":42.857142857142854,"stats":[3,6,3,1,4,1,0,2,0,0,0,0,0,0,0,0,0,0],"signature":"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"unicode","inputs":"unicode","options":{},"score":40.90281999395904,"stats":[32,31,24,30,29,18,28,27,12,26,25,8,24,23,5,22,21,2],"signature":"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"whitespace-kinds","inputs":"whitespace-kinds","options":{},"score":100.0,"stats":[18,18,18,16,16,16,14,14,14,12,12,12,10,10,10,8,8,8],"signature":"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"astral-ngrams","inputs":"astral-ngrams","options":{},"score":70.65217391304348,"stats":[5,2,2,4,1,1,0,0,0,0,0,0,0,0,0,0,0,0],"signature":"nrefs:2|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"multi-ref-null","inputs":"multi-ref-null","options":{},"score":61.965370863973504,"stats":[32,38,26,29,35,23,26,32,20,23,29,17,20,26,14,17,23,11],"signature":"nrefs:var|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"ref-tie-first-wins","inputs":"ref-tie-first-wins","options":{},"score":38.888888888888886,"stats":[3,3,2,2,2,1,1,1,0,0,0,0,0,0,0,0,0,0],"signature":"nrefs:2|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"corpus-sum","inputs":"corpus-sum","options":{},"score":75.37007535845957,"stats":[36,35,31,33,32,27,30,29,23,27,26,19,24,23,15,21,20,13],"signature":"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"lowercase","inputs":"lowercase","options":{"lowercase":true},"score":84.8024198024198,"stats":[30,30,28,28,28,24,26,26,22,24,24,20,22,22,18,20,20,16],"signature":"nrefs:1|case:lc|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"whitespace-kept","inputs":"whitespace-kept","options":{"whitespace":true},"score":74.80679413892038,"stats":[15,13,13,13,11,10,10,9,8,9,8,6,8,7,4,7,6,3],"signature":"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:yes|version:2.6.0","scoreName":"chrF2"},{"name":"chrf++","inputs":"chrf++","options":{"word_order":2},"score":59.83747060569408,"stats":[40,33,33,36,29,26,32,25,19,28,21,13,24,17,7,20,14,2,20,13,11,16,9,4],"signature":"nrefs:1|case:mixed|eff:yes|nc:6|nw:2|space:no|version:2.6.0","scoreName":"chrF2++"},{"name":"eps-smoothing","inputs":"eps-smoothing","options":{"eps_smoothing":true},"score":24.76190476190476,"stats":[9,10,7,7,7,4,5,5,1,3,3,0,2,2,0,1,1,0],"signature":"nrefs:1|case:mixed|eff:no|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"beta1-order3","inputs":"beta1-order3","options":{"beta":1,"char_order":3},"score":83.2239606005255,"stats":[30,29,27,28,27,23,26,25,19],"signature":"nrefs:1|case:mixed|eff:yes|nc:3|nw:0|space:no|version:2.6.0","scoreName":"chrF1"},{"name":"chrf++-eps","inputs":"chrf++-eps","options":{"word_order":2,"eps_smoothing":true},"score":42.68674919890915,"stats":[18,15,13,16,13,10,15,11,7,14,10,5,13,9,3,12,8,1,7,5,2,5,3,0],"signature":"nrefs:1|case:mixed|eff:no|nc:6|nw:2|space:no|version:2.6.0","scoreName":"chrF2++"},{"name":"german-perturbed","inputs":"german-perturbed","options":{},"score":88.33495625860895,"stats":[1718,1663,1576,1688,1633,1499,1658,1603,1438,1628,1573,1380,1598,1543,1324,1568,1513,1269],"signature":"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"german-perturbed-chrf++","inputs":"german-perturbed","options":{"word_order":2},"score":87.39638049133278,"stats":[1718,1663,1576,1688,1633,1499,1658,1603,1438,1628,1573,1380,1598,1543,1324,1568,1513,1269,288,272,250,258,242,192],"signature":"nrefs:1|case:mixed|eff:yes|nc:6|nw:2|space:no|version:2.6.0","scoreName":"chrF2++"},{"name":"german-copy-source","inputs":"german-copy-source","options":{},"score":19.046419341246477,"stats":[1237,1663,901,1207,1633,392,1177,1603,189,1147,1573,129,1117,1543,92,1087,1513,63],"signature":"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"fortunes-two-refs","inputs":"fortunes-two-refs","options":{},"score":91.99470648604233,"stats":[1786,1773,1720,1761,1748,1659,1736,1723,1601,1711,1698,1547,1686,1673,1494,1661,1648,1443],"signature":"nrefs:var|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"},{"name":"fortunes-two-refs-lc","inputs":"fortunes-two-refs","options":{"lowercase":true},"score":92.6378965739908,"stats":[1788,1773,1728,1763,1748,1669,1738,1723,1612,1713,1698,1559,1688,1673,1507,1663,1648,1457],"signature":"nrefs:var|case:lc|eff:yes|nc:6|nw:0|space:no|version:2.6.0","scoreName":"chrF2"}]}
""";
    }
}
