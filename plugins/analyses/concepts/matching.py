"""Are two SAEs' latents the same? Pair latents by activation correlation (greedy or Hungarian) or decoder
cosine, then score the pairing: fraction matched above a threshold, mean matched similarity, and paired SVCCA
and RSA on the matched decoder rows, each against a shuffled-pairing null (Lan et al. 2024, univ_feat_geom;
Paulo & Belrose 2025). Pairs are ordered by similarity, so every score is invariant to relabelling latents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from brain_workbench_plugins.analyses.concepts.correlation import correlation_chunks, hungarian
from brain_workbench_plugins.analyses.concepts.projection import unit_rows

METHODS = ("greedy", "hungarian")


def activation_similarity(latents_a: np.ndarray, latents_b: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Pearson correlation (a latents × b latents) of two SAEs' activations over the same stimuli."""
    out = np.empty((latents_a.shape[1], latents_b.shape[1]), dtype=np.float32)
    for block, r in correlation_chunks(latents_a, latents_b, chunk):
        out[block] = r
    return out


def decoder_similarity(decoder_a: np.ndarray, decoder_b: np.ndarray) -> np.ndarray:
    """Cosine similarity of decoder rows (a latents × b latents); both decoders must share one input space."""
    if decoder_a.shape[1] != decoder_b.shape[1]:
        raise ValueError(f"decoders read {decoder_a.shape[1]}- and {decoder_b.shape[1]}-wide inputs; decoder cosine "
                         "needs one input space (match by activation correlation instead)")
    return unit_rows(decoder_a) @ unit_rows(decoder_b).T


def greedy_pairs(similarity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs taken in decreasing similarity while both latents are free."""
    sim = np.asarray(similarity)
    order = np.argsort(-sim, axis=None, kind="stable")
    used_a = np.zeros(sim.shape[0], bool)
    used_b = np.zeros(sim.shape[1], bool)
    rows, cols = [], []
    for flat in order:
        a, b = divmod(int(flat), sim.shape[1])
        if not used_a[a] and not used_b[b]:
            used_a[a] = used_b[b] = True
            rows.append(a)
            cols.append(b)
            if len(rows) == min(sim.shape):
                break
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)


def match(similarity: np.ndarray, method: str = "hungarian") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (a, b) and their similarities, best first, by ``greedy`` or ``hungarian`` one-to-one matching."""
    if method not in METHODS:
        raise ValueError(f"unknown matching method {method!r}; use one of {', '.join(METHODS)}")
    a, b = greedy_pairs(similarity) if method == "greedy" else hungarian(similarity)
    sims = np.asarray(similarity)[a, b].astype(np.float64)
    order = np.argsort(-sims, kind="stable")
    return a[order], b[order], sims[order]


def svcca(x: np.ndarray, y: np.ndarray, keep: float = 0.99) -> float:
    """Mean canonical correlation of ``x`` and ``y`` (rows paired) after reducing each to the top singular
    directions that keep ``keep`` of its variance (Raghu et al. 2017)."""
    def reduced(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=np.float64)
        m = m - m.mean(axis=0)
        u, s, _ = np.linalg.svd(m, full_matrices=False)
        var = np.cumsum(s ** 2) / max(float((s ** 2).sum()), 1e-300)
        k = int(np.searchsorted(var, keep) + 1)
        return u[:, :k] * s[:k]

    qx, _ = np.linalg.qr(reduced(x))
    qy, _ = np.linalg.qr(reduced(y))
    corr = np.linalg.svd(qx.T @ qy, compute_uv=False)
    return float(np.clip(corr, 0.0, 1.0).mean())


def rsa(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman correlation of the cosine-distance RDMs (upper triangles) of ``x`` and ``y`` (rows paired)."""
    from scipy.stats import spearmanr

    iu = np.triu_indices(x.shape[0], k=1)
    dx = 1.0 - (unit_rows(x) @ unit_rows(x).T)[iu]
    dy = 1.0 - (unit_rows(y) @ unit_rows(y).T)[iu]
    return float(spearmanr(dx, dy)[0])


@dataclass(frozen=True)
class NullTest:
    """A paired score, the mean of its shuffled-pairing null, and the one-sided permutation p-value."""

    value: float
    null_mean: float
    p: float
    null: np.ndarray


def shuffled_null(score: Callable[[np.ndarray, np.ndarray], float], x: np.ndarray, y: np.ndarray,
                  permutations: int = 100, seed: int = 0) -> NullTest:
    """``score(x, y)`` against ``score(x, y[shuffled])``; p = (1 + #null ≥ value) / (1 + permutations)."""
    value = score(x, y)
    rng = np.random.default_rng(seed)
    null = np.asarray([score(x, y[rng.permutation(len(y))]) for _ in range(int(permutations))])
    p = (1.0 + float((null >= value).sum())) / (1.0 + len(null))
    return NullTest(value, float(null.mean()) if len(null) else float("nan"), p, null)


@dataclass(frozen=True)
class Matching:
    """Two SAEs' latents paired one-to-one, with the scores of the pairing."""

    method: str
    a: np.ndarray
    b: np.ndarray
    similarity: np.ndarray
    fraction: float
    mean_similarity: float
    svcca: NullTest | None
    rsa: NullTest | None


def compare(similarity: np.ndarray, method: str = "hungarian", threshold: float = 0.5,
            decoders: tuple[np.ndarray, np.ndarray] | None = None, permutations: int = 100,
            max_pairs: int = 2000, seed: int = 0) -> Matching:
    """Match, then score: the fraction of the smaller SAE's latents matched with similarity ≥ ``threshold``, the
    mean matched similarity, and (given both decoders) SVCCA and RSA on the ``max_pairs`` best-matched decoder
    rows against ``permutations`` shuffled pairings."""
    a, b, sims = match(similarity, method)
    n = min(similarity.shape)
    fraction = float((sims >= threshold).sum() / n) if n else 0.0
    sv = rs = None
    if decoders is not None and len(a) >= 3:
        top = slice(0, min(len(a), int(max_pairs)))
        x, y = np.asarray(decoders[0])[a[top]], np.asarray(decoders[1])[b[top]]
        sv = shuffled_null(svcca, x, y, permutations, seed)
        rs = shuffled_null(rsa, x, y, permutations, seed)
    return Matching(method, a, b, sims, fraction, float(sims.mean()) if len(sims) else float("nan"), sv, rs)
