"""RSA at scale: RDMs of 10,000 stimuli × 10,000 features and a 1,000-permutation test, vs rsatoolbox.

Each tool runs in its own subprocess on the same seeded data (two float64 representations that
share structure) so wall time and peak memory (ru_maxrss growth after the data exist) are clean.
Steps: two correlation-distance RDMs, their Spearman correlation, and a stimulus-permutation test.
rsatoolbox has no permutation test for RDM comparisons, so its baseline is the plain loop a user
would write (``RDMs.reorder`` + ``compare``); with ``--rsatoolbox-perms`` smaller than
``--permutations`` its per-permutation time is measured on that many and extrapolated (printed so).

    python benchmarks/rsa.py --scale 0.2
    python benchmarks/rsa.py                      # full size; rsatoolbox RDMs alone take minutes
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


def make_data(n: int, p: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """X: clustered stimuli; Y: a noisy, feature-shuffled copy (float64, like rsatoolbox)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, p))
    X = centers[rng.integers(0, 20, n)]
    X += 2.0 * rng.standard_normal((n, p))
    Y = X[:, rng.permutation(p)]
    Y += 3.0 * rng.standard_normal((n, p))
    return X, Y


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(args: argparse.Namespace) -> None:
    X, Y = make_data(args.n, args.p)
    base = maxrss_bytes()
    times: dict[str, float] = {}
    if args.worker == "workbench":
        import scipy.stats  # noqa: F401  (imported before timing, as rsatoolbox's import does)

        from brain_workbench.numerics.stats import permutation_test_rdms
        from brain_workbench_plugins.metrics import compare_rdms, rdm

        t0 = time.perf_counter()
        a, b = rdm(X, "correlation"), rdm(Y, "correlation")
        times["rdms"] = time.perf_counter() - t0
        del X, Y
        t0 = time.perf_counter()
        rho = compare_rdms(a, b, "spearman")
        times["spearman"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = permutation_test_rdms(a, b, "spearman", n_permutations=args.permutations, seed=0)
        times["permutations"] = time.perf_counter() - t0
        times["perms_run"] = args.permutations
        extra = {"pvalue": res.pvalue}
    else:
        import rsatoolbox

        t0 = time.perf_counter()
        ra = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(X), method="correlation")
        rb = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(Y), method="correlation")
        times["rdms"] = time.perf_counter() - t0
        del X, Y
        t0 = time.perf_counter()
        rho = float(rsatoolbox.rdm.compare(ra, rb, method="spearman")[0, 0])
        times["spearman"] = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        k = min(args.rsatoolbox_perms, args.permutations)
        t0 = time.perf_counter()
        null = []
        for _ in range(k):
            permuted = rsatoolbox.rdm.RDMs(ra.get_vectors())
            permuted.reorder(rng.permutation(args.n))
            null.append(float(rsatoolbox.rdm.compare(permuted, rb, method="spearman")[0, 0]))
        times["permutations"] = time.perf_counter() - t0
        times["perms_run"] = k
        a = ra.get_vectors()[0]
        extra = {"null_mean": float(np.mean(null)) if null else None}
    peak = maxrss_bytes() - base
    np.save(args.out + ".npy", a[:: max(1, len(a) // 100_000)])
    with open(args.out + ".json", "w") as fh:
        json.dump({"times": times, "rho": rho, "peak_bytes": int(peak), **extra}, fh)


def run_child(name: str, args: argparse.Namespace, tmp: str) -> dict:
    out = os.path.join(tmp, name)
    cmd = [sys.executable, __file__, "--worker", name, "--out", out, "--n", str(args.n), "--p", str(args.p),
           "--permutations", str(args.permutations), "--rsatoolbox-perms", str(args.rsatoolbox_perms)]
    subprocess.run(cmd, check=True)
    with open(out + ".json") as fh:
        info = json.load(fh)
    info["rdm_sample"] = np.load(out + ".npy")
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="shrink stimuli and features by this factor")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--p", type=int, default=None)
    ap.add_argument("--permutations", type=int, default=1000)
    ap.add_argument("--rsatoolbox-perms", type=int, default=3,
                    help="permutations actually run through rsatoolbox (the rest are extrapolated)")
    ap.add_argument("--rsatoolbox-max-n", type=int, default=3000,
                    help="run rsatoolbox on at most this many stimuli (and features scaled alike); its times "
                         "are then extrapolated to full size: RDMs ∝ n²p, Spearman and permutations ∝ n² log n")
    ap.add_argument("--skip-rsatoolbox", action="store_true")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.n = args.n or int(round(10_000 * args.scale))
    args.p = args.p or int(round(10_000 * args.scale))
    if args.rsatoolbox_max_n <= 0:
        args.rsatoolbox_max_n = args.n
    if args.worker:
        worker(args)
        return
    print(f"RSA benchmark: n={args.n} stimuli, p={args.p} features, correlation RDMs, Spearman, "
          f"{args.permutations} permutations; threads={os.cpu_count()} (shared machine: timings are noisy)")
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_child("workbench", args, tmp)
        t = ours["times"]
        total = t["rdms"] + t["spearman"] + t["permutations"]
        print(f"workbench : RDMs {t['rdms']:8.2f} s | Spearman {t['spearman']:6.2f} s | "
              f"{t['perms_run']} perms {t['permutations']:8.2f} s ({1e3 * t['permutations'] / t['perms_run']:.1f} ms each)"
              f" | total {total:8.2f} s | peak +{ours['peak_bytes'] / 2**20:.0f} MiB"
              f" | rho={ours['rho']:.6f} p={ours['pvalue']:.4f}")
        if args.skip_rsatoolbox:
            return
        small = argparse.Namespace(**vars(args))
        f = min(1.0, args.rsatoolbox_max_n / args.n)
        small.n, small.p = int(round(args.n * f)), max(1, int(round(args.p * f)))
        ref = run_child("rsatoolbox", small, tmp)
        r = ref["times"]
        m_full, m_small = args.n * (args.n - 1) / 2, small.n * (small.n - 1) / 2
        sort_scale = m_full * np.log(m_full) / (m_small * np.log(m_small))
        r["rdms"] *= (args.n / small.n) ** 2 * (args.p / small.p)
        r["spearman"] *= sort_scale
        per = r["permutations"] / max(1, r["perms_run"]) * sort_scale
        full = per * args.permutations
        label = "measured" if r["perms_run"] == args.permutations else f"extrapolated from {r['perms_run']}"
        if f < 1:
            label += f"; all rsatoolbox times extrapolated from n={small.n}, p={small.p}"
            print(f"(rsatoolbox runs at n={small.n}, p={small.p} and is scaled up; its figures are estimates)")
        rtotal = r["rdms"] + r["spearman"] + full
        peak_note = "" if f == 1 else f" (at n={small.n})"
        print(f"rsatoolbox: RDMs {r['rdms']:8.2f} s | Spearman {r['spearman']:6.2f} s | "
              f"{args.permutations} perms {full:8.2f} s ({1e3 * per:.1f} ms each; {label})"
              f" | total {rtotal:8.2f} s | peak +{ref['peak_bytes'] / 2**20:.0f} MiB{peak_note} | rho={ref['rho']:.6f}")
        if f < 1:
            diff = float("nan")
            print("(RDM and rho agreement is checked at equal size by tests/plugins/test_metrics.py; "
                  "rerun with --rsatoolbox-max-n 0 for a same-size comparison here)")
        else:
            diff = np.abs(ours["rdm_sample"] - ref["rdm_sample"]).max()
        print(f"speed-up: RDMs {r['rdms'] / t['rdms']:.2f}x | Spearman {r['spearman'] / t['spearman']:.2f}x | "
              f"permutations {full / t['permutations']:.1f}x | total {rtotal / total:.1f}x | "
              f"max |RDM diff| {diff:.1e} | |rho diff| {abs(ours['rho'] - ref['rho']) if f == 1 else float('nan'):.1e}")


if __name__ == "__main__":
    main()
