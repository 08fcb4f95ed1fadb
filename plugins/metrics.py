"""Representation-similarity metrics: RSA (RDMs and their comparisons), CKA, SVCCA, Procrustes.

RDM definitions follow rsatoolbox (Schütt et al. 2023) so numbers match it: ``euclidean`` is the
squared Euclidean distance divided by the number of features, ``correlation`` is 1 − Pearson r
between stimulus patterns, ``crossnobis`` is the leave-one-partition-out cross-validated squared
Mahalanobis distance divided by the number of features. RDMs are condensed vectors: the upper
triangle (i < j) in row-major order, as rsatoolbox's ``get_vectors()``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from scipy.spatial.distance import squareform

from brain_workbench.sdk import Option, WorkbenchError, hookimpl

RDM_METHODS = ("correlation", "euclidean", "mahalanobis", "crossnobis")
COMPARISONS = ("spearman", "pearson", "kendall_tau_a", "cosine", "corr_cov", "cosine_cov", "rho_a")
_ALIASES = {"corr": "pearson", "tau-a": "kendall_tau_a", "tau_a": "kendall_tau_a", "rho-a": "rho_a"}


# ---- helpers --------------------------------------------------------------------------------


def _as_2d(name: str, A: Any) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    if A.ndim == 1:
        A = A[:, None]
    if A.ndim != 2:
        raise WorkbenchError(f"{name} must be 2-D (stimuli × features), got shape {A.shape}")
    if not np.isfinite(A).all():
        raise WorkbenchError(f"{name} contains NaN or infinite values; drop or impute them first")
    return A


MIN_STIMULI = 3  # with 2 stimuli every centred representation is one line: RSA, CKA, SVCCA, Procrustes are fixed
class ConstantRepresentation(WorkbenchError):
    """A representation that does not vary over the stimuli beyond rounding, so no comparison with it is defined."""


def check_varies(name: str, A: np.ndarray, metric: str) -> None:
    """Refuse a representation constant over the stimuli up to rounding (``ConstantRepresentation``)."""
    from brain_workbench.sdk.numerics import CONSTANT_RTOL, relative_spread

    spread = relative_spread(A)
    if spread <= CONSTANT_RTOL:
        raise ConstantRepresentation(f"{name} is constant over the stimuli (every stimulus has the same pattern up to "
                                     f"rounding: relative spread {spread:.1e} ≤ {CONSTANT_RTOL:g}): {metric} is "
                                     "undefined for it; check that the responses or features vary")


def _pair(X: Any, Y: Any, metric: str = "", minimum: int = MIN_STIMULI) -> tuple[np.ndarray, np.ndarray]:
    X, Y = _as_2d("X", X), _as_2d("Y", Y)
    if X.shape[0] != Y.shape[0]:
        raise WorkbenchError(f"X has {X.shape[0]} stimuli but Y has {Y.shape[0]}; rows must be the same stimuli")
    if metric and X.shape[0] < minimum:
        raise WorkbenchError(f"{metric} needs at least {minimum} stimuli, got {X.shape[0]}: with fewer its value is "
                             "fixed by the arithmetic, not the data; compare more stimuli")
    for name, A in (("X", X), ("Y", Y)):
        if metric and A.shape[1] == 0:
            raise WorkbenchError(f"{name} has no features (shape {A.shape}): {metric} of an empty representation is "
                                 "undefined; check the layer or unit selection")
        if metric:
            check_varies(name, A, metric)
    return X, Y


def _offsets(n: int) -> np.ndarray:
    """Start of row i's entries (i, i+1..n−1) in a condensed vector."""
    rows = np.arange(n)
    return rows * n - rows * (rows + 1) // 2


def condensed(M: np.ndarray) -> np.ndarray:
    """Upper triangle (i < j, row-major) of a square matrix, as scipy's ``squareform`` lays it out."""
    return squareform(M, checks=False)


def n_from_condensed(m: int) -> int:
    """Number of stimuli of a condensed RDM of length m = n(n−1)/2."""
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    if n * (n - 1) // 2 != m:
        raise WorkbenchError(f"a condensed RDM of length {m} is not n(n−1)/2 for any n")
    return n


def _row_sums(v: np.ndarray, n: int) -> np.ndarray:
    """Row sums of the square form of a condensed vector, without building it."""
    off = _offsets(n)
    rows = np.zeros(n)
    for i in range(n - 1):
        seg = v[off[i]:off[i] + n - 1 - i]
        rows[i] += seg.sum()
        rows[i + 1:] += seg
    return rows


