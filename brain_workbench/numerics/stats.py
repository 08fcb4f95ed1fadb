"""Inference for brain–model comparisons: permutation tests, bootstrap CIs, FDR, ranks.

Permutations and bootstraps resample stimuli (rows), since stimuli are the units of generalisation
in model–brain comparisons; subject bootstraps resample subjects. Noise ceilings are in
:mod:`brain_workbench.numerics.ceilings`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import squareform
from scipy.stats import false_discovery_control

from brain_workbench.types import WorkbenchError

ALTERNATIVES = ("greater", "less", "two-sided")


CONSTANT_RTOL = 1e-6  # features are stored as float32 (eps 1.2e-7): a spread below a few ulps of the scale is rounding


def relative_spread(A: np.ndarray) -> float:
    """The largest range of a feature over the stimuli (rows), relative to the representation's largest magnitude
    (0 for an all-zero one): at or below ``CONSTANT_RTOL`` its differences between stimuli are rounding noise."""
    A = np.asarray(A, dtype=np.float64)
    scale = float(np.abs(A).max(initial=0.0))
    return 0.0 if scale == 0.0 or A.shape[0] < 2 else float(np.ptp(A, axis=0).max(initial=0.0)) / scale


def rankdata(a: np.ndarray) -> np.ndarray:
    """Ranks (1-based, ties averaged) as ``scipy.stats.rankdata``; about twice as fast on long RDM
    vectors because average ranks need no stable sort."""
    a = np.asarray(a).ravel()
    if a.size == 0:
        return np.empty(0)
    order = np.argsort(a)
    s = a[order]
    new = np.empty(a.size, dtype=bool)
    new[0] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    del s
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], a.size)
    average = 0.5 * (starts + 1 + ends)
    ranks = np.empty(a.size)
    ranks[order] = average[np.cumsum(new) - 1]
    return ranks


# ---- permutation tests ----------------------------------------------------------------------


@dataclass
class PermutationResult:
    """Observed statistic, its permutation p-value and the null distribution."""

    statistic: float
    pvalue: float
    null: np.ndarray


def permutation_pvalue(observed: float, null: np.ndarray, alternative: str = "greater") -> float:
    """(1 + #null at least as extreme) / (1 + #null): exact-size, never zero (Phipson & Smyth 2010)."""
    if alternative == "greater":
        k = np.sum(null >= observed)
    elif alternative == "less":
        k = np.sum(null <= observed)
    elif alternative == "two-sided":
        k = np.sum(np.abs(null) >= abs(observed))
    else:
        raise WorkbenchError(f"unknown alternative {alternative!r}; use one of {', '.join(ALTERNATIVES)}")
    return float((1 + k) / (1 + len(null)))


def permutation_test(statistic: Callable[[np.ndarray, np.ndarray], float], X: np.ndarray, Y: np.ndarray,
                     n_permutations: int = 1000, seed: int | None = 0,
                     alternative: str = "greater") -> PermutationResult:
    """Permute the stimuli (rows) of Y against X and recompute ``statistic(X, Y)`` each time.

    Works with any metric's ``compare``; for RDM comparisons :func:`permutation_test_rdms` is faster.
    """
    X, Y = np.asarray(X), np.asarray(Y)
    if X.shape[0] != Y.shape[0]:
        raise WorkbenchError(f"X has {X.shape[0]} stimuli but Y has {Y.shape[0]}; rows must match")
    rng = np.random.default_rng(seed)
    observed = float(statistic(X, Y))
    null = np.array([statistic(X, Y[rng.permutation(len(Y))]) for _ in range(n_permutations)], dtype=float)
    return PermutationResult(observed, permutation_pvalue(observed, null, alternative), null)


def permutation_test_pairwise(compare_pairwise: Callable[[np.ndarray, np.ndarray], float], A: np.ndarray,
                              Bs: Sequence[np.ndarray], n_permutations: int = 1000, seed: int | None = 0,
                              alternative: str = "greater") -> PermutationResult:
    """:func:`permutation_test` for metrics with a stimulus × stimulus form (an RDM, a kernel).

    Permuting the stimuli of Y permutes the rows and columns of its pairwise form together, so the
    forms are computed once and each permutation is a gather. ``Bs`` holds one form of Y per time
    point; the statistic is the mean over them. The same ``seed`` draws the same permutations as
    :func:`permutation_test`, so the null is the same up to rounding.
    """
    A = np.asarray(A)
    n = A.shape[0]
    if any(np.shape(B) != (n, n) for B in Bs) or A.shape != (n, n):
        raise WorkbenchError(f"pairwise forms must all be {n} × {n} (one row and column per stimulus)")

    def statistic(order: np.ndarray | None) -> float:
        return float(np.mean([compare_pairwise(A, B if order is None else B[np.ix_(order, order)]) for B in Bs]))

    rng = np.random.default_rng(seed)
    observed = statistic(None)
    null = np.array([statistic(rng.permutation(n)) for _ in range(n_permutations)], dtype=float)
    return PermutationResult(observed, permutation_pvalue(observed, null, alternative), null)


def _square(v: np.ndarray, dtype: Any) -> np.ndarray:
    """Symmetric square form (zero diagonal) of a condensed vector (scipy's ``squareform``)."""
    m = len(v)
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    if n * (n - 1) // 2 != m:
        raise WorkbenchError(f"a condensed RDM of length {m} is not n(n−1)/2 for any n")
    return squareform(np.asarray(v, dtype=dtype), checks=False)


def permutation_test_rdms(rdm_a: np.ndarray, rdm_b: np.ndarray, method: str = "spearman",
                          n_permutations: int = 1000, seed: int | None = 0, alternative: str = "greater",
                          dtype: str = "float32", block_rows: int = 256) -> PermutationResult:
    """Stimulus-label permutation test of the Spearman or Pearson correlation of two condensed RDMs.

    Permuting stimuli permutes rows and columns of one RDM together (Mantel test). Ranks, means and
    norms are permutation-invariant, so each permutation costs one gathered inner product of two
    square matrices (upper triangle only); the null is accumulated in ``dtype`` (the observed value in float64).
    """
    from threadpoolctl import threadpool_limits

    a = np.asarray(rdm_a, dtype=np.float64).ravel()
    b = np.asarray(rdm_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise WorkbenchError(f"RDMs have different lengths ({len(a)} vs {len(b)})")
    if method == "spearman":
        a, b = rankdata(a), rankdata(b)
    elif method != "pearson":
        raise WorkbenchError(f"fast RDM permutation supports 'spearman' and 'pearson', not {method!r}; "
                             "use permutation_test with any statistic instead")
    a = a - a.mean()
    b = b - b.mean()
    norm = np.sqrt((a @ a) * (b @ b))
    if norm == 0:
        raise WorkbenchError("an RDM is constant; its correlation with anything is undefined")
    observed = float(a @ b / norm)
    A = _square(a, dtype)
    B = _square(b, dtype)
    n = A.shape[0]
    rng = np.random.default_rng(seed)
    starts = range(0, n, block_rows)
    upper = [np.ascontiguousarray(B[s:s + block_rows, s:]) for s in starts]
    del B
    null = np.empty(n_permutations)
    with threadpool_limits(limits=1, user_api="blas"):  # many small dot products: threads only add overhead
        for k in range(n_permutations):
            perm = rng.permutation(n)
            total = 0.0
            for s, Bs in zip(starts, upper):
                h = Bs.shape[0]
                part = np.take(A[perm[s:s + h]], perm[s:], axis=1)
                total += float(np.vdot(part, Bs)) - 0.5 * float(np.vdot(part[:, :h].copy(), Bs[:, :h].copy()))
            null[k] = total / norm
    return PermutationResult(observed, permutation_pvalue(observed, null, alternative), null)


# ---- bootstrap ------------------------------------------------------------------------------


@dataclass
class BootstrapResult:
    """Point estimate, percentile confidence interval and the bootstrap distribution."""

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    distribution: np.ndarray
    confidence: float


def _percentile_ci(estimate: Any, dist: np.ndarray, confidence: float) -> BootstrapResult:
    if not 0 < confidence < 1:
        raise WorkbenchError(f"confidence must lie in (0, 1), got {confidence}")
    lo, hi = np.nanquantile(dist, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return BootstrapResult(estimate, lo, hi, dist, confidence)


def bootstrap_ci(statistic: Callable[..., Any], *arrays: np.ndarray, n_boot: int = 1000,
                 confidence: float = 0.95, seed: int | None = 0) -> BootstrapResult:
    """Percentile CI of ``statistic(*arrays)`` resampling rows (stimuli or subjects) with replacement.

    All arrays are resampled with the same row indices, so ``statistic`` may be any metric's
    ``compare`` (rows = stimuli) or a mean over subjects (rows = subjects).
    """
    arrays = tuple(np.asarray(a) for a in arrays)
    if not arrays:
        raise WorkbenchError("bootstrap_ci needs at least one array")
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise WorkbenchError("every array must have the same number of rows to resample them together")
    rng = np.random.default_rng(seed)
    estimate = statistic(*arrays)
    dist = np.array([statistic(*(a[idx] for a in arrays))
                     for idx in (rng.integers(0, n, n) for _ in range(n_boot))], dtype=float)
    return _percentile_ci(estimate, dist, confidence)


def bootstrap_stimuli(statistic: Callable[[np.ndarray, np.ndarray], float], X: np.ndarray, Y: np.ndarray,
                      n_boot: int = 1000, confidence: float = 0.95, seed: int | None = 0) -> BootstrapResult:
    """CI over stimuli of a comparison between X and Y (rows = the same stimuli)."""
    return bootstrap_ci(statistic, X, Y, n_boot=n_boot, confidence=confidence, seed=seed)


def bootstrap_rdm_ci(rdm_a: np.ndarray, rdm_b: np.ndarray, compare: Callable[[np.ndarray, np.ndarray], float],
                     n_boot: int = 1000, confidence: float = 0.95, seed: int | None = 0) -> BootstrapResult:
    """CI over stimuli of an RDM comparison; pairs of a stimulus with its own copy are dropped
    (their dissimilarity is not measured), as rsatoolbox's stimulus bootstrap does."""
    A = _square(np.asarray(rdm_a, dtype=np.float64).ravel(), np.float64)
    B = _square(np.asarray(rdm_b, dtype=np.float64).ravel(), np.float64)
    n = A.shape[0]
    i, j = np.triu_indices(n, k=1)
    rng = np.random.default_rng(seed)
    dist = np.empty(n_boot)
    for k in range(n_boot):
        s = np.sort(rng.integers(0, n, n))
        keep = s[i] != s[j]
        si, sj = s[i][keep], s[j][keep]
        dist[k] = compare(A[si, sj], B[si, sj])
    return _percentile_ci(float(compare(A[i, j], B[i, j])), dist, confidence)


def _tie_groups(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sort order of ``v``, the start of each run of equal values in it, and each sorted entry's run."""
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    return order, starts, np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))


def _weighted_ranks(groups: tuple[np.ndarray, np.ndarray, np.ndarray], W: np.ndarray) -> np.ndarray:
    """Average ranks (ties averaged) of values repeated ``W[r]`` times each, one row per resample ``r``, as
    ranking each expanded sample would."""
    order, starts, run = groups
    group_w = np.add.reduceat(W[:, order], starts, axis=1)
    group_rank = np.cumsum(group_w, axis=1) - (group_w - 1) / 2
    out = np.empty_like(W)
    out[:, order] = group_rank[:, run]
    return out


def _weighted_corr(X: np.ndarray, Y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Weighted Pearson r of each row pair (rows: resamples)."""
    total = W.sum(axis=1, keepdims=True)
    Xc = X - (W * X).sum(axis=1, keepdims=True) / total
    Yc = Y - (W * Y).sum(axis=1, keepdims=True) / total
    return np.einsum("ij,ij->i", W * Xc, Yc) / np.sqrt(np.einsum("ij,ij->i", W * Xc, Xc)
                                                      * np.einsum("ij,ij->i", W * Yc, Yc))


def bootstrap_rdm_ci_fast(rdm_a: np.ndarray, rdm_b: np.ndarray, method: str = "spearman", n_boot: int = 1000,
                          confidence: float = 0.95, seed: int | None = 0, batch: int = 1) -> BootstrapResult:
    """:func:`bootstrap_rdm_ci` for Spearman or Pearson comparisons with the same resamples, without building
    each resample: a resample weights each stimulus pair by the product of its stimuli's counts, so its
    correlation is a weighted one (ranks of the weighted sample from one sort done up front), ``batch``
    resamples at a time."""
    if method not in ("spearman", "pearson"):
        raise WorkbenchError(f"the fast RDM bootstrap serves 'spearman' and 'pearson', not {method!r}")
    a = np.asarray(rdm_a, dtype=np.float64).ravel()
    b = np.asarray(rdm_b, dtype=np.float64).ravel()
    n = _square(a, np.float64).shape[0]
    i, j = np.triu_indices(n, k=1)
    groups = (_tie_groups(a), _tie_groups(b)) if method == "spearman" else None
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)]).astype(np.float64)
    dist = np.empty(n_boot)
    for s in range(0, n_boot, batch):
        W = counts[s:s + batch, i] * counts[s:s + batch, j]
        if groups is None:
            dist[s:s + batch] = _weighted_corr(np.broadcast_to(a, W.shape), np.broadcast_to(b, W.shape), W)
        else:
            dist[s:s + batch] = _weighted_corr(_weighted_ranks(groups[0], W), _weighted_ranks(groups[1], W), W)
    one = np.ones((1, len(a)))
    if method == "spearman":
        estimate = float(_weighted_corr(rankdata(a)[None], rankdata(b)[None], one)[0])
    else:
        estimate = float(_weighted_corr(a[None], b[None], one)[0])
    return _percentile_ci(estimate, dist, confidence)


def bootstrap_subjects(values: np.ndarray, n_boot: int = 10000, confidence: float = 0.95,
                       seed: int | None = 0) -> BootstrapResult:
    """CI of the mean over subjects (axis 0) for every other entry (e.g. layers × ROIs)."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    idx = rng.integers(0, n, (n_boot, n))
    dist = np.stack([np.nanmean(values[row], axis=0) for row in idx])
    return _percentile_ci(np.nanmean(values, axis=0), dist, confidence)


# ---- multiple comparisons -------------------------------------------------------------------


def fdr_bh(pvalues: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg FDR over all entries (e.g. layers × ROIs): (reject mask, adjusted q).

    NaN p-values are left out of the family and stay NaN (never rejected).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    flat = p.ravel()
    ok = ~np.isnan(flat)
    if np.any((flat[ok] < 0) | (flat[ok] > 1)):
        raise WorkbenchError("p-values must lie in [0, 1]")
    q: np.ndarray = np.full(flat.shape, np.nan)
    if ok.any():
        q[ok] = false_discovery_control(flat[ok], method="bh")
    q = q.reshape(p.shape)
    return np.nan_to_num(q, nan=np.inf) <= alpha, q
