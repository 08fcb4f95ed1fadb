"""Noise ceilings: split-half reliability, NSD's ncsnr, and the RDM noise ceiling over subjects.

Per-unit ceilings are returned as the fraction of variance (0–1) that ``Recording.noise_ceiling`` stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.spatial.distance import squareform

from brain_workbench.numerics.stats import rankdata
from brain_workbench.types import WorkbenchError, noise_ceiling_from_ncsnr


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
