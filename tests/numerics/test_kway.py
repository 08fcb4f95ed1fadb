"""k-way zero-shot scores (NICE/ATM protocol) and the symmetric InfoNCE loss against direct NumPy loops."""

from __future__ import annotations

import numpy as np
import pytest

from brain_workbench.numerics.decoding import (
    chance_levels,
    decoding_scores,
    kway_orders,
    kway_similarity,
    score_similarity,
    symmetric_info_nce,
)
from brain_workbench.numerics.scoring import similarity_matrix
from brain_workbench.types import WorkbenchError


def direct_kway(S: np.ndarray, orders: np.ndarray, k: int, t: int) -> tuple[float, float]:
    """For each item and draw: its k − 1 distractors, the count scoring at least as high, hit if below t."""
    n = len(S)
    hits = {"b2i": [], "i2b": []}
    for d in range(len(orders)):
        for i in range(n):
            distractors = orders[d, i, : k - 1]
            assert i not in distractors and len(set(distractors)) == k - 1
            hits["b2i"].append(sum(S[i, j] >= S[i, i] for j in distractors) < t)
            hits["i2b"].append(sum(S[j, i] >= S[i, i] for j in distractors) < t)
    return float(np.mean(hits["b2i"])), float(np.mean(hits["i2b"]))


def test_kway_equals_a_direct_loop_and_k_n_is_top1_over_the_test_set() -> None:
    rng = np.random.default_rng(0)
    true = rng.standard_normal((12, 6))
    pred = true + 1.2 * rng.standard_normal(true.shape)
    S = similarity_matrix(pred, true, "cosine")
    S[3, 5] = S[3, 3]  # a tie counts as a failure
    orders = kway_orders(12, 4, seed=3)
    got = kway_similarity(S, [2, 4, 10, 12], [1, 5], orders)
    for k in (2, 4, 10, 12):
        for t in (1, 5):
            if t >= k:
                assert f"top{t}_of{k}_brain_to_image" not in got
                continue
            b2i, i2b = direct_kway(S, orders, k, t)
            assert abs(got[f"top{t}_of{k}_brain_to_image"] - b2i) < 1e-6
            assert abs(got[f"top{t}_of{k}_image_to_brain"] - i2b) < 1e-6
    whole = score_similarity(S, ks=(1, 5))
    for t in (1, 5):
        assert got[f"top{t}_of12_brain_to_image"] == pytest.approx(whole[f"top{t}_brain_to_image"], abs=1e-12)
        assert got[f"top{t}_of12_image_to_brain"] == pytest.approx(whole[f"top{t}_image_to_brain"], abs=1e-12)


def test_chance_levels_and_permutation_pvalues() -> None:
    rng = np.random.default_rng(1)
    true = rng.standard_normal((200, 8))
    runs = [decoding_scores(rng.standard_normal((200, 8)), true, (1,), (), permutations=0, k_way=[2, 10, 50],
                            k_way_draws=10, seed=s) for s in range(8)]
    noise = runs[0]
    for k in (2, 10, 50):
        mean = np.mean([r[f"top1_of{k}_brain_to_image"]["value"] for r in runs])
        assert abs(mean - 1 / k) < 0.04
        assert noise[f"top1_of{k}_brain_to_image"]["chance"] == 1 / k
    assert noise["top5_of50_brain_to_image"]["chance"] == 5 / 50
    good = decoding_scores(true + 0.5 * rng.standard_normal(true.shape), true, (1,), (), permutations=50,
                           k_way=[2, 50], k_way_draws=3)
    assert good["top1_of50_brain_to_image"]["value"] > 0.5
    assert good["top1_of50_brain_to_image"]["p_permutation"] == pytest.approx(1 / 51)
    assert set(chance_levels(60, (1,), (), [2, 4], [1, 5])) >= {"top1_of2_brain_to_image", "top1_of4_image_to_brain"}


def test_fewer_test_concepts_than_k_is_one_sentence() -> None:
    x = np.random.default_rng(2).standard_normal((10, 4))
    with pytest.raises(WorkbenchError, match="200-way retrieval needs at least 200 test concepts; the test set has 10"):
        decoding_scores(x, x, k_way=[2, 200])
    with pytest.raises(WorkbenchError, match="k ≥ 2"):
        kway_similarity(x @ x.T, [1])


def test_symmetric_info_nce_equals_a_direct_loop() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    scale = np.log(1 / 0.07)
    total = 0.0
    for i in range(5):
        row = [np.exp(scale) * a[i] @ b[j] / np.linalg.norm(a[i]) / np.linalg.norm(b[j]) for j in range(5)]
        col = [np.exp(scale) * a[j] @ b[i] / np.linalg.norm(a[j]) / np.linalg.norm(b[i]) for j in range(5)]
        total += -row[i] + np.log(np.sum(np.exp(row))) - col[i] + np.log(np.sum(np.exp(col)))
    assert symmetric_info_nce(a, b, scale) == pytest.approx(total / 10, abs=1e-6)
