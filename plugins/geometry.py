"""Representational geometry of one representation: cross-validated eigenspectrum (power-law α, participation
ratio), mean-field manifold capacity (α_M, R_M, D_M, centre correlation) and the MMCR nuclear-norm proxy.

Each is a metric plugin with ``scope = "property"``: ``measure(X)`` gives named quantities of one representation
(rows = stimuli), and ``compare(X, Y)`` is the absolute difference of the primary quantity (a distance), so the
metric analysis can show the brain's and the model's values side by side. Capacity grows with the number of units,
so capacity and MMCR first bring both representations to the same number of units (random projection or
subsampling, see :func:`match_units`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np

from brain_workbench.sdk import Option, WorkbenchError, hookimpl

MATCHING = ("projection", "subsample")


def _as_2d(name: str, A: Any) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2:
        raise WorkbenchError(f"{name} must be 2-D (stimuli × units), got shape {A.shape}")
    if not np.isfinite(A).all():
        raise WorkbenchError(f"{name} contains NaN or infinite values; drop or impute them first")
    return A


# ---- eigenspectrum ----------------------------------------------------------------------------------------------


def cvpca(X1: np.ndarray, X2: np.ndarray) -> np.ndarray:
    """Cross-validated PCA spectrum (Stringer et al. 2019): principal axes from repeat 1, each axis's variance as the
    covariance of the two repeats' projections on it, so noise independent between repeats adds nothing on average."""
    X1, X2 = _as_2d("repeat 1", X1), _as_2d("repeat 2", X2)
    if X1.shape != X2.shape:
        raise WorkbenchError(f"the two repeats differ in shape ({X1.shape} vs {X2.shape}); cvPCA needs the same "
                             "stimuli and units twice")
    X1 = X1 - X1.mean(0)
    X2 = X2 - X2.mean(0)
    _, _, Vt = np.linalg.svd(X1, full_matrices=False)
    return np.einsum("ik,ik->k", X1 @ Vt.T, X2 @ Vt.T) / (len(X1) - 1)


def power_law_exponent(spectrum: np.ndarray, ranks: tuple[int, int]) -> float:
    """α of λ_n ∝ n^−α: the least-squares slope of log λ against log n over ranks ``ranks`` (1-based, inclusive),
    where the spectrum is positive."""
    lo, hi = ranks
    hi = min(hi, len(spectrum))
    n = np.arange(lo, hi + 1)
    lam = spectrum[lo - 1:hi]
    keep = lam > 0
    if keep.sum() < 3:
        raise WorkbenchError(f"the spectrum has fewer than 3 positive values over ranks {lo}–{hi}; fit the power law "
                             "over other ranks or use more stimuli")
    slope = np.polyfit(np.log(n[keep]), np.log(lam[keep]), 1)[0]
    return float(-slope)


def participation_ratio(spectrum: np.ndarray) -> float:
    """Effective dimensionality (Σλ)²/Σλ² of the non-negative part of a spectrum."""
    lam = np.clip(spectrum, 0.0, None)
    total = float((lam ** 2).sum())
    return float(lam.sum() ** 2 / total) if total > 0 else 0.0


