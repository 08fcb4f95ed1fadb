"""Ridge encoding heads: per-unit alpha by cross-validation, banded ridge, variance partitioning.

The numerical work lives in :mod:`workbench.linalg` (one eigendecomposition per fold, every alpha
scored as a diagonal rescaling); this module wraps it as scikit-learn estimators whose ``score``
returns one Pearson r per unit.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import numpy as np

from workbench.sdk import WorkbenchError, hookimpl

CITATION_RIDGE = ("Dupré la Tour, Eickenberg, Nunez-Elizalde & Gallant (2022). Feature-space selection with "
                  "banded ridge regression. NeuroImage 264:119728 (himalaya).")

_COMMON_OPTIONS: dict[str, dict[str, Any]] = {
    "alphas": {"type": "array", "default": "logspace(-2, 6, 20)",
               "description": "candidate regularisation strengths; one is chosen per unit"},
    "cv": {"type": "int | splitter | fold labels | [(train, test)]", "default": 5,
           "description": "folds for choosing alpha: a count (unshuffled KFold) or explicit folds"},
    "backend": {"type": "str", "default": "numpy", "choices": ["numpy", "torch"],
                "description": "array library for the solver"},
    "device": {"type": "str", "default": None, "description": "torch device, e.g. 'cuda' (torch backend only)"},
    "fit_intercept": {"type": "bool", "default": True, "description": "centre X and Y (per training fold)"},
    "scoring": {"type": "str", "default": "mse", "choices": ["mse", "r2"],
                "description": "CV criterion for alpha: lowest test MSE (himalaya's default) or highest R²"},
    "n_units_chunk": {"type": "int", "default": None,
                      "description": "units solved together; bounds memory (automatic ≈256 MiB when unset)"},
    "dtype": {"type": "str", "default": "float32", "description": "precision of the target products"},
    "method": {"type": "str", "default": "auto", "choices": ["auto", "primal", "dual"],
               "description": "Gram XᵀX when p ≤ n_train, kernel XXᵀ otherwise (auto)"},
}
_BAND_OPTIONS: dict[str, dict[str, Any]] = {
    "bands": {"type": "list", "default": None,
              "description": "feature-column groups (index lists or slices), or band sizes in column order"},
    "n_iter": {"type": "int | array", "default": 20,
               "description": "number of Dirichlet samples of band weights, or an explicit (n_iter × n_bands) grid"},
    "concentration": {"type": "list[float]", "default": [0.1, 1.0], "description": "Dirichlet concentrations"},
    "random_state": {"type": "int", "default": 0, "description": "seed of the band-weight search"},
}


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
    from workbench.sdk import bands_from_columns

    return bands_from_columns(bands, p)


def _build_classes() -> dict[str, type]:
    """Define the estimator classes on first use, so registering the plugin never imports scikit-learn."""
    from sklearn.base import BaseEstimator
    from sklearn.utils.validation import check_array, check_is_fitted

    class RidgeHead(BaseEstimator):
        """Features → brain ridge with one alpha per unit chosen by K-fold CV, refit on all samples.

        ``score(X, Y)`` returns the Pearson r of each unit's prediction. With ``bands`` it becomes banded
        ridge (per-unit band weights as well as alpha, himalaya's random search). Fitted: ``coef_``
        (p × units), ``intercept_``, ``best_alphas_``, ``cv_scores_`` (n_alphas × units, fold-averaged
        −MSE or R² of each alpha; for banded ridge, at the chosen band weights).
        """

        direction = "encode"

        def __init__(self, alphas: Sequence[float] | np.ndarray | None = None, cv: Any = 5, backend: str = "numpy",
                     device: str | None = None, fit_intercept: bool = True, scoring: str = "mse",
                     n_units_chunk: int | None = None, dtype: str = "float32", method: str = "auto",
                     bands: Sequence[Any] | None = None, n_iter: int | np.ndarray = 20,
                     concentration: float | Sequence[float] = (0.1, 1.0), random_state: int | None = 0) -> None:
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
            from workbench.sdk import DEFAULT_ALPHAS

            return np.asarray(DEFAULT_ALPHAS if self.alphas is None else self.alphas, dtype=np.float64).ravel()

        def fit(self, X: np.ndarray, Y: np.ndarray) -> "RidgeHead":
            """Choose each unit's alpha (and band weights) by CV, then refit on all of X, Y."""
            from workbench import linalg

            X = check_array(X, dtype=(np.float64, np.float32))
            Y = check_array(Y, dtype=(np.float64, np.float32), ensure_2d=False)
            if X.shape[0] != Y.shape[0]:
                raise WorkbenchError(f"X has {X.shape[0]} samples but Y has {Y.shape[0]}; rows must match")
            self._ravel = Y.ndim == 1
            Y2 = Y[:, None] if self._ravel else Y
            self.n_features_in_ = X.shape[1]
            common = dict(fit_intercept=self.fit_intercept, scoring=self.scoring, backend=self.backend,
                          device=self.device, dtype=self.dtype, n_units_chunk=self.n_units_chunk, method=self.method)
            bands = _as_bands(self.bands, X.shape[1])
            if bands is None:
                res = linalg.ridge_cv(X, Y2, self._alphas(), self.cv, **common)
            else:
                res = linalg.banded_ridge_cv(X, Y2, bands, self._alphas(), self.cv, n_iter=self.n_iter,
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
            X = check_array(X, dtype=(np.float64, np.float32))
            if X.shape[1] != self.n_features_in_:
                raise WorkbenchError(f"X has {X.shape[1]} features but the head was fit on {self.n_features_in_}")
            pred = X.astype(self.coef_.dtype, copy=False) @ self.coef_ + self.intercept_
            return pred[:, 0] if getattr(self, "_ravel", False) else pred

        def score(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
            """Pearson r between predicted and measured responses, one value per unit."""
            from workbench.sdk import pearson_per_output

            return pearson_per_output(Y, self.predict(X))


    class BandedRidgeHead(RidgeHead):
        """Banded ridge: several feature spaces (``bands``), each with its own regularisation per unit.

        Without ``bands`` every feature forms one band and this is plain :class:`RidgeHead`.
        """

    for cls in (RidgeHead, BandedRidgeHead):
        cls.__qualname__ = cls.__name__
        cls.__module__ = __name__
    return {"RidgeHead": RidgeHead, "BandedRidgeHead": BandedRidgeHead}


_CLASSES: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    if name in ("RidgeHead", "BandedRidgeHead"):
        if not _CLASSES:
            _CLASSES.update(_build_classes())
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _factory(class_name: str, options: dict[str, dict[str, Any]]) -> Callable[..., Any]:
    """A registry factory whose signature lists the head's options, without importing the class."""

    def factory(**kwargs: Any) -> Any:
        return __getattr__(class_name)(**kwargs)

    factory.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=None) for k in options])
    factory.__name__ = factory.__qualname__ = class_name
    factory.__doc__ = f"Build a {class_name} (defined on first use)."
    return factory


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
    from workbench.sdk import r2_per_unit

    if joint not in ("banded", "ridge"):
        raise WorkbenchError(f"joint={joint!r}; use 'banded' or 'ridge'")
    Xa, Xb, Y = np.asarray(Xa), np.asarray(Xb), np.asarray(Y)
    Xab = np.concatenate([Xa, Xb], axis=1)
    r2 = {}
    for name, X, bands in (("a", Xa, None), ("b", Xb, None),
                           ("ab", Xab, [Xa.shape[1], Xb.shape[1]] if joint == "banded" else None)):
        head = __getattr__("RidgeHead")(bands=bands, **options).fit(X[train], Y[train])
        r2[name] = r2_per_unit(Y[test], head.predict(X[test]))
    return variance_partition(r2["a"], r2["b"], r2["ab"])


@hookimpl
def register_heads(register: Any) -> None:
    options = {**_COMMON_OPTIONS, **_BAND_OPTIONS}
    register("ridge", _factory("RidgeHead", options), direction="encode", citation=CITATION_RIDGE,
             description="Ridge per unit: alpha chosen by K-fold CV (test MSE), one eigh per fold; "
                         "Gram or kernel form; numpy or torch; score = Pearson r per unit",
             options=options)
    register("banded-ridge", _factory("BandedRidgeHead", options), direction="encode", citation=CITATION_RIDGE,
             description="Banded ridge over several feature spaces: per-unit band weights and alpha by CV "
                         "(himalaya random search or an explicit grid)",
             options=options)
