"""Metrics: conformance, RDMs and RDM comparisons against rsatoolbox, CKA/SVCCA/Procrustes against
short independent implementations written here. Tolerance: 1e-10 absolute unless stated."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

import brain_workbench as wb
from brain_workbench.plugin.testing import check_metric
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.metrics import (
    CKA,
    RSA,
    SVCCA,
    Procrustes,
    compare_rdms,
    noise_precision,
    per_time,
    rdm,
    squareform,
)

rsatoolbox = pytest.importorskip("rsatoolbox")
TOL = 1e-10


@pytest.fixture(scope="module")
def reps() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((25, 14)) + 0.5
    Y = X @ rng.standard_normal((14, 9)) + rng.standard_normal((25, 9))
    return X, Y


VARIANTS = [("rsa", {}), ("rsa", {"rdm": "euclidean"}), ("rsa", {"comparison": "pearson"}),
            ("rsa", {"rdm": "euclidean", "comparison": "kendall_tau_a"}), ("rsa", {"comparison": "corr_cov"}),
            ("rsa", {"rdm": "euclidean", "comparison": "cosine_cov"}), ("cka", {}), ("cka", {"debiased": True}),
            ("cka", {"kernel": "rbf"}), ("cka", {"kernel": "rbf", "debiased": True}), ("svcca", {}),
            ("svcca", {"keep": 5}), ("procrustes", {}), ("procrustes", {"angular": True})]


@pytest.mark.parametrize("name,options", VARIANTS, ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, o in VARIANTS])
def test_metrics_pass_conformance(name, options):
    check_metric(wb.metric(name, **options))


def test_registry_kinds():
    reg = wb.get_registry()
    assert {reg.get("metric", n).as_json()["kind"] for n in ("rsa", "cka", "svcca")} == {"similarity"}
    assert reg.get("metric", "procrustes").as_json()["kind"] == "distance"
    assert RSA(rdm="crossnobis").cross_validated and not RSA().cross_validated


# ---- RDMs and comparisons against rsatoolbox ------------------------------------------------


@pytest.mark.parametrize("method", ["correlation", "euclidean"])
def test_rdm_matches_rsatoolbox(reps, method):
    X, _ = reps
    ref = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(X), method=method).get_vectors()[0]
    np.testing.assert_allclose(rdm(X, method), ref, atol=TOL)


def test_mahalanobis_and_noise_precision_match_rsatoolbox(reps):
    X, _ = reps
    residuals = np.random.default_rng(1).standard_normal((60, 14))
    for method in ("shrinkage_diag", "shrinkage_eye", "diag", "full"):
        ref = rsatoolbox.data.noise.prec_from_residuals(residuals.copy(), method=method)
        np.testing.assert_allclose(noise_precision(residuals, method=method), ref, atol=1e-8)
    P = noise_precision(residuals)
    ref = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(X), method="mahalanobis", noise=P).get_vectors()[0]
    np.testing.assert_allclose(rdm(X, "mahalanobis", noise=P), ref, atol=TOL)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # inside rsatoolbox
def test_crossnobis_matches_rsatoolbox():
    rng = np.random.default_rng(2)
    conds = np.repeat([f"c{i:02d}" for i in range(7)], 4)
    runs = np.tile(np.arange(4), 7)
    D = rng.standard_normal((28, 12)) + np.repeat(rng.standard_normal((7, 12)), 4, axis=0)
    shuffle = rng.permutation(28)
    D, conds, runs = D[shuffle], conds[shuffle], runs[shuffle]
    ds = rsatoolbox.data.Dataset(D, obs_descriptors={"conds": conds, "runs": runs})
    P = noise_precision(rng.standard_normal((40, 12)))
    for noise in (None, P):
        ref = rsatoolbox.rdm.calc_rdm(ds, method="crossnobis", descriptor="conds", cv_descriptor="runs",
                                      noise=noise).get_vectors()[0]
        np.testing.assert_allclose(rdm(D, "crossnobis", conditions=conds, partitions=runs, noise=noise), ref, atol=TOL)
    metric = RSA(rdm="crossnobis", conditions=conds, partitions=runs)
    assert metric.compare(D, D + 0.1 * rng.standard_normal(D.shape)) > 0.5
    with pytest.raises(WorkbenchError, match="conditions"):
        rdm(D, "crossnobis")


@pytest.mark.parametrize("ours,theirs", [("spearman", "spearman"), ("pearson", "corr"), ("kendall_tau_a", "tau-a"),
                                         ("cosine", "cosine"), ("corr_cov", "corr_cov"),
                                         ("cosine_cov", "cosine_cov"), ("rho_a", "rho-a")])
def test_rdm_comparisons_match_rsatoolbox(reps, ours, theirs):
    X, Y = reps
    a, b = rdm(X), rdm(Y, "euclidean")
    b[[3, 10, 40]] = b[7]  # ties, which separate Spearman, tau-a and rho-a
    ref = rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(a[None]), rsatoolbox.rdm.RDMs(b[None]), method=theirs)[0, 0]
    assert compare_rdms(a, b, ours) == pytest.approx(ref, abs=TOL)
    assert RSA(comparison=ours).compare(X, Y) == pytest.approx(compare_rdms(rdm(X), rdm(Y), ours), abs=TOL)


def test_nan_pairs_are_dropped_like_rsatoolbox(reps):
    X, Y = reps
    a, b = rdm(X), rdm(Y)
    a[[2, 9]] = np.nan
    b[[2, 9]] = np.nan
    ref = rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(a[None]), rsatoolbox.rdm.RDMs(b[None]), method="spearman")[0, 0]
    assert compare_rdms(a, b) == pytest.approx(ref, abs=TOL)
    b[3] = np.nan
    with pytest.raises(WorkbenchError, match="different positions"):
        compare_rdms(a, b)


def test_squareform_round_trip(reps):
    v = rdm(reps[0])
    S = squareform(v)
    assert S.shape == (25, 25) and np.allclose(S, S.T) and np.all(np.diag(S) == 0)
    np.testing.assert_array_equal(S[np.triu_indices(25, 1)], v)


# ---- CKA, SVCCA, Procrustes against independent implementations -----------------------------


def _hsic_reference(K: np.ndarray, L: np.ndarray) -> float:
    n = len(K)
    H = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(K @ H @ L @ H))


def _hsic_unbiased_reference(K: np.ndarray, L: np.ndarray) -> float:
    n = len(K)
    K, L = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    return float((np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
                  - 2.0 / (n - 2) * (one @ K @ L @ one)) / (n * (n - 3)))


def _cka_reference(K: np.ndarray, L: np.ndarray, hsic) -> float:
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def _rbf_reference(X: np.ndarray, sigma: float) -> np.ndarray:
    sq = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    return np.exp(-sq / (2 * sigma ** 2 * np.median(sq)))


def test_cka_matches_reference(reps):
    X, Y = reps
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    lin = _cka_reference(Xc @ Xc.T, Yc @ Yc.T, _hsic_reference)
    assert CKA().compare(X, Y) == pytest.approx(lin, abs=TOL)
    wide = np.hstack([Y] * 4)  # more features than stimuli: Gram path
    Wc = wide - wide.mean(0)
    assert CKA().compare(X, wide) == pytest.approx(_cka_reference(Xc @ Xc.T, Wc @ Wc.T, _hsic_reference), abs=TOL)
    deb = _cka_reference(Xc @ Xc.T, Yc @ Yc.T, _hsic_unbiased_reference)
    assert CKA(debiased=True).compare(X, Y) == pytest.approx(deb, abs=TOL)
    rbf = _cka_reference(_rbf_reference(X, 0.5), _rbf_reference(Y, 0.5), _hsic_reference)
    assert CKA(kernel="rbf", sigma=0.5).compare(X, Y) == pytest.approx(rbf, abs=TOL)


def test_debiased_cka_is_near_zero_for_independent_data():
    rng = np.random.default_rng(3)
    biased, debiased = [], []
    for _ in range(20):
        A, B = rng.standard_normal((30, 50)), rng.standard_normal((30, 50))
        biased.append(CKA().compare(A, B))
        debiased.append(CKA(debiased=True).compare(A, B))
    assert np.mean(biased) > 0.5 and abs(np.mean(debiased)) < 0.05


def test_svcca_equals_cca_when_all_components_are_kept(reps):
    X, Y = reps
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Sxx, Syy, Sxy = Xc.T @ Xc, Yc.T @ Yc, Xc.T @ Yc
    M = np.linalg.solve(Sxx, Sxy) @ np.linalg.solve(Syy, Sxy.T)
    rho = np.sqrt(np.clip(np.sort(np.linalg.eigvals(M).real)[::-1][:9], 0, 1))
    cc = SVCCA(keep=50).canonical_correlations(X, Y)
    np.testing.assert_allclose(cc, rho, atol=1e-8)
    mixed = Y @ (np.eye(9) + 0.4 * np.random.default_rng(4).standard_normal((9, 9)))
    assert SVCCA(keep=50).compare(X, mixed) == pytest.approx(SVCCA(keep=50).compare(X, Y), abs=1e-8)
    assert 0 < SVCCA().compare(X, Y) <= 1


def test_procrustes_matches_scipy_orthogonal_procrustes(reps):
    X, _ = reps
    rng = np.random.default_rng(5)
    Y = X @ rng.standard_normal((14, 14)) + 0.3 * rng.standard_normal((25, 14))
    Xn = (X - X.mean(0)) / np.linalg.norm(X - X.mean(0))
    Yn = (Y - Y.mean(0)) / np.linalg.norm(Y - Y.mean(0))
    R, _ = scipy.linalg.orthogonal_procrustes(Xn, Yn)
    assert Procrustes().compare(X, Y) == pytest.approx(np.linalg.norm(Xn @ R - Yn), abs=1e-10)
    Q = np.linalg.qr(rng.standard_normal((14, 14)))[0]
    assert Procrustes().compare(X, 2 * X @ Q + 1) == pytest.approx(0.0, abs=1e-6)
    assert Procrustes(angular=True).compare(X, Y) == pytest.approx(np.arccos(1 - Procrustes().compare(X, Y) ** 2 / 2))


# ---- time-resolved --------------------------------------------------------------------------


def test_per_time_applies_any_metric_at_each_time_point(reps):
    X, Y = reps
    rng = np.random.default_rng(6)
    Yt = np.stack([Y, rng.standard_normal(Y.shape), 2 * Y], axis=2)
    out = per_time(CKA(), X, Yt)
    assert out.shape == (3,)
    np.testing.assert_allclose(out, [CKA().compare(X, Yt[:, :, k]) for k in range(3)])
    assert out[0] == pytest.approx(out[2]) and out[1] < out[0]
    Xt = np.stack([X, X, X], axis=2)
    np.testing.assert_allclose(per_time(RSA(), Xt, Yt), [RSA().compare(X, Yt[:, :, k]) for k in range(3)])
    with pytest.raises(WorkbenchError, match="times"):
        per_time(CKA(), X, Y)


def test_bad_input_is_refused(reps):
    X, Y = reps
    with pytest.raises(WorkbenchError, match="rows"):
        CKA().compare(X, Y[:10])
    with pytest.raises(WorkbenchError, match="NaN"):
        RSA().compare(np.where(X > 2, np.nan, X), Y)
    with pytest.raises(WorkbenchError, match="comparison"):
        RSA(comparison="dtw")


# ---- degenerate inputs ----------------------------------------------------------------------
@pytest.mark.parametrize("metric, n", [(RSA(), 2), (RSA(rdm="euclidean", comparison="pearson"), 2), (CKA(), 2),
                                       (CKA(kernel="rbf"), 2), (SVCCA(), 2), (SVCCA(), 0), (Procrustes(), 2)])
def test_too_few_stimuli_are_refused(metric, n: int) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(WorkbenchError, match=rf"needs at least 3 stimuli, got {n}"):
        metric.compare(rng.standard_normal((n, 4)), rng.standard_normal((n, 5)))


def test_three_stimuli_are_enough_and_a_full_span_svcca_is_refused() -> None:
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((3, 4)), rng.standard_normal((3, 5))
    for metric in (RSA(), CKA(), Procrustes()):
        assert np.isfinite(metric.compare(X, Y))
    with pytest.raises(WorkbenchError, match="SVCCA kept 2 components of 3 stimuli.*would be 1 whatever the data"):
        SVCCA().compare(X, Y)
    X, Y = rng.standard_normal((12, 4)), rng.standard_normal((12, 30))
    with pytest.raises(WorkbenchError, match="SVCCA kept 11 components of 12 stimuli"):
        SVCCA(keep=1.0).compare(X, Y)
    assert 0 < SVCCA(keep=3).compare(X, Y) < 1


@pytest.mark.parametrize("name", ["rsa", "cka", "svcca", "procrustes"])
def test_constant_input_and_no_features_are_refused_not_scored(name):
    rng = np.random.default_rng(0)
    metric = wb.metric(name)
    X = rng.normal(size=(12, 5))
    with pytest.raises(WorkbenchError, match="Y is constant over the stimuli"):
        metric.compare(X, np.full((12, 4), 0.3))
    with pytest.raises(WorkbenchError, match="X has no features"):
        metric.compare(np.empty((12, 0)), X)


def test_a_correlation_rdm_of_constant_patterns_names_them():
    X = np.random.default_rng(1).normal(size=(6, 4))
    X[[1, 4]] = 2.0
    with pytest.raises(WorkbenchError, match="2 of 6 stimuli have the same value in every feature"):
        rdm(X, "correlation")
