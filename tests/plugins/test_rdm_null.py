"""The permutation null of RSA against a given brain RDM: the fast gathered routine equals the plain loop over
compare_given with the same permutations, for every comparison and RDM transform it serves."""

from __future__ import annotations

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.types import BrainRDMs
from brain_workbench_plugins.analyses.metric import rdm_permutation_null


def _loop(metric, model, given, n, seed):
    rng = np.random.default_rng(seed)
    square = given.square()
    out = []
    for _ in range(n):
        perm = rng.permutation(given.n_stimuli)
        out.append(metric.compare_given(model, square[np.ix_(perm, perm)]))
    return np.array(out)


@pytest.mark.parametrize("options", [{}, {"comparison": "pearson"}, {"rdm_transform": "rank"},
                                     {"rdm_transform": "geodesic", "low": 0.1, "up": 0.6},
                                     {"comparison": "kendall_tau_a"}])
def test_fast_null_equals_the_loop(options):
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((14, 5)), rng.standard_normal((14, 9))
    metric = wb.metric("rsa", **options)
    given = BrainRDMs("d", "1", "V1", [f"s{i}" for i in range(14)], 1 - np.corrcoef(Y + X @ rng.standard_normal((5, 9))))
    model = metric.model_rdm(X)
    np.testing.assert_allclose(rdm_permutation_null(metric, model, given, 30, 7), _loop(metric, model, given, 30, 7),
                               atol=1e-10)


@pytest.mark.parametrize("options", [{}, {"comparison": "pearson"}, {"rdm_transform": "rank"},
                                     {"comparison": "kendall_tau_a"}])
def test_fast_bootstrap_equals_the_resampling_loop(options):
    from brain_workbench.numerics.stats import bootstrap_rdm_ci
    from brain_workbench_plugins.analyses.metric import rdm_bootstrap

    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((16, 4)), rng.standard_normal((16, 7))
    metric = wb.metric("rsa", **options)
    rdm = np.round(1 - np.corrcoef(Y + X @ rng.standard_normal((4, 7))), 2)  # rounded: tied dissimilarities
    given = BrainRDMs("d", "1", "V1", [f"s{i}" for i in range(16)], (rdm + rdm.T) / 2 * (1 - np.eye(16)))
    model = metric.model_rdm(X)
    fast = rdm_bootstrap(metric, model, given, 60, 9)
    slow = bootstrap_rdm_ci(metric.transformed(model), metric.transformed(given.rdm), metric.compare_dissimilarities,
                            n_boot=60, seed=9)
    np.testing.assert_allclose([fast.estimate, fast.low, fast.high], [slow.estimate, slow.low, slow.high], atol=1e-12)
