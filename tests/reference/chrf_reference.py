#!/usr/bin/python3
"""chrF reference values from sacreBLEU 2.6.0 itself (CHRF.corpus_score), for TextEvaluatorTests.

Usage: /usr/bin/python3 chrf_reference.py /tmp/sacrebleu-2.6.0 > chrf.json
Reuses tests/reference/generate.py's machine-text readers and perturbation (fixed seed)."""
import json, os, random, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refimpl, generate
refimpl.load_sacrebleu(sys.argv[1])
from sacrebleu.metrics.chrf import CHRF

def run(name, hyps, refs, **options):
    width = max(len(r) for r in refs)
    streams = [[seg[k] if k < len(seg) else None for seg in refs] for k in range(width)]
    metric = CHRF(**options)
    score = metric.corpus_score(hyps, streams)
    raw = metric._extract_corpus_statistics(hyps, streams)
    from sacrebleu.utils import sum_of_lists
    totals = sum_of_lists(raw)
    return {"name": name, "options": options, "hyps": hyps, "refs": refs, "score": score.score,
            "stats": [int(x) for x in totals], "signature": str(metric.get_signature()), "scoreName": score.name}

cases = []
hand = [
    ("identical", ["the cat sat on the mat"], [["the cat sat on the mat"]]),
    ("no-match", ["xyz"], [["abc def"]]),
    ("empty-hyp", [""], [["Guten Morgen"]]),
    ("empty-ref", ["Guten Morgen"], [[""]]),
    ("both-empty", [""], [[""]]),
    ("short", ["ab", "a"], [["abc"], ["a b c"]]),
    ("unicode", ["Größe ändern „Zitat“ 😀 𝐀𝐁 e\u0301", "naïve café"], [["Grösse ändern «Zitat» 😀𝐀 é"], ["naive cafe"]]),
    ("whitespace-kinds", ["a\tb\nc\u3000d\u001ce\u00a0f", "  lead and trail  "], [["ab c d e f"], ["leadandtrail"]]),
    ("astral-ngrams", ["😀😀𝐀x😀"], [["😀𝐀x😀😀", "x😀"]]),
    ("multi-ref-null", ["Datei öffnen", "Speichern unter", "Beenden"], [["Datei öffnen", "Öffne Datei"], ["Speichern als", None], [None, "Programm beenden"]]),
    ("ref-tie-first-wins", ["abc"], [["abd", "abe"]]),
    ("corpus-sum", ["the quick brown fox", "jumps over", "the lazy dog."], [["a quick brown fox"], ["jumped over"], ["the lazy dogs"]]),
]
for name, hyps, refs in hand:
    cases.append(run(name, hyps, refs))
cases.append(run("lowercase", ["İstanbul ΣΟΦΟΣ Straße", "HELLO World"], [["istanbul σοφος strasse"], ["hello world"]], lowercase=True))
cases.append(run("whitespace-kept", ["the cat  sat", "a b"], [["the cat sat"], ["ab"]], whitespace=True))
cases.append(run("chrf++", ["(hi) there, friend!", "hello, ,start x", "a ( b ) c.", "😀, ok"], [["hi there friend"], ["hello start x"], ["a (b) c"], ["😀 , ok"]], word_order=2))
cases.append(run("eps-smoothing", ["abc", "the cat", ""], [["abd"], ["the hat"], ["x"]], eps_smoothing=True))
cases.append(run("beta1-order3", ["Datei speichern", "Fenster schließen"], [["Datei sichern"], ["Fenster schliessen"]], beta=1, char_order=3))
cases.append(run("chrf++-eps", ["(hi) there, friend!", "x"], [["hi there friend"], ["y z"]], word_order=2, eps_smoothing=True))

rng = random.Random(generate.SEED + 101)
german = generate.read_german(limit=400)
records = generate.read_fortunes()
sentences = generate.fortune_sentences(records)
vocab = [w for _, de in german for w in de.split()][:2000] or ["Wort"]
picked = rng.sample(german, min(30, len(german)))
hyps = [generate.perturb(de.split(), rng, vocab) for _, de in picked]
refs = [[de] for _, de in picked]
cases.append(run("german-perturbed", hyps, refs))
cases.append(run("german-perturbed-chrf++", hyps, refs, word_order=2))
cases.append(run("german-copy-source", [en for en, _ in picked], refs))
picked_s = rng.sample(sentences, min(25, len(sentences)))
hyps = [generate.perturb(s.split(), rng, [w for s in picked_s for w in s.split()]) for s in picked_s]
refs = [[s, generate.perturb(s.split(), rng, ["x"], exotic=False) if rng.random() < 0.5 else None] for s in picked_s]
cases.append(run("fortunes-two-refs", hyps, refs))
cases.append(run("fortunes-two-refs-lc", hyps, refs, lowercase=True))
# Inputs are stored once and cases refer to them, to keep the JSON small enough to embed in the test.
inputs, compact = {}, []
for case in cases:
    key = json.dumps([case["hyps"], case["refs"]])
    name = next((n for n, v in inputs.items() if v[0] == key), None)
    if name is None:
        name = case["name"]
        inputs[name] = (key, {"hyps": case["hyps"], "refs": case["refs"]})
    compact.append({"name": case["name"], "inputs": name, "options": case["options"], "score": case["score"],
                    "stats": case["stats"], "signature": case["signature"], "scoreName": case["scoreName"]})
json.dump({"sacrebleu": "2.6.0", "inputs": {n: v[1] for n, v in inputs.items()}, "cases": compact},
          sys.stdout, ensure_ascii=True, separators=(",", ":"))