def _average_by(X: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, inverse = np.unique(labels, return_inverse=True)
    sums = np.zeros((len(values), X.shape[1]))
    np.add.at(sums, inverse, X)
    return sums / np.bincount(inverse)[:, None], values


def _distances_from_kernel(K: np.ndarray, p: int) -> np.ndarray:
    d = np.diag(K).copy()
    K *= -2.0
    K += d[:, None]
    K += d[None, :]
    K /= p
    return condensed(K)


# ---- RDMs -----------------------------------------------------------------------------------


def noise_precision(residuals: np.ndarray, dof: int | None = None, method: str = "shrinkage_diag") -> np.ndarray:
    """Noise precision (inverse covariance) over features from residuals, as rsatoolbox's
    ``prec_from_residuals``: ``shrinkage_diag`` (Schäfer & Strimmer 2005), ``shrinkage_eye``
    (Ledoit & Wolf 2004), ``diag`` or ``full``."""
    M = np.asarray(residuals, dtype=np.float64)
    M = M - M.mean(0, keepdims=True)
    n = M.shape[0]
    dof = n - 1 if dof is None else dof
    if method == "diag":
        cov = np.diag((M * M).sum(0) / dof)
    elif method == "full":
        cov = M.T @ M / dof
    elif method in ("shrinkage_eye", "shrinkage_diag"):
        s_sum = M.T @ M
        s2_sum = (M * M).T @ (M * M)
        if method == "shrinkage_eye":
            s = s_sum / n
            b2 = np.sum(s2_sum / n - s * s) / n
            m = np.trace(s) / s.shape[0]
            d2 = np.sum((s - m * np.eye(s.shape[0])) ** 2)
            b2 = min(d2, b2)
            cov = (b2 / d2 * m * np.eye(s.shape[0]) + (d2 - b2) / d2 * s) * n / dof
        else:
            s = s_sum / dof
            var = np.diag(s)
            std = np.sqrt(var)
            s_mean = s_sum / std[None, :] / std[:, None] / (n - 1)
            s2_mean = s2_sum / var[None, :] / var[:, None] / (n - 1)
            var_hat = n / dof ** 2 * (s2_mean - s_mean ** 2)
            mask = ~np.eye(s.shape[0], dtype=bool)
            lamb = float(np.clip(np.sum(var_hat[mask]) / np.sum(s_mean[mask] ** 2), 0.0, 1.0))
            cov = s * (np.eye(s.shape[0]) + (1 - lamb) * mask)
    else:
        raise WorkbenchError(f"unknown noise method {method!r}; use shrinkage_diag, shrinkage_eye, diag or full")
    return np.linalg.inv(cov)


def rdm(X: np.ndarray, method: str = "correlation", *, conditions: Sequence[Any] | None = None,
        partitions: Sequence[Any] | None = None, noise: np.ndarray | None = None) -> np.ndarray:
    """Condensed RDM of the rows of X (or of condition means when ``conditions`` labels rows).

    ``crossnobis`` needs ``conditions`` (which stimulus each row shows) and uses ``partitions``
    (e.g. runs) as cross-validation folds; without partitions the k-th repetition of each condition
    forms fold k (rsatoolbox's default). ``noise`` is a feature precision matrix (identity if None),
    see :func:`noise_precision`. Conditions are ordered as ``np.unique`` sorts them.
    """
    X = _as_2d("X", X)
    p = X.shape[1]
    if method not in RDM_METHODS:
        raise WorkbenchError(f"unknown RDM method {method!r}; use one of {', '.join(RDM_METHODS)}")
    if noise is not None:
        noise = np.asarray(noise, dtype=np.float64)
        if noise.shape != (p, p):
            raise WorkbenchError(f"noise precision must be {p} × {p} for {p} features, got {noise.shape}")
    if method == "crossnobis":
        if conditions is None:
            raise WorkbenchError("crossnobis RDMs need `conditions` (the stimulus of each row) and repeated rows")
        conditions = np.asarray(conditions)
        if partitions is None:
            partitions = _default_partitions(conditions)
        partitions = np.asarray(partitions)
        folds = np.unique(partitions)
        if len(folds) < 2:
            raise WorkbenchError("crossnobis needs at least two partitions (e.g. runs) to cross-validate")
        P = np.eye(p) if noise is None else noise
        total = 0.0
        for fold in folds:
            test = partitions == fold
            A, _ = _average_by(X[~test], conditions[~test])
            B, values = _average_by(X[test], conditions[test])
            if len(values) != len(np.unique(conditions)):
                raise WorkbenchError(f"partition {fold!r} lacks some conditions; "
                                     "crossnobis needs every condition in every partition")
            K = A @ P @ B.T
            d = np.diag(K).copy()
            total = total + condensed(d[:, None] + d[None, :] - K - K.T) / p
        return total / len(folds)
    if conditions is not None:
        X, _ = _average_by(X, np.asarray(conditions))
    if method == "correlation":
        Z = X - X.mean(1, keepdims=True)
        norms = np.sqrt(np.einsum("ij,ij->i", Z, Z))
        flat = norms <= 1e-12 * max(1.0, float(np.abs(X).max(initial=0.0)))
        if flat.any():
            raise WorkbenchError(f"{int(flat.sum())} of {len(flat)} stimuli have the same value in every feature (a "
                                 "constant pattern): their correlation distance is undefined; use rdm: euclidean, or "
                                 "check that the responses vary across units")
        Z /= norms[:, None]
        G = Z @ Z.T
        np.subtract(1.0, G, out=G)
        return condensed(G)
    if method == "euclidean" or noise is None:
        return _distances_from_kernel(X @ X.T, p)
    return _distances_from_kernel(X @ noise @ X.T, p)


def _default_partitions(conditions: np.ndarray) -> np.ndarray:
    values, counts = np.unique(conditions, return_counts=True)
    if not np.all(counts == counts[0]):
        raise WorkbenchError("conditions repeat unequally; pass `partitions` (e.g. run labels) for crossnobis")
    part = np.zeros(len(conditions), dtype=int)
    for v in values:
        part[conditions == v] = np.arange(counts[0])
    return part


# ---- RDM comparisons ------------------------------------------------------------------------


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.sqrt(a @ a), np.sqrt(b @ b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def _centered_gram_inner(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """<HAH, HBH>, <HAH, HAH>, <HBH, HBH> for square forms of condensed a, b (H: centring)."""
    n = n_from_condensed(len(a))

    def parts(v: np.ndarray) -> tuple[np.ndarray, float]:
        return _row_sums(v, n), 2.0 * v.sum()

    ra, sa = parts(a)
    rb, sb = parts(b)

    def inner(x: np.ndarray, rx: np.ndarray, sx: float, y: np.ndarray, ry: np.ndarray, sy: float) -> float:
        return 2.0 * (x @ y) - 2.0 / n * (rx @ ry) + sx * sy / n ** 2

    return inner(a, ra, sa, b, rb, sb), inner(a, ra, sa, a, ra, sa), inner(b, rb, sb, b, rb, sb)


def _whitened_cosine(a: np.ndarray, b: np.ndarray) -> float:
    ab, aa, bb = _centered_gram_inner(a, b)
    return float(ab / np.sqrt(aa * bb)) if aa > 0 and bb > 0 else 0.0


def kendall_tau_a(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a (no tie correction in the denominator), exact, in O(m log m)."""
    from scipy.stats import kendalltau

    m = len(a)
    n0 = m * (m - 1) / 2.0

    def ties(v: np.ndarray) -> float:
        _, c = np.unique(v, return_counts=True)
        return float((c * (c - 1) / 2.0).sum())

    t1, t2 = ties(a), ties(b)
    if t1 == n0 or t2 == n0:
        return 0.0
    tau_b = kendalltau(a, b, variant="b").statistic
    return float(np.clip(tau_b * np.sqrt((n0 - t1) * (n0 - t2)) / n0, -1.0, 1.0))


def compare_rdms(a: np.ndarray, b: np.ndarray, method: str = "spearman") -> float:
    """Similarity of two condensed RDMs, as ``rsatoolbox.rdm.compare`` defines each method.

    ``spearman`` (Pearson r of ranks, ties averaged), ``pearson``, ``kendall_tau_a``, ``cosine``,
    ``rho_a``, and the whitened ``corr_cov`` / ``cosine_cov`` (Diedrichsen et al. 2021: cosine of the
    double-centred second-moment matrices, i.e. rsatoolbox's default identity pattern covariance).
    NaN entries (pairs never measured) are dropped from both RDMs, as rsatoolbox does.
    """
    from brain_workbench.sdk.numerics import rankdata

    method = _ALIASES.get(method, method)
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise WorkbenchError(f"RDMs have different lengths ({len(a)} vs {len(b)}); they must cover the same stimuli")
    missing_a, missing_b = np.isnan(a), np.isnan(b)
    if missing_a.any() or missing_b.any():
        if not np.array_equal(missing_a, missing_b):
            raise WorkbenchError("the two RDMs have NaN (unmeasured pairs) at different positions")
        if method in ("cosine_cov", "corr_cov"):
            raise WorkbenchError(f"{method} needs complete RDMs; these have NaN entries")
        a, b = a[~missing_a], b[~missing_b]
    if method == "spearman":
        ra, rb = rankdata(a), rankdata(b)
        return _cosine(ra - ra.mean(), rb - rb.mean())
    if method == "rho_a":
        ra, rb = rankdata(a), rankdata(b)
        m = len(a)
        return float((ra - ra.mean()) @ (rb - rb.mean()) / (m ** 3 - m) * 12)
    if method == "pearson":
        return _cosine(a - a.mean(), b - b.mean())
    if method == "cosine":
        return _cosine(a, b)
    if method == "kendall_tau_a":
        return kendall_tau_a(a, b)
    if method == "cosine_cov":
        return _whitened_cosine(a, b)
    if method == "corr_cov":
        return _whitened_cosine(a - a.mean(), b - b.mean())
    raise WorkbenchError(f"unknown RDM comparison {method!r}; use one of {', '.join(COMPARISONS)}")


# ---- RDM transforms (Lin & Kriegeskorte 2023) ---------------------------------------------

RDM_TRANSFORMS = ("none", "rank", "geotopological", "geodesic")


def _minmax(v: np.ndarray) -> np.ndarray:
    span = v.max() - v.min()
    if span <= 0:
        raise WorkbenchError("an RDM whose dissimilarities are all equal has no geometry to transform; "
                             "use rdm_transform none for it")
    return (v - v.min()) / span


def geotopological(v: np.ndarray, low: float, up: float, *, rank_first: bool = False) -> np.ndarray:
    """Geo-topological transform of one condensed RDM: 0 below its ``low`` quantile, 1 above its ``up``
    quantile, linear between (rsatoolbox's ``geotopological_transform``, with quantiles of this RDM alone).
    ``rank_first`` rank-transforms and min-max scales first, as the authors' ``gt_transform`` does."""
    from brain_workbench.sdk.numerics import rankdata

    v = np.asarray(v, dtype=np.float64)
    if rank_first:
        v = _minmax(rankdata(v))
    lo, hi = np.quantile(v, low), np.quantile(v, up)
    out = v.copy()
    middle = (v >= lo) & (v <= hi)
    out[v < lo] = 0.0
    out[middle] = (v[middle] - lo) / (hi - lo)
    out[v > hi] = 1.0
    return out


def geodesic(v: np.ndarray, low: float, up: float, *, rank_first: bool = False) -> np.ndarray:
    """Geodesic transform of one condensed RDM: shortest paths (``scipy.sparse.csgraph``) through the graph of its
    geo-topological dissimilarities, min-max scaled, without the saturated (= 1) edges; as rsatoolbox's
    ``geodesic_transform(geotopological_transform(rdm, low, up))``. Zero entries are no edges (rsatoolbox's
    networkx graph and scipy's dense graphs agree). Pairs that no path joins are set to the largest finite
    geodesic distance of the RDM (saturated, as the transform saturates above ``up``)."""
    from scipy.sparse.csgraph import shortest_path

    g = _minmax(geotopological(v, low, up, rank_first=rank_first))
    g[g == 1.0] = 0.0
    square = squareform(g, checks=False)
    paths = shortest_path(square, method="D", directed=False)
    out = condensed(paths)
    far = ~np.isfinite(out)
    if far.all():
        raise WorkbenchError(f"the geodesic transform with quantiles ({low}, {up}) leaves no two stimuli "
                             "connected; raise the upper quantile")
    out[far] = out[~far].max()
    return out


def transform_rdm(v: np.ndarray, transform: str, low: float = 0.0, up: float = 1.0,
                  rank_first: bool = False) -> np.ndarray:
    """One condensed RDM under ``none``, ``rank`` (average ranks), ``geotopological`` or ``geodesic``; each RDM
    is transformed with its own quantiles (what the tRSA paper means; rsatoolbox pools all RDMs of an object)."""
    from brain_workbench.sdk.numerics import rankdata

    v = np.asarray(v, dtype=np.float64)
    if transform == "none":
        return v
    if transform == "rank":
        return rankdata(v)
    if transform == "geotopological":
        return geotopological(v, low, up, rank_first=rank_first)
    if transform == "geodesic":
        return geodesic(v, low, up, rank_first=rank_first)
    raise WorkbenchError(f"unknown rdm_transform {transform!r}; use one of {', '.join(RDM_TRANSFORMS)}")


# ---- relative representations (Moschella et al. 2023) -------------------------------------


def relative_representation(X: np.ndarray, anchors: Sequence[int]) -> np.ndarray:
    """Cosine similarity of each row of X to the anchor rows: invariant to rotations and isotropic scaling."""
    X = _as_2d("X", X)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise WorkbenchError("a stimulus has an all-zero representation, whose cosine to the anchors is undefined")
    Z = X / norms
    return Z @ Z[np.asarray(anchors, dtype=int)].T


def anchor_rows(n: int, anchors: int | Sequence[str], seed: int = 0,
                stimulus_ids: Sequence[str] | None = None) -> np.ndarray:
    """Rows of the anchors: ``anchors`` stimuli drawn with ``seed``, or the rows of the given anchor ids."""
    if isinstance(anchors, (int, np.integer)) and not isinstance(anchors, bool):
        if not 1 <= anchors <= n:
            raise WorkbenchError(f"relative representations need 1 to {n} anchors for {n} stimuli, got {anchors}")
        return np.sort(np.random.default_rng(seed).choice(n, int(anchors), replace=False))
    if stimulus_ids is None:
        raise WorkbenchError("anchors given by stimulus id need the stimulus ids of the rows; pass stimulus_ids "
                             "(the metric analysis does)")
    position = {str(s): i for i, s in enumerate(stimulus_ids)}
    missing = [a for a in anchors if str(a) not in position]
    if missing:
        raise WorkbenchError(f"{len(missing)} anchor ids are not among the compared stimuli (first: {missing[0]!r}); "
                             "choose anchors from the test stimuli")
    return np.array([position[str(a)] for a in anchors], dtype=int)


class Relative:
    """Any metric on relative representations (cosine to K anchor stimuli, Moschella et al. 2023) of X and Y."""

    scope = "comparison"
    cross_validated = False

    def __init__(
        self,
        metric: Annotated[str, Option("the metric applied to the relative representations")] = "cka",
        options: Annotated[dict | None, Option("options of that metric")] = None,
        anchors: Annotated[int | list[str], Option("number of anchors drawn with seed, or their stimulus ids")] = 10,
        seed: Annotated[int, Option("seed of the anchor draw")] = 0,
        stimulus_ids: Annotated[Sequence[str] | None, Option(
            "stimulus id of each row (set by the metric analysis), for anchors given by id")] = None,
    ) -> None:
        from brain_workbench.sdk.analysis import build

        if metric == "relative":
            raise WorkbenchError("relative cannot wrap itself; name another metric")
        self.inner = build("metric", metric, **(options or {}))
        self.kind = self.inner.kind
        self.invariances = ("permutation", "isotropic_scaling", "orthogonal")
        self.score_name = f"relative_{getattr(self.inner, 'score_name', metric)}"
        self.anchors, self.seed, self.stimulus_ids = anchors, seed, stimulus_ids

    def bind(self, stimulus_ids: Sequence[str] | None = None, **_: Any) -> Relative:
        """This metric with the stimulus ids of the rows it will compare."""
        self.stimulus_ids = None if stimulus_ids is None else list(stimulus_ids)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = _as_2d("X", X)
        return relative_representation(X, anchor_rows(len(X), self.anchors, self.seed, self.stimulus_ids))

    def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
        X, Y = _pair(X, Y, "relative")
        return float(self.inner.compare(self.transform(X), self.transform(Y)))


# ---- metrics --------------------------------------------------------------------------------


class RSA:
    """Representational similarity: compare the RDMs of X and Y (similarity, higher = closer).

    Invariances follow from the RDM: ``correlation`` RDMs ignore feature permutation and scaling;
    ``euclidean`` (and ``crossnobis`` without a noise model) also ignore rotations and translations.
    """

    scope = "comparison"
    kind = "similarity"

    def __init__(
        self,
        rdm: Annotated[str, Option("how each representation's RDM is computed", choices=RDM_METHODS)] = "correlation",
        comparison: Annotated[str, Option("how two RDMs are compared", choices=(*COMPARISONS, *_ALIASES))] = "spearman",
        conditions: Annotated[Sequence[Any] | None, Option(
            "stimulus (condition) of each row, for crossnobis")] = None,
        partitions: Annotated[Sequence[Any] | None, Option(
            "run/partition of each row, for crossnobis cross-validation")] = None,
        noise: Annotated[np.ndarray | tuple[np.ndarray, np.ndarray] | None, Option(
            "noise precision matrix (or one per representation) for mahalanobis/crossnobis")] = None,
        rdm_transform: Annotated[str, Option(
            "transform of each RDM before comparing (Lin & Kriegeskorte 2023)", choices=RDM_TRANSFORMS)] = "none",
        low: Annotated[float, Option("geotopological/geodesic: lower quantile l (per RDM)")] = 0.0,
        up: Annotated[float, Option("geotopological/geodesic: upper quantile u (per RDM)")] = 1.0,
        rank_first: Annotated[bool, Option(
            "geotopological/geodesic: rank and min-max scale each RDM first (the authors' variant)")] = False,
    ) -> None:
        if rdm_transform not in RDM_TRANSFORMS:
            raise WorkbenchError(f"unknown rdm_transform {rdm_transform!r}; use one of {', '.join(RDM_TRANSFORMS)}")
        if not 0.0 <= low < up <= 1.0:
            raise WorkbenchError(f"transform quantiles must satisfy 0 ≤ low < up ≤ 1, got low={low}, up={up}")
        self.rdm_transform, self.low, self.up, self.rank_first = rdm_transform, float(low), float(up), bool(rank_first)
        if rdm not in RDM_METHODS:
            raise WorkbenchError(f"unknown RDM method {rdm!r}; use one of {', '.join(RDM_METHODS)}")
        comparison = _ALIASES.get(comparison, comparison)
        if comparison not in COMPARISONS:
            raise WorkbenchError(f"unknown RDM comparison {comparison!r}; use one of {', '.join(COMPARISONS)}")
        self.rdm = rdm
        self.comparison = comparison
        self.conditions = conditions
        self.partitions = partitions
        self.noise = noise

    @property
    def cross_validated(self) -> bool:
        return self.rdm == "crossnobis"

    @property
    def score_name(self) -> str:
        """What the value is, for tidy tables (``rsa_spearman``, ``rsa_cosine``, ...)."""
        suffix = "" if self.rdm_transform == "none" else f"_{self.rdm_transform}"
        return f"rsa_{self.comparison}{suffix}"

    def transformed(self, v: np.ndarray) -> np.ndarray:
        """A condensed RDM under this metric's ``rdm_transform`` (its own quantiles)."""
        return transform_rdm(v, self.rdm_transform, self.low, self.up, self.rank_first)

    @property
    def invariances(self) -> tuple[str, ...]:
        if self.rdm == "correlation":
            return ("permutation", "isotropic_scaling")
        if self.noise is not None:
            return ("isotropic_scaling", "translation")
        return ("permutation", "isotropic_scaling", "orthogonal", "translation")

    def rdms(self, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two condensed RDMs this metric compares."""
        nx, ny = self.noise if isinstance(self.noise, tuple) else (self.noise, self.noise)
        kw = dict(conditions=self.conditions, partitions=self.partitions)
        return (self.transformed(rdm(X, self.rdm, noise=nx, **kw)),
                self.transformed(rdm(Y, self.rdm, noise=ny, **kw)))

    def pairwise_form(self, X: np.ndarray) -> np.ndarray | None:
        """X's square RDM, whose rows and columns permute with the stimuli (None when rows are trials
        of conditions, as for crossnobis): lets permutation tests compute each RDM once."""
        if self.conditions is not None or self.partitions is not None:
            return None
        noise = self.noise[0] if isinstance(self.noise, tuple) else self.noise
        return squareform(self.transformed(rdm(_as_2d("X", X), self.rdm, noise=noise)), checks=False)

    def compare_pairwise(self, A: np.ndarray, B: np.ndarray) -> float:
        """:meth:`compare` on two square RDMs from :meth:`pairwise_form`."""
        return compare_rdms(condensed(A), condensed(B), self.comparison)

    def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
        X, Y = _pair(X, Y, "RSA")
        a, b = self.rdms(X, Y)
        if len(a) < 3:
            raise WorkbenchError(f"RSA needs at least {MIN_STIMULI} conditions, got {n_from_condensed(len(a))}: two "
                                 "conditions make a single dissimilarity, which no comparison can rank; use more")
        return compare_rdms(a, b, self.comparison)

    def model_rdm(self, X: np.ndarray) -> np.ndarray:
        """The condensed RDM of one representation (rows = stimuli), before ``rdm_transform``."""
        noise = self.noise[0] if isinstance(self.noise, tuple) else self.noise
        X = _as_2d("X", X)
        check_varies("X", X, "RSA")
        return rdm(X, self.rdm, noise=noise, conditions=self.conditions, partitions=self.partitions)

    def compare_to_rdm(self, X: np.ndarray, given: Any) -> float:
        """A representation (stimuli × features) against a given RDM of the same stimuli in the same order
        (condensed or square, e.g. a dataset's ``BrainRDMs.rdm``)."""
        a = self.model_rdm(X)
        return self.compare_given(a, given)

    def compare_given(self, a: Any, b: Any) -> float:
        """Two given RDMs (condensed or square arrays, or ``BrainRDMs``; these are first put in the same
        stimulus order), each transformed by ``rdm_transform``, compared with this metric's comparison."""
        if hasattr(a, "stimulus_ids") and hasattr(b, "stimulus_ids"):
            b = b.select(a.stimulus_ids.tolist())
        a, b = (_condensed_vector(v) for v in (a, b))
        if len(a) != len(b):
            raise WorkbenchError(f"the RDMs differ in size ({n_from_condensed(len(a))} and {n_from_condensed(len(b))} "
                                 "stimuli); compare RDMs of the same stimuli")
        if len(a) < 3:
            raise WorkbenchError(f"RSA needs at least {MIN_STIMULI} conditions, got {n_from_condensed(len(a))}")
        return compare_rdms(self.transformed(a), self.transformed(b), self.comparison)

    def compare_dissimilarities(self, a: np.ndarray, b: np.ndarray) -> float:
        """Two aligned vectors of dissimilarities (any subset of pairs, e.g. a bootstrap sample), compared."""
        return compare_rdms(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), self.comparison)


def _condensed_vector(v: Any) -> np.ndarray:
    """A condensed RDM from a ``BrainRDMs``, a condensed vector or a square matrix."""
    v = np.asarray(getattr(v, "rdm", v), dtype=np.float64)
    if v.ndim == 2:
        if v.shape[0] != v.shape[1]:
            raise WorkbenchError(f"a square RDM must be n × n, got {v.shape}")
        return condensed(v)
    if v.ndim != 1:
        raise WorkbenchError(f"an RDM must be condensed (1-D) or square (n × n), got shape {v.shape}")
    n_from_condensed(len(v))
    return v


def _center(A: np.ndarray) -> np.ndarray:
    return A - A.mean(0, keepdims=True)


def _hsic(K: np.ndarray, L: np.ndarray, debiased: bool) -> float:
    """HSIC of two kernels: biased tr(KHLH) form, or the unbiased estimator of Song et al. (2012)."""
    n = K.shape[0]
    if not debiased:
        Kc = K - K.mean(0, keepdims=True) - K.mean(1, keepdims=True) + K.mean()
        return float(np.sum(Kc * L))
    if n < 4:
        raise WorkbenchError("the debiased CKA estimator needs at least 4 stimuli")
    K = K.copy()
    L = L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    kr, lr = K.sum(1), L.sum(1)
    return float((np.sum(K * L) + kr.sum() * lr.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (kr @ lr))
                 / (n * (n - 3)))


def _rbf(X: np.ndarray, sigma: float) -> np.ndarray:
    G = X @ X.T
    sq = np.diag(G)
    D = np.maximum(sq[:, None] + sq[None, :] - 2 * G, 0.0)
    med = np.median(D)
    width = sigma ** 2 * (med if med > 0 else 1.0)
    return np.exp(-D / (2.0 * width))


class CKA:
    """Centered kernel alignment (Kornblith et al. 2019): linear or RBF kernel, optionally debiased.

    Linear CKA uses feature-space products when features are fewer than stimuli. The RBF kernel is
    exp(−d²/(2·sigma²·median d²)) with the median over all n² entries (Kornblith's ``gram_rbf``),
    which keeps it scale-invariant.
    """

    scope = "comparison"
    kind = "similarity"
    cross_validated = False
    invariances = ("permutation", "isotropic_scaling", "orthogonal", "translation")

    def __init__(
        self,
        kernel: Annotated[Literal["linear", "rbf"], Option("linear or RBF kernel")] = "linear",
        debiased: Annotated[bool, Option("use the unbiased HSIC estimator (Song et al. 2012)")] = False,
        sigma: Annotated[float, Option("RBF width as a multiple of the median pairwise distance")] = 0.8,
    ) -> None:
        if kernel not in ("linear", "rbf"):
            raise WorkbenchError(f"unknown CKA kernel {kernel!r}; use 'linear' or 'rbf'")
        self.kernel = kernel
        self.debiased = debiased
        self.score_name = f"cka_{kernel}{'_debiased' if debiased else ''}"
        self.sigma = sigma

    def pairwise_form(self, X: np.ndarray) -> np.ndarray:
        """The kernel of X's centred rows (stimuli × stimuli), which permutes with the stimuli."""
        X = _center(_as_2d("X", X))
        return X @ X.T if self.kernel == "linear" else _rbf(X, self.sigma)

    def compare_pairwise(self, K: np.ndarray, L: np.ndarray) -> float:
        """:meth:`compare` on two kernels from :meth:`pairwise_form`."""
        xy = _hsic(K, L, self.debiased)
        xx = _hsic(K, K, self.debiased)
        yy = _hsic(L, L, self.debiased)
        return float(xy / np.sqrt(xx * yy)) if xx > 0 and yy > 0 else 0.0

    def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
        X, Y = _pair(X, Y, "CKA", 4 if self.debiased else MIN_STIMULI)
        X, Y = _center(X), _center(Y)
        n = X.shape[0]
        if self.kernel == "linear" and not self.debiased and max(X.shape[1], Y.shape[1]) < n:
            xy = np.sum((X.T @ Y) ** 2)
            xx = np.sqrt(np.sum((X.T @ X) ** 2))
            yy = np.sqrt(np.sum((Y.T @ Y) ** 2))
            return float(xy / (xx * yy)) if xx > 0 and yy > 0 else 0.0
        return self.compare_pairwise(self.pairwise_form(X), self.pairwise_form(Y))


def _svd_reduce(A: np.ndarray, keep: float | int) -> np.ndarray:
    U, s, _ = np.linalg.svd(A, full_matrices=False)
    if isinstance(keep, (int, np.integer)) and not isinstance(keep, bool):
        k = int(min(keep, len(s)))
    else:
        var = np.cumsum(s ** 2) / max(np.sum(s ** 2), 1e-300)
        k = int(np.searchsorted(var, float(keep) - 1e-12) + 1)
    tol = s[0] * max(A.shape) * np.finfo(float).eps if len(s) else 0.0
    k = max(1, min(k, int(np.sum(s > tol))))
    return U[:, :k]


class SVCCA:
    """SVCCA (Raghu et al. 2017): SVD-reduce each representation, then the mean canonical correlation.

    ``keep`` is a fraction of variance (default 0.99) or a number of components.
    """

    scope = "comparison"
    kind = "similarity"
    cross_validated = False
    invariances = ("permutation", "isotropic_scaling", "orthogonal", "translation")

    def __init__(
        self,
        keep: Annotated[float | int, Option(
            "variance fraction (float < 1) or number of SVD components (int) kept")] = 0.99,
    ) -> None:
        self.keep = keep

    def canonical_correlations(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        X, Y = _pair(X, Y, "SVCCA")
        Ux = _svd_reduce(_center(X), self.keep)
        Uy = _svd_reduce(_center(Y), self.keep)
        n = X.shape[0]
        if max(Ux.shape[1], Uy.shape[1]) >= n - 1:
            raise WorkbenchError(
                f"SVCCA kept {max(Ux.shape[1], Uy.shape[1])} components of {n} stimuli, which span every centred "
                "direction, so every canonical correlation would be 1 whatever the data; use more stimuli or a "
                "smaller keep")
        return np.clip(np.linalg.svd(Ux.T @ Uy, compute_uv=False), 0.0, 1.0)

    def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
        return float(np.mean(self.canonical_correlations(X, Y)))


class Procrustes:
    """Orthogonal Procrustes distance (Ding et al. 2021; Williams et al. 2021) between centred,
    unit-Frobenius-norm representations: sqrt(2 − 2‖XᵀY‖_*); ``angular`` gives arccos(‖XᵀY‖_*)."""

    scope = "comparison"
    kind = "distance"
    cross_validated = False
    invariances = ("permutation", "isotropic_scaling", "orthogonal", "translation")

    def __init__(
        self,
        angular: Annotated[bool, Option(
            "report the angular distance arccos(similarity) instead of the Procrustes distance")] = False,
    ) -> None:
        self.angular = angular

    def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
        X, Y = _pair(X, Y, "Procrustes")
        X, Y = _center(X), _center(Y)
        nx, ny = np.linalg.norm(X), np.linalg.norm(Y)
        if nx == 0 or ny == 0:
            raise WorkbenchError("a representation is constant across stimuli; Procrustes distance is undefined")
        nuc = float(np.clip(np.linalg.svd((X / nx).T @ (Y / ny), compute_uv=False).sum(), 0.0, 1.0))
        return float(np.arccos(nuc)) if self.angular else float(np.sqrt(max(0.0, 2.0 - 2.0 * nuc)))


# ---- time-resolved --------------------------------------------------------------------------


def per_time(metric: Any, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Apply any metric at each time point: Y is (stimuli, units, times); X is (stimuli, features)
    or (stimuli, features, times) with the same times. Returns one value per time point."""
    X, Y = np.asarray(X), np.asarray(Y)
    if Y.ndim != 3:
        raise WorkbenchError(f"Y must be stimuli × units × times, got shape {Y.shape}")
    if X.ndim == 3 and X.shape[2] != Y.shape[2]:
        raise WorkbenchError(f"X has {X.shape[2]} time points but Y has {Y.shape[2]}")
    compare: Callable[[np.ndarray, np.ndarray], float] = metric.compare if hasattr(metric, "compare") else metric
    return np.array([compare(X[:, :, k] if X.ndim == 3 else X, Y[:, :, k]) for k in range(Y.shape[2])])


@hookimpl
def register_metrics(register: Any) -> None:
    register("rsa", RSA,
             description="RSA: RDMs (correlation, euclidean, mahalanobis, crossnobis) compared by Spearman, "
                         "Pearson, Kendall tau-a or whitened cosine/correlation; matches rsatoolbox",
             citation="Kriegeskorte, Mur & Bandettini (2008); Nili et al. (2014); Diedrichsen et al. (2021)")
    register("relative", Relative,
             description="Any metric on relative representations: cosine similarity to K anchor stimuli",
             citation="Moschella et al. (2023), Relative representations enable zero-shot latent space communication")
    register("cka", CKA,
             description="Centered kernel alignment, linear or RBF, optionally debiased",
             citation="Kornblith, Norouzi, Lee & Hinton (2019)")
    register("svcca", SVCCA, description="SVD then mean canonical correlation",
             citation="Raghu, Gilmer, Yosinski & Sohl-Dickstein (2017)")
    register("procrustes", Procrustes, description="Orthogonal Procrustes distance",
             citation="Ding, Denain & Steinhardt (2021); Williams et al. (2021)")
