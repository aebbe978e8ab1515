#!/usr/bin/python3
"""Writes the expected values that tests/RetrainDaemon.UnitTests/Evaluation/Text reads.

Every expected number is computed here by the reference implementation itself (sacreBLEU 2.6.0,
rouge-score 0.1.2, NLTK 3.8 — see refimpl.py), on hand-written edge cases, on the references' own
test cases, and on real text from this machine (Debian's fortunes and the German gettext catalogs)
with seeded perturbations. The C# tests only read the JSON; they never need Python.

Usage (see README.md):
    /usr/bin/python3 tests/reference/generate.py --sacrebleu DIR --rouge-score DIR [--out DIR]
"""

import argparse
import gettext
import json
import os
import random
import re
import sys
import unicodedata

import refimpl

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(
    HERE, "..", "RetrainDaemon.UnitTests", "Evaluation", "Text", "ReferenceData"))
FORTUNES = "/usr/share/games/fortunes"
LOCALE_DE = "/usr/share/locale/de/LC_MESSAGES"
SEED = 20250611


# ---------------------------------------------------------------------------------------------
# Real text from this machine
# ---------------------------------------------------------------------------------------------

def read_fortunes():
    """Fortune records (text between '%' lines), files in ordinal name order, like Data.Fortunes."""
    records = []
    for name in sorted(os.listdir(FORTUNES)):
        path = os.path.join(FORTUNES, name)
        if name.endswith(".dat") or name.endswith(".u8") or not os.path.isfile(path):
            continue
        current = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if line == "%":
                    if current:
                        records.append("\n".join(current))
                        current = []
                else:
                    current.append(line)
        if current:
            records.append("\n".join(current))
    # Overstrikes (backspaces) and other C0 controls are the ingest normalizer's business, not the metrics'.
    return [r for r in records if not any(ord(c) < 0x20 and c not in "\t\n" for c in r)]


def fortune_sentences(records, low=8, high=30):
    sentences = []
    for record in records:
        for s in re.split(r"(?<=[.!?])\s+", " ".join(record.split())):
            if low <= len(s.split()) <= high:
                sentences.append(s)
    return sentences


