"""Ridge on features of any magnitude: the solver is scale-safe, and a mismatched alpha grid is named."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from brain_workbench.numerics.ridge import DEFAULT_ALPHAS, AlphaGridWarning, ridge_cv
from brain_workbench.numerics.scoring import pearson_per_unit


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    n, p, t = 200, 30, 5
    W = rng.standard_normal((p, t))
    X, Xte = rng.standard_normal((n, p)), rng.standard_normal((100, p))
    return X, X @ W + 3 * rng.standard_normal((n, t)), Xte, Xte @ W + 3 * rng.standard_normal((100, t))


def _r(X, Y, Xte, Yte, scale: float, alphas=DEFAULT_ALPHAS) -> tuple[np.ndarray, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = ridge_cv(X * scale, Y, alphas=alphas, cv=5)
    pred = (Xte * scale).astype(np.float32) @ fit.coef + fit.intercept
    return pearson_per_unit(Yte, pred), [w for w in caught if issubclass(w.category, AlphaGridWarning)]


def test_huge_features_fit_like_scikit_learn(problem) -> None:
    X, Y, Xte, Yte = problem
    r, caught = _r(X, Y, Xte, Yte, 1e30)
    reference = RidgeCV(alphas=DEFAULT_ALPHAS, alpha_per_target=True).fit(X * 1e30, Y)
    np.testing.assert_allclose(r, pearson_per_unit(Yte, reference.predict(Xte * 1e30)), atol=2e-3)
    assert r.min() > 0.6
    [warning] = caught
    assert "under 1% of the smallest eigenvalue" in str(warning.message) and "e+59" in str(warning.message)


def test_tiny_features_warn_and_the_suggested_alphas_fix_them(problem) -> None:
    X, Y, Xte, Yte = problem
    base, none = _r(X, Y, Xte, Yte, 1.0)
    assert none == [] and base.min() > 0.6
    r, caught = _r(X, Y, Xte, Yte, 1e-6)
    [warning] = caught
    text = str(warning.message)
    assert "over 100× the largest eigenvalue" in text and "r ≈ 0" in text and "standardise the features" in text
    square = float(text.rsplit("* ", 1)[1])
    fixed, none = _r(X, Y, Xte, Yte, 1e-6, DEFAULT_ALPHAS * square)
    assert none == []
    np.testing.assert_allclose(fixed, base, atol=1e-3)


@pytest.mark.parametrize("scale", [1e-3, 1e3, 1e12])
def test_rescaled_features_with_rescaled_alphas_give_the_same_fit(problem, scale: float) -> None:
    X, Y, Xte, Yte = problem
    base, _ = _r(X, Y, Xte, Yte, 1.0)
    r, caught = _r(X, Y, Xte, Yte, scale, DEFAULT_ALPHAS * scale ** 2)
    assert caught == []
    np.testing.assert_allclose(r, base, atol=1e-4)
