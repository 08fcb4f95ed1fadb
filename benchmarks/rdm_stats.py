"""Statistics of a metric cell on a dataset of brain RDMs: the Mantel permutation null and the stimulus
bootstrap of one model RDM against one given brain RDM, as ``compare_with_rdms`` draws them.

Times the plain loop over ``compare_given`` (what cells did before) against ``rdm_permutation_null`` (the
gathered inner product of ``permutation_test_rdms`` for Spearman/Pearson), checks they draw the same null, and
times the bootstrap; then projects a sweep of ``--cells`` cells × ``--rdms`` given RDMs each.

    python benchmarks/rdm_stats.py                        # 92 stimuli, 1000 permutations and resamples
    python benchmarks/rdm_stats.py --stimuli 200 --cells 330 --rdms 8
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stimuli", type=int, default=92)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--cells", type=int, default=330, help="cells of the projected sweep")
    parser.add_argument("--rdms", type=int, default=1, help="given RDMs per cell (ROIs × sessions)")
    parser.add_argument("--comparison", default="spearman")
    args = parser.parse_args()

    import brain_workbench as wb
    from brain_workbench.numerics.stats import bootstrap_rdm_ci
    from brain_workbench.types import BrainRDMs
    from brain_workbench_plugins.analyses.metric import rdm_bootstrap, rdm_permutation_null

    rng = np.random.default_rng(0)
    n = args.stimuli
    X = rng.standard_normal((n, 64))
    Y = X @ rng.standard_normal((64, 300)) + 3 * rng.standard_normal((n, 300))
    metric = wb.metric("rsa", comparison=args.comparison)
    given = BrainRDMs("bench", "1", "V1", [f"s{i}" for i in range(n)], 1 - np.corrcoef(Y))
    model = metric.model_rdm(X)

    started = time.perf_counter()
    square = given.square()
    loop = np.empty(args.permutations)
    perms = np.random.default_rng(1)
    for k in range(args.permutations):
        perm = perms.permutation(n)
        loop[k] = metric.compare_given(model, square[np.ix_(perm, perm)])
    loop_s = time.perf_counter() - started

    started = time.perf_counter()
    fast = rdm_permutation_null(metric, model, given, args.permutations, 1)
    fast_s = time.perf_counter() - started
    agree = float(np.max(np.abs(fast - loop)))

    started = time.perf_counter()
    slow_ci = bootstrap_rdm_ci(metric.transformed(model), metric.transformed(given.rdm),
                               metric.compare_dissimilarities, n_boot=args.bootstrap, seed=2)
    boot_s = time.perf_counter() - started
    started = time.perf_counter()
    fast_ci = rdm_bootstrap(metric, model, given, args.bootstrap, 2)
    fast_boot_s = time.perf_counter() - started
    ci_agree = max(abs(slow_ci.low - fast_ci.low), abs(slow_ci.high - fast_ci.high))

    per_rdm_before, per_rdm_now = loop_s + boot_s, fast_s + fast_boot_s
    total = args.cells * args.rdms
    print(f"{n} stimuli, {args.comparison}: {args.permutations} permutations loop {loop_s:.3f} s, fast "
          f"{fast_s:.3f} s ({loop_s / fast_s:.1f}× faster; largest difference {agree:.1e}); "
          f"{args.bootstrap} bootstrap resamples loop {boot_s:.3f} s, weighted {fast_boot_s:.3f} s "
          f"({boot_s / fast_boot_s:.1f}× faster; interval ends differ by {ci_agree:.1e})")
    print(f"projected {args.cells} cells × {args.rdms} RDMs on one core: before {per_rdm_before * total / 60:.1f} min, "
          f"now {per_rdm_now * total / 60:.1f} min")


if __name__ == "__main__":
    main()
