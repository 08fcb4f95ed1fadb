"""Scores of brain → model decoding: retrieval top-k, N-way retrieval, two-way identification, with nulls.

Every score is computed from one similarity matrix ``S[i, j]`` between the prediction decoded from
brain pattern ``i`` and the true embedding of stimulus ``j`` (cosine by default, as MindEye), so a
permutation null (predictions re-paired with shuffled stimuli) costs one row permutation of ``S``.

Definitions (ties always count as failures, as in MindEye's code):

- ``top{k}_brain_to_image``: fraction of brain patterns ``i`` whose true stimulus ``i`` is among the
  ``k`` stimuli most similar to the prediction (rank = number of other stimuli scoring at least as high).
- ``top{k}_image_to_brain``: fraction of stimuli ``j`` whose own prediction ``j`` is among the ``k``
  predictions most similar to its embedding (the columns of ``S``).
- ``top1_{N}way_brain_to_image`` / ``..._image_to_brain``: MindEye's protocol. The test set is shuffled
  into disjoint batches of ``N`` (the remainder left out), top-1 is scored within each batch, and the
  accuracy is averaged over ``n_subsets`` seeded shuffles. Chance is ``1/N``.
- ``two_way``: for each prediction ``i``, the fraction of other stimuli ``j`` with
  ``S[i, i] > S[i, j]`` (a tie is a failure), averaged over ``i``. Chance is 0.5.
- ``top{t}_of{k}_brain_to_image`` / ``..._image_to_brain``: the k-way protocol of NICE and ATM (THINGS-EEG2
  zero-shot). For every test item, ``k − 1`` distractors are drawn from the other items (``k_way_draws``
  seeded draws; the nested draws of one seed serve every ``k``), and it is a hit when the true item ranks
  among the ``t`` best of the ``k`` candidates. Chance is ``t/k``; with ``k = N`` there is nothing to draw and
  the score equals ``top{t}`` over the whole test set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from brain_workbench.numerics.scoring import similarity_matrix
from brain_workbench.numerics.stats import permutation_pvalue
from brain_workbench.types import WorkbenchError


def _top1_within(S: np.ndarray, batch: np.ndarray) -> tuple[int, int]:
    sub = S[np.ix_(batch, batch)]
    d = np.diag(sub)
    b2i = int(((sub >= d[:, None]).sum(1) == 1).sum())
    i2b = int(((sub >= d[None, :]).sum(0) == 1).sum())
    return b2i, i2b


def kway_orders(n: int, n_draws: int, seed: int) -> np.ndarray:
    """Seeded random orders of the other items for each item: ``(n_draws, n, n − 1)`` column indices."""
    rng = np.random.default_rng([seed, 22])
    others = np.array([np.delete(np.arange(n), i) for i in range(n)]) if n > 1 else np.zeros((n, 0), np.intp)
    keys = rng.random((n_draws, n, n - 1))
    return np.take_along_axis(np.broadcast_to(others, keys.shape), np.argsort(keys, axis=2), axis=2)


def check_k_way(k_way: Sequence[int], tops: Sequence[int], n: int) -> None:
    """k-way needs 2 ≤ k ≤ the number of test items and top-t with t ≥ 1; one sentence otherwise."""
    for k in k_way:
        if k < 2:
            raise WorkbenchError(f"k-way retrieval needs k ≥ 2, got {k}")
        if k > n:
            raise WorkbenchError(f"{k}-way retrieval needs at least {k} test concepts; the test set has {n}: lower "
                                 "k_way or test on more concepts")
    if any(t < 1 for t in tops):
        raise WorkbenchError(f"k_way_top values must be at least 1, got {list(tops)}")


def kway_similarity(S: np.ndarray, k_way: Sequence[int], tops: Sequence[int] = (1, 5),
                    orders: np.ndarray | None = None, n_draws: int = 10, seed: int = 0) -> dict[str, float]:
    """Top-t k-way accuracy in both directions (NICE/ATM protocol; ties count as failures), t < k only."""
    S = np.asarray(S, dtype=np.float64)
    n = S.shape[0]
    check_k_way(k_way, tops, n)
    if orders is None:
        orders = kway_orders(n, n_draws, seed)
    out: dict[str, float] = {}
    for direction, M in (("brain_to_image", S), ("image_to_brain", S.T)):
        beats = (M >= np.diag(M)[:, None])  # item j scores at least as high as the true item
        ahead = np.cumsum(np.take_along_axis(np.broadcast_to(beats, (len(orders), n, n)), orders, axis=2), axis=2)
        for k in k_way:
            rank = ahead[:, :, k - 2]
            for t in tops:
                if t < k:
                    out[f"top{t}_of{k}_{direction}"] = float(np.mean(rank < t))
    return out


def score_similarity(S: np.ndarray, ks: Sequence[int] = (1, 5), n_way: Sequence[int] = (),
                     n_subsets: int = 30, seed: int = 0, k_way: Sequence[int] = (), k_way_top: Sequence[int] = (1, 5),
                     k_way_orders: np.ndarray | None = None, k_way_draws: int = 10) -> dict[str, float]:
    """Every decoding score of a square similarity matrix (rows: predictions, columns: true stimuli)."""
    S = np.asarray(S, dtype=np.float64)
    n = S.shape[0]
    if S.shape != (n, n) or n < 2:
        raise WorkbenchError(f"decoding scores need a square similarity matrix of at least 2 stimuli, got {S.shape}")
    d = np.diag(S)
    rank_b2i = (S >= d[:, None]).sum(1) - 1
    rank_i2b = (S >= d[None, :]).sum(0) - 1
    out: dict[str, float] = {}
    for k in ks:
        out[f"top{k}_brain_to_image"] = float(np.mean(rank_b2i < k))
        out[f"top{k}_image_to_brain"] = float(np.mean(rank_i2b < k))
    rng = np.random.default_rng(seed)
    for N in n_way:
        if N > n:
            raise WorkbenchError(f"{N}-way retrieval needs at least {N} test stimuli; the test set has {n}: "
                                 f"lower n_way or use a larger test split")
        if N < 2:
            raise WorkbenchError(f"n_way must be at least 2, got {N}")
        hits_b2i = hits_i2b = total = 0
        for _ in range(n_subsets):
            perm = rng.permutation(n)[: n - n % N]
            for batch in perm.reshape(-1, N):
                b2i, i2b = _top1_within(S, batch)
                hits_b2i, hits_i2b, total = hits_b2i + b2i, hits_i2b + i2b, total + N
        out[f"top1_{N}way_brain_to_image"] = hits_b2i / total
        out[f"top1_{N}way_image_to_brain"] = hits_i2b / total
    out["two_way"] = float(np.mean((d[:, None] > S).sum(1) / (n - 1)))
    if k_way:
        out.update(kway_similarity(S, k_way, k_way_top, k_way_orders, k_way_draws, seed))
    return out


def chance_levels(n_test: int, ks: Sequence[int] = (1, 5), n_way: Sequence[int] = (), k_way: Sequence[int] = (),
                  k_way_top: Sequence[int] = (1, 5)) -> dict[str, float]:
    """The expected value of each score when predictions carry no information."""
    out = {}
    for k in ks:
        out[f"top{k}_brain_to_image"] = out[f"top{k}_image_to_brain"] = min(k, n_test) / n_test
    for N in n_way:
        out[f"top1_{N}way_brain_to_image"] = out[f"top1_{N}way_image_to_brain"] = 1.0 / N
    out["two_way"] = 0.5
    for k in k_way:
        for t in k_way_top:
            if t < k:
                out[f"top{t}_of{k}_brain_to_image"] = out[f"top{t}_of{k}_image_to_brain"] = t / k
    return out


def decoding_scores(pred: np.ndarray, true: np.ndarray, ks: Sequence[int] = (1, 5), n_way: Sequence[int] = (),
                    n_subsets: int = 30, permutations: int = 0, seed: int = 0,
                    metric: str = "cosine", k_way: Sequence[int] = (), k_way_top: Sequence[int] = (1, 5),
                    k_way_draws: int = 10) -> dict[str, dict[str, float]]:
    """Scores of predictions against true embeddings, each with its chance level and permutation p-value.

    Returns ``{score: {"value", "chance", "p_permutation", "null_95"}}``; the null re-pairs
    predictions with shuffled stimuli (``permutations`` times, seeded) and keeps the N-way subsets'
    seed, so only the pairing changes (k-way scores keep their distractor draws too).
    """
    check_k_way(k_way, k_way_top, len(pred))
    S = similarity_matrix(pred, true, metric)
    orders = kway_orders(len(S), k_way_draws, seed) if k_way else None
    kway: dict[str, Any] = {"k_way": k_way, "k_way_top": k_way_top, "k_way_orders": orders}
    observed = score_similarity(S, ks, n_way, n_subsets, seed, **kway)
    chance = chance_levels(len(S), ks, n_way, k_way, k_way_top)
    out = {name: {"value": value, "chance": chance[name]} for name, value in observed.items()}
    if permutations:
        rng = np.random.default_rng(seed + 1)
        nulls = {name: np.empty(permutations) for name in observed}
        for i in range(permutations):
            shuffled = score_similarity(S[rng.permutation(len(S))], ks, n_way, n_subsets, seed, **kway)
            for name, value in shuffled.items():
                nulls[name][i] = value
        for name, null in nulls.items():
            out[name]["p_permutation"] = permutation_pvalue(observed[name], null)
            out[name]["null_95"] = float(np.quantile(null, 0.95))
    return out


def symmetric_info_nce(a: np.ndarray, b: np.ndarray, logit_scale: float) -> float:
    """CLIP's symmetric InfoNCE of paired rows: mean of both directions' cross-entropy of
    ``exp(logit_scale) · cos(a_i, b_j)`` logits, the true pair on the diagonal (NumPy reference)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    logits = np.exp(logit_scale) * (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (
        b / np.linalg.norm(b, axis=1, keepdims=True)).T

    def cross_entropy(z: np.ndarray) -> float:
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - np.diag(z)))

    return 0.5 * (cross_entropy(logits) + cross_entropy(logits.T))
