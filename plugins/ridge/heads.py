"""Ridge encoding heads: per-unit alpha by cross-validation, banded ridge, variance partitioning.

The numerical work lives in :mod:`brain_workbench.numerics.ridge` (one eigendecomposition per fold, every alpha
scored as a diagonal rescaling); this module wraps it as scikit-learn estimators whose ``score``
returns the mean Pearson r over units (one number, as scikit-learn's model selection needs) and whose
``score_per_unit`` returns one r per unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from brain_workbench.sdk import Option, WorkbenchError
from brain_workbench.sdk.numerics import (
    DEFAULT_ALPHAS,
    banded_ridge_cv,
    bands_from_columns,
    pearson_per_output,
    r2_per_unit,
    ridge_cv,
)


def _as_bands(bands: Sequence[Any] | None, p: int) -> list[np.ndarray] | None:
    """Column groups from index lists, slices or band sizes (a list of ints)."""
    if bands is None:
        return None
    bands = list(bands)
    if bands and all(isinstance(b, (int, np.integer)) for b in bands):
        edges = np.concatenate([[0], np.cumsum(bands)])
        if edges[-1] != p:
            raise WorkbenchError(f"band sizes {bands} add up to {edges[-1]} but X has {p} columns")
        return [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:])]
    return bands_from_columns(bands, p)


class RidgeHead(BaseEstimator):
    """Features → brain ridge with one alpha per unit chosen by K-fold CV, refit on all samples.

    ``score(X, Y)`` returns the mean over units of each unit's Pearson r (``score_per_unit``). With ``bands`` it becomes banded
    ridge (per-unit band weights as well as alpha, himalaya's random search). Fitted: ``coef_``
    (p × units), ``intercept_``, ``best_alphas_``, ``cv_scores_`` (n_alphas × units, fold-averaged
    −MSE or R² of each alpha; for banded ridge, at the chosen band weights).
    """

    direction = "encode"

    def __init__(
        self,
        alphas: Annotated[Sequence[float] | np.ndarray | None, Option(
            "candidate regularisation strengths, one chosen per unit (default: logspace(-2, 6, 20))")] = None,
        cv: Annotated[Any, Option("folds for choosing alpha: a count (unshuffled KFold) or explicit folds")] = 5,
        backend: Annotated[Literal["numpy", "torch"], Option("array library for the solver")] = "numpy",
        device: Annotated[str | None, Option("torch device, e.g. 'cuda' (torch backend only)")] = None,
        fit_intercept: Annotated[bool, Option("centre X and Y (per training fold)")] = True,
        scoring: Annotated[Literal["mse", "r2"], Option(
            "CV criterion for alpha: lowest test MSE (himalaya's default) or highest R²")] = "mse",
        n_units_chunk: Annotated[int | None, Option(
            "units solved together; bounds memory (automatic ≈256 MiB when unset)")] = None,
        dtype: Annotated[str, Option("precision of the target products")] = "float32",
        method: Annotated[Literal["auto", "primal", "dual"], Option(
            "Gram XᵀX when p ≤ n_train, kernel XXᵀ otherwise (auto)")] = "auto",
        bands: Annotated[Sequence[Any] | None, Option(
            "feature-column groups (index lists or slices), or band sizes in column order")] = None,
        n_iter: Annotated[int | np.ndarray, Option(
            "number of Dirichlet samples of band weights, or an explicit (n_iter × n_bands) grid")] = 20,
        concentration: Annotated[float | Sequence[float], Option("Dirichlet concentrations")] = (0.1, 1.0),
        random_state: Annotated[int | None, Option("seed of the band-weight search")] = 0,
    ) -> None:
        self.alphas = alphas
        self.cv = cv
        self.backend = backend
        self.device = device
        self.fit_intercept = fit_intercept
        self.scoring = scoring
        self.n_units_chunk = n_units_chunk
        self.dtype = dtype
        self.method = method
        self.bands = bands
        self.n_iter = n_iter
        self.concentration = concentration
        self.random_state = random_state

    def _alphas(self) -> np.ndarray:
        return np.asarray(DEFAULT_ALPHAS if self.alphas is None else self.alphas, dtype=np.float64).ravel()

    def fit(self, X: np.ndarray, y: np.ndarray) -> RidgeHead:
        """Choose each unit's alpha (and band weights) by CV, then refit on all of X, Y."""
        X = validate_data(self, X, dtype=(np.float64, np.float32))
        Y = check_array(y, dtype=(np.float64, np.float32), ensure_2d=False)
        if X.shape[0] != Y.shape[0]:
            raise WorkbenchError(f"X has {X.shape[0]} samples but Y has {Y.shape[0]}; rows must match")
        self._ravel = Y.ndim == 1
        Y2 = Y[:, None] if self._ravel else Y
        common = dict(fit_intercept=self.fit_intercept, scoring=self.scoring, backend=self.backend,
                      device=self.device, dtype=self.dtype, n_units_chunk=self.n_units_chunk, method=self.method)
        bands = _as_bands(self.bands, X.shape[1])
        if bands is None:
            res = ridge_cv(X, Y2, self._alphas(), self.cv, **common)
        else:
            res = banded_ridge_cv(X, Y2, bands, self._alphas(), self.cv, n_iter=self.n_iter,
                                         concentration=self.concentration, random_state=self.random_state,
                                         **common)
            self.bands_ = bands
            self.best_gammas_ = res.gammas
            self.deltas_ = res.deltas
            self.search_scores_ = res.search_scores
            self.gamma_candidates_ = res.candidates
        self.coef_ = res.coef
        self.intercept_ = res.intercept.astype(res.coef.dtype)
        self.best_alphas_ = res.best_alphas
        self.cv_scores_ = res.cv_scores
        self.method_ = res.method
        self.flops_ = res.flops
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """X @ coef_ + intercept_ (one column per unit)."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        pred = X.astype(self.coef_.dtype, copy=False) @ self.coef_ + self.intercept_
        return pred[:, 0] if getattr(self, "_ravel", False) else pred

    def score_per_unit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Pearson r between predicted and measured responses, one value per unit."""
        return pearson_per_output(np.asarray(y), self.predict(X))

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Mean over units of ``score_per_unit``: one number, for ``cross_val_score`` and ``GridSearchCV``."""
        return float(np.mean(self.score_per_unit(X, y)))


class BandedRidgeHead(RidgeHead):
    """Banded ridge: several feature spaces (``bands``), each with its own regularisation per unit.

    Without ``bands`` every feature forms one band and this is plain :class:`RidgeHead`.
    """



def variance_partition(r2_a: np.ndarray, r2_b: np.ndarray, r2_ab: np.ndarray) -> dict[str, np.ndarray]:
    """Unique and shared explained variance of two feature spaces from three models' R² (per unit).

    unique_a = R²(A∪B) − R²(B), unique_b = R²(A∪B) − R²(A), shared = R²(A) + R²(B) − R²(A∪B)
    (de Heer et al. 2017; Lescroart et al. 2015). Values can be negative with noisy estimates.
    """
    r2_a, r2_b, r2_ab = (np.asarray(v, dtype=np.float64) for v in (r2_a, r2_b, r2_ab))
    return {"unique_a": r2_ab - r2_b, "unique_b": r2_ab - r2_a, "shared": r2_a + r2_b - r2_ab,
            "r2_a": r2_a, "r2_b": r2_b, "r2_ab": r2_ab}


def partition_variance(Xa: np.ndarray, Xb: np.ndarray, Y: np.ndarray, train: np.ndarray, test: np.ndarray,
                       joint: str = "banded", **options: Any) -> dict[str, np.ndarray]:
    """Fit A, B and A∪B on ``train`` rows, score held-out R² on ``test`` rows, and partition it.

    The joint model is banded ridge over the two spaces (``joint="banded"``) or one ridge over the
    concatenated features (``joint="ridge"``); ``options`` go to every head.
    """
    if joint not in ("banded", "ridge"):
        raise WorkbenchError(f"joint={joint!r}; use 'banded' or 'ridge'")
    Xa, Xb, Y = np.asarray(Xa), np.asarray(Xb), np.asarray(Y)
    Xab = np.concatenate([Xa, Xb], axis=1)
    r2 = {}
    for name, X, bands in (("a", Xa, None), ("b", Xb, None),
                           ("ab", Xab, [Xa.shape[1], Xb.shape[1]] if joint == "banded" else None)):
        head = RidgeHead(bands=bands, **options).fit(X[train], Y[train])
        r2[name] = r2_per_unit(Y[test], head.predict(X[test]))
    return variance_partition(r2["a"], r2["b"], r2["ab"])


