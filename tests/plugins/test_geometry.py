"""Geometry metrics: cvPCA power law, MMCR proxy, and mean-field manifold capacity against a transcription of
schung039/neural_manifolds_replicaMFT ``mftma/manifold_analysis_correlation.py`` (its cvxopt QP replaced by scipy's
SLSQP on the same primal problem, its pymanopt Stiefel solver by ours; everything else line by line)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import qr
from scipy.optimize import minimize

import brain_workbench as wb
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.geometry import (
    correlation_cost,
    cvpca,
    each_manifold,
    manifold_capacity,
    match_units,
    mmcr_nuclear_norm,
    participation_ratio,
    power_law_exponent,
    stiefel_minimize,
)

# ---- the reference, transcribed ------------------------------------------------------------------------------


def ref_minimize_vt_sq(t: np.ndarray, sD1: np.ndarray, kappa: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """min ½‖v‖² − t·v s.t. sD1ᵀ v ≤ −κ (cvxopt.solvers.qp in the reference; SLSQP here), with its multipliers."""
    t = t[:, 0]
    cons = {"type": "ineq", "fun": lambda v: -kappa - sD1.T @ v, "jac": lambda v: -sD1.T}
    res = minimize(lambda v: 0.5 * v @ v - t @ v, np.zeros_like(t), jac=lambda v: v - t, constraints=[cons],
                   method="SLSQP", options={"ftol": 1e-15, "maxiter": 1000})
    v = res.x
    # multipliers from the KKT condition v − t + sD1 z = 0 on the active set
    active = sD1.T @ v > -1e-7
    z = np.zeros(sD1.shape[1])
    if active.any():
        z[active] = np.linalg.lstsq(sD1[:, active], t - v, rcond=None)[0]
    return v[:, None], z[:, None]


def ref_maxproj(t_vec: np.ndarray, sD1: np.ndarray, sc: float = 1) -> tuple[np.ndarray, np.ndarray]:
    D1, n_t = t_vec.shape
    D = D1 - 1
    s0 = np.zeros((D1, n_t))
    gt = np.zeros(n_t)
    for i in range(n_t):
        t = t_vec[:, i]
        max_S = np.argmax(np.dot(t[0:D], sD1[0:D]))
        sr = sD1[0:D, max_S]
        s0[:, i] = np.append(sr, [sc])
        gt[i] = np.dot(t, s0[:, i])
    return s0, gt


def ref_each_manifold_analysis_D1(sD1: np.ndarray, kappa: float, n_t: int, t_vec: np.ndarray, eps: float = 1e-8
                                  ) -> tuple[float, float, float]:
    D1, m = sD1.shape
    D = D1 - 1
    ss, gg = ref_maxproj(t_vec, sD1)
    s_all = np.empty((D1, n_t))
    for i in range(n_t):
        t = np.expand_dims(t_vec[:, i], axis=1)
        if gg[i] + kappa < 0:
            v_f = t
            s_f = ss[:, i].reshape(-1, 1)
        else:
            v_f, alpha = ref_minimize_vt_sq(t, sD1, kappa=kappa)
            if np.linalg.norm(v_f - t) < eps:
                v_f = t
                s_f = ss[:, i].reshape(-1, 1)
            else:
                scale = np.sum(alpha)
                s_f = (t - v_f) / scale
        s_all[:, i] = s_f[:, 0]
    max_ts = np.maximum(np.sum(t_vec * s_all, axis=0) + kappa, np.zeros(n_t))
    s_sum = np.sum(np.square(s_all), axis=0)
    lamb = np.asarray([max_ts[i] / s_sum[i] if s_sum[i] > 0 else 0 for i in range(n_t)])
    slam = np.square(lamb) * s_sum
    a_Mfull = 1 / np.mean(slam)
    ds0 = s_all - s_all.mean(axis=1, keepdims=True)
    ds = ds0[0:-1, :] / s_all[-1, :]
    ds_sq_sum = np.sum(np.square(ds), axis=0)
    R_M = np.sqrt(np.mean(ds_sq_sum))
    t_norms = np.sum(np.square(t_vec[0:D, :]), axis=0, keepdims=True)
    t_hat_vec = t_vec[0:D, :] / np.sqrt(t_norms)
    s_norms = np.sum(np.square(s_all[0:D, :]), axis=0, keepdims=True)
    s_hat_vec = s_all[0:D, :] / np.sqrt(s_norms + 1e-12)
    ts_dot = np.sum(t_hat_vec * s_hat_vec, axis=0)
    D_M = D * np.square(np.mean(ts_dot))
    return a_Mfull, R_M, D_M


def ref_cost_and_grad(V: np.ndarray, X: np.ndarray) -> tuple[float, np.ndarray]:
    """square_corrcoeff_full_cost(V, X, grad=True), with its P × P × N × K gradient array."""
    P, N = X.shape
    N_v, K = V.shape
    C = np.matmul(X, X.T)
    c = np.matmul(X, V)
    c0 = np.diagonal(C).reshape(P, 1) - np.sum(np.square(c), axis=1, keepdims=True)
    Fmn = np.square(C - np.matmul(c, c.T)) / np.matmul(c0, c0.T)
    cost = np.sum(Fmn) / 2
    X1 = np.reshape(X, [1, P, N, 1])
    X2 = np.reshape(X, [P, 1, N, 1])
    C1 = np.reshape(c, [P, 1, 1, K])
    C2 = np.reshape(c, [1, P, 1, K])
    PF1 = ((C - np.matmul(c, c.T)) / np.matmul(c0, c0.T)).reshape(P, P, 1, 1)
    PF2 = (np.square(C - np.matmul(c, c.T)) / np.square(np.matmul(c0, c0.T))).reshape(P, P, 1, 1)
    Gmni = - PF1 * C1 * X1
    Gmni += - PF1 * C2 * X2
    Gmni += PF2 * c0.reshape(P, 1, 1, 1) * C2 * X1
    Gmni += PF2 * (c0.T).reshape(1, P, 1, 1) * C1 * X2
    return cost, np.sum(Gmni, axis=(0, 1))


def ref_fun_FA(centers: np.ndarray, maxK: int, n_repeats: int, rng: np.random.Generator
               ) -> tuple[np.ndarray, list[np.ndarray], list[float], float]:
    N, P = centers.shape
    mean = np.mean(centers.T, axis=0, keepdims=True)
    Xb = centers.T - mean
    q, r = qr(Xb.T, mode='economic')
    X = np.matmul(Xb, q[:, 0:P - 1])
    X0 = X.copy()
    xnorm = np.sqrt(np.square(X0).sum(axis=1, keepdims=True))
    C0 = np.matmul(X0, X0.T) / np.matmul(xnorm, xnorm.T)
    res_coeff0 = (np.sum(np.abs(C0)) - P) * 1 / (P * (P - 1))
    V1_mat, res_coeff = [], []
    V1 = None
    for i in range(1, maxK + 1):
        best_stability = 0
        for _ in range(1, n_repeats + 1):
            s = rng.standard_normal((P, 1))
            sX = np.matmul(s.T, X)
            V0 = sX if V1 is None else np.concatenate([sX, V1.T], axis=0)
            V0, _ = qr(V0.T, mode='economic')
            V1tmp = stiefel_minimize(V0, X)  # CGmanopt (pymanopt) in the reference
            assert np.linalg.norm(np.matmul(V1tmp.T, V1tmp) - np.identity(i), ord='fro') < 1e-10
            X0 = X - np.matmul(np.matmul(X, V1tmp), V1tmp.T)
            denom = np.sqrt(np.sum(np.square(X), axis=1))
            stability = min(np.sqrt(np.sum(np.square(X0), axis=1)) / denom)
            if stability > best_stability:
                best_stability = stability
                best_V1 = V1tmp
        V1 = best_V1
        XV1 = np.matmul(X, V1)
        X0 = X - np.matmul(XV1, V1.T)
        xnorm = np.sqrt(np.square(X0).sum(axis=1, keepdims=True))
        C0 = np.matmul(X0, X0.T) / np.matmul(xnorm, xnorm.T)
        current_cost = (np.sum(np.abs(C0)) - P) * 1 / (P * (P - 1))
        V1_mat.append(V1)
        res_coeff.append(current_cost)
        if (i > 4 and res_coeff[i - 1] > res_coeff[i - 2] and res_coeff[i - 2] > res_coeff[i - 3]
                and res_coeff[i - 3] > res_coeff[i - 4]):
            break
    return q[:, 0:P - 1], V1_mat, res_coeff, res_coeff0


def ref_manifold_analysis_corr(XtotT: list[np.ndarray], kappa: float, n_t: int, n_reps: int, seed: int
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """The reference, drawing its random vectors from one seeded generator in our order (centre starts, then t)."""
    rng = np.random.default_rng(seed)
    num_manifolds = len(XtotT)
    Xori = np.concatenate(XtotT, axis=1)
    X_origin = np.mean(Xori, axis=1, keepdims=True)
    Xtot0 = [XtotT[i] - X_origin for i in range(num_manifolds)]
    centers = np.stack([np.mean(XtotT[i], axis=1) for i in range(num_manifolds)], axis=1)
    center_mean = np.mean(centers, axis=1, keepdims=True)
    UU, SS, VV = np.linalg.svd(centers - center_mean)
    total = np.cumsum(np.square(SS) / np.sum(np.square(SS)))
    maxK = np.argmax([t if t < 0.95 else 0 for t in total]) + 11
    maxK = min(maxK, num_manifolds - 2)  # the reference's pymanopt fails beyond P − 2
    Proj, V1_mat, res_coeff, res_coeff0 = ref_fun_FA(centers, maxK, n_reps, rng)
    KK = int(np.argmin(res_coeff)) + 1
    V11 = np.matmul(Proj, V1_mat[KK - 1])
    XtotInput = []
    for i in range(num_manifolds):
        Xr = Xtot0[i]
        Xr_ns = Xr - np.matmul(V11, np.matmul(V11.T, Xr))
        Xr0_ns = np.mean(Xr_ns, axis=1)
        Xr0_ns_norm = np.linalg.norm(Xr0_ns)
        XtotInput.append((Xr_ns - Xr0_ns.reshape(-1, 1)) / Xr0_ns_norm)
    a_Mfull_vec, R_M_vec, D_M_vec = (np.zeros(num_manifolds) for _ in range(3))
    for i in range(num_manifolds):
        S_r = XtotInput[i]
        D, m = S_r.shape
        if D > m:
            Q, R = qr(S_r, mode='economic')
            S_r = np.matmul(Q.T, S_r)
            D, m = S_r.shape
        sD1 = np.concatenate([S_r, np.ones((1, m))], axis=0)
        t_vec = rng.standard_normal((D + 1, n_t))
        a_Mfull_vec[i], R_M_vec[i], D_M_vec[i] = ref_each_manifold_analysis_D1(sD1, kappa, n_t, t_vec)
    return a_Mfull_vec, R_M_vec, D_M_vec, res_coeff0, KK


def _manifolds(P: int = 8, M: int = 6, N: int = 40, spread: float = 1.0, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(N)
    return [0.6 * shared + rng.standard_normal(N) + spread * rng.standard_normal((M, N)) for _ in range(P)]


# ---- capacity --------------------------------------------------------------------------------------------------


def test_one_manifold_equals_the_reference_with_another_qp_solver() -> None:
    rng = np.random.default_rng(1)
    S = rng.standard_normal((5, 6))
    S = (S - S.mean(1, keepdims=True)) / 3.0
    sD1 = np.vstack([S, np.ones((1, 6))])
    t_vec = rng.standard_normal((6, 60))
    ours = each_manifold(sD1, t_vec)
    np.testing.assert_allclose(ours, ref_each_manifold_analysis_D1(sD1, 0.0, 60, t_vec), rtol=1e-5)


def test_capacity_equals_the_transcribed_reference() -> None:
    """Same inputs, same random vectors: equal to 1e-5 relative (the QP solvers differ: NNLS dual vs SLSQP)."""
    manifolds = _manifolds()
    ours = manifold_capacity(manifolds, n_t=40, seed=3, n_reps=2)
    a, r, d, cc, K = ref_manifold_analysis_corr([M.T for M in manifolds], 0.0, 40, 2, seed=3)
    np.testing.assert_allclose([p[0] for p in ours.per_manifold], a, rtol=1e-5)
    np.testing.assert_allclose([p[1] for p in ours.per_manifold], r, rtol=1e-5)
    np.testing.assert_allclose([p[2] for p in ours.per_manifold], d, rtol=1e-5)
    assert ours.alpha == pytest.approx(1 / np.mean(1 / a), rel=1e-5)
    assert ours.center_correlation == pytest.approx(cc, abs=1e-12) and ours.K == K
    assert ours.center_correlation > 0.1, "the shared component correlates the centres"


def test_correlation_gradient_equals_the_reference_formula_and_finite_differences() -> None:
    rng = np.random.default_rng(2)
    X = rng.standard_normal((7, 6))
    V = np.linalg.qr(rng.standard_normal((6, 2)))[0]
    cost, grad = correlation_cost(V, X)
    ref_cost, ref_grad = ref_cost_and_grad(V, X)
    assert cost == pytest.approx(ref_cost, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)
    E = rng.standard_normal(V.shape)
    h = 1e-6
    numeric = (correlation_cost(V + h * E, X)[0] - correlation_cost(V - h * E, X)[0]) / (2 * h)
    assert numeric == pytest.approx(float((grad * E).sum()), rel=1e-5)


def test_tight_manifolds_approach_capacity_two() -> None:
    manifolds = _manifolds(P=10, M=5, N=200, spread=1e-4, seed=4)
    cap = manifold_capacity(manifolds, n_t=2000, seed=0, n_reps=1)
    assert cap.alpha == pytest.approx(2.0, abs=0.12)
    assert cap.radius < 1e-3
    loose = manifold_capacity(_manifolds(P=10, M=5, N=200, spread=1.0, seed=4), n_t=200, seed=0, n_reps=1)
    assert loose.alpha < 0.5 * cap.alpha


@pytest.mark.slow
def test_readme_random_case() -> None:
    """replicaMFT's README: P = 100 random manifolds of M = 50 points in N = 5000, n_t = 200 → α ≈ 0.04,
    R ≈ 1.47, D ≈ 36.17, centre correlation ≈ 0.01, K = 1 (about 13 s here)."""
    rng = np.random.default_rng(0)
    cap = manifold_capacity([rng.standard_normal((50, 5000)) for _ in range(100)], n_t=200, seed=0)
    assert cap.alpha == pytest.approx(0.04, abs=0.002)
    assert cap.radius == pytest.approx(1.47, abs=0.02)
    assert cap.dimension == pytest.approx(36.17, abs=1.0)
    assert cap.center_correlation == pytest.approx(0.01, abs=0.01) and cap.K == 1


def test_capacity_metric_matches_units_and_refuses_bad_input() -> None:
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((24, 50)), rng.standard_normal((24, 20))
    cats = [f"c{i % 4}" for i in range(24)]
    metric = wb.metric("capacity", n_t=50, n_reps=1, categories=cats)
    assert metric.scope == "property" and metric.kind == "distance"
    values = metric.measure(X, 20)
    assert values["n_units_matched"] == 20 and 0 < values["alpha"] < 2
    assert metric.compare(X, Y) == pytest.approx(abs(values["alpha"] - metric.measure(Y, 20)["alpha"]))
    with pytest.raises(WorkbenchError, match="needs a category for every stimulus"):
        wb.metric("capacity").measure(X)
    with pytest.raises(WorkbenchError, match="category 'c3' has 1; drop it"):
        wb.metric("capacity", categories=[f"c{i % 3}" for i in range(23)] + ["c3"]).measure(X)
    with pytest.raises(WorkbenchError, match="has 20 units, fewer than the 30 the comparison is matched at"):
        wb.metric("capacity", units=30, categories=cats).compare(X, Y)
    with pytest.raises(WorkbenchError, match="got 3 categories for 24 stimuli"):
        wb.metric("mmcr", categories=["a", "b", "a"]).measure(X)


def test_match_units() -> None:
    X = np.random.default_rng(6).standard_normal((10, 30))
    assert match_units(X, 30) is not None and match_units(X, 30).shape == (10, 30)
    sub = match_units(X, 7, "subsample", seed=1)
    assert sub.shape == (10, 7) and all(any(np.array_equal(c, X[:, j]) for j in range(30)) for c in sub.T)
    proj = match_units(X, 12, "projection", seed=1)
    assert proj.shape == (10, 12) and np.array_equal(proj, match_units(X, 12, "projection", seed=1))


# ---- MMCR and eigenspectrum ------------------------------------------------------------------------------------


def test_mmcr_nuclear_norm_is_that_of_the_normalised_centroids() -> None:
    rng = np.random.default_rng(7)
    groups = [rng.standard_normal((5, 9)) + 3 * rng.standard_normal(9) for _ in range(4)]
    centroids = np.stack([(G / np.linalg.norm(G, axis=1, keepdims=True)).mean(0) for G in groups])
    assert mmcr_nuclear_norm(groups) == pytest.approx(np.linalg.norm(centroids, "nuc"), rel=1e-12)
    Q = np.linalg.qr(rng.standard_normal((9, 9)))[0]
    assert mmcr_nuclear_norm([2.5 * G @ Q for G in groups]) == pytest.approx(mmcr_nuclear_norm(groups), rel=1e-12)
    tight = [np.tile(rng.standard_normal(9), (5, 1)) for _ in range(4)]
    assert mmcr_nuclear_norm(tight) > mmcr_nuclear_norm([rng.standard_normal((5, 9)) for _ in range(4)])


@pytest.mark.parametrize("alpha", [0.8, 1.3])
def test_cvpca_recovers_a_planted_power_law_through_noise(alpha: float) -> None:
    rng = np.random.default_rng(1)
    n, d = 1000, 200
    lam = np.arange(1, d + 1) ** -alpha
    S = rng.standard_normal((n, d)) * np.sqrt(lam) @ np.linalg.qr(rng.standard_normal((d, d)))[0].T
    noise = 0.5 * np.sqrt(lam.sum() / d)
    X1, X2 = S + noise * rng.standard_normal((n, d)), S + noise * rng.standard_normal((n, d))
    metric = wb.metric("eigenspectrum", fit_from=2, fit_to=50)
    got = metric.measure(X1, X2)
    assert got["alpha"] == pytest.approx(alpha, abs=0.05) and got["cross_validated"] == 1.0
    assert power_law_exponent(cvpca(X1, X1), (2, 50)) < alpha - 0.05, "without cross-validation noise flattens it"
    assert participation_ratio(np.array([1.0, 1.0, 1.0, 0.0, -0.5])) == pytest.approx(3.0)
    with pytest.raises(WorkbenchError, match="differ in shape"):
        cvpca(X1, X2[:10])
