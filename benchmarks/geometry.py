"""Cost of mean-field manifold capacity against the number of manifolds P, points per manifold M and units N,
split into the centre-structure search and the per-manifold anchor analysis, and replicaMFT's README case.

Random Gaussian manifolds (points × N), n_t Gaussian vectors per manifold, κ = 0. BLAS is held to one thread
(the machine is shared; set BENCH_THREADS to change it) so the times compare across runs.

    python benchmarks/geometry.py              # grid + README case (P=100, M=50, N=5000: α≈0.04, R≈1.47, D≈36.2)
    python benchmarks/geometry.py --quick      # the grid only
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("BENCH_THREADS", "1"))
os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("BENCH_THREADS", "1"))

import numpy as np  # noqa: E402

from brain_workbench_plugins import geometry  # noqa: E402


def timed(P: int, M: int, N: int, n_t: int = 200, n_reps: int = 10) -> tuple[geometry.Capacity, float, float]:
    """Capacity of P random manifolds and its wall time, with the share spent in the centre-structure search."""
    rng = np.random.default_rng(0)
    manifolds = [rng.standard_normal((M, N)) for _ in range(P)]
    spent = {"centre": 0.0}
    search = geometry.center_structure

    def counted(*args, **kwargs):
        start = time.perf_counter()
        try:
            return search(*args, **kwargs)
        finally:
            spent["centre"] += time.perf_counter() - start

    geometry.center_structure = counted
    try:
        start = time.perf_counter()
        cap = geometry.manifold_capacity(manifolds, n_t=n_t, seed=0, n_reps=n_reps)
        return cap, time.perf_counter() - start, spent["centre"]
    finally:
        geometry.center_structure = search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the README case")
    args = parser.parse_args()
    print(f"{'P':>5} {'M':>4} {'N':>6} {'seconds':>8} {'centre s':>8} {'alpha':>7} {'R':>6} {'D':>7} {'K':>3}")
    grid = [(P, 20, 500) for P in (10, 20, 40, 80)] + [(20, M, 500) for M in (10, 40, 80)] + \
           [(20, 20, N) for N in (100, 2000, 8000)]
    for P, M, N in grid:
        cap, seconds, centre = timed(P, M, N)
        print(f"{P:>5} {M:>4} {N:>6} {seconds:>8.2f} {centre:>8.2f} {cap.alpha:>7.3f} {cap.radius:>6.2f} "
              f"{cap.dimension:>7.2f} {cap.K:>3}")
    if not args.quick:
        cap, seconds, centre = timed(100, 50, 5000)
        print(f"README case P=100 M=50 N=5000 n_t=200: alpha {cap.alpha:.4f} (README 0.04), radius {cap.radius:.3f} "
              f"(1.47), dimension {cap.dimension:.2f} (36.17), centre correlation {cap.center_correlation:.3f} "
              f"(0.01), K {cap.K} (1); {seconds:.1f} s, of which {centre:.1f} s centre structure")


if __name__ == "__main__":
    main()