class Eigenspectrum:
    """Cross-validated eigenspectrum: power-law exponent α and participation ratio (effective dimensionality).

    ``measure(X, X2)`` uses two repeats for cvPCA; with one (a model layer, or averaged responses) the spectrum is
    plain PCA of X (``cross_validated`` false in the row)."""

    kind = "distance"
    scope = "property"
    cross_validated = False
    invariances = ("permutation", "isotropic_scaling", "orthogonal", "translation")
    primary = "alpha"
    score_name = "eigenspectrum_alpha"
    uses_repeats = True

    def __init__(
        self,
        fit_from: Annotated[int, Option("first rank of the power-law fit")] = 2,
        fit_to: Annotated[int, Option("last rank of the power-law fit (at most the number of components)")] = 50,
    ) -> None:
        if not 1 <= fit_from < fit_to:
            raise WorkbenchError(f"eigenspectrum needs 1 ≤ fit_from < fit_to, got {fit_from} and {fit_to}")
        self.fit_from, self.fit_to = int(fit_from), int(fit_to)

    def measure(self, X: np.ndarray, X2: np.ndarray | None = None) -> dict[str, float]:
        X = _as_2d("X", X)
        if len(X) < self.fit_from + 3:
            raise WorkbenchError(f"eigenspectrum needs at least {self.fit_from + 3} stimuli to fit a power law from "
                                 f"rank {self.fit_from}, got {len(X)}")
        spectrum = cvpca(X, X if X2 is None else X2)
        return {"alpha": power_law_exponent(spectrum, (self.fit_from, self.fit_to)),
                "participation_ratio": participation_ratio(spectrum), "cross_validated": float(X2 is not None)}

    def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
        return abs(self.measure(X)["alpha"] - self.measure(Y)["alpha"])


# ---- units matched at equal N -----------------------------------------------------------------------------------


def match_units(X: np.ndarray, n: int, how: str = "projection", seed: int = 0, what: str = "a representation"
                ) -> np.ndarray:
    """X with exactly ``n`` units: a seeded Gaussian random projection (scaled by 1/√n) or a seeded subsample of
    its units; X itself when it already has n. Fewer than n units is refused."""
    X = _as_2d(what, X)
    if how not in MATCHING:
        raise WorkbenchError(f"unknown unit matching {how!r}; use projection or subsample")
    if X.shape[1] < n:
        raise WorkbenchError(f"{what} has {X.shape[1]} units, fewer than the {n} the comparison is matched at; "
                             f"set units to at most {X.shape[1]}")
    if X.shape[1] == n:
        return X
    rng = np.random.default_rng(seed)
    if how == "subsample":
        return X[:, np.sort(rng.choice(X.shape[1], n, replace=False))]
    return X @ (rng.standard_normal((X.shape[1], n)) / np.sqrt(n))


def _groups(X: np.ndarray, categories: Sequence[str] | None, need: int, metric: str) -> list[np.ndarray]:
    """Rows of X per category (sorted), refusing missing labels and categories with fewer than ``need`` rows."""
    if categories is None:
        raise WorkbenchError(f"{metric} needs a category for every stimulus; use a dataset whose stimuli have "
                             "categories (StimulusSet.categories), or bind them with metric.bind(categories=...)")
    labels = np.asarray([str(c) for c in categories])
    if len(labels) != len(X):
        raise WorkbenchError(f"{metric} got {len(labels)} categories for {len(X)} stimuli; give one per stimulus")
    values, counts = np.unique(labels, return_counts=True)
    if len(values) < 2:
        raise WorkbenchError(f"{metric} needs at least 2 categories, got {len(values)}")
    if counts.min() < need:
        small = values[counts < need]
        raise WorkbenchError(f"{metric} needs at least {need} stimuli per category, but category {str(small[0])!r} has "
                             f"{counts[values == small[0]][0]}; drop it or use more stimuli")
    return [X[labels == v] for v in values]


# ---- MMCR proxy -------------------------------------------------------------------------------------------------


