"""brain_workbench.numerics.stats: permutation p-values (exactness and uniformity under the null), bootstrap CIs,
Benjamini–Hochberg FDR against scipy, and ranks (noise ceilings: test_ceilings.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from brain_workbench.numerics import stats
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.metrics import compare_rdms, rdm, squareform


def test_rankdata_matches_scipy_with_ties():
    rng = np.random.default_rng(9)
    a = rng.integers(0, 50, 500).astype(float)
    np.testing.assert_array_equal(stats.rankdata(a), sps.rankdata(a))
    b = rng.random(300)
    np.testing.assert_array_equal(stats.rankdata(b), sps.rankdata(b))


def test_fast_rdm_permutation_null_equals_brute_force():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 8))
    a, b = rdm(X), rdm(X + rng.standard_normal(X.shape), "euclidean")
    i, j = np.triu_indices(30, 1)
    A = squareform(a)
    for method in ("spearman", "pearson"):
        res = stats.permutation_test_rdms(a, b, method, n_permutations=50, seed=1, dtype="float64")
        perm_rng = np.random.default_rng(1)
        brute = [compare_rdms(A[np.ix_(p, p)][i, j], b, method) for p in (perm_rng.permutation(30) for _ in range(50))]
        np.testing.assert_allclose(res.null, brute, atol=1e-10)
        assert res.statistic == pytest.approx(compare_rdms(a, b, method), abs=1e-12)
        assert res.pvalue == pytest.approx((1 + np.sum(np.array(brute) >= res.statistic)) / 51)
    with pytest.raises(WorkbenchError, match="spearman"):
        stats.permutation_test_rdms(a, b, "kendall_tau_a")


def test_permutation_pvalues_are_uniform_under_the_null():
    """Kolmogorov–Smirnov over 300 independent null datasets (99 permutations each) keeps p > 0.01."""
    rng = np.random.default_rng(2)
    pvals_rdm, pvals_generic = [], []
    corr = lambda x, y: float(np.corrcoef(x[:, 0], y[:, 0])[0, 1])  # noqa: E731
    for k in range(300):
        a, b = rng.random(45), rng.random(45)  # RDMs of 10 stimuli with no shared structure
        pvals_rdm.append(stats.permutation_test_rdms(a, b, n_permutations=99, seed=k).pvalue)
        x, y = rng.standard_normal((12, 1)), rng.standard_normal((12, 1))
        pvals_generic.append(stats.permutation_test(corr, x, y, n_permutations=99, seed=k).pvalue)
    for pv in (pvals_rdm, pvals_generic):
        assert sps.kstest(pv, "uniform").pvalue > 0.01
        assert 0.4 < np.mean(pv) < 0.6


def test_permutation_detects_a_real_effect_and_alternatives():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 5))
    res = stats.permutation_test(lambda x, y: float(np.corrcoef(x[:, 0], y[:, 0])[0, 1]), X,
                                 X + 0.3 * rng.standard_normal(X.shape), n_permutations=199)
    assert res.pvalue == pytest.approx(1 / 200)
    less = stats.permutation_test(lambda x, y: float(np.corrcoef(x[:, 0], y[:, 0])[0, 1]), X, -X, 199, alternative="less")
    assert less.pvalue == pytest.approx(1 / 200)
    with pytest.raises(WorkbenchError, match="alternative"):
        stats.permutation_test(lambda x, y: 0.0, X, X, 5, alternative="bigger")


def test_bootstrap_intervals():
    rng = np.random.default_rng(4)
    subjects = rng.normal(0.3, 0.1, size=(12, 4, 3))  # subjects × layers × ROIs
    res = stats.bootstrap_subjects(subjects, n_boot=2000)
    assert res.low.shape == (4, 3) and np.all(res.low < res.estimate) and np.all(res.high > res.estimate)
    np.testing.assert_allclose(res.estimate, subjects.mean(0))
    normal_width = 2 * 1.96 * subjects.std(0) / np.sqrt(12)  # the bootstrap is a little narrower for n=12
    np.testing.assert_allclose(res.high - res.low, normal_width, rtol=0.3)
    X = rng.standard_normal((50, 3))
    Y = X + rng.standard_normal((50, 3))
    corr = lambda x, y: float(np.corrcoef(x[:, 0], y[:, 0])[0, 1])  # noqa: E731
    ci = stats.bootstrap_stimuli(corr, X, Y, n_boot=500)
    assert ci.low < ci.estimate < ci.high and ci.low > 0.3
    a, b = rdm(X), rdm(Y)
    rci = stats.bootstrap_rdm_ci(a, b, lambda u, v: compare_rdms(u, v, "spearman"), n_boot=200)
    assert rci.low < rci.estimate < rci.high and rci.estimate == pytest.approx(compare_rdms(a, b))
    assert np.isfinite(rci.distribution).all()


def test_fdr_bh_matches_scipy_and_keeps_shape():
    rng = np.random.default_rng(5)
    p = np.concatenate([rng.uniform(0, 0.002, 6), rng.uniform(0, 1, 18)]).reshape(4, 6)
    p[1, 2] = np.nan
    reject, q = stats.fdr_bh(p, alpha=0.05)
    ok = ~np.isnan(p)
    np.testing.assert_allclose(q[ok], sps.false_discovery_control(p[ok], method="bh"), atol=1e-12)
    assert q.shape == p.shape and np.isnan(q[1, 2]) and not reject[1, 2]
    np.testing.assert_array_equal(reject[ok], q[ok] <= 0.05)
    assert reject.sum() >= 6
    with pytest.raises(WorkbenchError):
        stats.fdr_bh(np.array([0.5, 1.5]))


@pytest.mark.parametrize("name,options", [
    ("rsa", {}), ("rsa", {"rdm": "euclidean", "comparison": "pearson"}), ("rsa", {"comparison": "kendall_tau_a"}),
    ("cka", {}), ("cka", {"kernel": "rbf"}), ("cka", {"debiased": True}),
])
def test_pairwise_permutation_null_equals_recomputing_the_metric(name, options):
    import brain_workbench as wb

    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 12))
    Y = X @ rng.standard_normal((12, 3 * 20)) + 2.0 * rng.standard_normal((30, 3 * 20))
    Y = Y.reshape(30, 20, 3)  # three time points
    metric = wb.metric(name, **options)

    def statistic(A, B):
        return float(np.mean([metric.compare(A, B[:, :, t]) for t in range(B.shape[2])]))

    slow = stats.permutation_test(statistic, X, Y, n_permutations=40, seed=5)
    fast = stats.permutation_test_pairwise(metric.compare_pairwise, metric.pairwise_form(X),
                                           [metric.pairwise_form(Y[:, :, t]) for t in range(3)],
                                           n_permutations=40, seed=5)
    np.testing.assert_allclose(fast.statistic, slow.statistic, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fast.null, slow.null, rtol=1e-9, atol=1e-12)
    assert fast.pvalue == slow.pvalue


def test_pairwise_permutation_refuses_mismatched_forms():
    with pytest.raises(WorkbenchError, match="pairwise forms"):
        stats.permutation_test_pairwise(lambda a, b: 0.0, np.zeros((4, 4)), [np.zeros((5, 5))], n_permutations=2)
