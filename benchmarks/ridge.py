"""Ridge CV at NSD subject scale: brain_workbench.numerics.ridge.ridge_cv against himalaya's RidgeCV.

Default size is one NSD subject (n=9000 stimuli, p=768 features, t=15,724 units, 20 alphas, 5 folds);
``--scale`` shrinks n and t linearly and p by sqrt(scale). Each solver runs in its own subprocess on
the same seeded data and folds, so wall time and peak memory (ru_maxrss growth after the data exist)
are measured cleanly. Prints wall time, peak memory, the speed ratio, agreement of the chosen alphas,
and achieved GFLOP/s (FLOPs the algorithm executes) against a float32 GEMM rate measured just before
and after the run.

    python benchmarks/ridge.py --scale 0.25
    python benchmarks/ridge.py --backend torch --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def make_data(n: int, p: int, t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features with a decaying spectrum and units with varied signal-to-noise (float32)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p), dtype=np.float32) * (1.0 / np.sqrt(1 + np.arange(p, dtype=np.float32)))
    Y = np.empty((n, t), dtype=np.float32)
    step = 2048
    for start in range(0, t, step):
        stop = min(t, start + step)
        W = rng.standard_normal((p, stop - start), dtype=np.float32)
        snr = rng.uniform(0.0, 1.0, stop - start).astype(np.float32)
        signal = X @ W
        signal /= signal.std(0) + 1e-6
        Y[:, start:stop] = snr * signal + rng.standard_normal((n, stop - start), dtype=np.float32)
    return X, Y


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def gemm_rate(backend: str, device: str | None, seconds: float = 2.0) -> float:
    """Best float32 GEMM GFLOP/s over square and ridge-shaped products on this machine."""
    best = 0.0
    shapes = [(2048, 2048, 2048), (768, 768, 4096), (768, 1800, 4096)]
    if backend == "torch":
        import torch

        dev = torch.device(device or "cpu")
        for m, k, n in shapes + [(8192, 8192, 8192)] * (dev.type == "cuda"):
            a = torch.randn(m, k, device=dev)
            b = torch.randn(k, n, device=dev)
            a @ b
            reps, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / len(shapes):
                a @ b
                reps += 1
            if dev.type == "cuda":
                torch.cuda.synchronize()
            best = max(best, 2.0 * m * k * n * reps / (time.perf_counter() - t0) / 1e9)
        return best
    rng = np.random.default_rng(0)
    for m, k, n in shapes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        a @ b
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / len(shapes):
            a @ b
            reps += 1
        best = max(best, 2.0 * m * k * n * reps / (time.perf_counter() - t0) / 1e9)
    return best


def warm_up(backend: str, device: str | None) -> None:
    """Load the LAPACK kernels both solvers use (MKL's first eigh alone takes seconds)."""
    a = np.random.default_rng(0).standard_normal((64, 64))
    a = a @ a.T
    np.linalg.eigh(a), np.linalg.qr(a), np.linalg.svd(a)
    if backend == "torch":
        import torch

        for dtype in (torch.float32, torch.float64):
            t = torch.as_tensor(a, dtype=dtype, device=device or "cpu")
            torch.linalg.eigh(t), torch.linalg.qr(t), torch.linalg.svd(t)


def worker(args: argparse.Namespace) -> None:
    """Run one solver on the seeded data and write its figures and chosen alphas to ``args.out``."""
    from sklearn.model_selection import KFold

    X, Y = make_data(args.n, args.p, args.t)
    alphas = np.logspace(-2, 6, args.alphas)
    cv = KFold(args.folds)
    info: dict = {}
    cuda = args.backend == "torch" and (args.device or "").startswith("cuda")
    warm_up(args.backend, args.device)
    if cuda:
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    base = maxrss_bytes()
    if args.worker == "workbench":
        from brain_workbench.numerics.backend import get_backend
        from brain_workbench.numerics.ridge import ridge_cv

        bk = get_backend(args.backend, args.device)
        t0 = time.perf_counter()
        res = ridge_cv(X, Y, alphas, cv, backend=bk, dtype="float32", n_units_chunk=args.chunk or None)
        bk.sync()
        wall = time.perf_counter() - t0
        best, coef = res.best_alphas, res.coef
        info.update({"flops": res.flops, "method": res.method})
    else:
        import warnings

        from himalaya.backend import set_backend
        from himalaya.ridge import RidgeCV

        hb = "numpy" if args.backend == "numpy" else ("torch_cuda" if (args.device or "").startswith("cuda") else "torch")
        set_backend(hb, on_error="raise")
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = RidgeCV(alphas=alphas, cv=cv, fit_intercept=True,
                            solver_params={"n_targets_batch": args.himalaya_batch or None}).fit(X, Y)
        best = np.asarray(model.best_alphas_.cpu() if hasattr(model.best_alphas_, "cpu") else model.best_alphas_)
        coef = np.asarray(model.coef_.cpu() if hasattr(model.coef_, "cpu") else model.coef_)
        wall = time.perf_counter() - t0
        info = {"himalaya_backend": hb}
    peak = maxrss_bytes() - base
    if cuda:
        info["gpu_peak_bytes"] = int(torch.cuda.max_memory_allocated())
    np.savez(args.out, best=best, coef=coef[:, :: max(1, args.t // 500)])
    with open(args.out + ".json", "w") as fh:
        json.dump({"wall": wall, "peak_bytes": int(peak), **info}, fh)


def run_child(name: str, args: argparse.Namespace, tmp: str) -> dict:
    out = os.path.join(tmp, name)
    cmd = [sys.executable, __file__, "--worker", name, "--out", out, "--n", str(args.n), "--p", str(args.p),
           "--t", str(args.t), "--alphas", str(args.alphas), "--folds", str(args.folds),
           "--backend", args.backend, "--chunk", str(args.chunk), "--himalaya-batch", str(args.himalaya_batch)]
    if args.device:
        cmd += ["--device", args.device]
    subprocess.run(cmd, check=True)
    with open(out + ".json") as fh:
        info = json.load(fh)
    data = np.load(out + ".npz")
    info["best"], info["coef"] = data["best"], data["coef"]
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="shrink n and t by this factor, p by its sqrt")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--p", type=int, default=None)
    ap.add_argument("--t", type=int, default=None)
    ap.add_argument("--alphas", type=int, default=20)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    ap.add_argument("--device", default=None)
    ap.add_argument("--chunk", type=int, default=0, help="units per chunk (0: automatic)")
    ap.add_argument("--himalaya-batch", type=int, default=0, help="himalaya n_targets_batch (0: all)")
    ap.add_argument("--skip-himalaya", action="store_true")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.n = args.n or int(round(9000 * args.scale))
    args.p = args.p or int(round(768 * min(1.0, args.scale) ** 0.5))
    args.t = args.t or int(round(15724 * args.scale))
    if args.worker:
        worker(args)
        return

    print(f"ridge CV benchmark: n={args.n} p={args.p} t={args.t} alphas={args.alphas} folds={args.folds} "
          f"backend={args.backend} device={args.device or 'cpu'} threads={os.cpu_count()} "
          "(shared machine: timings are noisy)")
    with tempfile.TemporaryDirectory() as tmp:
        before = gemm_rate(args.backend, args.device)
        ours = run_child("workbench", args, tmp)
        after = gemm_rate(args.backend, args.device)
        rate = 0.5 * (before + after)
        print(f"measured float32 GEMM rate just before and after the run: {before:.1f} and {after:.1f} GFLOP/s "
              f"(mean {rate:.1f})")
        gflops = ours["flops"] / ours["wall"] / 1e9
        print(f"workbench ridge_cv ({ours['method']}): {ours['wall']:8.2f} s   peak +{ours['peak_bytes'] / 2**20:8.0f} MiB"
              f"   {ours['flops'] / 1e12:.3f} TFLOP executed -> {gflops:7.1f} GFLOP/s = {100 * gflops / rate:5.1f}% of GEMM rate")
        if "gpu_peak_bytes" in ours:
            print(f"  GPU peak memory {ours['gpu_peak_bytes'] / 2**20:.0f} MiB")
        if args.skip_himalaya:
            return
        him = run_child("himalaya", args, tmp)
        print(f"himalaya RidgeCV ({him['himalaya_backend']}):    {him['wall']:8.2f} s   "
              f"peak +{him['peak_bytes'] / 2**20:8.0f} MiB")
        if "gpu_peak_bytes" in him:
            print(f"  GPU peak memory {him['gpu_peak_bytes'] / 2**20:.0f} MiB")
        agree = np.mean(np.isclose(ours["best"], him["best"], rtol=1e-4))
        rel = np.abs(ours["coef"] - him["coef"]).max() / np.abs(him["coef"]).max()
        print(f"speed-up vs himalaya: {him['wall'] / ours['wall']:6.2f}x   memory ratio: "
              f"{ours['peak_bytes'] / max(1, him['peak_bytes']):5.2f}   same alpha: {100 * agree:6.2f}% of units   "
              f"max |coef diff| / max |coef|: {rel:.2e}")


if __name__ == "__main__":
    main()