def mmcr_nuclear_norm(groups: Sequence[np.ndarray]) -> float:
    """Nuclear norm of the matrix of category centroids of unit-normalised responses (Yerxa et al. 2023)."""
    centroids = []
    for G in groups:
        norms = np.linalg.norm(G, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise WorkbenchError("a stimulus has an all-zero representation, which cannot be put on the unit sphere")
        centroids.append((G / norms).mean(0))
    return float(np.linalg.svd(np.stack(centroids), compute_uv=False).sum())


# ---- mean-field manifold capacity (Chung, Lee & Sompolinsky 2018) -----------------------------------------------


@dataclass(frozen=True)
class Capacity:
    """Manifold capacity α_M (1/mean 1/α_i), mean anchor radius R_M and dimension D_M, the centres' mean absolute
    correlation before the low-rank centre structure is removed, and its rank K; per-manifold values too."""

    alpha: float
    radius: float
    dimension: float
    center_correlation: float
    K: int
    per_manifold: tuple[tuple[float, float, float], ...]


def anchor_qp(t: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Lagrange multipliers z ≥ 0 of min ½‖v‖² − t·v subject to Sᵀv ≤ 0 (κ = 0): its dual is the non-negative
    least squares min ‖S z − t‖, z ≥ 0, and v = t − S z."""
    from scipy.optimize import nnls

    return nnls(S, t, maxiter=50 * S.shape[1])[0]


def each_manifold(sD1: np.ndarray, t_vec: np.ndarray, eps: float = 1e-8) -> tuple[float, float, float]:
    """Capacity, anchor radius and anchor dimension of one manifold (points as columns of ``sD1``, last row the
    centre coordinate 1) from the Gaussian vectors ``t_vec`` (eqs. 16, 17, 28, 29 of the 2018 PRX paper)."""
    D1, n_t = t_vec.shape
    D = D1 - 1
    proj = t_vec[:D].T @ sD1[:D]
    best = np.argmax(proj, axis=1)
    ss = np.vstack([sD1[:D, best], np.ones((1, n_t))])
    gg = np.einsum("ij,ij->j", t_vec, ss)
    s_all = ss.copy()
    for i in np.flatnonzero(gg >= 0):
        t = t_vec[:, i]
        z = anchor_qp(t, sD1)
        v = t - sD1 @ z
        if np.linalg.norm(v - t) >= eps:
            s_all[:, i] = (t - v) / z.sum()
    max_ts = np.maximum(np.einsum("ij,ij->j", t_vec, s_all), 0.0)
    s_sum = (s_all ** 2).sum(0)
    lamb = np.where(s_sum > 0, max_ts / np.where(s_sum > 0, s_sum, 1.0), 0.0)
    a_M = 1.0 / np.mean(lamb ** 2 * s_sum)
    ds = (s_all - s_all.mean(1, keepdims=True))[:-1] / s_all[-1]
    R_M = np.sqrt(np.mean((ds ** 2).sum(0)))
    t_hat = t_vec[:D] / np.sqrt((t_vec[:D] ** 2).sum(0, keepdims=True))
    s_hat = s_all[:D] / np.sqrt((s_all[:D] ** 2).sum(0, keepdims=True) + 1e-12)
    D_M = D * np.mean((t_hat * s_hat).sum(0)) ** 2
    return float(a_M), float(R_M), float(D_M)


def correlation_cost(V: np.ndarray, X: np.ndarray, C: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """The centre-correlation cost ½ Σ (C − ccᵀ)²/(c0 c0ᵀ) after removing the span of V, and its Euclidean gradient
    in V (the reference's ``square_corrcoeff_full_cost``, its gradient summed without the P × P × N × K array)."""
    C = X @ X.T if C is None else C
    c = X @ V
    c0 = np.diag(C) - (c ** 2).sum(1)
    A = C - c @ c.T
    dd = np.outer(c0, c0)
    W = A / dd
    cost = float((A ** 2 / dd).sum() / 2)
    r = (A ** 2 / (dd * c0[:, None])).sum(1)
    grad = X.T @ (-2.0 * W @ c + 2.0 * r[:, None] * c)
    return cost, grad


def stiefel_minimize(V0: np.ndarray, X: np.ndarray, max_iter: int = 2000, gtol: float = 1e-6) -> np.ndarray:
    """Minimise :func:`correlation_cost` over orthonormal V (Stiefel manifold) by Riemannian steepest descent with
    a QR retraction, Barzilai–Borwein steps and Armijo backtracking (the reference uses pymanopt's conjugate
    gradient; both stop at a local minimum)."""

    def retract(V: np.ndarray) -> np.ndarray:
        Q, R = np.linalg.qr(V)
        return Q * np.sign(np.where(np.diag(R) == 0, 1.0, np.diag(R)))

    C = X @ X.T
    V = retract(V0)
    cost, grad = correlation_cost(V, X, C)

    def riemannian(V: np.ndarray, grad: np.ndarray) -> np.ndarray:
        sym = V.T @ grad
        return grad - V @ (sym + sym.T) / 2

    rgrad = riemannian(V, grad)
    step = 1.0
    for _ in range(max_iter):
        norm2 = float((rgrad ** 2).sum())
        if np.sqrt(norm2) < gtol:
            break
        while True:
            V_new = retract(V - step * rgrad)
            new_cost, new_grad = correlation_cost(V_new, X, C)
            if new_cost <= cost - 1e-4 * step * norm2 or step < 1e-12:
                break
            step /= 2.0
        new_rgrad = riemannian(V_new, new_grad)
        done = step < 1e-12 or cost - new_cost < 1e-12 * max(1.0, abs(cost))
        s_k, y_k = (V_new - V).ravel(), (new_rgrad - rgrad).ravel()
        sy = abs(float(s_k @ y_k))
        step = float(s_k @ s_k) / sy if sy > 0 else 2.0 * step
        V, cost, grad, rgrad = V_new, new_cost, new_grad, new_rgrad
        if done:
            break
    return V


def _mean_abs_corr(X0: np.ndarray) -> float:
    P = len(X0)
    norm = np.sqrt((X0 ** 2).sum(1, keepdims=True))
    C0 = X0 @ X0.T / (norm @ norm.T)
    return float((np.abs(C0).sum() - P) / (P * (P - 1)))


def center_structure(centers: np.ndarray, max_K: int, n_reps: int, rng: np.random.Generator,
                     max_iter: int = 2000) -> tuple[np.ndarray, int, float]:
    """The low-rank structure of the centres (N × P): the orthonormal N × K basis whose removal leaves the centres
    least correlated (K from 1 to ``max_K``, best of ``n_reps`` starts by stability, stop after three rises), K,
    and the centres' mean absolute correlation before (the reference's ``fun_FA``). ``max_K`` is at most P − 2
    (removing P − 1 dimensions leaves nothing to correlate; the reference fails there); with P = 2 none is removed."""
    N, P = centers.shape
    Xb = centers.T - centers.T.mean(0, keepdims=True)
    q, _ = np.linalg.qr(Xb.T)
    Proj = q[:, :P - 1]
    X = Xb @ Proj
    res0 = _mean_abs_corr(X)
    if max_K < 1:
        return np.zeros((N, 0)), 0, res0
    V1: np.ndarray | None = None
    bases, costs = [], []
    denom = np.sqrt((X ** 2).sum(1))
    for k in range(1, max_K + 1):
        best, best_V = -1.0, None
        for _ in range(n_reps):
            sX = rng.standard_normal((P, 1)).T @ X
            V0 = sX if V1 is None else np.vstack([sX, V1.T])
            V0, _ = np.linalg.qr(V0.T)
            Vk = stiefel_minimize(V0, X, max_iter=max_iter)
            X0 = X - X @ Vk @ Vk.T
            stability = float(np.min(np.sqrt((X0 ** 2).sum(1)) / denom))
            if stability > best:
                best, best_V = stability, Vk
        assert best_V is not None
        V1 = best_V
        bases.append(V1)
        costs.append(_mean_abs_corr(X - X @ V1 @ V1.T))
        if k > 4 and costs[-1] > costs[-2] > costs[-3] > costs[-4]:
            break
    K = int(np.argmin(costs)) + 1
    return Proj @ bases[K - 1], K, res0


def manifold_capacity(manifolds: Sequence[np.ndarray], n_t: int = 200, seed: int = 0, n_reps: int = 10,
                      t_vecs: Sequence[np.ndarray] | None = None, max_iter: int = 2000) -> Capacity:
    """Mean-field manifold capacity (κ = 0) of category manifolds, each points × N units, as the reference
    ``manifold_analysis_corr``: remove the centres' low-rank correlated structure, centre and normalise each
    manifold by its centre norm, reduce it to its own span, add the centre coordinate, and average over n_t
    Gaussian vectors (or the given ``t_vecs``, one (D_i + 1) × n_t array per manifold)."""
    from scipy.linalg import qr

    rng = np.random.default_rng(seed)
    XtotT = [np.asarray(M, dtype=np.float64).T for M in manifolds]
    P = len(XtotT)
    if P < 2:
        raise WorkbenchError(f"manifold capacity needs at least 2 manifolds (categories), got {P}")
    X_origin = np.concatenate(XtotT, axis=1).mean(1, keepdims=True)
    centers = np.stack([M.mean(1) for M in XtotT], axis=1)
    _, SS, _ = np.linalg.svd(centers - centers.mean(1, keepdims=True))
    total = np.cumsum(SS ** 2 / (SS ** 2).sum())
    max_K = min(int(np.argmax([t if t < 0.95 else 0 for t in total])) + 11, P - 2)
    V11, K, res0 = center_structure(centers, max_K, n_reps, rng, max_iter=max_iter)
    per = []
    for i, M in enumerate(XtotT):
        Xr = M - X_origin
        Xr_ns = Xr - V11 @ (V11.T @ Xr)
        mean = Xr_ns.mean(1)
        norm = np.linalg.norm(mean)
        if norm == 0:
            raise WorkbenchError(f"manifold {i} has its centre at the origin after removing the centre structure; "
                                 "its capacity is undefined")
        S_r = (Xr_ns - mean[:, None]) / norm
        D, m = S_r.shape
        if D > m:
            Q, _ = qr(S_r, mode="economic")
            S_r = Q.T @ S_r
            D, m = S_r.shape
        sD1 = np.vstack([S_r, np.ones((1, m))])
        t_vec = rng.standard_normal((D + 1, n_t)) if t_vecs is None else np.asarray(t_vecs[i])
        per.append(each_manifold(sD1, t_vec))
    a, r, d = (np.array(v) for v in zip(*per))
    return Capacity(float(1.0 / np.mean(1.0 / a)), float(r.mean()), float(d.mean()), res0, K,
                    tuple(tuple(p) for p in per))


# ---- metrics over categories ------------------------------------------------------------------------------------


class _CategoryGeometry:
    """Shared by capacity and MMCR: categories bound by the caller, units matched at equal N."""

    kind = "distance"
    scope = "property"
    cross_validated = False
    needs_categories = True
    matches_units = True
    invariances: tuple[str, ...] = ()
    primary = "alpha"
    min_per_category = 2
    name = "geometry"

    def __init__(self, units: int | None, match: str, seed: int, categories: Sequence[str] | None) -> None:
        if match not in MATCHING:
            raise WorkbenchError(f"unknown unit matching {match!r}; use projection or subsample")
        if units is not None and units < 2:
            raise WorkbenchError(f"units must be at least 2 (the number of units both sides are matched at), got {units}")
        self.units, self.match, self.seed = units, match, int(seed)
        self.categories = None if categories is None else [str(c) for c in categories]

    def bind(self, categories: Sequence[str] | None = None, **_: Any) -> Any:
        """This metric with the category of each row it will measure."""
        self.categories = None if categories is None else [str(c) for c in categories]
        return self

    def matched(self, X: np.ndarray, n: int | None = None, what: str = "the representation") -> np.ndarray:
        n = self.units if n is None else n
        return X if n is None else match_units(X, n, self.match, self.seed, what)

    def groups(self, X: np.ndarray) -> list[np.ndarray]:
        return _groups(_as_2d("X", X), self.categories, self.min_per_category, self.name)

    def measure(self, X: np.ndarray, n_units: int | None = None) -> dict[str, float]:
        raise NotImplementedError

    def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
        X, Y = _as_2d("X", X), _as_2d("Y", Y)
        self.groups(X)
        n = self.units if self.units is not None else min(X.shape[1], Y.shape[1])
        return abs(self.measure(X, n)[self.primary] - self.measure(Y, n)[self.primary])


class ManifoldCapacity(_CategoryGeometry):
    """Mean-field manifold capacity of the category manifolds (Chung, Lee & Sompolinsky 2018; κ = 0)."""

    name = "capacity"
    score_name = "capacity_alpha"
    min_per_category = 2

    def __init__(
        self,
        units: Annotated[int | None, Option(
            "number of units both sides are matched at (default: the smaller side's)")] = None,
        match: Annotated[str, Option("how units are matched: projection or subsample", choices=MATCHING)] = "projection",
        n_t: Annotated[int, Option("Gaussian vectors per manifold")] = 200,
        n_reps: Annotated[int, Option("random starts per rank of the centre-structure search")] = 10,
        seed: Annotated[int, Option("seed of the matching, the starts and the Gaussian vectors")] = 0,
        categories: Annotated[Sequence[str] | None, Option(
            "category of each row (set by the metric analysis from the dataset)")] = None,
    ) -> None:
        super().__init__(units, match, seed, categories)
        self.n_t, self.n_reps = int(n_t), int(n_reps)

    def measure(self, X: np.ndarray, n_units: int | None = None) -> dict[str, float]:
        self.groups(X)
        X = self.matched(_as_2d("X", X), n_units)
        cap = manifold_capacity(self.groups(X), n_t=self.n_t, seed=self.seed, n_reps=self.n_reps)
        return {"alpha": cap.alpha, "radius": cap.radius, "dimension": cap.dimension,
                "center_correlation": cap.center_correlation, "n_units_matched": float(X.shape[1])}


class MMCRProxy(_CategoryGeometry):
    """Nuclear norm of the category centroids of unit-normalised responses: a cheap capacity proxy (MMCR)."""

    name = "mmcr"
    score_name = "mmcr_nuclear_norm"
    primary = "nuclear_norm"
    min_per_category = 1
    invariances = ("permutation", "isotropic_scaling", "orthogonal")

    def __init__(
        self,
        units: Annotated[int | None, Option(
            "number of units both sides are matched at (default: the smaller side's)")] = None,
        match: Annotated[str, Option("how units are matched: projection or subsample", choices=MATCHING)] = "projection",
        seed: Annotated[int, Option("seed of the unit matching")] = 0,
        categories: Annotated[Sequence[str] | None, Option(
            "category of each row (set by the metric analysis from the dataset)")] = None,
    ) -> None:
        super().__init__(units, match, seed, categories)

    def measure(self, X: np.ndarray, n_units: int | None = None) -> dict[str, float]:
        self.groups(X)
        X = self.matched(_as_2d("X", X), n_units)
        return {"nuclear_norm": mmcr_nuclear_norm(self.groups(X)), "n_units_matched": float(X.shape[1])}


@hookimpl
def register_metrics(register: Any) -> None:
    register("eigenspectrum", Eigenspectrum,
             description="Cross-validated eigenspectrum (cvPCA over two repeats): power-law α and participation "
                         "ratio; a property of one representation",
             citation="Stringer, Pachitariu, Steinmetz, Carandini & Harris (2019)")
    register("capacity", ManifoldCapacity,
             description="Mean-field manifold capacity α_M, radius R_M, dimension D_M and centre correlation of the "
                         "stimulus categories, units matched at equal N; a property of one representation",
             citation="Chung, Lee & Sompolinsky (2018); Cohen, Chung, Lee & Sompolinsky (2020)")
    register("mmcr", MMCRProxy,
             description="Nuclear norm of the category centroid matrix (MMCR capacity proxy), units matched at "
                         "equal N; a property of one representation",
             citation="Yerxa, Kuang, Simoncelli & Chung (2023)")
