#!/usr/bin/python3
"""Expected values for the image-metric tests, computed by the reference implementations.

Run with Debian's Python (numpy/scipy): /usr/bin/python3 image_metrics_reference.py <pytorch-fid git dir>
The pytorch-fid git dir is a clone/snapshot of github.com/mseitzer/pytorch-fid; the script executes
calculate_frechet_distance from its v0.3.0 tag unchanged (it needs only numpy and scipy, so torch is
not imported). IS follows openai/improved-gan inception_score/model.py, KID torch-fidelity's mmd2,
MiFID torchmetrics' _compute_cosine_distance/_mifid_compute (formulas written out below, numpy).
Writes image-metrics.json next to this script; the C# tests read it (no Python at test time).
"""
import ast
import json
import subprocess
import sys
import os

import numpy as np
from scipy import linalg

here = os.path.dirname(os.path.abspath(__file__))
git_dir = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/mseitzer+pytorch-fid/repo"
source = subprocess.check_output(["git", "--git-dir", git_dir, "show", "v0.3.0:src/pytorch_fid/fid_score.py"], text=True)
tree = ast.parse(source)
function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "calculate_frechet_distance")
namespace = {"np": np, "linalg": linalg}
exec(compile(ast.Module(body=[function], type_ignores=[]), "fid_score.py", "exec"), namespace)
calculate_frechet_distance = namespace["calculate_frechet_distance"]


def stats(x):
    # pytorch-fid calculate_activation_statistics
    return np.mean(x, axis=0), np.cov(x, rowvar=False)


