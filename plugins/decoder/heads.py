"""Decoding heads: brain → embedding with ridge or a small contrastive MLP, plus time generalisation.

``method="ridge"`` reuses :mod:`brain_workbench.numerics.ridge` (alpha per embedding dimension by CV).
``method="contrastive"`` is in the spirit of MindEye's retrieval submodule (Scotti et al. 2023): an
MLP with a linear skip path trained with the symmetric InfoNCE (CLIP) loss between predicted and
true embeddings, plus an MSE term that keeps predictions in the embedding's own units. Retrieval
top-k and two-way identification live in :mod:`brain_workbench.numerics.scoring` and work on any predictions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from torch import nn

from brain_workbench.sdk import Option, WorkbenchError
from brain_workbench.sdk.numerics import (
    DEFAULT_ALPHAS,
    make_folds,
    pearson_per_output,
    pearson_per_unit,
    retrieval_topk,
    ridge_cv,
)

METHODS = ("ridge", "contrastive")


class DecoderHead(BaseEstimator):
    """Brain responses (trials × units) → stimulus embeddings (trials × dims).

    ``score(X, Y)`` returns the mean Pearson r over embedding dimensions (``score_per_unit`` gives each);
    ``retrieval(X, Y)`` gives
    top-1/top-5 retrieval among the given candidates.
    """

    direction = "decode"

    def __init__(
        self,
        method: Annotated[Literal["ridge", "contrastive"], Option(
            "ridge (alpha per dimension by CV) or a contrastive MLP (InfoNCE + MSE)")] = "ridge",
        alphas: Annotated[Sequence[float] | np.ndarray | None, Option(
            "ridge: candidate regularisation strengths (default: logspace(-2, 6, 20))")] = None,
        cv: Annotated[Any, Option("ridge: folds for choosing alpha (a count or explicit folds)")] = 5,
        backend: Annotated[Literal["numpy", "torch"], Option("ridge: array library for the solver")] = "numpy",
        device: Annotated[str | None, Option(
            "torch device for ridge (torch backend) and the MLP, e.g. cuda")] = None,
        fit_intercept: Annotated[bool, Option("centre brain responses and embeddings")] = True,
        dtype: Annotated[str, Option("ridge: precision of the target products")] = "float32",
        hidden: Annotated[int, Option("contrastive MLP: hidden width")] = 256,
        epochs: Annotated[int, Option("contrastive MLP: training epochs")] = 300,
        lr: Annotated[float, Option("contrastive MLP: AdamW learning rate")] = 3e-3,
        weight_decay: Annotated[float, Option("contrastive MLP: AdamW weight decay")] = 1e-4,
        temperature: Annotated[float, Option("contrastive MLP: InfoNCE temperature")] = 0.05,
        mse_weight: Annotated[float, Option("contrastive MLP: weight of the MSE term beside InfoNCE")] = 1.0,
        dropout: Annotated[float, Option("contrastive MLP: dropout")] = 0.1,
        batch_size: Annotated[int, Option("contrastive MLP: batch size")] = 256,
        seed: Annotated[int, Option("contrastive MLP: seed (training is deterministic on CPU)")] = 0,
        n_threads: Annotated[int | None, Option(
            "torch CPU threads for training (None: 1 for small problems)")] = None,
    ) -> None:
        self.method = method
        self.alphas = alphas
        self.cv = cv
        self.backend = backend
        self.device = device
        self.fit_intercept = fit_intercept
        self.dtype = dtype
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.temperature = temperature
        self.mse_weight = mse_weight
        self.dropout = dropout
        self.batch_size = batch_size
        self.seed = seed
        self.n_threads = n_threads

    def fit(self, X: np.ndarray, y: np.ndarray) -> DecoderHead:
        """Fit the brain → embedding map on trials X (n × units) and embeddings Y (n × dims)."""
        X = validate_data(self, X, dtype=(np.float64, np.float32))
        Y = check_array(y, dtype=(np.float64, np.float32), ensure_2d=False)
        if X.shape[0] != Y.shape[0]:
            raise WorkbenchError(f"X has {X.shape[0]} trials but Y has {Y.shape[0]} embeddings; rows must match")
        if self.method not in METHODS:
            raise WorkbenchError(f"unknown decoder method {self.method!r}; use one of {', '.join(METHODS)}")
        self._ravel = Y.ndim == 1
        Y2 = Y[:, None] if self._ravel else Y
        if self.method == "ridge":
            alphas = DEFAULT_ALPHAS if self.alphas is None else self.alphas
            res = ridge_cv(X, Y2, alphas, self.cv, fit_intercept=self.fit_intercept, backend=self.backend,
                                  device=self.device, dtype=self.dtype)
            self.coef_, self.intercept_ = res.coef, res.intercept.astype(res.coef.dtype)
            self.best_alphas_, self.cv_scores_ = res.best_alphas, res.cv_scores
        else:
            self._fit_contrastive(X, Y2)
        return self

    def _fit_contrastive(self, X: np.ndarray, Y: np.ndarray) -> None:
        import torch

        self.x_mean_, self.x_scale_ = X.mean(0), X.std(0) + 1e-6
        self.y_mean_, self.y_scale_ = Y.mean(0), Y.std(0) + 1e-6
        device = torch.device(self.device or "cpu")
        Xt = torch.as_tensor((X - self.x_mean_) / self.x_scale_, dtype=torch.float32, device=device)
        Yt = torch.as_tensor((Y - self.y_mean_) / self.y_scale_, dtype=torch.float32, device=device)
        n = len(Xt)
        threads = torch.get_num_threads()
        small = min(self.batch_size, n) * X.shape[1] * self.hidden < 2 ** 24
        torch.set_num_threads(self.n_threads or (1 if small else threads))
        try:
            self._train(torch, Xt, Yt, device)
        finally:
            torch.set_num_threads(threads)

    def _train(self, torch: Any, Xt: Any, Yt: Any, device: Any) -> None:
        n = len(Xt)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            model = ContrastiveMLP(Xt.shape[1], Yt.shape[1], self.hidden, self.dropout).to(device)
            opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            gen = torch.Generator(device="cpu").manual_seed(self.seed)
            bs = min(self.batch_size, n)
            losses = []
            model.train()
            for _ in range(self.epochs):
                order = torch.randperm(n, generator=gen).to(device)
                total = 0.0
                for start in range(0, n - bs + 1 if n >= bs else 1, bs):
                    idx = order[start:start + bs]
                    pred = model(Xt[idx])
                    loss = _info_nce(pred, Yt[idx], self.temperature) + self.mse_weight * torch.mean((pred - Yt[idx]) ** 2)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach())
                losses.append(total)
        model.eval()
        self.model_ = model.cpu()
        self.loss_curve_ = np.asarray(losses)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted embeddings, one row per trial."""
        check_is_fitted(self, "n_features_in_")
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        if self.method == "ridge":
            pred = X.astype(self.coef_.dtype, copy=False) @ self.coef_ + self.intercept_
        else:
            import torch

            with torch.no_grad():
                Xt = torch.as_tensor((X - self.x_mean_) / self.x_scale_, dtype=torch.float32)
                pred = self.model_(Xt).numpy().astype(np.float64) * self.y_scale_ + self.y_mean_
        return pred[:, 0] if getattr(self, "_ravel", False) else pred

    def score_per_unit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Pearson r between predicted and true embeddings, one value per embedding dimension."""
        return pearson_per_output(np.asarray(y), self.predict(X))

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Mean over embedding dimensions of ``score_per_unit``: one number, as scikit-learn's model selection needs."""
        return float(np.mean(self.score_per_unit(X, y)))

    def retrieval(self, X: np.ndarray, Y: np.ndarray, k: Sequence[int] = (1, 5),
                  n_candidates: int | None = None, metric: str = "cosine") -> dict[int, float]:
        """Top-k retrieval of the true embedding among the candidates (see ``scoring.retrieval_topk``)."""
        return retrieval_topk(self.predict(X), np.asarray(Y), tuple(k), n_candidates=n_candidates, metric=metric)


