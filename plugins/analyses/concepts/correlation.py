"""Pearson correlation of every latent with every unit over stimuli, in chunks of latents, so that no dense
latents × units matrix is ever held beyond one chunk; and the best latent per unit, by argmax or one-to-one
(Hungarian assignment, as SAE-BrainMap)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def standardise(x: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit norm (float32), so a dot product of two columns is their Pearson r;
    constant columns (a latent that never fires) become zero and correlate 0 with everything."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    norm = np.linalg.norm(x, axis=0)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def correlation_chunks(latents: np.ndarray, units: np.ndarray, chunk: int = 1024) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(latent slice, r)`` with ``r`` the chunk × units Pearson correlations over the rows (stimuli); the
    units are standardised once, the latents one chunk at a time."""
    if latents.shape[0] != units.shape[0]:
        raise ValueError(f"latents have {latents.shape[0]} stimuli but units {units.shape[0]}")
    zu = standardise(units)
    for start in range(0, latents.shape[1], chunk):
        block = slice(start, min(start + chunk, latents.shape[1]))
        yield block, standardise(latents[:, block]).T @ zu


def latent_summaries(latents: np.ndarray, units: np.ndarray, chunk: int = 1024,
                     keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One pass over the chunks: per unit its best latent (argmax of r over latents that vary; -1 and -inf when
    none does) and that r; per latent its highest |r| over units; and the full correlation rows
    (``len(keep)`` × units) of the latents in ``keep`` only."""
    keep = np.asarray([] if keep is None else keep, dtype=np.int64)
    n_units = units.shape[1]
    rows = np.zeros((len(keep), n_units), dtype=np.float32)
    best = np.full(n_units, -1, dtype=np.int64)
    best_r = np.full(n_units, -np.inf, dtype=np.float32)
    peak = np.zeros(latents.shape[1], dtype=np.float32)
    for block, r in correlation_chunks(latents, units, chunk):
        peak[block] = np.abs(r).max(axis=1)
        inside = (keep >= block.start) & (keep < block.stop)
        rows[inside] = r[keep[inside] - block.start]
        constant = np.ptp(latents[:, block], axis=0) == 0
        if constant.all():
            continue
        r[constant] = -np.inf
        top = r.argmax(axis=0)
        value = r[top, np.arange(n_units)]
        better = value > best_r
        best[better] = top[better] + block.start
        best_r[better] = value[better]
    return best, best_r, peak, rows


def best_latents(latents: np.ndarray, units: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the latent of highest correlation and that correlation (argmax over latents, streamed)."""
    best, best_r, _, _ = latent_summaries(latents, units, chunk)
    return best, best_r


def hungarian(similarity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs (rows, columns) of maximal total similarity (scipy's ``linear_sum_assignment``)."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(np.asarray(similarity, dtype=np.float64), maximize=True)
    return rows.astype(np.int64), cols.astype(np.int64)


def assigned_latents(similarity: np.ndarray) -> np.ndarray:
    """Per unit (columns of a latents × units similarity), the latent a one-to-one Hungarian assignment gives it,
    -1 for units left without one when there are fewer latents than units."""
    out = np.full(similarity.shape[1], -1, dtype=np.int64)
    rows, cols = hungarian(similarity)
    out[cols] = rows
    return out
