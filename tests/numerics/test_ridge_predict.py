"""ridge_cv_predict: per-target CV ridge predictions without the weight matrix, against ridge.ridge_cv and himalaya."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import zarr
from sklearn.model_selection import KFold

from brain_workbench.numerics.ridge import ridge_cv
from brain_workbench.numerics.ridge_predict import ridge_cv_predict
from brain_workbench.types import WorkbenchError

ALPHAS = np.logspace(-1, 5, 10)


def planted(n: int, p: int, t: int, m: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + m, p)).astype(np.float32) * (1 / np.sqrt(1 + np.arange(p, dtype=np.float32)))
    W = rng.standard_normal((p, t)).astype(np.float32)
    Y = X @ W * rng.uniform(0.1, 2, t).astype(np.float32) + rng.standard_normal((n + m, t)).astype(np.float32) + 3.0
    return X[:n] + 0.5, Y[:n], X[n:] + 0.5


def reference(X, Y, X_new, cv=5):
    fit = ridge_cv(X, Y, ALPHAS, cv, dtype="float64")
    return X_new @ fit.coef + fit.intercept, fit.best_alphas


@pytest.mark.parametrize("p", [300, 40])
def test_matches_linalg_ridge_cv(p: int) -> None:
    X, Y, X_new = planted(120, p, 70, 15)
    res = ridge_cv_predict(X, Y, X_new, ALPHAS, cv=5, n_targets_chunk=32)
    pred, best = reference(X, Y, X_new)
    assert res.method == ("dual" if p > 96 else "primal")
    assert res.predictions.shape == (15, 70) and res.cv_scores.shape == (10, 70)
    assert np.mean(res.best_alphas == best) > 0.97
    same = res.best_alphas == best
    np.testing.assert_allclose(res.predictions[:, same], pred[:, same], rtol=1e-3, atol=1e-3 * np.abs(pred).max())


def test_dual_and_primal_forms_agree() -> None:
    X, Y, X_new = planted(100, 30, 40, 10, seed=1)
    a = ridge_cv_predict(X, Y, X_new, ALPHAS, method="dual")
    b = ridge_cv_predict(X, Y, X_new, ALPHAS, method="primal")
    np.testing.assert_allclose(a.cv_scores, b.cv_scores, rtol=1e-3)
    np.testing.assert_array_equal(a.best_alphas, b.best_alphas)
    np.testing.assert_allclose(a.predictions, b.predictions, rtol=1e-3, atol=1e-3 * np.abs(b.predictions).max())


def test_matches_himalaya_kernel_ridge_cv() -> None:
    from himalaya.backend import set_backend
    from himalaya.kernel_ridge import KernelRidgeCV

    set_backend("numpy", on_error="raise")
    X, Y, X_new = planted(150, 400, 60, 20, seed=2)
    res = ridge_cv_predict(X.astype(np.float64), Y.astype(np.float64), X_new, ALPHAS, cv=KFold(5), dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = KernelRidgeCV(alphas=ALPHAS, kernel="linear", cv=KFold(5), fit_intercept=True).fit(
            X.astype(np.float64), Y.astype(np.float64))
    np.testing.assert_allclose(res.best_alphas, np.asarray(model.best_alphas_), rtol=1e-6)
    np.testing.assert_allclose(res.predictions, np.asarray(model.predict(X_new.astype(np.float64))), rtol=1e-4,
                               atol=1e-5 * np.abs(res.predictions).max())


def test_targets_from_zarr_and_torch_backend(tmp_path) -> None:
    X, Y, X_new = planted(90, 200, 50, 8, seed=3)
    z = zarr.create_array(str(tmp_path / "y.zarr"), shape=Y.shape, chunks=(30, 50), dtype="float32")
    z[...] = Y
    a = ridge_cv_predict(X, z, X_new, ALPHAS, n_targets_chunk=16)
    b = ridge_cv_predict(X, Y, X_new, ALPHAS, backend="torch", device="cpu")
    np.testing.assert_array_equal(a.best_alphas, b.best_alphas)
    np.testing.assert_allclose(a.predictions, b.predictions, rtol=1e-3, atol=1e-4 * np.abs(a.predictions).max())


def test_bad_input() -> None:
    X, Y, X_new = planted(40, 50, 5, 4)
    with pytest.raises(WorkbenchError, match="same number of features"):
        ridge_cv_predict(X, Y, X_new[:, :10])
    with pytest.raises(WorkbenchError, match="one row per row"):
        ridge_cv_predict(X, Y[:30], X_new)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(WorkbenchError, match="NaN"):
        ridge_cv_predict(bad, Y, X_new)
    with pytest.raises(WorkbenchError, match="alphas"):
        ridge_cv_predict(X, Y, X_new, alphas=[0.0, 1.0])
