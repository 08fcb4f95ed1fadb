"""BrainSCUBA's projection of a unit's encoding weights onto the manifold of natural-image embeddings: a
softmax-weighted mean of a bank of (unit-normalised) embeddings, weighted by cosine similarity × temperature.
τ → ∞ gives the nearest bank embedding, τ → 0 the bank mean (Luo et al. 2024, ``projection.py``)."""

from __future__ import annotations

import numpy as np


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def softmax_weights(weights: np.ndarray, bank: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax over the bank (units × bank) of ``temperature`` × cosine(unit weights, bank embedding)."""
    logits = float(temperature) * (unit_rows(weights) @ unit_rows(bank).T)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def project_onto_bank(weights: np.ndarray, bank: np.ndarray, temperature: float = 150.0,
                      chunk: int = 4096) -> np.ndarray:
    """Each unit's weight vector (rows of ``weights``, units × d) as a softmax-weighted mean of the unit-normalised
    bank embeddings (n × d); computed ``chunk`` units at a time so the units × bank weights stay small."""
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    bank_unit = unit_rows(bank)
    out = np.empty((weights.shape[0], bank_unit.shape[1]))
    for start in range(0, weights.shape[0], chunk):
        out[start:start + chunk] = softmax_weights(weights[start:start + chunk], bank_unit, temperature) @ bank_unit
    return out


def nearest_bank(queries: np.ndarray, bank: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` bank rows of highest cosine similarity to each query (indices and similarities, best first)."""
    sims = unit_rows(queries) @ unit_rows(bank).T
    k = min(int(k), sims.shape[1])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1, kind="stable")
    index = np.take_along_axis(top, order, 1)
    return index, np.take_along_axis(sims, index, 1)
