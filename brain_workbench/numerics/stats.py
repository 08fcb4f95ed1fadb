"""Inference for brain–model comparisons: permutation tests, bootstrap CIs, FDR, noise ceilings.

Permutations and bootstraps resample stimuli (rows), since stimuli are the units of generalisation
in model–brain comparisons; subject bootstraps resample subjects. Noise ceilings are returned as
the fraction of variance (0–1) that ``Recording.noise_ceiling`` stores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import squareform
from scipy.stats import false_discovery_control

from brain_workbench.types import WorkbenchError, noise_ceiling_from_ncsnr

ALTERNATIVES = ("greater", "less", "two-sided")


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


# ---- noise ceilings -------------------------------------------------------------------------


def _group_reps(responses: np.ndarray, stimulus_ids: Sequence[Any]) -> tuple[np.ndarray, list[np.ndarray]]:
    ids = np.asarray(stimulus_ids)
    if len(ids) != responses.shape[0]:
        raise WorkbenchError(f"{responses.shape[0]} trials but {len(ids)} stimulus ids")
    _, inverse = np.unique(ids, return_inverse=True)
    groups = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    return inverse, groups


def split_half_reliability(responses: np.ndarray, stimulus_ids: Sequence[Any], n_splits: int = 20,
                           seed: int | None = 0) -> np.ndarray:
    """Spearman–Brown-corrected split-half reliability per unit: the fraction of variance of the
    all-repetition average that is repeatable signal (clipped to 0–1).

    Each split puts a random half of every stimulus's repetitions in each half (stimuli with one
    repetition are skipped), correlates the half-means over stimuli, and corrects with 2r/(1+r).
    """
    R = np.asarray(responses, dtype=np.float64)
    R = R.reshape(R.shape[0], -1)
    _, groups = _group_reps(R, stimulus_ids)
    groups = [g for g in groups if len(g) >= 2]
    if len(groups) < 3:
        raise WorkbenchError("split-half reliability needs at least 3 stimuli shown at least twice")
    rng = np.random.default_rng(seed)
    rs = []
    for _ in range(n_splits):
        A = np.empty((len(groups), R.shape[1]))
        B = np.empty_like(A)
        for k, g in enumerate(groups):
            g = rng.permutation(g)
            h = len(g) // 2
            A[k] = R[g[:h]].mean(0)
            B[k] = R[g[h:]].mean(0)
        A -= A.mean(0)
        B -= B.mean(0)
        den = np.sqrt((A * A).sum(0) * (B * B).sum(0))
        with np.errstate(invalid="ignore", divide="ignore"):
            rs.append(np.where(np.isnan(den), np.nan, np.where(den > 0, (A * B).sum(0) / den, 0.0)))
    r = np.mean(rs, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sb = np.where(np.isnan(r), np.nan, np.where(r > -1, 2 * r / (1 + r), 0.0))
    return np.clip(sb, 0.0, 1.0).reshape(np.asarray(responses).shape[1:])


def ncsnr(responses: np.ndarray, stimulus_ids: Sequence[Any], sessions: Sequence[Any] | None = None) -> np.ndarray:
    """Noise-ceiling signal-to-noise ratio per unit (Allen et al. 2022, NSD).

    Responses are z-scored per unit within each session (all trials at once if ``sessions`` is None);
    noise sd = sqrt(mean over stimuli with ≥2 repetitions of the across-repetition variance, ddof=1),
    signal sd = sqrt(max(0, 1 − noise sd²)), ncsnr = signal sd / noise sd.
    """
    R = np.asarray(responses, dtype=np.float64)
    shape = R.shape[1:]
    R = R.reshape(R.shape[0], -1).copy()
    sess = np.zeros(len(R), int) if sessions is None else np.asarray(sessions)
    if len(sess) != len(R):
        raise WorkbenchError(f"{len(R)} trials but {len(sess)} session labels")
    for s in np.unique(sess):
        rows = sess == s
        if rows.sum() < 2:
            raise WorkbenchError(f"session {s!r} has fewer than 2 trials; cannot z-score it")
        mu = R[rows].mean(0)
        sd = R[rows].std(0, ddof=1)
        R[rows] = (R[rows] - mu) / np.where(sd > 0, sd, 1.0)
    _, groups = _group_reps(R, stimulus_ids)
    variances = [R[g].var(0, ddof=1) for g in groups if len(g) >= 2]
    if not variances:
        raise WorkbenchError("ncsnr needs stimuli shown at least twice")
    noise_sd = np.sqrt(np.mean(variances, axis=0))
    signal_sd = np.sqrt(np.clip(1.0 - noise_sd ** 2, 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(noise_sd > 0, signal_sd / noise_sd, np.inf)
    out[np.isnan(noise_sd)] = np.nan  # a unit with NaN responses has no ncsnr (never an infinite one)
    return out.reshape(shape)


def ncsnr_to_noise_ceiling(snr: np.ndarray, n_average: int | Sequence[int] | np.ndarray = 1) -> np.ndarray:
    """Noise ceiling as a fraction (NSD's NC/100): ncsnr² / (ncsnr² + mean(1/n)), where n is the
    number of trials averaged per stimulus (a scalar, or one count per stimulus for mixtures)."""
    inv = float(np.mean(1.0 / np.asarray(n_average, dtype=np.float64)))
    snr = np.asarray(snr, dtype=np.float64)
    return np.where(np.isinf(snr), 1.0, noise_ceiling_from_ncsnr(snr, inv).astype(np.float64))


def noise_ceiling_nsd(responses: np.ndarray, stimulus_ids: Sequence[Any], sessions: Sequence[Any] | None = None,
                      n_average: int | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """NSD-style noise ceiling (fraction 0–1) per unit; ``n_average`` defaults to each stimulus's
    repetition count in ``responses`` (the ceiling of the repetition-averaged data)."""
    snr = ncsnr(responses, stimulus_ids, sessions)
    if n_average is None:
        _, counts = np.unique(np.asarray(stimulus_ids), return_counts=True)
        n_average = counts
    return ncsnr_to_noise_ceiling(snr, n_average)


RDM_CEILING_METHODS = ("cosine", "corr", "spearman")


def _condensed_rdms(rdms: Any) -> np.ndarray:
    """Subjects × pairs from a stack of condensed vectors or of square RDMs."""
    arr = np.asarray(rdms, dtype=np.float64)
    if arr.ndim == 3:
        if arr.shape[1] != arr.shape[2]:
            raise WorkbenchError(f"square RDMs must be n × n, got {arr.shape[1]} × {arr.shape[2]}")
        arr = np.stack([squareform(m, checks=False) for m in arr])
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise WorkbenchError(f"an RDM noise ceiling needs RDMs of at least two subjects (subjects × pairs or "
                             f"subjects × n × n), got shape {np.shape(rdms)}")
    if not np.isfinite(arr).all():
        raise WorkbenchError("RDMs for the noise ceiling hold NaN or infinite dissimilarities; drop those pairs first")
    return arr


def _rdm_pool(V: np.ndarray, method: str) -> np.ndarray:
    if method == "cosine":
        V = V / np.sqrt(np.mean(V ** 2, axis=1, keepdims=True))
    elif method == "corr":
        V = (V - V.mean(axis=1, keepdims=True)) / V.std(axis=1, keepdims=True)
    else:
        V = np.array([rankdata(v) for v in V])
    return V.mean(axis=0)


def _rdm_compare(a: np.ndarray, b: np.ndarray, method: str) -> float:
    if method == "spearman":
        a, b = rankdata(a), rankdata(b)
    if method in ("corr", "spearman"):
        a, b = a - a.mean(), b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def rdm_noise_ceiling(rdms: Any, method: str = "spearman") -> tuple[float, float]:
    """Lower and upper bound of the RDM noise ceiling over subjects, as rsatoolbox's ``boot_noise_ceiling``.

    Upper: each subject's RDM against the pool of all subjects; lower: against the pool of the others
    (leave-one-subject-out). The pool is the mean RDM after the transform the comparison is invariant
    to (RMS scaling for cosine, z-scoring for corr, ranks for spearman), averaged over subjects.
    """
    if method not in RDM_CEILING_METHODS:
        raise WorkbenchError(f"unknown RDM comparison {method!r} for the noise ceiling; use one of "
                             f"{', '.join(RDM_CEILING_METHODS)}")
    V = _condensed_rdms(rdms)
    pooled = _rdm_pool(V, method)
    upper = [_rdm_compare(pooled, v, method) for v in V]
    lower = [_rdm_compare(_rdm_pool(np.delete(V, i, axis=0), method), v, method) for i, v in enumerate(V)]
    return float(np.mean(lower)), float(np.mean(upper))


def given_rdm_noise_ceilings(rdms: Sequence[Any], method: str = "spearman") -> dict[tuple[str, str | None], tuple[float, float]]:
    """RDM noise ceiling (lower, upper) per ROI and session over the subjects of given ``BrainRDMs``.

    Each subject's RDM is first put in the stimulus order of the first subject's; every subject must
    have an RDM of the same stimuli (else one sentence names the subject).
    """
    groups: dict[tuple[str, str | None], list[Any]] = {}
    for r in rdms:
        groups.setdefault((r.roi, r.session), []).append(r)
    out = {}
    for (roi, session), group in groups.items():
        ids = group[0].stimulus_ids.tolist()
        for r in group[1:]:
            if set(r.stimulus_ids.tolist()) != set(ids):
                raise WorkbenchError(f"the RDM of subject {r.subject}, ROI {roi!r} holds other stimuli than subject "
                                     f"{group[0].subject}'s; a noise ceiling needs RDMs of the same stimuli")
        out[(roi, session)] = rdm_noise_ceiling(np.stack([r.select(ids).rdm for r in group]), method)
    return out
