"""scikit-learn's model selection on the heads: ``score`` is one number (the mean per-unit r), so
``cross_val_score``, ``GridSearchCV`` and ``permutation_test_score`` run, and agree with a hand-written loop."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, permutation_test_score

import brain_workbench as wb
from brain_workbench.numerics.scoring import pearson_per_unit

HEADS = {"ridge": {"alphas": [0.1, 1e3]}, "decoder": {"alphas": [0.1, 1e3]}}


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, np.ndarray]:
    """60 samples, 40 features; Y is a noisy linear map of X (10 outputs)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 40))
    Y = X @ rng.standard_normal((40, 10)) * 0.2 + rng.standard_normal((60, 10))
    return X, Y


def by_hand(head, X, Y, cv) -> np.ndarray:
    """Each fold's mean Pearson r over units, fitted on the other folds."""
    return np.array([np.mean(pearson_per_unit(Y[test], clone(head).fit(X[train], Y[train]).predict(X[test])))
                     for train, test in cv.split(X)])


@pytest.mark.parametrize("name", sorted(HEADS))
def test_score_is_the_mean_of_score_per_unit(name, planted):
    X, Y = planted
    head = wb.head(name, **HEADS[name]).fit(X[:40], Y[:40])
    per_unit = head.score_per_unit(X[40:], Y[40:])
    assert per_unit.shape == (10,)
    np.testing.assert_allclose(per_unit, pearson_per_unit(Y[40:], head.predict(X[40:])), rtol=1e-10)
    assert isinstance(head.score(X[40:], Y[40:]), float)
    assert head.score(X[40:], Y[40:]) == pytest.approx(float(per_unit.mean()), rel=1e-12)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_cross_val_score_matches_a_loop(name, planted):
    X, Y = planted
    cv = KFold(3)
    head = wb.head(name, **HEADS[name])
    scores = cross_val_score(head, X, Y, cv=cv, error_score="raise")
    np.testing.assert_allclose(scores, by_hand(head, X, Y, cv), rtol=1e-10)
    assert scores.mean() > 0.3


@pytest.mark.parametrize("name", sorted(HEADS))
def test_grid_search_picks_the_alpha_a_loop_picks(name, planted):
    X, Y = planted
    cv = KFold(3)
    grid = {"alphas": [[0.1], [30.0], [1e4]]}
    search = GridSearchCV(wb.head(name), grid, cv=cv, error_score="raise").fit(X, Y)
    means = [by_hand(wb.head(name, alphas=a), X, Y, cv).mean() for a in grid["alphas"]]
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], means, rtol=1e-10)
    assert search.best_params_ == {"alphas": grid["alphas"][int(np.argmax(means))]}
    assert search.best_score_ == pytest.approx(max(means))
    assert search.best_estimator_.score(X, Y) == pytest.approx(np.mean(search.best_estimator_.score_per_unit(X, Y)))


@pytest.mark.parametrize("name", sorted(HEADS))
def test_permutation_test_score_separates_signal_from_none(name, planted):
    X, Y = planted
    head = wb.head(name, **HEADS[name])
    score, null, p = permutation_test_score(head, X, Y, cv=KFold(3), n_permutations=9, random_state=0)
    assert score == pytest.approx(cross_val_score(head, X, Y, cv=KFold(3)).mean())
    assert p == pytest.approx(1 / 10) and null.max() < score
    unrelated = np.random.default_rng(5).standard_normal(Y.shape)
    _, _, p_none = permutation_test_score(head, X, unrelated, cv=KFold(3), n_permutations=9, random_state=0)
    assert p_none > 0.1