def read_german(limit=4000):
    """(English source, German translation) pairs from the gettext catalogs, catalogs in name order."""
    pairs = []
    if not os.path.isdir(LOCALE_DE):
        return pairs
    for name in sorted(os.listdir(LOCALE_DE)):
        if not name.endswith(".mo"):
            continue
        try:
            with open(os.path.join(LOCALE_DE, name), "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog
        except Exception:  # a damaged catalog is not our data
            continue
        for key, value in sorted(catalog.items(), key=lambda kv: str(kv[0])):
            if isinstance(key, tuple) or not key or not value:
                continue
            key = key.split("\x04")[-1]
            if 3 <= len(value.split()) <= 40 and "\x00" not in value:
                pairs.append((key, value))
            if len(pairs) >= limit:
                return pairs
    return pairs


EXOTIC_WORDS = ["café", "İstanbul", "ΣΟΦΟΣ", "naïve", "—", "„Zitat“", "«guillemets»", "…", "’s", "€5",
                "&quot;", "&amp;", "&lt;b&gt;", "&#39;", "U.S.A.", "3.14", "12,000", "2-3", ".5", "5.",
                "x,1", "e.g.", "ﬁne", "K", "o'neil", "3:15", "Straße", "ΣΑΣ", "İİ", "<skipped>", "😀",
                "𝐀𝐁", "\u00a0", "\u2028", "\u001c", "-\n", "\t", "can't", "C++", "a/b", "100%"]


def perturb(words, rng, vocabulary, exotic=True):
    """A hypothesis-like variant of a reference: drops, swaps, substitutions, case and punctuation."""
    words = list(words)
    for _ in range(rng.randint(0, 4)):
        op = rng.random()
        if not words:
            break
        i = rng.randrange(len(words))
        if op < 0.2:
            del words[i]
        elif op < 0.35 and len(words) > 1:
            j = min(i + 1, len(words) - 1)
            words[i], words[j] = words[j], words[i]
        elif op < 0.55:
            words[i] = rng.choice(vocabulary)
        elif op < 0.65:
            words.insert(i, words[i])
        elif op < 0.75:
            words[i] = words[i].upper() if rng.random() < 0.5 else words[i].lower()
        elif op < 0.85:
            words[i] = words[i] + rng.choice([".", ",", "!", "?", "'s", ";", ")", "-"])
        elif exotic:
            words.insert(i, rng.choice(EXOTIC_WORDS))
    text = " ".join(words)
    if exotic and rng.random() < 0.1:
        text += rng.choice(["\n", "  ", " \t", "\u00a0", "\u001f"])
    return text


# ---------------------------------------------------------------------------------------------
# Python text semantics (str.lower, str.split / isspace, the final-sigma context)
# ---------------------------------------------------------------------------------------------

def ranges(code_points):
    out = []
    for cp in code_points:
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


def python_text(rng):
    all_cps = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    lower = [[cp, chr(cp).lower()] for cp in all_cps if chr(cp).lower() != chr(cp)]
    unassigned = ranges([cp for cp in all_cps if unicodedata.category(chr(cp)) == "Cn"])
    whitespace = [cp for cp in all_cps if chr(cp).isspace()]
    assert whitespace == [cp for cp in all_cps if ("a" + chr(cp) + "b").split() == ["a", "b"]]
    # Python's final-sigma rule reads two properties, Case_Ignorable and Cased; they are not exposed,
    # so they are observed through lower() itself:  "aΣ"+c+"b" keeps σ iff c is ignorable or cased,
    # "aΣ"+c keeps σ iff c is cased and not ignorable.
    ignorable, cased = [], []
    for cp in all_cps:
        c = chr(cp)
        followed = ("a\u03a3" + c + "b").lower()[1]
        final = ("a\u03a3" + c).lower()[1]
        if followed == "\u03c3" and final == "\u03c2":
            ignorable.append(cp)
        elif final == "\u03c3":
            cased.append(cp)
    alphabet = ["\u03a3", "\u03a3", "a", "A", "\u0391", "'", ".", ":", "\u0301", "\u02b0", " ", "1", "\u0130",
                "\u00aa", "\u2160", "\u24b6", "\u00ad", "-", "\u2019", "\U0001d400", "\u1f88", "\u00df"]
    samples = []
    for _ in range(3000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        samples.append([s, s.lower()])
    for s in ["ΣΟΦΟΣ", "ΟΔΟΣ ΣΑΣ", "Σ", "aΣ", "Σa", "AΣ.", "AΣ'B", "A'Σ", "İSTANBUL", "İ", "ﬁ", "ẞ", "K", "Å",
              "ǅ", "ᾈ", "ΣΣ", "AΣΣ", "AΣ\u0301", "AΣ\u0301B", "𝐀Σ", "ⒶΣ"]:
        samples.append([s, s.lower()])
    strip_split = []
    ws_alphabet = ["a", "b", " ", "\t", "\n", "\u00a0", "\u001c", "\u001f", "\u0085", "\u2028", "\u3000",
                   "\u200b", "\u180e", "\ufeff", "x"]
    for _ in range(1000):
        s = "".join(rng.choice(ws_alphabet) for _ in range(rng.randint(0, 10)))
        strip_split.append({"text": s, "rstrip": s.rstrip(), "split": s.split()})
    # General categories the Case_Ignorable / Cased derivations start from, so that the tests can tell a
    # difference in our derivation from a category that changed between Unicode versions.
    categories = {cat: ranges([cp for cp in all_cps if unicodedata.category(chr(cp)) == cat])
                  for cat in ("Mn", "Me", "Cf", "Lm", "Sk", "Lu", "Ll", "Lt")}
    return {
        "unicode_version": unicodedata.unidata_version,
        "categories": categories,
        "lower": lower,
        "unassigned": unassigned,
        "whitespace": whitespace,
        "case_ignorable": ranges(ignorable),
        "cased": ranges(cased),
        "lower_samples": samples,
        "strip_split": strip_split,
    }


# ---------------------------------------------------------------------------------------------
# sacreBLEU tokenizers
# ---------------------------------------------------------------------------------------------

TOKENIZER_EDGE_CASES = [
    "", " ", "   \n", "Hello, world!", "U.S.A.", "U.S.A. is big.", "3.14", "12,000", ".5", "5.", "x,1", "1,x",
    "3-4", "a-b", "-3", "3-", "3--4", "a--b", "2-3-4", "&quot;quoted&quot;", "&amp;amp;", "&lt;tag&gt;",
    "&#39;s", "&apos;", "Tom &amp; Jerry", "AT&T", "&quot", "<skipped>", "a<skipped>b", "<skip<skipped>ped>",
    "hyphen-\nated", "line\nbreak", "trailing-\n", "trailing-\n\n", "it's", "don't", "'quoted'", "\"double\"",
    "„Anführung“ «guillemets» — dash… ’quote’ €5", "$5.00", "100%", "e.g.", "i.e.,", "Mr. Smith", "a...b",
    "...", "?!", "(parens)", "[brackets]", "{braces}", "a|b", "a~b", "a^b", "a_b", "a`b", "a\\b", "a/b",
    "user@example.com", "#hash", "a=b", "a;b", "a:b", "C++", "x*y", "tab\tsep", "nbsp\u00a0sep",
    "fs\u001csep", "us\u001fsep", "ls\u2028sep", "nel\u0085sep", "zwsp\u200bjoined", "emoji 😀.", "𝐀𝐁.",
    "5..", "5.,6", "a.,b", ",.", "1.2.3", "1,2,3", "x.5", "5.x", "5,x", ".,.,.", "ΣΟΦΟΣ.", "İstanbul,",
    "café.", "naïve,", "“Quote.”", "end.\n", "end .", "a . b , c", "9-", "-", "--", "0-0", "٣.١٤",
    "３.１４", "１-２", "a-\nb-\nc", "a\n-\nb", "&amp;quot;", "&&quot;", "<skipped>&quot;", "\ta b\t",
]


def tokenizer_cases(sb, rng, sentences, records, german):
    t13a, tchar, tnone = sb.Tokenizer13a(), sb.TokenizerChar(), sb.NoneTokenizer()
    alphabet = ["a", "b", "Z", "0", "1", "9", ".", ",", "-", "&", "quot;", "amp;", "lt;", "gt;", "<skipped>",
                "\n", " ", "\t", "'", "\"", "(", ")", "é", "İ", "Σ", "😀", "\u00a0", "\u001c", "\u2028", "$", "%",
                "/", ":", "@", "[", "`", "{", "~", "_", "^", "|", "\\", "#", "!", "?", ";", "=", "+", "*", "’",
                "—", "…", "€", "<", ">", "-\n", "..", ",,", "3.", ".3", "x-"]
    inputs = list(TOKENIZER_EDGE_CASES)
    for _ in range(3000):
        inputs.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25))))
    inputs += rng.sample(sentences, 600)
    inputs += rng.sample([r for r in records if len(r) <= 300], 200)  # raw records keep newlines, indentation
    inputs += [g for _, g in rng.sample(german, min(400, len(german)))]
    cases = []
    for text in inputs:
        char_tokens = tchar(text).split()
        assert all(len(t) == 1 for t in char_tokens)
        # Token lists are stored joined: "none" tokens by a space (they contain none), "char" tokens (single
        # code points) by nothing.
        cases.append({"text": text, "13a": t13a(text), "none": " ".join(tnone(text).split()),
                      "char": "".join(char_tokens)})
    return cases


