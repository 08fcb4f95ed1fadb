"""The decoder head (ridge and contrastive MLP), retrieval / identification scores, and
time generalisation on planted M/EEG-shaped data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

import brain_workbench as wb
from brain_workbench.numerics import ridge
from brain_workbench.numerics.scoring import retrieval_topk, similarity_matrix, two_way_identification
from brain_workbench.plugin.testing import check_head
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.decoder.heads import DecoderHead, per_time_decoding, time_generalization


@pytest.fixture(scope="module")
def brain() -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (d=16) drive 120 voxels linearly, plus noise."""
    rng = np.random.default_rng(0)
    E = rng.standard_normal((260, 16))
    X = E @ rng.standard_normal((16, 120)) + 2.0 * rng.standard_normal((260, 120))
    return X, E


@pytest.mark.parametrize("method", ["ridge", "contrastive"])
def test_decoder_passes_conformance(method):
    head = wb.head("decoder", method=method)
    assert head.direction == "decode"
    check_head(head)


def test_ridge_decoder_equals_linalg_and_retrieves(brain):
    X, E = brain
    head = DecoderHead(alphas=np.logspace(-1, 5, 10)).fit(X[:200], E[:200])
    ref = ridge.ridge_cv(X[:200], E[:200], np.logspace(-1, 5, 10), 5)
    np.testing.assert_allclose(head.coef_, ref.coef, rtol=1e-12)
    assert head.score_per_unit(X[200:], E[200:]).shape == (16,)
    acc = head.retrieval(X[200:], E[200:], k=(1, 5))
    assert acc[1] > 0.8 and acc[5] >= acc[1]


def test_contrastive_decoder_is_seeded_and_learns(brain):
    X, E = brain
    a = DecoderHead(method="contrastive", epochs=60, seed=3).fit(X[:200], E[:200])
    b = clone(a).fit(X[:200], E[:200])
    np.testing.assert_array_equal(a.predict(X[200:]), b.predict(X[200:]))
    assert a.loss_curve_[-1] < a.loss_curve_[0]
    assert a.score(X[200:], E[200:]) > 0.6
    assert a.retrieval(X[200:], E[200:])[5] > 0.5
    assert two_way_identification(a.predict(X[200:]), E[200:]) > 0.9
    with pytest.raises(WorkbenchError, match="method"):
        DecoderHead(method="diffusion").fit(X, E)


def test_retrieval_and_identification_definitions():
    rng = np.random.default_rng(1)
    true = rng.standard_normal((40, 8))
    assert retrieval_topk(true, true, (1, 5)) == {1: 1.0, 5: 1.0}
    assert two_way_identification(true, true) == 1.0
    shuffled = true[np.roll(np.arange(40), 1)]
    assert retrieval_topk(shuffled, true, 1)[1] == 0.0
    assert two_way_identification(-true, true) == 0.0
    noise = [retrieval_topk(rng.standard_normal((40, 8)), true, 5)[5] for _ in range(30)]
    assert np.mean(noise) == pytest.approx(5 / 40, abs=0.04)  # chance level
    batched = retrieval_topk(true + 2.0 * rng.standard_normal(true.shape), true, 1, n_candidates=10, n_repeats=5)
    full = retrieval_topk(true + 2.0 * rng.standard_normal(true.shape), true, 1)
    assert batched[1] >= full[1] - 0.1  # fewer candidates can only make retrieval easier, on average
    S = similarity_matrix(true, true, "pearson")
    np.testing.assert_allclose(S, np.corrcoef(true), atol=1e-12)
    # ties count against the prediction (top-1) and half (two-way)
    const = np.ones((4, 3))
    assert retrieval_topk(const, const, 1)[1] == 0.0 and two_way_identification(const, const) == 0.5


def test_time_generalization_recovers_when_information_is_present():
    rng = np.random.default_rng(2)
    n, units, T = 120, 20, 6
    y = rng.standard_normal(n)
    X = rng.standard_normal((n, units, T))
    pattern = rng.standard_normal(units)
    for t in (2, 3):
        X[:, :, t] += 1.5 * y[:, None] * pattern[None, :]
    est = wb.head("decoder", alphas=np.logspace(-1, 4, 6))
    tg = time_generalization(est, X, y, cv=3)
    assert tg.shape == (T, T)
    assert tg[2, 2] > 0.7 and tg[3, 3] > 0.7 and tg[2, 3] > 0.7  # same pattern generalises across 2↔3
    assert abs(tg[0, 0]) < 0.3 and abs(tg[2, 5]) < 0.3
    diag = per_time_decoding(est, X, y, cv=3)
    np.testing.assert_allclose(diag, np.diag(tg), atol=1e-6)
    with pytest.raises(WorkbenchError, match="times"):
        time_generalization(est, X[:, :, 0], y)
