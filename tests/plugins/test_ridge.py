"""The ridge and banded-ridge heads: conformance, registry, fitted attributes, variance partitioning.

Numerical equality with himalaya and scikit-learn is tested at the solver level in tests/numerics/test_ridge_solvers.py;
here the head must reproduce the solver exactly (rtol 1e-12) and behave as an estimator.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

import brain_workbench as wb
from brain_workbench.numerics import ridge
from brain_workbench.numerics.scoring import pearson_per_unit
from brain_workbench.plugin.testing import check_head
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.ridge.heads import BandedRidgeHead, RidgeHead, partition_variance, variance_partition


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((160, 12)).astype(np.float32)
    Y = (X @ rng.standard_normal((12, 9)) * 0.4 + rng.standard_normal((160, 9))).astype(np.float32)
    return X, Y


@pytest.mark.parametrize("options", [{}, {"backend": "torch"}, {"method": "dual"}, {"bands": [3, 5], "n_iter": 4}],
                         ids=["numpy", "torch", "dual", "banded"])
def test_ridge_head_passes_conformance(options):
    check_head(wb.head("ridge", **options))


def test_banded_ridge_head_passes_conformance():
    check_head(wb.head("banded-ridge"))
    check_head(wb.head("banded-ridge", bands=[[0, 2, 4, 6], [1, 3, 5, 7]], n_iter=3))


def test_registry_cards_and_option_checking():
    entry = wb.get_registry().get("head", "ridge")
    assert entry.as_json()["direction"] == "encode" and "alphas" in entry.options()
    assert isinstance(wb.head("banded-ridge"), BandedRidgeHead)
    with pytest.raises(WorkbenchError, match="no option"):
        wb.head("ridge", alpha=3)


def test_head_reproduces_solver_and_exposes_fitted_attributes(data):
    X, Y = data
    alphas = np.logspace(-1, 4, 9)
    head = RidgeHead(alphas=alphas, cv=4, n_units_chunk=4).fit(X[:120], Y[:120])
    ref = ridge.ridge_cv(X[:120], Y[:120], alphas, 4, n_units_chunk=4)
    assert head.coef_.shape == (12, 9) and head.intercept_.shape == (9,)
    assert head.best_alphas_.shape == (9,) and head.cv_scores_.shape == (9, 9)
    assert head.coef_.dtype == np.float32 and head.n_features_in_ == 12
    np.testing.assert_allclose(head.coef_, ref.coef, rtol=1e-12)
    np.testing.assert_array_equal(head.best_alphas_, ref.best_alphas)
    pred = head.predict(X[120:])
    np.testing.assert_allclose(pred, X[120:] @ ref.coef + ref.intercept, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(head.score_per_unit(X[120:], Y[120:]), pearson_per_unit(Y[120:], pred), rtol=1e-12)
    assert head.score(X[120:], Y[120:]) == pytest.approx(float(np.mean(pearson_per_unit(Y[120:], pred))))


def test_default_alphas_and_one_dimensional_targets(data):
    X, Y = data
    head = RidgeHead().fit(X, Y[:, 0])
    assert np.isin(head.best_alphas_, ridge.DEFAULT_ALPHAS).all()
    assert head.predict(X).shape == (160,) and head.score_per_unit(X, Y[:, 0]).shape == (1,)


def test_clone_and_refusals(data):
    X, Y = data
    head = RidgeHead(alphas=[1.0, 10.0], cv=3, backend="torch")
    assert clone(head).get_params() == head.get_params()
    with pytest.raises(ValueError):
        RidgeHead().fit(np.where(X == X[0, 0], np.nan, X), Y)
    with pytest.raises(ValueError, match="features"):
        RidgeHead().fit(X, Y).predict(X[:, :5])
    with pytest.raises(WorkbenchError, match="band sizes"):
        RidgeHead(bands=[5, 5]).fit(X, Y)


def test_banded_head_learns_band_weights_per_unit():
    rng = np.random.default_rng(1)
    Xa, Xb = rng.standard_normal((200, 6)), rng.standard_normal((200, 30))
    Y = np.concatenate([Xa @ rng.standard_normal((6, 3)), Xb @ rng.standard_normal((30, 3))], axis=1)
    Y += 0.5 * rng.standard_normal(Y.shape)
    head = BandedRidgeHead(bands=[6, 30], n_iter=12, alphas=np.logspace(-2, 4, 10)).fit(np.hstack([Xa, Xb]), Y)
    assert head.best_gammas_.shape == (2, 6) and head.deltas_.shape == (2, 6)
    np.testing.assert_allclose(head.best_gammas_.sum(0), 1.0)
    assert np.all(head.best_gammas_[0, :3] > head.best_gammas_[1, :3])
    assert np.all(head.best_gammas_[1, 3:] > head.best_gammas_[0, 3:])


def test_variance_partition_identities_and_planted_structure():
    parts = variance_partition(np.array([0.3]), np.array([0.2]), np.array([0.4]))
    np.testing.assert_allclose([parts["unique_a"][0], parts["unique_b"][0], parts["shared"][0]], [0.2, 0.1, 0.1])
    rng = np.random.default_rng(2)
    n = 300
    shared = rng.standard_normal((n, 3))
    Xa = np.hstack([shared, rng.standard_normal((n, 3))])
    Xb = np.hstack([shared + 0.05 * rng.standard_normal((n, 3)), rng.standard_normal((n, 3))])
    Y = np.stack([Xa[:, 3] + Xa[:, 4], Xb[:, 3] - Xb[:, 5], shared.sum(1)], axis=1) + 0.3 * rng.standard_normal((n, 3))
    out = partition_variance(Xa, Xb, Y, np.arange(200), np.arange(200, n), n_iter=6)
    assert out["unique_a"][0] > 0.5 and abs(out["unique_b"][0]) < 0.05
    assert out["unique_b"][1] > 0.5 and abs(out["unique_a"][1]) < 0.05
    assert out["shared"][2] > 0.5
    with pytest.raises(WorkbenchError, match="joint"):
        partition_variance(Xa, Xb, Y, np.arange(200), np.arange(200, n), joint="lasso")
