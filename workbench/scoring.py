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
