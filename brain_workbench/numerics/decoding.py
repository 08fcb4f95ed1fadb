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
"""

from __future__ import annotations

from collections.abc import Sequence

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


def score_similarity(S: np.ndarray, ks: Sequence[int] = (1, 5), n_way: Sequence[int] = (),
                     n_subsets: int = 30, seed: int = 0) -> dict[str, float]:
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
    return out


def chance_levels(n_test: int, ks: Sequence[int] = (1, 5), n_way: Sequence[int] = ()) -> dict[str, float]:
    """The expected value of each score when predictions carry no information."""
    out = {}
    for k in ks:
        out[f"top{k}_brain_to_image"] = out[f"top{k}_image_to_brain"] = min(k, n_test) / n_test
    for N in n_way:
        out[f"top1_{N}way_brain_to_image"] = out[f"top1_{N}way_image_to_brain"] = 1.0 / N
    out["two_way"] = 0.5
    return out


def decoding_scores(pred: np.ndarray, true: np.ndarray, ks: Sequence[int] = (1, 5), n_way: Sequence[int] = (),
                    n_subsets: int = 30, permutations: int = 0, seed: int = 0,
                    metric: str = "cosine") -> dict[str, dict[str, float]]:
    """Scores of predictions against true embeddings, each with its chance level and permutation p-value.

    Returns ``{score: {"value", "chance", "p_permutation", "null_95"}}``; the null re-pairs
    predictions with shuffled stimuli (``permutations`` times, seeded) and keeps the N-way subsets'
    seed, so only the pairing changes.
    """
    S = similarity_matrix(pred, true, metric)
    observed = score_similarity(S, ks, n_way, n_subsets, seed)
    chance = chance_levels(len(S), ks, n_way)
    out = {name: {"value": value, "chance": chance[name]} for name, value in observed.items()}
    if permutations:
        rng = np.random.default_rng(seed + 1)
        nulls = {name: np.empty(permutations) for name in observed}
        for i in range(permutations):
            shuffled = score_similarity(S[rng.permutation(len(S))], ks, n_way, n_subsets, seed)
            for name, value in shuffled.items():
                nulls[name][i] = value
        for name, null in nulls.items():
            out[name]["p_permutation"] = permutation_pvalue(observed[name], null)
            out[name]["null_95"] = float(np.quantile(null, 0.95))
    return out