# ---------------------------------------------------------------------------------------------
# BLEU
# ---------------------------------------------------------------------------------------------

def bleu_options(tokenize="13a", lowercase=False, smooth_method="exp", smooth_value=None, max_ngram_order=4,
                 effective_order=False):
    return {"tokenize": tokenize, "lowercase": lowercase, "smooth_method": smooth_method,
            "smooth_value": smooth_value, "max_ngram_order": max_ngram_order, "effective_order": effective_order}


def stream_major(refs):
    """Segment-major (refs[i] = references of segment i, None = missing) to sacreBLEU's stream-major."""
    streams = max(len(r) for r in refs)
    return [[r[k] if k < len(r) else None for r in refs] for k in range(streams)]


def bleu_result(score, signature):
    return {"score": score.score, "counts": list(score.counts), "totals": list(score.totals),
            "precisions": list(score.precisions), "bp": score.bp, "sys_len": score.sys_len,
            "ref_len": score.ref_len, "signature": signature}


def run_corpus_bleu(sb, name, hyps, refs, options):
    metric = sb.BLEU(lowercase=options["lowercase"], force=True, tokenize=options["tokenize"],
                     smooth_method=options["smooth_method"], smooth_value=options["smooth_value"],
                     max_ngram_order=options["max_ngram_order"], effective_order=options["effective_order"])
    score = metric.corpus_score(hyps, stream_major(refs))
    return {"name": name, "kind": "corpus", "hyps": hyps, "refs": refs, "options": options,
            "expected": bleu_result(score, metric.get_signature().format())}


def run_sentence_bleu(sb, name, hyp, refs, options):
    # sacrebleu.sentence_bleu: a BLEU whose effective_order defaults to True; the options say which.
    metric = sb.BLEU(lowercase=options["lowercase"], force=True, tokenize=options["tokenize"],
                     smooth_method=options["smooth_method"], smooth_value=options["smooth_value"],
                     max_ngram_order=options["max_ngram_order"], effective_order=options["effective_order"])
    score = metric.sentence_score(hyp, refs)
    return {"name": name, "kind": "sentence", "hyps": [hyp], "refs": [refs], "options": options,
            "expected": bleu_result(score, metric.get_signature().format())}


README_HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
README_REFS = [["The dog bit the man.", "The dog had bit the man."],
               ["It was not unexpected.", "No one was surprised."],
               ["The man bit him first.", "The man had bitten the dog."]]
REF_98 = "producţia de zahăr brut se exprimă în zahăr alb;"
SYS_98 = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;"


