#!/usr/bin/python3
"""pytorch-fid's FID on two .npy feature files, timed: statistics (np.mean, np.cov as in
calculate_activation_statistics) and distance (calculate_frechet_distance, executed unchanged from a
pytorch-fid git snapshot when one is given, else the same scipy.linalg.sqrtm formula written out).
Prints one JSON line. Run by bench/FidBench with Debian's /usr/bin/python3 (numpy/scipy on OpenBLAS)."""
import ast, json, subprocess, sys, time
import numpy as np
from scipy import linalg

a_path, b_path = sys.argv[1], sys.argv[2]
git_dir = sys.argv[3] if len(sys.argv) > 3 else ""
source = "embedded formula"
if git_dir:
    text = subprocess.check_output(["git", "--git-dir", git_dir, "show", "v0.3.0:src/pytorch_fid/fid_score.py"], text=True)
    fn = next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == "calculate_frechet_distance")
    ns = {"np": np, "linalg": linalg}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "fid_score.py", "exec"), ns)
    calculate_frechet_distance = ns["calculate_frechet_distance"]
    source = "pytorch-fid v0.3.0 calculate_frechet_distance"
else:
    def calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
        diff = mu1 - mu2
        covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
        if np.iscomplexobj(covmean):
            covmean = covmean.real
        return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)

a = np.load(a_path)
b = np.load(b_path)
t0 = time.perf_counter()
mu1, s1 = np.mean(a, axis=0), np.cov(a, rowvar=False)
mu2, s2 = np.mean(b, axis=0), np.cov(b, rowvar=False)
t1 = time.perf_counter()
fid = calculate_frechet_distance(mu1, s1, mu2, s2)
t2 = time.perf_counter()
print(json.dumps({"fid": float(fid), "statistics_s": t1 - t0, "distance_s": t2 - t1, "source": source, "numpy": np.__version__}))