def inception_score(p, splits):
    # improved-gan: contiguous splits, exp(mean KL(p || mean p))
    n = p.shape[0]
    scores = []
    for k in range(splits):
        part = p[(k * n // splits):((k + 1) * n // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        kl = np.mean(np.sum(kl, 1))
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def mmd2_unbiased(x, y, degree=3, gamma=None, coef0=1):
    # torch-fidelity kid: polynomial kernel, unbiased estimator
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    kxx = (x @ x.T * gamma + coef0) ** degree
    kyy = (y @ y.T * gamma + coef0) ** degree
    kxy = (x @ y.T * gamma + coef0) ** degree
    m = kxx.shape[0]
    kt_xx = (kxx.sum(axis=1) - np.diagonal(kxx)).sum()
    kt_yy = (kyy.sum(axis=1) - np.diagonal(kyy)).sum()
    return float((kt_xx + kt_yy) / (m * (m - 1)) - 2 * kxy.sum(axis=0).sum() / (m * m))


def memorization_distance(f1, f2, eps=0.1):
    # torchmetrics _compute_cosine_distance(features1=real, features2=fake)
    f1 = f1[np.sum(f1, axis=1) != 0]
    f2 = f2[np.sum(f2, axis=1) != 0]
    n1 = f1 / np.linalg.norm(f1, axis=1, keepdims=True)
    n2 = f2 / np.linalg.norm(f2, axis=1, keepdims=True)
    d = 1.0 - np.abs(n1 @ n2.T)
    mean_min = float(np.mean(d.min(axis=1)))
    return mean_min, (mean_min if mean_min < eps else 1.0)


def nearest(generated, training):
    d = np.sqrt(((generated[:, None, :] - training[None, :, :]) ** 2).sum(axis=2))
    order = np.argsort(d, axis=1, kind="stable")
    idx = order[:, 0]
    return d[np.arange(len(d)), idx], idx, d[np.arange(len(d)), order[:, 1]]


def arr(x):
    return [float(v) for v in np.asarray(x).ravel()]


rng = np.random.default_rng(20261127)
cases = {"fid": [], "is": [], "kid": [], "mifid": [], "nearest": []}

# FID from features: well-conditioned, correlated, different N.
a = rng.normal(size=(500, 24))
mix = np.eye(24) + 0.3 * rng.normal(size=(24, 24))
b = rng.normal(size=(400, 24)) @ mix * 1.3 + 0.5
# Large magnitudes (values ~5000, std ~1000): float32 would lose digits, float64 must not.
c = rng.normal(loc=5000, scale=1000, size=(300, 16))
d = rng.normal(loc=5100, scale=900, size=(350, 16)) @ (np.eye(16) + 0.1 * rng.normal(size=(16, 16)))
# N <= D: both covariances singular.
e = rng.normal(size=(20, 32))
f = rng.normal(size=(25, 32)) * 2.0 + 0.1
for name, x, y in [("correlated", a, b), ("large-magnitude", c, d), ("singular-n-le-d", e, f)]:
    mu1, s1 = stats(x)
    mu2, s2 = stats(y)
    cases["fid"].append({
        "name": name, "rows1": x.shape[0], "rows2": y.shape[0], "dims": x.shape[1],
        "features1": arr(x), "features2": arr(y),
        "mu1": arr(mu1), "sigma1": arr(s1),
        "expected": float(calculate_frechet_distance(mu1, s1, mu2, s2)),
    })

# Rank-1 covariances: pytorch-fid hits its eps fallback; the exact value is |mu diff|^2 + |a|^2 + |b|^2 - 2|a.b|.
va = np.array([1.0, 2.0, 0.0, -1.0])
vb = np.array([0.5, -1.0, 2.0, 1.0])
rank1 = {
    "name": "rank-1", "dims": 4,
    "mu1": [0.0, 0.0, 0.0, 0.0], "sigma1": arr(np.outer(va, va)),
    "mu2": [1.0, 0.0, 0.0, 0.0], "sigma2": arr(np.outer(vb, vb)),
    "exact": float(1.0 + va @ va + vb @ vb - 2 * abs(va @ vb)),
    "pytorch_fid": float(calculate_frechet_distance(np.zeros(4), np.outer(va, va), np.array([1.0, 0, 0, 0]), np.outer(vb, vb))),
}
cases["fid_rank1"] = rank1

# IS from softmax probabilities (finite logits: no exact zeros), N=503 so splits are 50/51 rows.
for n, splits, scale in [(503, 10, 3.0), (200, 1, 1.0), (1000, 10, 8.0)]:
    logits = rng.normal(size=(n, 10)) * scale
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = p / p.sum(axis=1, keepdims=True)
    mean, std = inception_score(p, splits)
    cases["is"].append({"rows": n, "classes": 10, "splits": splits, "probabilities": arr(p), "mean": mean, "std": std})

# KID on whole equal-size sets (one subset = the exact statistic).
x = rng.normal(size=(120, 16))
y = rng.normal(size=(120, 16)) * 1.1 + 0.2
cases["kid"].append({"rows": 120, "dims": 16, "features1": arr(x), "features2": arr(y), "expected": mmd2_unbiased(x, y)})

# MiFID memorization distance: one set close to copies (below eps), one not; a zero-sum row dropped.
real = rng.normal(size=(60, 12))
near_copies = real[:40] + 0.01 * rng.normal(size=(40, 12))
real_with_zero = np.vstack([real, np.zeros((1, 12))])
far = rng.normal(size=(50, 12))
for name, r, g in [("near-copies", real_with_zero, near_copies), ("novel", real, far)]:
    mean_min, thresholded = memorization_distance(r, g)
    cases["mifid"].append({"name": name, "rows1": r.shape[0], "rows2": g.shape[0], "dims": 12,
                           "features1": arr(r), "features2": arr(g), "mean_min": mean_min, "thresholded": thresholded})

# Nearest neighbours (exact copies included: distance 0).
train = rng.normal(size=(300, 8))
gen = np.vstack([train[[5, 17, 17]], rng.normal(size=(40, 8))])
d1, idx, d2 = nearest(gen, train)
cases["nearest"].append({"rows1": gen.shape[0], "rows2": train.shape[0], "dims": 8, "generated": arr(gen), "training": arr(train),
                         "d1": arr(d1), "index": [int(i) for i in idx], "d2": arr(d2),
                         "memorized_share": float(np.mean(np.where(d2 == 0, 0.0, d1 / np.where(d2 == 0, 1, d2)) < 1 / 3))})

with open(os.path.join(here, "image-metrics.json"), "w") as out:
    json.dump({"generator": "image_metrics_reference.py", "numpy": np.__version__, "pytorch_fid": "v0.3.0", "cases": cases}, out)
print("rank-1: exact", rank1["exact"], "pytorch-fid", rank1["pytorch_fid"])
for case in cases["fid"]:
    print("fid", case["name"], case["expected"])
