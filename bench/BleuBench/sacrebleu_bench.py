"""Times sacreBLEU's corpus BLEU on the segments BleuBench wrote (JSON: {"hypotheses": [...], "references": [...]}).

Usage: /usr/bin/python3 sacrebleu_bench.py SACREBLEU_SOURCE_DIR SEGMENTS_JSON RUNS
Prints one JSON line: {"version", "score", "signature", "seconds": [...]} — every run on a fresh BLEU object
with sacreBLEU's tokenizer caches cleared, so no run benefits from an earlier one.
"""
import json
import os
import statistics
import sys
import time
import types


def load(source_dir):
    # sacreBLEU's package imports pull in modules the metric never calls (dataset download, table printing);
    # stub them if they are missing. version.py is generated at install time, so a checkout lacks it.
    for name, attrs in [("portalocker", {}), ("tabulate", {"tabulate": lambda *a, **k: ""}), ("lxml.etree", {})]:
        try:
            __import__(name)
        except ImportError:
            module = types.ModuleType(name)
            module.__dict__.update(attrs)
            sys.modules[name] = module
    if "lxml" not in sys.modules:
        sys.modules["lxml"] = types.ModuleType("lxml")
        sys.modules["lxml"].etree = sys.modules["lxml.etree"]
    if not os.path.isfile(os.path.join(source_dir, "sacrebleu", "version.py")):
        version = types.ModuleType("sacrebleu.version")
        version.__version__ = "2.6.0"
        sys.modules["sacrebleu.version"] = version
    sys.path.insert(0, source_dir)
    import sacrebleu
    from sacrebleu.metrics.bleu import BLEU
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    from sacrebleu.tokenizers.tokenizer_re import TokenizerRegexp
    return sacrebleu, BLEU, [Tokenizer13a.__call__, TokenizerRegexp.__call__]


def main():
    source_dir, segments_path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sacrebleu, BLEU, cached = load(source_dir)
    with open(segments_path, encoding="utf-8") as f:
        data = json.load(f)
    hyps, refs = data["hypotheses"], [data["references"]]
    seconds, score, signature = [], None, None
    for run in range(runs + 1):  # run 0 is the warm-up
        for function in cached:
            function.cache_clear()
        metric = BLEU()
        start = time.perf_counter()
        result = metric.corpus_score(hyps, refs)
        elapsed = time.perf_counter() - start
        if run > 0:
            seconds.append(elapsed)
        score, signature = result.score, metric.get_signature().format()
    print(json.dumps({"version": sacrebleu.__version__, "score": score, "signature": signature,
                      "seconds": seconds, "median": statistics.median(seconds)}))


if __name__ == "__main__":
    main()
