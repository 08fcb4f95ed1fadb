"""Concept and caption numerics against references: BrainSCUBA's projection limits, chunked latent × unit
Pearson r against numpy, Hungarian against brute force, SVCCA against the covariance formula, RSA against
scipy, monosemanticity against a loop, and invariance of every matching score to relabelling latents."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import spearmanr

from brain_workbench_plugins.analyses.concepts import correlation, latents, matching, projection, words


def test_projection_limits_are_nearest_embedding_and_bank_mean() -> None:
    rng = np.random.default_rng(0)
    bank, w = rng.normal(size=(40, 8)), rng.normal(size=(5, 8))
    unit = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    nearest = unit[np.argmax((w / np.linalg.norm(w, axis=1, keepdims=True)) @ unit.T, axis=1)]
    np.testing.assert_allclose(projection.project_onto_bank(w, bank, temperature=1e9), nearest, atol=1e-6)
    np.testing.assert_allclose(projection.project_onto_bank(w, bank, temperature=1e-9),
                               np.broadcast_to(unit.mean(0), w.shape), atol=1e-6)
    mid = projection.project_onto_bank(w, bank, temperature=3.0, chunk=2)
    p = np.exp(3.0 * (w / np.linalg.norm(w, axis=1, keepdims=True)) @ unit.T)
    np.testing.assert_allclose(mid, (p / p.sum(1, keepdims=True)) @ unit, atol=1e-10)


def test_nearest_bank_returns_the_bank_row_a_query_equals() -> None:
    bank = np.random.default_rng(1).normal(size=(30, 6))
    index, sims = projection.nearest_bank(bank[[7, 3]] * 2.5, bank, k=3)
    assert index[:, 0].tolist() == [7, 3]
    np.testing.assert_allclose(sims[:, 0], 1.0)
    assert (np.diff(sims, axis=1) <= 0).all()


def test_chunked_correlations_equal_numpy() -> None:
    rng = np.random.default_rng(2)
    lat = np.maximum(rng.normal(size=(60, 23)), 0)
    units = rng.normal(size=(60, 17)) + lat[:, [0]]
    reference = np.corrcoef(lat.T, units.T)[:23, 23:]
    got = np.concatenate([r for _, r in correlation.correlation_chunks(lat, units, chunk=5)])
    np.testing.assert_allclose(got, reference, atol=1e-6)
    best, best_r, peak, rows = correlation.latent_summaries(lat, units, chunk=4, keep=np.array([3, 11, 22]))
    np.testing.assert_array_equal(best, reference.argmax(0))
    np.testing.assert_allclose(best_r, reference.max(0), atol=1e-6)
    np.testing.assert_allclose(peak, np.abs(reference).max(1), atol=1e-6)
    np.testing.assert_allclose(rows, reference[[3, 11, 22]], atol=1e-6)


def test_a_latent_that_never_fires_correlates_zero_and_is_never_best() -> None:
    lat = np.zeros((10, 2))
    lat[:, 1] = np.arange(10)
    r = next(correlation.correlation_chunks(lat, np.arange(10.0)[:, None]))[1]
    np.testing.assert_allclose(r[:, 0], [0.0, 1.0], atol=1e-6)
    best, best_r = correlation.best_latents(lat, -np.arange(10.0)[:, None])
    assert best.tolist() == [1] and best_r[0] == pytest.approx(-1.0), "a dead latent is never a unit's best"


def test_hungarian_assignment_is_the_best_one_to_one_pairing() -> None:
    sim = np.random.default_rng(3).normal(size=(4, 6))
    assigned = correlation.assigned_latents(sim)
    assert sorted(assigned[assigned >= 0].tolist()) == [0, 1, 2, 3]
    best = max(sum(sim[i, c] for i, c in enumerate(cols)) for cols in itertools.permutations(range(6), 4))
    assert sum(sim[assigned[u], u] for u in range(6) if assigned[u] >= 0) == pytest.approx(best)


def test_greedy_pairs_are_one_to_one_in_decreasing_similarity() -> None:
    sim = np.array([[0.9, 0.8, 0.1], [0.85, 0.2, 0.3]])
    a, b, s = matching.match(sim, "greedy")
    assert list(zip(a.tolist(), b.tolist())) == [(0, 0), (1, 2)]
    np.testing.assert_allclose(s, [0.9, 0.3])
    a, b, s = matching.match(sim, "hungarian")
    assert sorted(zip(a.tolist(), b.tolist())) == [(0, 1), (1, 0)]
    with pytest.raises(ValueError, match="unknown matching method"):
        matching.match(sim, "best")


def test_svcca_equals_the_covariance_formula_and_rsa_equals_scipy() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(80, 5))
    y = x @ rng.normal(size=(5, 4)) + rng.normal(size=(80, 4))
    xc, yc = x - x.mean(0), y - y.mean(0)

    def inv_sqrt(c: np.ndarray) -> np.ndarray:
        vals, vecs = np.linalg.eigh(c)
        return vecs @ np.diag(vals ** -0.5) @ vecs.T

    canon = np.linalg.svd(inv_sqrt(xc.T @ xc) @ xc.T @ yc @ inv_sqrt(yc.T @ yc), compute_uv=False)
    assert matching.svcca(x, y, keep=1.0) == pytest.approx(canon.mean(), abs=1e-9)
    assert matching.svcca(x, x @ rng.normal(size=(5, 5)), keep=1.0) == pytest.approx(1.0, abs=1e-9)
    iu = np.triu_indices(80, 1)
    cos = lambda m: (m / np.linalg.norm(m, axis=1, keepdims=True)) @ (m / np.linalg.norm(m, axis=1, keepdims=True)).T  # noqa: E731
    assert matching.rsa(x, y) == pytest.approx(spearmanr(1 - cos(x)[iu], 1 - cos(y)[iu])[0], abs=1e-12)


def test_shuffled_null_p_value() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 6))
    paired = matching.shuffled_null(matching.rsa, x, x + 0.1 * rng.normal(size=x.shape), permutations=50)
    assert paired.value > 0.9 and paired.null_mean < 0.2 and paired.p == pytest.approx(1 / 51)
    unpaired = matching.shuffled_null(matching.rsa, x, rng.normal(size=x.shape), permutations=50)
    assert unpaired.p > 0.05


def test_matching_scores_are_invariant_to_permuting_latents_and_identical_saes_share_all() -> None:
    rng = np.random.default_rng(6)
    acts = np.maximum(rng.normal(size=(200, 12)), 0)
    dec = rng.normal(size=(12, 7))
    perm = rng.permutation(12)
    for method in matching.METHODS:
        same = matching.compare(matching.activation_similarity(acts, acts), method, decoders=(dec, dec),
                                permutations=20)
        permuted = matching.compare(matching.activation_similarity(acts, acts[:, perm]), method,
                                    decoders=(dec, dec[perm]), permutations=20)
        assert same.fraction == permuted.fraction == 1.0
        assert same.mean_similarity == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_array_equal(perm[permuted.b], permuted.a)
        for score in ("svcca", "rsa"):
            one, two = getattr(same, score), getattr(permuted, score)
            assert one.value == pytest.approx(two.value, abs=1e-9) and one.p == two.p
            np.testing.assert_allclose(one.null, two.null, atol=1e-9)
    other = np.maximum(rng.normal(size=(200, 12)), 0)
    for sim in (matching.activation_similarity(acts, other), matching.decoder_similarity(dec, rng.normal(size=(12, 7)))):
        noise = matching.compare(sim, threshold=0.8)
        assert noise.fraction < 0.5
        assert noise.mean_similarity == pytest.approx(matching.compare(sim[::-1, perm]).mean_similarity)


def test_monosemanticity_equals_the_pairwise_loop() -> None:
    rng = np.random.default_rng(7)
    emb, acts = rng.normal(size=(6, 5)), rng.uniform(0, 2, size=6)
    num = den = 0.0
    for i, j in itertools.combinations(range(6), 2):
        cos = emb[i] @ emb[j] / np.linalg.norm(emb[i]) / np.linalg.norm(emb[j])
        num, den = num + acts[i] * acts[j] * cos, den + acts[i] * acts[j]
    assert latents.monosemanticity(acts, emb) == pytest.approx(num / den)
    assert latents.monosemanticity(np.ones(4), np.tile(emb[:1], (4, 1))) == pytest.approx(1.0)
    assert np.isnan(latents.monosemanticity(np.array([1.0, 0, 0]), emb[:3]))


def test_top_stimuli_dead_and_dense_latents() -> None:
    z = np.array([[0, 3, 1.0], [0, 1, 2.0], [0, 2, 0.0], [0, 5, 0.0]])
    index, acts = latents.top_stimuli(z, 2)
    assert index[1].tolist() == [3, 0] and acts[1].tolist() == [5, 3]
    assert index[2].tolist() == [1, 0]
    dead, dense = latents.dead_and_dense(z, dense_above=0.6)
    assert dead.tolist() == [True, False, False] and dense.tolist() == [False, True, False]


def test_caption_words_and_labels() -> None:
    texts = ["two red circles at the beach", "a red square at the beach", "one blue star in a kitchen"]
    assert words.content_words(texts[0]) == ["red", "circle", "beach"]
    assert [words.singular(w) for w in ("crosses", "circles", "glass", "bus", "arrows")] == \
        ["cross", "circle", "glass", "bus", "arrow"]
    assert words.word_counts(texts)["beach"] == 2
    assert words.label(texts, 2) == "red beach"
    assert words.common_words(texts, above=0.5) == {"red", "beach"}
    assert words.label(texts, 1, drop={"red"}) == "beach"
