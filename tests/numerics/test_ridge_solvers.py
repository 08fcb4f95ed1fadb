"""Ridge solvers of brain_workbench.numerics.ridge against scikit-learn and himalaya on the same data and folds.

Tolerances: float64 runs must match the references to rtol 1e-7 (coefficients, intercepts, CV
scores) with identical chosen alphas; float32 runs to rtol 1e-3 of the largest coefficient, with at
least 97% of units choosing the same alpha (near-ties may flip in float32 in either implementation).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold, PredefinedSplit

from brain_workbench.numerics import ridge
from brain_workbench.numerics.backend import get_backend
from brain_workbench.types import WorkbenchError

himalaya_ridge = pytest.importorskip("himalaya.ridge")
ALPHAS = np.logspace(-2, 5, 15)


def make(n: int, p: int, t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Off-centre features and units with varied signal strength (so alphas spread over the grid)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * np.linspace(0.2, 3, p) + 1.5
    W = rng.standard_normal((p, t)) * rng.uniform(0.0, 0.3, t)
    Y = X @ W + rng.standard_normal((n, t)) * 2 + 4
    return X, Y


def himalaya_fit(X, Y, cv, fit_intercept=True, dtype="float64"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return himalaya_ridge.RidgeCV(alphas=ALPHAS, cv=cv, fit_intercept=fit_intercept).fit(
            X.astype(dtype), Y.astype(dtype))


@pytest.mark.parametrize("shape", [(150, 20, 30), (80, 200, 25)], ids=["primal", "dual"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_matches_himalaya_ridgecv_float64(shape, fit_intercept):
    X, Y = make(*shape)
    ours = ridge.ridge_cv(X, Y, ALPHAS, KFold(5), fit_intercept=fit_intercept, dtype="float64")
    ref = himalaya_fit(X, Y, KFold(5), fit_intercept)
    assert ours.method == ("primal" if shape[1] < shape[0] else "dual")
    np.testing.assert_allclose(ours.best_alphas, ref.best_alphas_, rtol=1e-7)
    np.testing.assert_allclose(ours.coef, ref.coef_, rtol=1e-7, atol=1e-9 * np.abs(ref.coef_).max())
    if fit_intercept:
        np.testing.assert_allclose(ours.intercept, ref.intercept_, rtol=1e-7)
    # himalaya reports the best fold-averaged -MSE, nudged by 1e-10 * log(alpha)
    np.testing.assert_allclose(ours.cv_scores.max(0), ref.cv_scores_, rtol=1e-7)


def test_matches_himalaya_ridgecv_float32():
    X, Y = make(300, 40, 60, seed=1)
    ours = ridge.ridge_cv(X.astype(np.float32), Y.astype(np.float32), ALPHAS, KFold(5))
    ref = himalaya_fit(X, Y, KFold(5), dtype="float32")
    assert ours.coef.dtype == np.float32
    assert np.mean(np.isclose(ours.best_alphas, ref.best_alphas_, rtol=1e-5)) >= 0.97
    same = np.isclose(ours.best_alphas, ref.best_alphas_, rtol=1e-5)
    np.testing.assert_allclose(ours.coef[:, same], ref.coef_[:, same], atol=1e-3 * np.abs(ref.coef_).max())


def test_matches_sklearn_gridsearch_per_unit():
    """Per-unit GridSearchCV(Ridge) with neg-MSE (and R²) picks the same alpha and weights."""
    X, Y = make(120, 10, 4, seed=2)
    for scoring, sk_scoring in (("mse", "neg_mean_squared_error"), ("r2", "r2")):
        ours = ridge.ridge_cv(X, Y, ALPHAS, KFold(5), scoring=scoring, dtype="float64")
        for j in range(Y.shape[1]):
            gs = GridSearchCV(Ridge(), {"alpha": ALPHAS}, cv=KFold(5), scoring=sk_scoring).fit(X, Y[:, j])
            assert ours.best_alphas[j] == pytest.approx(gs.best_params_["alpha"], rel=1e-12)
            np.testing.assert_allclose(ours.cv_scores[:, j], gs.cv_results_["mean_test_score"], rtol=1e-7)
            np.testing.assert_allclose(ours.coef[:, j], gs.best_estimator_.coef_, rtol=1e-7, atol=1e-12)
            assert ours.intercept[j] == pytest.approx(gs.best_estimator_.intercept_, rel=1e-7)


def test_kernel_form_equals_primal_form():
    for shape in [(150, 20, 30), (60, 90, 20)]:
        X, Y = make(*shape, seed=3)
        primal = ridge.ridge_cv(X, Y, ALPHAS, 5, dtype="float64", method="primal")
        dual = ridge.ridge_cv(X, Y, ALPHAS, 5, dtype="float64", method="dual")
        np.testing.assert_array_equal(primal.best_alphas, dual.best_alphas)
        np.testing.assert_allclose(primal.coef, dual.coef, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(primal.cv_scores, dual.cv_scores, rtol=1e-7)
        np.testing.assert_allclose(primal.intercept, dual.intercept, rtol=1e-7)


def test_large_test_folds_use_the_triangular_path_and_agree():
    """Two folds make n_test > p, which scores alphas through the QR factor of the test design."""
    X, Y = make(200, 15, 10, seed=4)
    ours = ridge.ridge_cv(X, Y, ALPHAS, 2, dtype="float64")
    ref = himalaya_fit(X, Y, KFold(2))
    np.testing.assert_allclose(ours.best_alphas, ref.best_alphas_, rtol=1e-7)
    np.testing.assert_allclose(ours.coef, ref.coef_, rtol=1e-7, atol=1e-12)


def test_fold_specifications_and_chunking_agree():
    X, Y = make(100, 12, 23, seed=5)
    labels = np.repeat(np.arange(4), 25)
    base = ridge.ridge_cv(X, Y, ALPHAS, labels, dtype="float64")
    pairs = [(np.flatnonzero(labels != g), np.flatnonzero(labels == g)) for g in range(4)]
    for cv in (pairs, PredefinedSplit(labels), KFold(4)):
        other = ridge.ridge_cv(X, Y, ALPHAS, cv, dtype="float64", n_units_chunk=7)
        np.testing.assert_array_equal(other.best_alphas, base.best_alphas)
        np.testing.assert_allclose(other.coef, base.coef, rtol=1e-10)


def test_torch_backend_matches_numpy():
    torch = pytest.importorskip("torch")
    X, Y = make(90, 30, 12, seed=6)
    a = ridge.ridge_cv(X, Y, ALPHAS, 5, dtype="float64")
    for method in ("primal", "dual"):
        b = ridge.ridge_cv(X, torch.as_tensor(Y), ALPHAS, 5, dtype="float64", backend="torch", device="cpu",
                            method=method)
        np.testing.assert_array_equal(a.best_alphas, b.best_alphas)
        np.testing.assert_allclose(a.coef, b.coef, rtol=1e-7, atol=1e-12)


def test_ridge_fit_matches_sklearn_with_per_unit_alphas():
    X, Y = make(80, 9, 3, seed=7)
    alphas = np.array([0.1, 10.0, 1000.0])
    coef, intercept = ridge.ridge_fit(X, Y, alphas, dtype="float64")
    for j, alpha in enumerate(alphas):
        ref = Ridge(alpha=alpha).fit(X, Y[:, j])
        np.testing.assert_allclose(coef[:, j], ref.coef_, rtol=1e-8)
        assert intercept[j] == pytest.approx(ref.intercept_, rel=1e-8)


def test_flops_are_counted_and_chunk_default_is_bounded():
    X, Y = make(100, 10, 5)
    assert ridge.ridge_cv(X, Y, ALPHAS, 5).flops > 0
    size = ridge.default_chunk(n=9000, p=768, r=768, t=300_000)
    assert 256 <= size < 300_000 and size * 4 * (3 * 9000 + 8 * 768) <= 2 ** 28


@pytest.mark.parametrize("grid", ["fixed", "random"])
def test_banded_ridge_matches_himalaya_group_ridge(grid):
    X, Y = make(150, 24, 20, seed=8)
    groups = np.repeat([0, 1, 2], [6, 8, 10])
    bands = [np.flatnonzero(groups == g) for g in range(3)]
    alphas = np.logspace(-2, 4, 8)
    n_iter = np.array([[1 / 3, 1 / 3, 1 / 3], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]) \
        if grid == "fixed" else 6
    ours = ridge.banded_ridge_cv(X, Y, bands, alphas, KFold(5), n_iter=n_iter, random_state=3, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = himalaya_ridge.GroupRidgeCV(groups=groups, cv=KFold(5), fit_intercept=True, random_state=3,
                                          solver_params={"alphas": alphas, "n_iter": n_iter,
                                                         "progress_bar": False}).fit(X, Y)
    np.testing.assert_allclose(ours.deltas, ref.deltas_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.coef, ref.coef_, rtol=1e-7, atol=1e-9 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(ours.intercept, ref.intercept_, rtol=1e-7)
    np.testing.assert_allclose(ours.search_scores, ref.cv_scores_, rtol=1e-7)


def test_dirichlet_gammas_match_himalaya():
    from himalaya.kernel_ridge import generate_dirichlet_samples

    ref = generate_dirichlet_samples(7, 3, concentration=[0.1, 1.0], random_state=5)
    ref[0] = 1 / 3
    np.testing.assert_allclose(ridge.dirichlet_gammas(7, 3, (0.1, 1.0), 5), ref)


def test_bad_input_is_refused_with_clear_errors():
    X, Y = make(30, 4, 2)
    with pytest.raises(WorkbenchError, match="alphas"):
        ridge.ridge_cv(X, Y, [0.0, 1.0])
    with pytest.raises(WorkbenchError, match="folds"):
        ridge.ridge_cv(X, Y, ALPHAS, cv=1)
    with pytest.raises(WorkbenchError, match="rows must match"):
        ridge.ridge_cv(X, Y[:10], ALPHAS)
    with pytest.raises(WorkbenchError, match="backend"):
        get_backend("jax")
    with pytest.raises(WorkbenchError, match="bands"):
        ridge.banded_ridge_cv(X, Y, [[0, 1], [1, 2, 3]], ALPHAS)
