"""Ridge solvers that share one eigendecomposition per fold, on an explicit backend (numpy or torch).

The array library and device come from :mod:`brain_workbench.numerics.backend`.

Cross-validated ridge picks one alpha per unit. Each fold diagonalises XᵀX (primal, p ≤ n_train)
or XXᵀ (dual, p > n_train) once, projects the targets once, and scores every alpha as a diagonal
rescaling of the projected targets; no alpha × test × train hat matrix is ever formed. When the
test fold is larger than the rank, the test design is QR-factorised so each alpha costs an
r × r product instead of an n_test × r one. Units are processed in chunks so memory stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brain_workbench.numerics.backend import Backend, get_backend
from brain_workbench.types import WorkbenchError

DEFAULT_ALPHAS = np.logspace(-2, 6, 20)
SCORINGS = ("mse", "r2")


class AlphaGridWarning(UserWarning):
    """The candidate alphas do not reach the scale of the features (so CV cannot choose well)."""


# ---- folds ----------------------------------------------------------------------------------


def make_folds(cv: Any, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test index pairs from an int (unshuffled KFold, as sklearn and himalaya), a splitter,
    a 1-D array of fold labels (one per sample), or an iterable of (train, test) pairs."""
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        from sklearn.model_selection import KFold

        if not 2 <= int(cv) <= n:
            raise WorkbenchError(f"cv={cv} folds needs 2 ≤ folds ≤ n_samples, but n_samples = {n}")
        cv = KFold(int(cv))
    if hasattr(cv, "split"):
        folds = [(np.asarray(tr), np.asarray(te)) for tr, te in cv.split(np.zeros((n, 1)))]
    elif isinstance(cv, np.ndarray) and cv.ndim == 1 and len(cv) == n and cv.dtype != object:
        labels = np.asarray(cv)
        folds = [(np.flatnonzero(labels != g), np.flatnonzero(labels == g)) for g in np.unique(labels)]
    else:
        try:
            folds = [(np.asarray(tr), np.asarray(te)) for tr, te in cv]
        except (TypeError, ValueError):
            raise WorkbenchError(
                f"cv={cv!r} is not understood; pass a number of folds, a scikit-learn splitter, one fold "
                "label per sample, or a list of (train, test) index arrays"
            ) from None
    for tr, te in folds:
        if len(tr) == 0 or len(te) == 0:
            raise WorkbenchError("a cross-validation fold has an empty train or test set; check `cv`")
        if max(tr.max(), te.max()) >= n or min(tr.min(), te.min()) < 0:
            raise WorkbenchError(f"cross-validation indices fall outside 0..{n - 1}; check `cv`")
        if tr.dtype == bool or te.dtype == bool:
            raise WorkbenchError("pass cross-validation folds as integer indices, not boolean masks")
    return folds


# ---- decompositions -------------------------------------------------------------------------


@dataclass
class _Decomposition:
    """One eigendecomposition (a fold's train set, or all data) and what scoring it needs."""

    kind: str  # primal | dual
    s: np.ndarray  # eigenvalues, float64, clipped at 0
    basis: Any  # V (p × r) in primal, U (n_train × r) in dual; work dtype
    train: Any = None
    test: Any = None
    n_train: int = 0
    n_test: int = 0
    mu: Any = None  # train mean of globally centred X (primal, 1 × p)
    x_test: Any = None  # globally centred test rows of X (primal)
    R: Any = None  # test design in the eigenbasis (n_test × r) or its QR factor (r × r)
    Q: Any = None  # orthonormal factor of the test design, when n_test > r


@dataclass
class _Chunk:
    """Targets of one chunk of units, globally centred, with what several folds share."""

    cols: np.ndarray
    y_mean: np.ndarray
    Yg: Any
    C_all: Any = None  # Xgᵀ Yg (primal)