def bleu_cases(sb, rng, sentences, german):
    cases = []
    add = cases.append
    o = bleu_options
    # sacreBLEU's own test_bleu.py / test_sentence_bleu.py inputs.
    add(run_corpus_bleu(sb, "readme default", README_HYPS, README_REFS, o()))
    add(run_corpus_bleu(sb, "readme empty hypotheses kept", ["", "", ""], README_REFS, o()))
    add(run_corpus_bleu(sb, "readme tokenize none", README_HYPS, README_REFS, o(tokenize="none")))
    add(run_corpus_bleu(sb, "readme smooth none", README_HYPS, README_REFS, o(smooth_method="none")))
    add(run_corpus_bleu(sb, "readme char", README_HYPS, README_REFS, o(tokenize="char")))
    for order in range(1, 7):
        add(run_corpus_bleu(sb, f"readme max order {order}", README_HYPS, README_REFS, o(max_ngram_order=order)))
    raw = dict(tokenize="none", smooth_method="floor", effective_order=True)
    add(run_corpus_bleu(sb, "raw: #141 no match", ["this is a test", "another test"], [["ref1"], ["ref2"]],
                        o(smooth_value=0.01, **raw)))
    add(run_corpus_bleu(sb, "raw: identical", ["this is a test"], [["this is a test"]], o(smooth_value=0.01, **raw)))
    add(run_corpus_bleu(sb, "raw: one word off", ["this is a fest"], [["this is a test"]], o(smooth_value=0.01, **raw)))
    add(run_corpus_bleu(sb, "raw: effective order 1 token", ["test"], [["a test"]], o(smooth_value=0.01, **raw)))
    add(run_corpus_bleu(sb, "raw: effective order 2 tokens", ["a test"], [["a test"]], o(smooth_value=0.01, **raw)))
    add(run_corpus_bleu(sb, "raw: effective order 3 tokens", ["a little test"], [["a test"]], o(smooth_value=0.01, **raw)))
    for value, label in [(0.0, "offset 0"), (None, "offset default")]:
        add(run_corpus_bleu(sb, f"raw: statistics {label}", ["am I am a character sequence"],
                            [["I am a symbol string sequence a a"]], o(smooth_value=value, **raw)))
    for method, value in [("exp", None), ("none", None), ("floor", None), ("floor", 0.1), ("floor", 0.5),
                          ("add-k", None), ("add-k", 1), ("add-k", 2)]:
        add(run_sentence_bleu(sb, f"#98 sentence {method} {value}", SYS_98, [REF_98],
                              o(smooth_method=method, smooth_value=value, effective_order=True)))
        add(run_sentence_bleu(sb, f"#141 sentence zero {method} {value}", "this is a cat", ["okay thanks"],
                              o(smooth_method=method, smooth_value=value, effective_order=True)))
    add(run_sentence_bleu(sb, "#98 sentence tok none", SYS_98, [REF_98], o(tokenize="none", effective_order=True)))
    add(run_sentence_bleu(sb, "#98 sentence tok char", SYS_98, [REF_98], o(tokenize="char", effective_order=True)))
    add(run_sentence_bleu(sb, "#98 sentence char lowercase", SYS_98, [REF_98],
                          o(tokenize="char", lowercase=True, effective_order=True)))

    # Edge cases named in metrics.md §1 and the brief.
    edge = [
        ("identical", ["the cat sat on the mat"], [["the cat sat on the mat"]], o()),
        ("no match", ["a b c d e"], [["v w x y z"]], o()),
        ("empty hypothesis", [""], [["the cat sat on the mat"]], o()),
        ("empty reference", ["the cat sat on the mat"], [[""]], o()),
        ("empty both", [""], [[""]], o()),
        ("empty hypothesis among others", ["the cat sat on the mat", ""], [["the cat sat on the mat"], ["a dog"]], o()),
        ("all punctuation", ["!!! ... ,,, ???"], [["... !!! ???"]], o()),
        ("all punctuation vs words", ["?!?!"], [["no punctuation here at all"]], o()),
        ("non-ascii", ["„Das ist schön“ – sagte er… € 5"], [["„Das ist schön“ sagte er … €5"]], o()),
        ("quot entity", ["He said &quot;hello&quot; &amp; left &#39;now&#39;."],
         [['He said "hello" & left \'now\'.']], o()),
        ("USA and decimals", ["The U.S.A. spent 3.14 billion, or 12,000 each."],
         [["The U.S.A. spent 3.14 billion , or 12,000 each ."]], o()),
        ("hyphen after digit", ["pages 10-20 and a-b 3-"], [["pages 10 - 20 and a-b 3 -"]], o()),
        ("closest ref tie shorter wins", ["a b c d e f"], [["a b c d e", "a b c d e f g"]], o()),
        ("closest ref nearest longer", ["a b c d e f"], [["a b c", "a b c d e f g"]], o()),
        ("null references variable count", ["the cat sat", "a dog ran away", "birds fly"],
         [["the cat sat down", None, "a cat sat"], [None, "a dog ran off"], ["birds fly south"]], o()),
        ("null first reference", ["x y z w"], [[None, "x y z w"]], o()),
        ("empty string reference counts", ["a b c"], [["", "a b c d e f g h"]], o()),
        ("effective order two tokens", ["hello world"], [["hello world again"]], o(effective_order=True)),
        ("effective order unmatched order", ["hello there world"], [["hello world there"]], o(effective_order=True)),
        ("no 4-grams in corpus", ["a b c", "d e"], [["a b c"], ["d e"]], o()),
        ("no 4-grams effective", ["a b c", "d e"], [["a b c"], ["d e"]], o(effective_order=True)),
        ("add-k reported counts", ["the cat sat on a mat"], [["the cat sat on the mat"]], o(smooth_method="add-k")),
        ("add-k 2.5", ["the cat sat on a mat"], [["the cat sat on the mat"]],
         o(smooth_method="add-k", smooth_value=2.5)),
        ("floor default", ["the cat sat on a mat near"], [["the cat lay on a rug"]], o(smooth_method="floor")),
        ("floor 0.3", ["the cat sat on a mat near"], [["the cat lay on a rug"]], o(smooth_method="floor", smooth_value=0.3)),
        ("floor 0.125 signature", ["the cat"], [["the cat"]], o(smooth_method="floor", smooth_value=0.125)),
        ("floor 0.375 signature", ["the cat"], [["the cat"]], o(smooth_method="floor", smooth_value=0.375)),
        ("none with zero precision", ["the cat sat on a mat near"], [["the cat lay on a rug"]], o(smooth_method="none")),
        ("exp multiple zero orders", ["w x y z q"], [["w q x z y"]], o()),
        ("lowercase U+0130 and final sigma", ["İSTANBUL ΣΟΦΟΣ ΟΔΟΣ ΣΑΣ ΣΣ"], [["i̇stanbul σοφος οδος σας σς"]],
         o(lowercase=True)),
        ("lowercase off U+0130", ["İSTANBUL ΣΟΦΟΣ ΟΔΟΣ ΣΑΣ"], [["i̇stanbul σοφος οδος σας"]], o()),
        ("lowercase Kelvin and sharp s", ["K STRASSE ẞ GROSS Å"], [["k strasse ß gross å"]], o(lowercase=True)),
        ("rstrip before tokenizing", ["trailing-\n", "3-\n"], [["trailing"], ["3 -"]], o()),
        ("hyphenated line break joins", ["hyphen-\nated word"], [["hyphenated word"]], o()),
        ("skipped marker", ["a <skipped> b"], [["a b"]], o()),
        ("python whitespace", ["a\u001cb\u00a0c\u2028d"], [["a b c d"]], o()),
        ("python whitespace none tok", ["a\u001cb\u00a0c\u2028d"], [["a b c d"]], o(tokenize="none")),
        ("char astral", ["😀𝐀 b😀𝐀"], [["😀 𝐀b😀 𝐀"]], o(tokenize="char")),
        ("order 1", ["the cat"], [["the dog"]], o(max_ngram_order=1)),
        ("order 6 effective", ["a b c d e f g"], [["a b c d e f g h"]], o(max_ngram_order=6, effective_order=True)),
        ("repeated words clipped", ["the the the the the the the"], [["the cat is on the mat"]], o()),
        ("two refs max count", ["the the cat"], [["the cat", "the the dog"]], o()),
        ("sys longer than ref", ["a b c d e f g h"], [["a b c"]], o()),
        ("tokenized-looking output", ["word ."] * 3, [["word."], ["word ."], ["word"]], o()),
    ]
    for name, hyps, refs, options in edge:
        add(run_corpus_bleu(sb, name, hyps, refs, options))
        if not options["effective_order"]:
            # Short edge cases score 0 without effective order (no 4-grams); this variant keeps them informative.
            add(run_corpus_bleu(sb, name + " (eff)", hyps, refs, dict(options, effective_order=True)))
    add(run_sentence_bleu(sb, "sentence effective order default", "hello world", ["hello world again"],
                          o(effective_order=True)))
    add(run_sentence_bleu(sb, "sentence null ref", "a b c", [None, "a b c d"], o(effective_order=True)))
    add(run_sentence_bleu(sb, "sentence eff off", "a b", ["a b c"], o(effective_order=False)))

    # Randomized: real sentences and German catalog strings with seeded perturbations.
    vocabulary = sorted({w for s in sentences for w in s.split()})
    german_vocab = sorted({w for _, g in german for w in g.split()})

    def random_options(sentence_level):
        return o(tokenize=rng.choice(["13a", "13a", "13a", "none", "char"]),
                 lowercase=rng.random() < 0.3,
                 smooth_method=rng.choice(["exp", "exp", "none", "floor", "add-k"]),
                 smooth_value=rng.choice([None, None, 0.5, 2, 0.05]),
                 max_ngram_order=rng.choice([4, 4, 4, 1, 2, 3, 5, 6]),
                 effective_order=sentence_level or rng.random() < 0.3)

    def random_segment(pool, vocab):
        base = rng.choice(pool)
        nrefs = rng.choice([1, 1, 1, 2, 3])
        refs = [base] + [perturb(base.split(), rng, vocab) for _ in range(nrefs - 1)]
        if nrefs > 1 and rng.random() < 0.3:
            refs[rng.randrange(1, nrefs)] = None
        rng.shuffle(refs)
        if all(r is None for r in refs):
            refs[0] = base
        return perturb(base.split(), rng, vocab), refs

    for k in range(12):
        german_corpus = k % 4 == 3
        pool, vocab = ([g for _, g in german], german_vocab) if german_corpus else (sentences, vocabulary)
        hyps, refs = [], []
        for _ in range(rng.randint(30, 80)):
            h, r = random_segment(pool, vocab)
            hyps.append(h)
            refs.append(r)
        options = o() if k < 2 else random_options(False)
        add(run_corpus_bleu(sb, f"random corpus {k}{' (German)' if german_corpus else ''}", hyps, refs, options))
    # Large enough (> 512 segments) for Bleu.Corpus to take its parallel path.
    for k, options in enumerate([o(), o(lowercase=True, tokenize="13a", smooth_method="floor")]):
        hyps, refs = [], []
        for _ in range(700):
            h, r = random_segment(sentences, vocabulary)
            hyps.append(h)
            refs.append(r)
        add(run_corpus_bleu(sb, f"random large corpus {k}", hyps, refs, options))
    for k in range(300):
        pool, vocab = ([g for _, g in german], german_vocab) if k % 5 == 4 else (sentences, vocabulary)
        h, r = random_segment(pool, vocab)
        options = o(effective_order=True) if k < 100 else random_options(True)
        add(run_sentence_bleu(sb, f"random sentence {k}", h, r, options))
    return cases


