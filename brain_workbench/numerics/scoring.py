"""Per-unit scores shared by heads, the sweep and figures.

``pearson_per_unit`` is the score the sweep reports; ``normalize_by_ceiling`` divides it by the
noise ceiling expressed in correlation units (sqrt of the explainable-variance fraction), so a
perfect model of the repeatable signal scores 1.
"""

from __future__ import annotations

import numpy as np


def pearson_per_unit(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns (units); constant columns score 0, not NaN."""
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"y_true {a.shape} and y_pred {b.shape} must have the same shape")
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    denom = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=0) / denom
    return np.where(denom > 0, r, 0.0)


def pearson_per_output(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """``pearson_per_unit`` that also takes single-output 1-D targets (as scikit-learn heads may predict)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_pred.ndim == 1:
        return pearson_per_unit(y_true.reshape(-1, 1), y_pred[:, None])
    return pearson_per_unit(y_true, y_pred)


def r2_per_unit(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per unit (sklearn's ``r2_score(multioutput='raw_values')``)."""
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    ss_res = ((a - b) ** 2).sum(axis=0)
    ss_tot = ((a - a.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, 0.0)


def normalize_by_ceiling(r: np.ndarray, noise_ceiling: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """r / sqrt(noise ceiling); units whose ceiling is below ``floor`` become NaN (no signal to explain)."""
    nc = np.asarray(noise_ceiling, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(nc > floor, np.asarray(r) / np.sqrt(np.clip(nc, floor, None)), np.nan)


def _unit_rows(A: np.ndarray, center: bool) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    if center:
        A = A - A.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(A, axis=1, keepdims=True)
    return A / np.where(norm > 0, norm, 1.0)


def similarity_matrix(pred: np.ndarray, true: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """S[i, j] = similarity of predicted embedding i and true embedding j (cosine or Pearson)."""
    if metric not in ("cosine", "pearson"):
        raise ValueError(f"unknown similarity {metric!r}; use 'cosine' or 'pearson'")
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape or pred.ndim != 2:
        raise ValueError(f"pred {pred.shape} and true {true.shape} must be matching (n, d) arrays")
    center = metric == "pearson"
    return _unit_rows(pred, center) @ _unit_rows(true, center).T


def retrieval_topk(pred: np.ndarray, true: np.ndarray, k: int | tuple[int, ...] = (1, 5),
                   n_candidates: int | None = None, metric: str = "cosine", n_repeats: int = 30,
                   seed: int | None = 0) -> dict[int, float]:
    """Top-k retrieval accuracy: how often true embedding i is among the k most similar to prediction i.

    With ``n_candidates`` (MindEye uses 300) the stimuli are shuffled into batches of that size and
    each prediction competes only within its batch, averaged over ``n_repeats`` shuffles; ties count
    against the prediction.
    """
    S = similarity_matrix(pred, true, metric)
    n = S.shape[0]
    ks = (k,) if isinstance(k, int) else tuple(k)
    if n_candidates is None or n_candidates >= n:
        batches = [[np.arange(n)]]
    else:
        if n_candidates < 2:
            raise ValueError("n_candidates must be at least 2")
        rng = np.random.default_rng(seed)
        batches = []
        for _ in range(n_repeats):
            perm = rng.permutation(n)
            usable = n - n % n_candidates
            batches.append(np.split(perm[:usable], usable // n_candidates))
    hits: dict[int, list[np.ndarray]] = {kk: [] for kk in ks}
    for split in batches:
        for idx in split:
            sub = S[np.ix_(idx, idx)]
            rank = (sub > np.diag(sub)[:, None]).sum(1) + ((sub == np.diag(sub)[:, None]).sum(1) - 1)
            for kk in ks:
                hits[kk].append(rank < kk)
    return {kk: float(np.mean(np.concatenate(v))) for kk, v in hits.items()}


def two_way_identification(pred: np.ndarray, true: np.ndarray, metric: str = "pearson") -> float:
    """Two-way identification: the fraction of pairs (i, j≠i) where prediction i is more similar to
    true i than to true j (ties count half), averaged over all i."""
    S = similarity_matrix(pred, true, metric)
    n = S.shape[0]
    if n < 2:
        raise ValueError("two-way identification needs at least 2 stimuli")
    d = np.diag(S)[:, None]
    wins = (d > S).sum(1) + 0.5 * ((d == S).sum(1) - 1)
    return float(np.mean(wins / (n - 1)))


def critical_r(n: int, p: float = 0.001) -> float:
    """Pearson r that n test stimuli need for one-sided p < ``p`` (uncorrected); maps hide weaker units."""
    from scipy import stats

    if n < 4:
        return 0.0
    t = stats.t.ppf(1 - p, n - 2)
    return float(t / np.sqrt(n - 2 + t * t))


BELOW_THRESHOLD, UNRELIABLE = -1, -2


def reliable_best_layer(scores: np.ndarray, half_a: np.ndarray | None = None, half_b: np.ndarray | None = None,
                        min_score: float = 0.0) -> np.ndarray:
    """Each unit's best layer (row of ``scores``, layers × units), or ``BELOW_THRESHOLD`` where no layer reaches
    ``min_score``, or ``UNRELIABLE`` where the best layer does not beat the runner-up in both independent halves
    of the test stimuli (``half_a``, ``half_b``: the same scores on each half; split-half margin > 0 twice)."""
    scores = np.asarray(scores, dtype=np.float64)
    filled = np.where(np.isfinite(scores), scores, -np.inf)
    best = np.argmax(filled, axis=0)
    units = np.arange(scores.shape[1])
    out = best.astype(np.int64)
    out[filled[best, units] < min_score] = BELOW_THRESHOLD
    if half_a is None or half_b is None or scores.shape[0] < 2:
        return out
    runner_up = np.argsort(filled, axis=0, kind="stable")[-2]
    for half in (np.asarray(half_a, dtype=np.float64), np.asarray(half_b, dtype=np.float64)):
        if half.shape != scores.shape:
            raise ValueError(f"half scores {half.shape} must match scores {scores.shape}")
        margin = half[best, units] - half[runner_up, units]
        out[(out >= 0) & ~(margin > 0)] = UNRELIABLE
    return out
