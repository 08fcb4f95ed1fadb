"""Cross-validated ridge that returns predictions of new rows, never the (features × targets) weights.

Decoding brain → codec latents has many features (voxels) and very many targets (32,768 TAEF2
latent values at 256 px): the weights alone would be 2 GiB at NSD size. ``ridge_cv_predict`` picks
one alpha per target by K-fold CV (fold-averaged test MSE, as ``brain_workbench.numerics.ridge.ridge_cv`` and
himalaya) and predicts ``X_new`` chunk by chunk of targets. When features outnumber training rows it
works in the kernel form on n × n Gram matrices built from float32 features in float64 feature
blocks, one fold decomposition at a time, so memory stays near 2·n² float64 plus one chunk:
about 1.7 GiB at n = 9,000 whatever the number of voxels or targets. Otherwise it runs
``brain_workbench.numerics.ridge.RidgeSolver`` (primal form) and predicts each chunk from its weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brain_workbench.numerics.backend import Backend, get_backend
from brain_workbench.numerics.ridge import DEFAULT_ALPHAS, RidgeSolver, default_chunk, make_folds, select_alphas
from brain_workbench.types import WorkbenchError


@dataclass
class RidgePrediction:
    """What :func:`ridge_cv_predict` returns (numpy arrays); ``cv_scores`` is (n_alphas × targets) −MSE."""

    predictions: np.ndarray
    best_alphas: np.ndarray
    cv_scores: np.ndarray
    alphas: np.ndarray
    method: str
    flops: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _eigh(bk: Backend, M: Any) -> tuple[np.ndarray, Any]:
    """Eigendecomposition that may overwrite ``M`` (numpy), eigenvalues clipped at 0 as float64 numpy."""
    with bk.serial_if_small(M.shape[0]):  # small LAPACK calls stall on a busy machine with many threads
        if bk.torch is None:
            import scipy.linalg

            s, V = scipy.linalg.eigh(M, overwrite_a=True, check_finite=False, driver="evd")
        else:
            s, V = bk.torch.linalg.eigh(M)
    return np.clip(bk.to_numpy(s).astype(np.float64), 0.0, None), V


def _gram(bk: Backend, X: np.ndarray, X_new: np.ndarray, block: int = 1024) -> tuple[Any, Any]:
    """K = X Xᵀ and K_new = X_new Xᵀ in float64, accumulated over blocks of features (one f64 block at a time)."""
    n, p = X.shape
    K = bk.asarray(np.zeros((n, n)), "float64")
    K_new = bk.asarray(np.zeros((X_new.shape[0], n)), "float64")
    for start in range(0, p, block):
        Xf = bk.asarray(X[:, start:start + block], "float64")
        Nf = bk.asarray(X_new[:, start:start + block], "float64")
        K += Xf @ Xf.T
        K_new += Nf @ Xf.T
    return K, K_new


def _alpha_sse(bk: Backend, R: Any, s: np.ndarray, alphas: np.ndarray, B: Any, Z: Any, dtype: str,
               budget: int) -> np.ndarray:
    """||Z − R·diag(1/(s+α))·B||² per target for every alpha, alphas in groups that fit ``budget`` bytes."""
    m, r = R.shape
    t = B.shape[1]
    itemsize = np.dtype(dtype).itemsize
    group = int(max(1, min(len(alphas), budget // max(1, itemsize * m * (r + t)))))
    out = np.zeros((len(alphas), t))
    for start in range(0, len(alphas), group):
        a = alphas[start:start + group]
        d = bk.asarray(1.0 / (s[None, :] + a[:, None]), dtype)
        P = ((R[None] * d[:, None, :]).reshape(len(a) * m, r) @ B).reshape(len(a), m, t)
        P -= Z[None]
        for i in range(len(a)):
            out[start + i] = bk.colsumsq(P[i])
    return out


def _kernel_path(bk: Backend, X: np.ndarray, Y: Any, X_new: np.ndarray, alphas: np.ndarray,
                 folds: list[tuple[np.ndarray, np.ndarray]], dtype: str, chunk: int | None,
                 feature_block: int) -> RidgePrediction:
    n, t, m = X.shape[0], Y.shape[1], X_new.shape[0]
    flops = 2.0 * n * X.shape[1] * (n + m)
    K, K_new = _gram(bk, X, X_new, feature_block)
    budget = bk.chunk_budget
    size = int(chunk or min(t, max(256, budget // (6 * 4 * n) // 256 * 256)))  # about six n × chunk arrays
    scores = np.zeros((len(alphas), t))
    for train, test in folds:
        tr, te = bk.index(train), bk.index(test)
        Ktt = K[tr[:, None], tr[None, :]]
        a_tr = Ktt.mean(1, keepdims=True)
        c = a_tr.mean()
        Ktt -= a_tr
        Ktt -= a_tr.T
        Ktt += c
        s, U = _eigh(bk, Ktt)
        del Ktt
        Kvt = K[te[:, None], tr[None, :]]
        Kvt -= Kvt.mean(1, keepdims=True)
        Kvt -= a_tr.T
        Kvt += c
        A = Kvt @ U
        del Kvt
        flops += 9.0 * len(train) ** 3 + 2.0 * len(test) * len(train) ** 2
        Q = None
        if len(test) > A.shape[1]:
            Q, R = bk.qr(A)
            Q, R = bk.asarray(Q, dtype), bk.asarray(R, dtype)
        else:
            R = bk.asarray(A, dtype)
        del A
        U = bk.asarray(U, dtype)
        for start in range(0, t, size):
            sl = slice(start, min(t, start + size))
            Ysl = bk.asarray(np.asarray(Y[:, sl]), dtype)
            Ytr, Yte = Ysl[tr], Ysl[te]
            mu = Ytr.mean(0, keepdims=True)
            Ytr = Ytr - mu
            Yte = Yte - mu
            B = U.T @ Ytr
            width = sl.stop - sl.start
            flops += 2.0 * len(train) * U.shape[1] * width
            if Q is not None:
                Z = Q.T @ Yte
                perp = np.clip(bk.colsumsq(Yte) - bk.colsumsq(Z), 0.0, None)
            else:
                Z, perp = Yte, 0.0
            scores[:, sl] += -(_alpha_sse(bk, R, s, alphas, B, Z, dtype, budget) + perp) / len(test)
            flops += 2.0 * len(alphas) * R.shape[0] * R.shape[1] * width
        del U, R, Q
    scores /= len(folds)
    best, _ = select_alphas(scores, alphas)
    best_alphas = alphas[best]

    a = K.mean(1, keepdims=True)
    c = a.mean()
    K_new -= K_new.mean(1, keepdims=True)
    K_new -= a.T
    K_new += c
    K -= a
    K -= a.T
    K += c
    s, U = _eigh(bk, K)
    del K
    KU = bk.asarray(K_new @ U, dtype)
    del K_new
    U = bk.asarray(U, dtype)
    flops += 9.0 * n ** 3 + 2.0 * m * n * n
    predictions = np.empty((m, t), dtype=np.float32)
    for start in range(0, t, size):
        sl = slice(start, min(t, start + size))
        Ysl = bk.asarray(np.asarray(Y[:, sl]), dtype)
        mu = Ysl.mean(0, keepdims=True)
        D = bk.asarray(1.0 / (s[:, None] + best_alphas[None, sl]), dtype)
        out = KU @ (D * (U.T @ (Ysl - mu))) + mu
        predictions[:, sl] = bk.to_numpy(out)
        flops += 2.0 * (n + m) * n * (sl.stop - sl.start)
    return RidgePrediction(predictions, best_alphas, scores, alphas, "dual", flops)


def _primal_path(bk: Backend, X: np.ndarray, Y: Any, X_new: np.ndarray, alphas: np.ndarray,
                 folds: list[tuple[np.ndarray, np.ndarray]], dtype: str, chunk: int | None) -> RidgePrediction:
    solver = RidgeSolver(X, alphas, folds, backend=bk, dtype=dtype, method="primal")
    t = Y.shape[1]
    size = chunk or default_chunk(solver.n, solver.p, solver.p, t, bk.chunk_budget)
    X_new = np.asarray(X_new, dtype=np.float32)
    predictions = np.empty((X_new.shape[0], t), dtype=np.float32)
    best_alphas = np.empty(t)
    scores = np.empty((len(solver.alphas), t))
    for start in range(0, t, size):
        sl = slice(start, min(t, start + size))
        part = solver.prepare(np.asarray(Y[:, sl]))
        scores[:, sl] = solver.cv_scores(part)
        best, _ = select_alphas(scores[:, sl], solver.alphas)
        best_alphas[sl] = solver.alphas[best]
        W, intercept = solver.refit(part, best_alphas[sl])
        predictions[:, sl] = X_new @ W + intercept
    flops = solver.flops + 2.0 * X_new.shape[0] * solver.p * t
    return RidgePrediction(predictions, best_alphas, scores, solver.alphas, "primal", flops)


def ridge_cv_predict(X: np.ndarray, Y: Any, X_new: np.ndarray, alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
                     cv: Any = 5, *, backend: str | Backend = "numpy", device: str | None = None,
                     dtype: str = "float32", n_targets_chunk: int | None = None, method: str = "auto",
                     feature_block: int = 1024) -> RidgePrediction:
    """Ridge (with intercept) from ``X`` to every column of ``Y``, one alpha per column by K-fold CV; predict ``X_new``.

    ``Y`` may be any 2-D array that slices by columns (numpy, zarr). ``method="auto"`` uses the
    kernel form when features outnumber the rows of the smallest training fold, else the primal
    form; the chosen alphas and predictions agree with ``brain_workbench.numerics.ridge.ridge_cv`` and himalaya.
    """
    X = np.asarray(X)
    X_new = np.asarray(X_new)
    if X.ndim != 2 or X_new.ndim != 2 or X_new.shape[1] != X.shape[1]:
        raise WorkbenchError(f"X {X.shape} and X_new {X_new.shape} must be 2-D with the same number of features")
    if len(getattr(Y, "shape", ())) != 2 or Y.shape[0] != X.shape[0]:
        raise WorkbenchError(f"Y must be 2-D with one row per row of X ({X.shape[0]}), got {getattr(Y, 'shape', None)}")
    if not (np.isfinite(X).all() and np.isfinite(X_new).all()):
        raise WorkbenchError("X or X_new contains NaN or infinite values; impute or drop them first")
    alphas = np.asarray(alphas, dtype=np.float64).ravel()
    if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
        raise WorkbenchError("alphas must be a non-empty list of positive, finite numbers")
    if method not in ("auto", "primal", "dual"):
        raise WorkbenchError(f"unknown method {method!r}; use 'auto', 'primal' or 'dual'")
    folds = make_folds(cv, X.shape[0])
    bk = get_backend(backend, device)
    smallest = min(len(tr) for tr, _ in folds)
    kind = method if method != "auto" else ("dual" if X.shape[1] > smallest else "primal")
    if kind == "dual":
        return _kernel_path(bk, X, Y, X_new, alphas, folds, str(np.dtype(dtype)), n_targets_chunk, feature_block)
    return _primal_path(bk, X, Y, X_new, alphas, folds, str(np.dtype(dtype)), n_targets_chunk)


__all__ = ["RidgePrediction", "ridge_cv_predict"]