def bleu_statistics_cases(sb):
    """BLEU.compute_bleu straight from sufficient statistics (test_bleu.py's scoring cases)."""
    cases = []
    specs = [
        ([9, 7, 5, 3], [10, 8, 6, 4], 11, 11, "exp", None, False),
        ([0, 0, 0, 0], [4, 4, 2, 1], 0, 1, "floor", 0.0, False),
        ([0, 0, 0, 0], [10, 11, 12, 0], 14, 10, "floor", 0.0, False),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0, 0, "floor", 0.0, False),
        ([6, 5, 4, 0], [6, 5, 4, 3], 6, 6, "floor", 0.0, False),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0, 0, "floor", 0.1, False),
        ([0, 0, 0, 0], [0, 0, 0, 0], 1, 5, "floor", 0.01, False),
        ([5, 0, 0, 0], [5, 4, 3, 2], 5, 9, "exp", None, False),
        ([5, 0, 0, 0], [5, 4, 0, 0], 5, 9, "exp", None, True),
        ([5, 2, 0, 0], [5, 4, 3, 0], 5, 9, "add-k", None, False),
        ([5, 2, 0, 0], [5, 4, 3, 0], 5, 9, "add-k", 3, True),
        ([5, 2, 1, 0], [5, 4, 3, 2], 5, 4, "none", None, False),
        ([3, 2, 1, 1], [3, 2, 1, 0], 3, 3, "exp", None, False),
    ]
    for correct, total, sys_len, ref_len, method, value, eff in specs:
        score = sb.BLEU.compute_bleu(list(correct), list(total), sys_len, ref_len, smooth_method=method,
                                     smooth_value=value, effective_order=eff, max_ngram_order=len(correct))
        cases.append({"correct": correct, "total": total, "sys_len": sys_len, "ref_len": ref_len,
                      "options": bleu_options(smooth_method=method, smooth_value=value, effective_order=eff),
                      "expected": bleu_result(score, None)})
    return cases


# ---------------------------------------------------------------------------------------------
# ROUGE
# ---------------------------------------------------------------------------------------------

ROUGE_TARGETS = [
    "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr "
    "q'wtion wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L\n",
    "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao Q m qiing LMmer "
    "HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion "
    "gMPfJpwGw p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN\n",
]
ROUGE_PREDICTIONS = [
    "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi\n",
    "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed HqqLFXe,XPY,J XsurkMeo ,ed "
    "nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD\n",
]
ROUGE_MULTI_TARGET = ROUGE_TARGETS[0] + ROUGE_TARGETS[1] + (
    "NhETebUbBk'er WOvoHMTjSRizKgH'vHiing Xu,hWxfs VkNE QhgKiLHE -HidivzoM.dO anhtion jbLQiSGDTCsuhREebUaKM dv J "
    "dVN tmbOT\nvMR HDm,xOAetion D,tion HJtodT.mHl UIv-p VjWH'BdyWjnfGU-OjT aEMdFICyLWfQMtion wEMfdOKing AwkeKbO "
    "'DxqNOHBH qKtVvm OYJl mM\n")