def _info_nce(pred: Any, target: Any, temperature: float) -> Any:
    """Symmetric InfoNCE (CLIP loss) between L2-normalised predictions and targets of one batch."""
    import torch
    import torch.nn.functional as F

    logits = F.normalize(pred, dim=1) @ F.normalize(target, dim=1).T / temperature
    labels = torch.arange(len(pred), device=pred.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


class ContrastiveMLP(nn.Module):
    """Linear skip path plus a one-hidden-layer residual MLP (module level, so fitted heads pickle)."""

    def __init__(self, n_in: int, n_out: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.skip = nn.Linear(n_in, n_out)
        self.mlp = nn.Sequential(nn.Linear(n_in, hidden), nn.LayerNorm(hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, n_out))

    def forward(self, x: Any) -> Any:
        return self.skip(x) + self.mlp(x)


def mean_pearson(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over output dimensions of the Pearson r (the default time-generalisation score)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    return float(np.mean(pearson_per_unit(y_true, y_pred)))


def time_generalization(estimator: Any, X: np.ndarray, Y: np.ndarray, cv: Any = 5,
                        scoring: Callable[[np.ndarray, np.ndarray], float] | None = None) -> np.ndarray:
    """Train at each time, test at every time (King & Dehaene 2014): (train times × test times).

    X is trials × units × times (M/EEG), Y the decoding target per trial (n,) or (n, d); each fold
    fits a clone of ``estimator`` per training time and predicts every test time at once. Scores
    (default: mean Pearson r over target dimensions) are averaged over folds.
    """
    from sklearn.base import clone

    X = np.asarray(X)
    Y = np.asarray(Y)
    if X.ndim != 3:
        raise WorkbenchError(f"X must be trials × units × times, got shape {X.shape}")
    if len(Y) != len(X):
        raise WorkbenchError(f"X has {len(X)} trials but Y has {len(Y)}")
    scoring = scoring or mean_pearson
    n, u, T = X.shape
    folds = make_folds(cv, n)
    out = np.zeros((T, T))
    for train, test in folds:
        stacked = X[test].transpose(0, 2, 1).reshape(len(test) * T, u)
        for t in range(T):
            model = clone(estimator).fit(X[train, :, t], Y[train])
            pred = np.asarray(model.predict(stacked))
            pred = pred.reshape((len(test), T) + pred.shape[1:])
            for t2 in range(T):
                out[t, t2] += scoring(Y[test], pred[:, t2])
    return out / len(folds)


def per_time_decoding(estimator: Any, X: np.ndarray, Y: np.ndarray, cv: Any = 5,
                      scoring: Callable[[np.ndarray, np.ndarray], float] | None = None) -> np.ndarray:
    """Decode at each time point separately: the diagonal of :func:`time_generalization`, cheaper."""
    from sklearn.base import clone

    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 3:
        raise WorkbenchError(f"X must be trials × units × times, got shape {X.shape}")
    scoring = scoring or mean_pearson
    folds = make_folds(cv, X.shape[0])
    out = np.zeros(X.shape[2])
    for train, test in folds:
        for t in range(X.shape[2]):
            model = clone(estimator).fit(X[train, :, t], Y[train])
            out[t] += scoring(Y[test], model.predict(X[test, :, t]))
    return out / len(folds)
