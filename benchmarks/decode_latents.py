"""Brain → codec-latent ridge at NSD size: brain_workbench.numerics.ridge_predict against himalaya and scikit-learn.

Full size is one NSD subject decoding 256-px TAEF2 latents: n = 9,000 training trials, p = 15,724
voxels (features), t = 32,768 latent values (targets), 1,000 test trials, 20 alphas, 5 folds; flags
shrink every size. Each solver runs in its own subprocess on the same seeded data, so wall time and
peak memory (growth of ru_maxrss over the resident size once the data exist: an upper bound of the
solver's own peak) are measured cleanly. Solvers:

- workbench: ``ridge_cv_predict`` (kernel form, one alpha per target by 5-fold CV, predicts the test
  trials chunk by chunk; the voxels × targets weights are never formed);
- himalaya: ``KernelRidgeCV(kernel="linear", fit_intercept=True)``, the same criterion and folds;
- sklearn-kfold: the same search written with scikit-learn: ``Ridge`` fitted on every fold for
  every alpha, alpha per target by fold-mean test MSE, refit per distinct alpha (what scikit-learn
  offers for per-target K-fold alphas; slow, so run it at small sizes or ``--skip`` it);
- sklearn-gcv: ``RidgeCV(alpha_per_target=True)``, scikit-learn's own per-target search
  (efficient leave-one-out, a different criterion, so its alphas differ);
- sklearn-fixed: ``Ridge`` refit at workbench's chosen alphas (one fit per distinct alpha): the
  prediction check, and a lower bound on any scikit-learn search.

Predictions are compared with max |difference| / max |prediction|.

    python benchmarks/decode_latents.py --n 3000 --p 5000 --t 8192 --skip sklearn-kfold   # a busy 2-core machine
    python benchmarks/decode_latents.py --n 1500 --p 2500 --t 2048                          # with sklearn-kfold
    python benchmarks/decode_latents.py                                      # full size: ~40 GB RAM for the
                                                                             # references, hours on a CPU
    python benchmarks/decode_latents.py --backend torch --device cuda --skip sklearn-gcv,sklearn-fixed
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ridge import gemm_rate, maxrss_bytes, warm_up  # noqa: E402

SOLVERS = ("workbench", "himalaya", "sklearn-kfold", "sklearn-gcv", "sklearn-fixed")


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_data(n: int, p: int, t: int, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxels with a decaying spectrum; latents a noisy rank-64 read-out of them with varied SNR (float32)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + m, p), dtype=np.float32)
    X *= (1.0 / np.sqrt(1 + np.arange(p, dtype=np.float32) / 64))[None, :]
    V = rng.standard_normal((p, 64), dtype=np.float32) / np.sqrt(p)
    H = X @ V
    H /= H.std(0)
    Y = np.empty((n + m, t), dtype=np.float32)
    for start in range(0, t, 4096):
        stop = min(t, start + 4096)
        M = rng.standard_normal((64, stop - start), dtype=np.float32) / 8
        Y[:, start:stop] = H @ M * rng.uniform(0.05, 1.0, stop - start).astype(np.float32)
        Y[:, start:stop] += rng.standard_normal((n + m, stop - start), dtype=np.float32)
    return X[:n], Y[:n], X[n:]


def worker(args: argparse.Namespace) -> None:
    """Run one solver on the seeded data and save its predictions, alphas, wall time and peak memory."""
    from sklearn.model_selection import KFold

    X, Y, X_new = make_data(args.n, args.p, args.t, args.test)
    alphas = np.logspace(-2, 6, args.alphas)
    cv = KFold(args.folds)
    cuda = args.backend == "torch" and (args.device or "").startswith("cuda")
    warm_up(args.backend, args.device)
    if cuda:
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    base = rss_bytes()
    info: dict = {}
    t0 = time.perf_counter()
    if args.worker == "workbench":
        from brain_workbench.numerics.ridge_predict import ridge_cv_predict

        res = ridge_cv_predict(X, Y, X_new, alphas, cv, backend=args.backend, device=args.device,
                               n_targets_chunk=args.chunk or None)
        pred, best = res.predictions, res.best_alphas
        info.update({"flops": res.flops, "method": res.method})
    elif args.worker == "himalaya":
        import warnings

        from himalaya.backend import set_backend
        from himalaya.kernel_ridge import KernelRidgeCV

        hb = "numpy" if args.backend == "numpy" else ("torch_cuda" if cuda else "torch")
        backend = set_backend(hb, on_error="raise")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = KernelRidgeCV(alphas=alphas, kernel="linear", cv=cv, fit_intercept=True,
                                  solver_params={"n_targets_batch": args.batch or None,
                                                 "n_targets_batch_refit": args.batch or None}).fit(X, Y)
            pred = np.asarray(backend.to_numpy(model.predict(X_new)))
        best = np.asarray(backend.to_numpy(model.best_alphas_))
        info["himalaya_backend"] = hb
    elif args.worker == "sklearn-kfold":
        from sklearn.linear_model import Ridge

        scores = np.zeros((len(alphas), Y.shape[1]))
        for train, test in cv.split(X):
            for i, alpha in enumerate(alphas):
                fold = Ridge(alpha=float(alpha)).fit(X[train], Y[train])
                scores[i] -= ((fold.predict(X[test]) - Y[test]) ** 2).mean(0) / args.folds
        best = alphas[np.argmax(scores, axis=0)]
        pred = np.empty((X_new.shape[0], Y.shape[1]), dtype=np.float32)
        for alpha in np.unique(best):
            cols = np.flatnonzero(best == alpha)
            pred[:, cols] = Ridge(alpha=float(alpha)).fit(X, Y[:, cols]).predict(X_new)
    elif args.worker == "sklearn-gcv":
        from sklearn.linear_model import RidgeCV

        model = RidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y)
        pred, best = model.predict(X_new), np.asarray(model.alpha_)
    else:
        from sklearn.linear_model import Ridge

        chosen = np.load(args.alphas_from)["best"]
        pred = np.empty((X_new.shape[0], Y.shape[1]), dtype=np.float32)
        for alpha in np.unique(chosen):
            cols = np.flatnonzero(chosen == alpha)
            pred[:, cols] = Ridge(alpha=float(alpha)).fit(X, Y[:, cols]).predict(X_new)
        best = chosen
    if cuda:
        torch.cuda.synchronize()
        info["gpu_peak_bytes"] = int(torch.cuda.max_memory_allocated())
    info["wall"] = time.perf_counter() - t0
    info["peak_bytes"] = max(0, maxrss_bytes() - base)
    info["data_bytes"] = X.nbytes + Y.nbytes + X_new.nbytes
    np.savez(args.out, best=best, pred=np.asarray(pred, dtype=np.float32))
    with open(args.out + ".json", "w") as fh:
        json.dump(info, fh)


def run_child(name: str, args: argparse.Namespace, tmp: str, alphas_from: str | None = None) -> dict:
    out = os.path.join(tmp, name)
    cmd = [sys.executable, __file__, "--worker", name, "--out", out, "--n", str(args.n), "--p", str(args.p),
           "--t", str(args.t), "--test", str(args.test), "--alphas", str(args.alphas), "--folds", str(args.folds),
           "--backend", args.backend, "--chunk", str(args.chunk), "--batch", str(args.batch)]
    if args.device:
        cmd += ["--device", args.device]
    if alphas_from:
        cmd += ["--alphas-from", alphas_from]
    subprocess.run(cmd, check=True)
    with open(out + ".json") as fh:
        info = json.load(fh)
    data = np.load(out + ".npz")
    info["best"], info["pred"], info["file"] = data["best"], data["pred"], out + ".npz"
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=9000, help="training trials")
    ap.add_argument("--p", type=int, default=15724, help="voxels (features)")
    ap.add_argument("--t", type=int, default=32768, help="latent values (targets); 32,768 = TAEF2 at 256 px")
    ap.add_argument("--test", type=int, default=None, help="test trials to predict (default n/9)")
    ap.add_argument("--alphas", type=int, default=20)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    ap.add_argument("--device", default=None)
    ap.add_argument("--chunk", type=int, default=0, help="targets per chunk for workbench (0: automatic)")
    ap.add_argument("--batch", type=int, default=0, help="himalaya n_targets_batch (0: all at once)")
    ap.add_argument("--skip", default="", help=f"comma-separated solvers to skip: {', '.join(SOLVERS[1:])}")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--alphas-from", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.test = args.test or max(2, args.n // 9)
    if args.worker:
        worker(args)
        return
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    data_mib = 4 * (args.n * args.p + args.n * args.t + args.test * args.p) / 2**20
    print(f"decode-latents ridge benchmark: n={args.n} p={args.p} t={args.t} test={args.test} alphas={args.alphas} "
          f"folds={args.folds} backend={args.backend} device={args.device or 'cpu'} cpus={os.cpu_count()} "
          f"data {data_mib:.0f} MiB (shared machine: timings are noisy)")
    with tempfile.TemporaryDirectory() as tmp:
        before = gemm_rate(args.backend, args.device)
        ours = run_child("workbench", args, tmp)
        after = gemm_rate(args.backend, args.device)
        rate = 0.5 * (before + after)
        gflops = ours["flops"] / ours["wall"] / 1e9
        print(f"float32 GEMM rate just before and after: {before:.1f} and {after:.1f} GFLOP/s")
        print(f"{'workbench ridge_cv_predict':28s} {ours['wall']:9.2f} s   peak +{ours['peak_bytes'] / 2**20:7.0f} MiB   "
              f"{ours['flops'] / 1e12:.2f} TFLOP -> {gflops:.1f} GFLOP/s ({100 * gflops / rate:.0f}% of GEMM rate)")
        if "gpu_peak_bytes" in ours:
            print(f"  GPU peak memory {ours['gpu_peak_bytes'] / 2**20:.0f} MiB")
        scale = np.abs(ours["pred"]).max()
        for name in SOLVERS[1:]:
            if name in skip:
                continue
            other = run_child(name, args, tmp, alphas_from=ours["file"] if name == "sklearn-fixed" else None)
            same = np.mean(np.isclose(ours["best"], other["best"], rtol=1e-6))
            diff = np.abs(ours["pred"] - other["pred"]).max() / scale
            corr = np.mean([np.corrcoef(ours["pred"][:, j], other["pred"][:, j])[0, 1]
                            for j in range(0, args.t, max(1, args.t // 256))])
            print(f"{name:28s} {other['wall']:9.2f} s   peak +{other['peak_bytes'] / 2**20:7.0f} MiB   "
                  f"workbench is {other['wall'] / ours['wall']:5.2f}x faster   same alpha {100 * same:6.2f}%   "
                  f"max|dpred|/max|pred| {diff:.2e}   mean r(pred) {corr:.5f}")
            if "gpu_peak_bytes" in other:
                print(f"  GPU peak memory {other['gpu_peak_bytes'] / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