ROUGE_MULTI_PREDICTION = ROUGE_PREDICTIONS[0] + ROUGE_PREDICTIONS[1] + (
    "xfs VkJE QhgKiLHE -HidivzoM.dO anhing jbLQiSGDTCsuhREebUaKM dv J\nVjWH'BdyWjnfGU-OjTNaEMdFICyLWfQMing "
    "wEMfdOKijg AwkeKbO 'DxqNO\n")

ALL_ROUGE = ["rouge1", "rouge2", "rouge3", "rouge4", "rouge9", "rougeL", "rougeLsum"]


def rouge_cases(rs, rng, sentences, german):
    scorers = {stem: rs.rouge_scorer.RougeScorer(ALL_ROUGE, use_stemmer=stem) for stem in (False, True)}

    def score(target, prediction, stem):
        result = scorers[stem].score(target, prediction)
        return {k: [v.precision, v.recall, v.fmeasure] for k, v in result.items()}

    pairs = [
        ("testing one two", "testing"), ("testing one two", ""), ("", "testing"), ("", ""),
        ("testing one two", "testing one"), ("testing one two", "testing two"),
        ("first text", "text first"), ("first something", "text first"),
        (ROUGE_TARGETS[0], ROUGE_PREDICTIONS[0]), (ROUGE_TARGETS[1], ROUGE_PREDICTIONS[1]),
        (ROUGE_MULTI_TARGET, ROUGE_MULTI_PREDICTION),
        ("First sentence.\nSecond Sentence.", "Second sentence.\nFirst Sentence."),
        ("First sentence. Second Sentence.", "Second sentence. First Sentence."),
        ("w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5"), ("w1 w2 w3 w4 w5", "/"),
        # metrics.md §2.5: the backtracking picks index 2 of [w1, w2, w1] against [w1]; that changes the union.
        ("w1 w2 w1", "w1\nw1 w2"), ("w1 w2 w1", "w1"), ("a b a b a", "a\nb a\nb"),
        # On a mismatch with equal cells rouge-score moves up (i-1), not left: [a, b] vs [b, a] gives index 0.
        ("a b", "b a\na"), ("a b", "b a"),
        ("a b\n   \nc d", "c d\n\n\na b"), ("a b\r\nc d", "a b\nc d"), ("\n\n", "a"), ("a\n\n", "a\n"),
        ("The quick brown fox jumps over the lazy dog", "The quick brown dog jumps on the log."),
        ("café São naïve ﬁne İstanbul K o'neil 3:15 e.g.", "caf s o na ve ne i stanbul k o neil 3 15 e g"),
        ("Running runners ran; the dying skies, lying news.", "run runner running; die sky lie news"),
        ("generalization hopefully relational conditional", "general hope relate condition"),
        ("ΣΟΦΟΣ İİ ẞ", "σοφος i i ß"), ("12 1990s 3rd", "12 1990 3"),
    ]
    cases = []
    for target, prediction in pairs:
        for stem in (False, True):
            cases.append({"kind": "score", "targets": [target], "prediction": prediction, "stemmer": stem,
                          "expected": score(target, prediction, stem)})

    def noisy(text):
        words = text.split()
        out = perturb(words, rng, vocabulary, exotic=rng.random() < 0.3)
        if rng.random() < 0.5:  # sentence breaks for rougeLsum
            ws = out.split(" ")
            for _ in range(rng.randint(1, 3)):
                ws.insert(rng.randrange(len(ws) + 1), "\n")
            out = " ".join(ws)
        return out

    vocabulary = sorted({w for s in sentences for w in s.split()})
    for k in range(250):
        base = " ".join(rng.sample(sentences, rng.randint(1, 3))) if k % 7 else rng.choice(german)[1]
        stem = k % 2 == 1
        if k % 5 == 0:
            targets = [noisy(base) for _ in range(rng.randint(2, 3))]
            prediction = noisy(base)
            result = scorers[stem].score_multi(targets, prediction)
            cases.append({"kind": "multi", "targets": targets, "prediction": prediction, "stemmer": stem,
                          "expected": {t: [v.precision, v.recall, v.fmeasure] for t, v in result.items()}})
        else:
            target, prediction = base if rng.random() < 0.5 else noisy(base), noisy(base)
            cases.append({"kind": "score", "targets": [target], "prediction": prediction, "stemmer": stem,
                          "expected": score(target, prediction, stem)})
    # Small vocabularies and several lines: many equal DP cells, so rougeLsum's backtracking tie-break and the
    # hit counting are exercised far more than by natural text.
    for k in range(150):
        def line():
            return " ".join(rng.choice("abcd") for _ in range(rng.randint(0, 6)))
        target = "\n".join(line() for _ in range(rng.randint(1, 3)))
        prediction = "\n".join(line() for _ in range(rng.randint(1, 4)))
        cases.append({"kind": "score", "targets": [target], "prediction": prediction, "stemmer": False,
                      "expected": score(target, prediction, False)})
    # score_multi ties: the first target with the highest fmeasure wins (np.argmax).
    for targets, prediction in [(["first text", "first something"], "text first"),
                                (["a b", "b a"], "a b c"), (["x", "a b"], "a b"), (["a b", "a c"], "a")]:
        for stem in (False, True):
            result = scorers[stem].score_multi(targets, prediction)
            cases.append({"kind": "multi", "targets": targets, "prediction": prediction, "stemmer": stem,
                          "expected": {t: [v.precision, v.recall, v.fmeasure] for t, v in result.items()}})

    # Corpus level: plain mean of the per-pair scores (what rouge-score users compute without the bootstrap).
    corpus = []
    for k in range(3):
        targets = [" ".join(rng.sample(sentences, 2)) for _ in range(40)]
        predictions = [noisy(t) for t in targets]
        stem = k == 1
        per_pair = [scorers[stem].score(t, p) for t, p in zip(targets, predictions)]
        expected = {}
        for t in ALL_ROUGE:
            expected[t] = [sum(s[t].precision for s in per_pair) / len(per_pair),
                           sum(s[t].recall for s in per_pair) / len(per_pair),
                           sum(s[t].fmeasure for s in per_pair) / len(per_pair)]
        corpus.append({"targets": targets, "predictions": predictions, "stemmer": stem, "expected": expected})

    token_texts = [p for pair in pairs for p in pair] + [noisy(rng.choice(sentences)) for _ in range(200)]
    tokens = []
    for text in token_texts:
        for stem in (False, True):
            tokenizer = rs.tokenizers.DefaultTokenizer(use_stemmer=stem)
            tokens.append({"text": text, "stemmer": stem, "tokens": tokenizer.tokenize(text)})
    return {"cases": cases, "corpus": corpus, "tokens": tokens}