class RidgeSolver:
    """Decompositions of one design matrix for ridge cross-validation and per-unit refits.

    ``X`` is copied once, centred when ``fit_intercept`` and divided by its RMS value ``scale`` (alphas
    by ``scale²``, the same ridge problem), so features of any magnitude neither overflow nor underflow
    ``dtype``; decompositions run in float64 (cheap next to the target products, and accurate for small
    eigenvalues) while the products with targets run in ``dtype``. ``flops`` counts the floating-point operations the
    solver has executed. Memory:
    per fold a p × p basis plus the test rows (primal), or n_train² plus n_test × n_train (dual).
    """

    def __init__(self, X: np.ndarray, alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
                 folds: Sequence[tuple[np.ndarray, np.ndarray]] | None = None, *, fit_intercept: bool = True,
                 backend: str | Backend = "numpy", device: str | None = None, dtype: str = "float32",
                 method: str = "auto", scoring: str = "mse", decomposition_dtype: str = "float64") -> None:
        self.backend = get_backend(backend, device)
        self.dtype = str(np.dtype(dtype))
        self.ddtype = str(np.dtype(decomposition_dtype))
        self.alphas = np.asarray(alphas, dtype=np.float64).ravel()
        if self.alphas.size == 0 or np.any(~np.isfinite(self.alphas)) or np.any(self.alphas <= 0):
            raise WorkbenchError("alphas must be a non-empty list of positive, finite numbers")
        if scoring not in SCORINGS:
            raise WorkbenchError(f"unknown scoring {scoring!r}; use one of {', '.join(SCORINGS)}")
        if method not in ("auto", "primal", "dual"):
            raise WorkbenchError(f"unknown method {method!r}; use 'auto', 'primal' or 'dual'")
        self.scoring = scoring
        self.method = method
        self.fit_intercept = bool(fit_intercept)
        self.flops = 0.0
        bk = self.backend
        X = np.asarray(X)
        self.n, self.p = X.shape
        self.x_mean = X.mean(0, dtype=np.float64) if self.fit_intercept else np.zeros(self.p)
        Xd = bk.asarray(X, self.ddtype)
        if self.fit_intercept:
            Xd = Xd - bk.asarray(self.x_mean, self.ddtype)
        rms = float(bk.colsumsq(Xd).sum() / max(1, self.n * self.p)) ** 0.5
        self.scale = rms if np.isfinite(rms) and rms > 0 else 1.0
        Xd = Xd / self.scale
        self._alphas = self.alphas / self.scale ** 2
        self.Xg = bk.asarray(Xd, self.dtype)
        self.folds = list(folds) if folds is not None else []
        kinds = [self._kind(len(tr)) for tr, _ in self.folds] + [self._kind(self.n)]
        self._G: Any = None  # Xᵀ X (primal folds)
        self._K: Any = None  # X Xᵀ (dual folds)
        if "primal" in kinds:
            self._G = Xd.T @ Xd
            self.flops += 2.0 * self.n * self.p * self.p
        if "dual" in kinds:
            self._K = Xd @ Xd.T
            self.flops += 2.0 * self.n * self.n * self.p
        self._Xd = Xd
        self.fold_decs = [self._decompose_fold(tr, te) for tr, te in self.folds]
        self.full = self._decompose_full()
        del self._Xd
        self._G = self._K = None

    def _kind(self, n_train: int) -> str:
        if self.method != "auto":
            return self.method
        return "primal" if self.p <= n_train else "dual"

    def _eigh(self, M: Any) -> tuple[np.ndarray, Any]:
        bk = self.backend
        s, V = bk.eigh(M)
        self.flops += 9.0 * M.shape[0] ** 3
        s = np.clip(bk.to_numpy(s).astype(np.float64), 0.0, None)
        return s, V

    def _decompose_fold(self, train: np.ndarray, test: np.ndarray) -> _Decomposition:
        bk = self.backend
        n_tr, n_te = len(train), len(test)
        kind = self._kind(n_tr)
        tr, te = bk.index(train), bk.index(test)
        Xte = self._Xd[te]
        if kind == "primal":
            if self.fit_intercept:
                mu = -Xte.sum(0, keepdims=True) / n_tr
            else:
                mu = bk.asarray(np.zeros((1, self.p)), self.ddtype)
            G = self._G - Xte.T @ Xte - n_tr * (mu.T @ mu)
            self.flops += 2.0 * n_te * self.p ** 2
            s, V = self._eigh(G)
            A = (Xte - mu) @ V
            self.flops += 2.0 * n_te * self.p ** 2
            dec = _Decomposition("primal", s, bk.asarray(V, self.dtype), n_train=n_tr, n_test=n_te,
                                 mu=bk.asarray(mu, self.dtype), x_test=bk.asarray(Xte, self.dtype))
        else:
            K = self._K
            Ktt = K[tr][:, tr]
            Kvt = K[te][:, tr]
            if self.fit_intercept:
                a_tr = Ktt.mean(1, keepdims=True)
                a_te = Kvt.mean(1, keepdims=True)
                c = a_tr.mean()
                Ktt = Ktt - a_tr - a_tr.T + c
                Kvt = Kvt - a_te - a_tr.T + c
            s, U = self._eigh(Ktt)
            A = Kvt @ U
            self.flops += 2.0 * n_te * n_tr * n_tr
            dec = _Decomposition("dual", s, bk.asarray(U, self.dtype), n_train=n_tr, n_test=n_te)
        dec.train, dec.test = tr, te
        r = A.shape[1]
        if n_te > r:
            Q, R = bk.qr(A)
            self.flops += 4.0 * n_te * r * r
            dec.Q, dec.R = bk.asarray(Q, self.dtype), bk.asarray(R, self.dtype)
        else:
            dec.R = bk.asarray(A, self.dtype)
        return dec

    def _decompose_full(self) -> _Decomposition:
        bk = self.backend
        kind = self._kind(self.n)
        s, B = self._eigh(self._G if kind == "primal" else self._K)
        return _Decomposition(kind, s, bk.asarray(B, self.dtype), n_train=self.n)

    # ---- per-chunk work -----------------------------------------------------------------
    def prepare(self, Y: np.ndarray, cols: np.ndarray | slice | None = None) -> _Chunk:
        """Cast and centre the targets of a chunk of units (``Y[:, cols]``) on the backend."""
        bk = self.backend
        Ysub = Y if cols is None else Y[:, cols]
        cols = np.arange(Y.shape[1]) if cols is None else np.arange(Y.shape[1])[cols]
        if bk.torch is not None and isinstance(Ysub, bk.torch.Tensor):
            Ysub = Ysub.detach().cpu().numpy()
        y_mean = (np.asarray(np.mean(Ysub, axis=0, dtype=np.float64)) if self.fit_intercept
                  else np.zeros(Ysub.shape[1]))
        Yg = bk.asarray(Ysub, self.dtype)
        if self.fit_intercept:
            Yg = Yg - bk.asarray(y_mean, self.dtype)
        chunk = _Chunk(cols=cols, y_mean=y_mean, Yg=Yg)
        if any(d.kind == "primal" for d in [*self.fold_decs, self.full]):
            chunk.C_all = self.Xg.T @ Yg
            self.flops += 2.0 * self.n * self.p * Yg.shape[1]
        return chunk

    def cv_scores(self, chunk: _Chunk) -> np.ndarray:
        """Score of every alpha for every unit, averaged over folds: (n_alphas, n_units) float64."""
        if not self.fold_decs:
            raise WorkbenchError("this solver was built without folds; pass folds to score alphas")
        total = np.zeros((len(self.alphas), chunk.Yg.shape[1]))
        for dec in self.fold_decs:
            total += self._fold_scores(dec, chunk)
        return total / len(self.fold_decs)

    def _fold_scores(self, dec: _Decomposition, chunk: _Chunk) -> np.ndarray:
        bk = self.backend
        Yg, t = chunk.Yg, chunk.Yg.shape[1]
        Yte = Yg[dec.test]
        if dec.kind == "primal":
            Cte = dec.x_test.T @ Yte
            self.flops += 2.0 * dec.n_test * self.p * t
            if self.fit_intercept:
                nu = -Yte.sum(0, keepdims=True) / dec.n_train
                Ctr = chunk.C_all - Cte - dec.n_train * (dec.mu.T @ nu)
                Zfull = Yte - nu
            else:
                Ctr = chunk.C_all - Cte
                Zfull = Yte
            B = dec.basis.T @ Ctr
            self.flops += 2.0 * self.p * dec.basis.shape[1] * t
        else:
            Ytr = Yg[dec.train]
            if self.fit_intercept:
                nu = Ytr.mean(0, keepdims=True)
                Ytr = Ytr - nu
                Zfull = Yte - nu
            else:
                Zfull = Yte
            B = dec.basis.T @ Ytr
            self.flops += 2.0 * dec.n_train * dec.basis.shape[1] * t
        if self.scoring == "r2":
            sst = bk.colsumsq(Yte - Yte.mean(0, keepdims=True))
        if dec.Q is not None:
            Z = dec.Q.T @ Zfull
            self.flops += 2.0 * dec.n_test * dec.Q.shape[1] * t
            perp = np.clip(bk.colsumsq(Zfull) - bk.colsumsq(Z), 0.0, None)
        else:
            Z, perp = Zfull, 0.0
        sse = self._alpha_sse(dec, B, Z) + perp
        if self.scoring == "mse":
            return -sse / dec.n_test
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sst > 0, 1.0 - sse / sst, 0.0)

    def _alpha_sse(self, dec: _Decomposition, B: Any, Z: Any) -> np.ndarray:
        """||Z − R·diag(1/(s+α))·B||² per unit for every alpha.

        Alphas go through the GEMMs in groups. When R is the triangular QR factor, rows are taken in
        blocks and each block multiplies only the columns right of the diagonal (about 5/8 of the
        dense work with four blocks).
        """
        bk = self.backend
        R = dec.R
        m, r = R.shape
        t = B.shape[1]
        k = len(self.alphas)
        n_blocks = max(1, min(4, m // 192)) if dec.Q is not None else 1
        edges = [m * b // n_blocks for b in range(n_blocks + 1)]
        group = max(1, min(k, 2048 // max(m // n_blocks, 1)))
        out = np.zeros((k, t))
        buf = bk.empty((group * (edges[1] - edges[0] + 1), t), self.dtype)
        for start in range(0, k, group):
            a = self._alphas[start:start + group]
            g = len(a)
            d = bk.asarray(1.0 / (dec.s[None, :] + a[:, None]), self.dtype)
            for i0, i1 in zip(edges[:-1], edges[1:]):
                c0 = i0 if n_blocks > 1 else 0
                h = i1 - i0
                Rd = (R[None, i0:i1, c0:] * d[:, None, c0:]).reshape(g * h, r - c0)
                P = buf[: g * h]
                bk.matmul(Rd, B[c0:], out=P)
                self.flops += 2.0 * g * h * (r - c0) * t
                P3 = P.reshape(g, h, t)
                P3 -= Z[i0:i1]
                for i in range(g):
                    out[start + i] += bk.colsumsq(P3[i])
                self.flops += 3.0 * g * h * t
        return out

    def refit(self, chunk: _Chunk, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weights (p × units) and intercepts refit on all samples with one alpha per unit."""
        bk = self.backend
        dec = self.full
        t = chunk.Yg.shape[1]
        alphas = np.broadcast_to(np.asarray(alphas, dtype=np.float64), (t,)) / self.scale ** 2
        D = bk.asarray(1.0 / (dec.s[:, None] + alphas[None, :]), self.dtype)
        r = dec.basis.shape[1]
        if dec.kind == "primal":
            W = dec.basis @ (D * (dec.basis.T @ chunk.C_all))
            self.flops += 4.0 * self.p * r * t
        else:
            dual = dec.basis @ (D * (dec.basis.T @ chunk.Yg))
            W = self.Xg.T @ dual
            self.flops += 4.0 * self.n * r * t + 2.0 * self.n * self.p * t
        W = bk.to_numpy(W) / np.asarray(self.scale, dtype=self.dtype)
        intercept = chunk.y_mean - self.x_mean @ W.astype(np.float64)
        return W, intercept

    def alpha_grid_problem(self) -> str | None:
        """Why the candidate alphas cannot regularise these features, or None when they can.

        Alphas act on the eigenvalues of the centred XᵀX: far above the largest, every weight shrinks
        to about zero (predictions are nearly constant, r ≈ 0); far below the smallest non-zero one,
        no candidate regularises at all.
        """
        s = self.full.s * self.scale ** 2
        top = float(s.max()) if s.size else 0.0
        if top <= 0:
            return None
        low = float(s[s > top * 1e-9].min())
        square = self.scale ** 2
        fix = (f"standardise the features (their RMS value is {self.scale:.3g}) or multiply the alphas by their "
               f"mean square, e.g. np.logspace(-2, 6, 20) * {square:.3g}")
        if self.alphas.min() > 100 * top:
            return (f"every candidate alpha ({self.alphas.min():.3g}–{self.alphas.max():.3g}) is over 100× the largest "
                    f"eigenvalue of the centred XᵀX ({top:.3g}), so all weights shrink to about zero and predictions "
                    f"are nearly constant (r ≈ 0): {fix}")
        if self.alphas.max() < 0.01 * low:
            return (f"every candidate alpha ({self.alphas.min():.3g}–{self.alphas.max():.3g}) is under 1% of the "
                    f"smallest eigenvalue of the centred XᵀX ({low:.3g}), so none regularises (plain least squares): "
                    f"{fix}")
        return None


def select_alphas(scores: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the best alpha per unit and its score; near-ties go to the larger alpha (as himalaya)."""
    nudged = scores + (np.log(alphas) * 1e-10)[:, None]
    best = np.argmax(nudged, axis=0)
    return best, scores[best, np.arange(scores.shape[1])]


def default_chunk(n: int, p: int, r: int, t: int, budget_bytes: int = 2 ** 28, itemsize: int = 4) -> int:
    """Units per chunk so the per-chunk working set stays near ``budget_bytes`` (256 MiB)."""
    per_unit = itemsize * (3 * n + 2 * p + 6 * r)
    size = max(256, budget_bytes // per_unit // 256 * 256)
    return int(min(t, size))


def _chunks(t: int, size: int) -> Iterable[slice]:
    for start in range(0, t, size):
        yield slice(start, min(t, start + size))


# ---- public solvers -------------------------------------------------------------------------


@dataclass
class RidgeCVResult:
    """What :func:`ridge_cv` returns; arrays are numpy, ``coef`` is (p × units)."""

    coef: np.ndarray
    intercept: np.ndarray
    best_alphas: np.ndarray
    cv_scores: np.ndarray
    alphas: np.ndarray
    method: str
    flops: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _check_xy(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    X = np.asarray(X)
    if not hasattr(Y, "shape"):
        Y = np.asarray(Y)
    ravel = Y.ndim == 1
    if ravel:
        Y = Y[:, None]
    if X.ndim != 2:
        raise WorkbenchError(f"X must be 2-D (samples × features), got shape {X.shape}")
    if X.shape[0] != Y.shape[0]:
        raise WorkbenchError(f"X has {X.shape[0]} samples but Y has {Y.shape[0]}; rows must match")
    return X, Y, ravel


def ridge_cv(X: np.ndarray, Y: np.ndarray, alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
             cv: Any = 5, *, fit_intercept: bool = True, scoring: str = "mse", backend: str | Backend = "numpy",
             device: str | None = None, dtype: str = "float32", n_units_chunk: int | None = None,
             method: str = "auto") -> RidgeCVResult:
    """Ridge with one alpha per unit chosen by K-fold CV, then refit on all samples.

    ``scoring="mse"`` picks the alpha with the lowest test mean-squared error averaged over folds
    (himalaya's default ``l2_neg_loss``; scikit-learn's ``neg_mean_squared_error``); ``"r2"`` averages
    per-fold R². ``cv_scores`` is (n_alphas × units): the fold-averaged score (−MSE or R²) of each alpha.
    """
    X, Y, _ = _check_xy(X, Y)
    folds = make_folds(cv, X.shape[0])
    solver = RidgeSolver(X, alphas, folds, fit_intercept=fit_intercept, backend=backend, device=device,
                         dtype=dtype, method=method, scoring=scoring)
    _warn_alpha_grid(solver)
    t = Y.shape[1]
    size = n_units_chunk or default_chunk(solver.n, solver.p, min(solver.n, solver.p), t,
                                          solver.backend.chunk_budget)
    coef = np.empty((solver.p, t), dtype=solver.dtype)
    intercept = np.empty(t)
    best_alphas = np.empty(t)
    cv_scores = np.empty((len(solver.alphas), t))
    for sl in _chunks(t, size):
        chunk = solver.prepare(Y, sl)
        scores = solver.cv_scores(chunk)
        best, _ = select_alphas(scores, solver.alphas)
        cv_scores[:, sl] = scores
        best_alphas[sl] = solver.alphas[best]
        coef[:, sl], intercept[sl] = solver.refit(chunk, best_alphas[sl])
    return RidgeCVResult(coef, intercept, best_alphas, cv_scores, solver.alphas,
                         method=solver.full.kind, flops=solver.flops,
                         extra={"fold_methods": [d.kind for d in solver.fold_decs]})


def _warn_alpha_grid(solver: RidgeSolver) -> None:
    problem = solver.alpha_grid_problem()
    if problem:
        import warnings

        warnings.warn(f"ridge: {problem}", AlphaGridWarning, stacklevel=3)


def ridge_fit(X: np.ndarray, Y: np.ndarray, alpha: float | np.ndarray = 1.0, *, fit_intercept: bool = True,
              backend: str | Backend = "numpy", device: str | None = None, dtype: str = "float32",
              n_units_chunk: int | None = None, method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Ridge weights (p × units) and intercepts for a fixed alpha (scalar or one per unit)."""
    X, Y, _ = _check_xy(X, Y)
    t = Y.shape[1]
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (t,))
    solver = RidgeSolver(X, np.unique(alpha), None, fit_intercept=fit_intercept, backend=backend,
                         device=device, dtype=dtype, method=method)
    size = n_units_chunk or default_chunk(solver.n, solver.p, min(solver.n, solver.p), t,
                                          solver.backend.chunk_budget)
    coef = np.empty((solver.p, t), dtype=solver.dtype)
    intercept = np.empty(t)
    for sl in _chunks(t, size):
        coef[:, sl], intercept[sl] = solver.refit(solver.prepare(Y, sl), alpha[sl])
    return coef, intercept


# ---- banded ridge ---------------------------------------------------------------------------


def dirichlet_gammas(n_iter: int, n_bands: int, concentration: float | Sequence[float] = (0.1, 1.0),
                     random_state: int | None = None) -> np.ndarray:
    """Band weights on the simplex, sampled as himalaya does (first row: equal weights).

    Samples cycle through the concentrations; with the same seed this reproduces
    ``himalaya.kernel_ridge.generate_dirichlet_samples`` followed by ``gammas[0] = 1 / n_bands``.
    """
    rs = np.random.RandomState(random_state)
    conc = np.atleast_1d(np.asarray(concentration, dtype=float))
    per = int(math.ceil(n_iter / len(conc)))
    parts = []
    for c in conc:
        if np.isinf(c):
            parts.append(np.full((per, n_bands), 1.0 / n_bands))
        else:
            parts.append(rs.dirichlet([c] * n_bands, per))
    gammas = np.stack(parts).swapaxes(0, 1).reshape(-1, n_bands)[:n_iter]
    gammas[0] = 1.0 / n_bands
    return gammas


@dataclass
class BandedRidgeCVResult(RidgeCVResult):
    """:class:`RidgeCVResult` plus the band weights: ``gammas`` (n_bands × units), ``deltas``
    = log(gamma / alpha) as himalaya reports them, and ``search_scores`` (n_iter × units)."""

    gammas: np.ndarray | None = None
    deltas: np.ndarray | None = None
    search_scores: np.ndarray | None = None
    candidates: np.ndarray | None = None


def bands_from_columns(bands: Sequence[Sequence[int] | slice], p: int) -> list[np.ndarray]:
    """Column indices of each band; every feature must belong to exactly one band."""
    out = []
    for b in bands:
        idx = np.arange(p)[b] if isinstance(b, slice) else np.asarray(b, dtype=int).ravel()
        out.append(idx)
    allcols = np.concatenate(out) if out else np.array([], int)
    if len(allcols) != p or len(np.unique(allcols)) != p or (len(allcols) and (allcols.min() < 0 or allcols.max() >= p)):
        raise WorkbenchError(f"bands must split the {p} feature columns into disjoint groups covering all of them")
    return out


def banded_ridge_cv(X: np.ndarray, Y: np.ndarray, bands: Sequence[Sequence[int] | slice],
                    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS, cv: Any = 5, *,
                    n_iter: int | np.ndarray = 20, concentration: float | Sequence[float] = (0.1, 1.0),
                    random_state: int | None = 0, fit_intercept: bool = True, scoring: str = "mse",
                    backend: str | Backend = "numpy", device: str | None = None, dtype: str = "float32",
                    n_units_chunk: int | None = None, method: str = "auto") -> BandedRidgeCVResult:
    """Banded ridge: per-unit band weights (gamma on the simplex) and alpha, chosen by CV.

    Follows himalaya's ``solve_group_ridge_random_search``: each candidate gamma scales band b by
    sqrt(gamma_b), a ridge CV over ``alphas`` runs on the scaled design, and a unit keeps the first
    candidate whose best fold-averaged score beats its current best by more than float eps.
    ``n_iter`` is a number of Dirichlet samples or an explicit (n_iter × n_bands) grid of gammas.
    """
    X, Y, _ = _check_xy(X, Y)
    n, p = X.shape
    t = Y.shape[1]
    cols = bands_from_columns(bands, p)
    if isinstance(n_iter, (int, np.integer)):
        gammas = dirichlet_gammas(int(n_iter), len(cols), concentration, random_state)
    else:
        gammas = np.atleast_2d(np.asarray(n_iter, dtype=np.float64))
        if gammas.shape[1] != len(cols):
            raise WorkbenchError(f"the gamma grid has {gammas.shape[1]} columns for {len(cols)} bands")
    folds = make_folds(cv, n)
    alphas = np.asarray(alphas, dtype=np.float64)
    scale_of_col = np.empty((len(gammas), p))
    for b, c in enumerate(cols):
        scale_of_col[:, c] = np.sqrt(gammas[:, b])[:, None]
    eps = np.finfo(np.dtype(dtype)).eps
    best_score = np.full(t, -np.inf)
    best_gamma = np.zeros(t, dtype=int)
    best_alpha = np.ones(t)
    search = np.empty((len(gammas), t))
    all_scores = np.empty((len(alphas), t))
    flops = 0.0
    size = n_units_chunk or default_chunk(n, p, min(n, p), t, get_backend(backend, device).chunk_budget)
    for g in range(len(gammas)):
        solver = RidgeSolver(X * scale_of_col[g], alphas, folds, fit_intercept=fit_intercept, backend=backend,
                             device=device, dtype=dtype, method=method, scoring=scoring)
        if g == 0:
            _warn_alpha_grid(solver)
        for sl in _chunks(t, size):
            solver_chunk = solver.prepare(Y, sl)
            scores = solver.cv_scores(solver_chunk)
            idx, top = select_alphas(scores, alphas)
            search[g, sl] = top
            better = top > best_score[sl] + eps
            where = np.arange(t)[sl][better]
            best_score[where] = top[better]
            best_gamma[where] = g
            best_alpha[where] = alphas[idx[better]]
            all_scores[:, where] = scores[:, better]
        flops += solver.flops
    coef = np.empty((p, t), dtype=np.dtype(dtype))
    intercept = np.empty(t)
    for g in np.unique(best_gamma):
        units = np.flatnonzero(best_gamma == g)
        solver = RidgeSolver(X * scale_of_col[g], alphas, None, fit_intercept=fit_intercept, backend=backend,
                             device=device, dtype=dtype, method=method, scoring=scoring)
        for sl in _chunks(len(units), size):
            u = units[sl]
            W, b0 = solver.refit(solver.prepare(Y, u), best_alpha[u])
            coef[:, u] = W * scale_of_col[g][:, None]
            intercept[u] = b0
        flops += solver.flops
    best_gammas = gammas[best_gamma].T
    deltas = np.log(best_gammas / best_alpha[None, :])
    return BandedRidgeCVResult(coef, intercept, best_alpha, all_scores, alphas, method=solver.full.kind,
                               flops=flops, gammas=best_gammas, deltas=deltas, search_scores=search,
                               candidates=gammas)