# ---------------------------------------------------------------------------------------------
# Porter stemmer (NLTK 3.8, NLTK_EXTENSIONS)
# ---------------------------------------------------------------------------------------------

PORTER_WORDS = [
    # the NLTK irregular pool and the words metrics.md lists as differing from the original algorithm
    "sky", "skies", "dying", "lying", "tying", "news", "innings", "inning", "outings", "outing", "cannings",
    "canning", "howe", "proceed", "exceed", "succeed", "flying", "died", "dies", "ties", "spied", "happy",
    "enjoy", "Sky", "SKIES", "Dying", "News", "İnning",
    # Porter (1980) examples, step by step
    "caresses", "ponies", "caress", "cats", "feed", "agreed", "plastered", "bled", "motoring", "sing",
    "conflated", "troubled", "sized", "hopping", "tanned", "falling", "hissing", "fizzed", "failing", "filing",
    "relational", "conditional", "rational", "valenci", "hesitanci", "digitizer", "conformabli", "radicalli",
    "differentli", "vileli", "analogousli", "vietnamization", "predication", "operator", "feudalism",
    "decisiveness", "hopefulness", "callousness", "formaliti", "sensitiviti", "sensibiliti", "triplicate",
    "formative", "formalize", "electriciti", "electrical", "hopeful", "goodness", "revival", "allowance",
    "inference", "airliner", "gyroscopic", "adjustable", "defensible", "irritant", "replacement", "adjustment",
    "dependent", "adoption", "homologou", "communism", "activate", "angulariti", "homologous", "effective",
    "bowdlerize", "probate", "rate", "cease", "controll", "roll", "generalli", "hopefulli", "analogi",
    "apologi", "logi", "alli", "fulli", "bli", "abli", "ow", "owed", "ied", "ies", "eed", "bed", "ing", "ings",
    "is", "as", "ys", "y", "yy", "", "a", "i", "the", "was", "his", "sss", "ssss", "yyyy", "ayay", "syzygy",
    "toy", "toys", "by", "spy", "try", "cry", "eye", "eyed", "agreed", "need", "needed", "bleed", "sled",
    "hoped", "hopped", "filled", "fizzing", "tried", "cried", "lied", "lies", "tied", "ride", "riding",
    "a*ding", "x*d", "1990s", "mp3s", "naïvely", "café", "𝐀s", "𝐀𝐀s", "𝐀𝐀𝐀ing", "ΣΟΦΟΣ", "aİ",
    "generalizations", "oscillators", "dishonorable", "irreplaceable", "misunderstanding", "nationalization",
    "happily", "sadly", "really", "fully", "wholly", "ably", "abilities", "possibility", "biology", "geology",
    "archaeology", "trilogy", "fallacies", "allies", "alleys", "valleys", "journeys", "monkeys",
]


def porter_cases(nltk, rng, records):
    stemmer = nltk.PorterStemmer()
    words = set()
    for record in records:
        for raw in record.split():
            w = raw.strip(".,;:!?\"'()[]{}<>*_-/\\`~")
            if w:
                words.add(w)
    lower_words = sorted({w.lower() for w in words if re.fullmatch(r"[A-Za-z0-9]+", w)})
    mixed = sorted(w for w in words if not re.fullmatch(r"[a-z0-9]+", w))
    chosen = list(PORTER_WORDS) + rng.sample(lower_words, min(6000, len(lower_words))) + rng.sample(mixed, 800)
    seen, out = set(), []
    for w in chosen:
        if w not in seen:
            seen.add(w)
            out.append([w, stemmer.stem(w)])
    return out


# ---------------------------------------------------------------------------------------------
# Self-BLEU (Texygen: NLTK sentence_bleu, method1, weights 1/n, first 500) and distinct-n
# ---------------------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def seeded_subset(count, size, seed):
    """The documented subsample of SelfBleu: partial Fisher-Yates driven by SplitMix64, then sorted."""
    state = seed & MASK64
    index = list(range(count))
    for i in range(size):
        state, r = splitmix64(state)
        j = i + r % (count - i)
        index[i], index[j] = index[j], index[i]
    return sorted(index[:size])


def texygen_self_bleu(nltk, sentences, gram):
    """SelfBleu.get_bleu_parallel, sequentially: hypothesis i against every other sentence."""
    weight = tuple((1.0 / gram for _ in range(gram)))
    smoothing = nltk.SmoothingFunction().method1
    score, count = 0.0, 0
    for index in range(len(sentences)):
        other = sentences[:index] + sentences[index + 1:]
        score += nltk.sentence_bleu(other, sentences[index], weight, smoothing_function=smoothing)
        count += 1
    return score / count


def self_bleu_cases(nltk, rng, sentences):
    cases = []

    def add(name, sents, gram, cap=500, seed=None):
        chosen = sents
        if cap is not None and len(sents) > cap:
            chosen = [sents[i] for i in seeded_subset(len(sents), cap, seed)] if seed is not None else sents[:cap]
        cases.append({"name": name, "sentences": sents, "gram": gram, "cap": cap, "seed": seed,
                      "used": len(chosen), "expected": texygen_self_bleu(nltk, chosen, gram)})

    add("all duplicates", [["a", "b", "c"]] * 5, 3)
    add("one token matches n=2", [["a"], ["a", "b"]], 2)
    add("no unigram match", [["a", "b"], ["c", "d"], ["e"]], 3)
    add("empty sentence", [[], ["a", "b"], ["a", "b", "c"]], 2)
    add("shorter than n", [["a", "b"], ["a", "b"], ["b", "a"]], 4)
    add("duplicate stays a reference", [["x", "y"], ["x", "y"], ["z"]], 2)
    add("length tie shorter wins", [["a", "b", "c", "d"], ["a", "b", "c"], ["a", "b", "c", "d", "e"]], 2)
    tokenized = [s.split() for s in sentences]
    small = rng.sample(tokenized, 60)
    for gram in (1, 2, 3, 4, 5):
        add(f"fortunes 60 n={gram}", small, gram)
    near = [perturb(s, rng, [w for t in small for w in t], exotic=False).split() for s in small[:20] for _ in range(3)]
    add("near duplicates n=3", near, 3)
    add("cap 500 of 520 n=3", rng.sample(tokenized, 520), 3)
    add("cap 40 of 90 first", rng.sample(tokenized, 90), 2, cap=40)
    add("cap 50 of 120 seed 7", rng.sample(tokenized, 120), 3, cap=50, seed=7)
    add("no cap", rng.sample(tokenized, 70), 4, cap=None)
    return {"cases": cases, "subsets": [{"count": c, "size": s, "seed": sd, "indices": seeded_subset(c, s, sd)}
                                        for c, s, sd in [(10, 3, 0), (120, 50, 7), (1000, 500, 123456789),
                                                         (5, 5, 1), (7, 0, 3), (100, 10, (1 << 63) + 5)]]}


def distinct_cases(rng, sentences):
    def distinct(sents, n):
        grams, total = set(), 0
        for s in sents:
            for i in range(len(s) - n + 1):
                grams.add(tuple(s[i:i + n]))
                total += 1
        return {"distinct": len(grams), "total": total, "value": len(grams) / total if total else 0.0}

    cases = []
    tokenized = [s.split() for s in sentences]
    inputs = [[], [[]], [["a"]], [["a", "a", "a"]], [["a", "b"], ["b", "a"]], [["a", "b", "c"], ["a", "b", "c"]],
              [["x"], ["y"]], rng.sample(tokenized, 200), [perturb(s, rng, ["the", "a"], False).split()
                                                            for s in rng.sample(tokenized, 100)]]
    for sents in inputs:
        for n in (1, 2, 3, 4):
            cases.append({"sentences": sents, "n": n, "expected": distinct(sents, n)})
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sacrebleu", default=os.environ.get("SACREBLEU_SRC"),
                        help="sacreBLEU v2.6.0 checkout (directory holding sacrebleu/); env SACREBLEU_SRC")
    parser.add_argument("--rouge-score", default=os.environ.get("ROUGE_SCORE_SRC"),
                        help="directory holding rouge-score 0.1.2's rouge_score/ package; env ROUGE_SCORE_SRC")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()
    if not args.sacrebleu or not args.rouge_score:
        parser.error("--sacrebleu and --rouge-score (or SACREBLEU_SRC / ROUGE_SCORE_SRC) are required")

    sb = refimpl.load_sacrebleu(args.sacrebleu)
    rs = refimpl.load_rouge(args.rouge_score)
    nltk = refimpl.load_nltk()
    records = read_fortunes()
    sentences = fortune_sentences(records)
    german = read_german()
    if len(sentences) < 1000 or len(german) < 500:
        raise SystemExit("need Debian's fortunes and the German gettext catalogs (apt-get install fortunes "
                         "fortunes-min and packages with de translations)")

    def write(name, payload):
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(payload, f, ensure_ascii=False, indent=None, separators=(",", ":"))
            f.write("\n")
        print(f"wrote {path} ({os.path.getsize(path):,} bytes)", file=sys.stderr)

    write("python-text.json", python_text(random.Random(SEED + 1)))
    write("tokenizers.json", tokenizer_cases(sb, random.Random(SEED + 2), sentences, records, german))
    rng = random.Random(SEED + 3)
    write("bleu.json", {"cases": bleu_cases(sb, rng, sentences, german), "statistics": bleu_statistics_cases(sb)})
    write("rouge.json", rouge_cases(rs, random.Random(SEED + 4), sentences, german))
    write("porter.json", porter_cases(nltk, random.Random(SEED + 5), records))
    write("self-bleu.json", self_bleu_cases(nltk, random.Random(SEED + 6), sentences))
    write("distinct.json", distinct_cases(random.Random(SEED + 7), sentences))
    write("metadata.json", {
        "generator": "tests/reference/generate.py",
        "python": sys.version.split()[0],
        "unicode": unicodedata.unidata_version,
        "sacrebleu": {"version": sb.version, "files_sha256": sb.files},
        "rouge_score": {"version": "0.1.2", "files_sha256": rs.files},
        "nltk": nltk.version,
        "seed": SEED,
    })


if __name__ == "__main__":
    main()
