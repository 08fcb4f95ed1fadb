"""Shared-subject encoder: one stimulus-feature transform f(x) ∈ R^k, one learned embedding per unit.

After the Universal Brain Encoder (Beliy et al. 2024): a unit's response is ``f(x) · e_u + b_u``, with
f shared by every subject and the unit embeddings ``e_u`` subject-specific, so a new subject needs
only its unit embeddings. f is linear (``x A``) plus, with ``hidden > 0``, a residual MLP.
Stage 1 (closed form): ridge (CV) of every subject's units on the standardised features gives
coefficients ``B_s``; A spans the top-k eigenvectors of ``C^½ (Σ_s B_s B_sᵀ / units_s) C^½`` mapped
back by ``C^-½`` (C the pooled feature covariance), the rank-k transform that best keeps every
subject's ridge predictions (reduced-rank regression pooled across subjects); unit embeddings
are then ridge (CV) fits on ``f(x)``. Stage 2 trains f and all embeddings jointly on the MSE,
seeded and checkpointed like the decoder. ``adapt`` fits a new subject's embeddings in closed
form, a ridge per unit on the frozen f(x) (towards the training subjects' mean embedding with
``embedding_prior="mean"`` when units share a space).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from sklearn.base import BaseEstimator

from brain_workbench.sdk import Option, WorkbenchError, digest
from brain_workbench.sdk.numerics import pearson_per_unit, ridge_cv
from brain_workbench_plugins.shared_models import training
from brain_workbench_plugins.shared_models.data import (
    SINGLE,
    Pair,
    data_digest,
    dense_rows,
    folds_for,
    parse_subjects,
    standardiser,
    width_error,
)

PRIORS = ("none", "mean")


class SharedEncoder(BaseEstimator):
    """Stimulus features → every subject's units through a shared transform and per-unit embeddings.

    ``fit({subject: (X_features, Y_brain)})``, ``predict(subject, X)``, ``adapt(new_subject, X, Y)``,
    ``score(subject, X, Y)`` (mean Pearson r over units; ``score_per_unit`` gives each). ``fit(X, Y)`` works scikit-learn style.
    """

    direction = "encode"

    def __init__(
        self,
        latent_dim: Annotated[int, Option("width k of the shared feature transform and unit embeddings")] = 32,
        hidden: Annotated[int, Option("hidden width of a residual MLP in the transform (0: linear)")] = 0,
        epochs: Annotated[int, Option("joint training epochs after the closed-form start")] = 30,
        lr: Annotated[float, Option("AdamW learning rate")] = 1e-3,
        weight_decay: Annotated[float, Option("AdamW weight decay")] = 0.0,
        batch_size: Annotated[int, Option("rows per subject per step")] = 256,
        alphas: Annotated[Sequence[float] | None, Option("ridge alphas (one chosen per output by CV)")] = None,
        cv: Annotated[Any, Option("folds for choosing ridge alphas")] = 5,
        embedding_prior: Annotated[Literal["none", "mean"], Option(
            "adapt shrinks new embeddings towards zero or the training subjects' mean")] = "none",
        device: Annotated[str, Option("torch device for the trained parts (cpu, cuda)")] = "cpu",
        seed: Annotated[int, Option("seed of initialisation, batches and dropout")] = 0,
        n_threads: Annotated[int | None, Option(
            "torch CPU threads while training (fixed for reproducibility)")] = 1,
        store: Annotated[Any, Option("store path or URL for training checkpoints (resumable)")] = None,
        run_name: Annotated[str | None, Option(
            "run name under shared-models/ (default: hash of data and options)")] = None,
        checkpoint_every: Annotated[int, Option("epochs between checkpoints")] = 10,
        keep: Annotated[int, Option("checkpoints kept per run")] = 2,
    ) -> None:
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.alphas = alphas
        self.cv = cv
        self.embedding_prior = embedding_prior
        self.device = device
        self.seed = seed
        self.n_threads = n_threads
        self.store = store
        self.run_name = run_name
        self.checkpoint_every = checkpoint_every
        self.keep = keep

    def _solver(self) -> dict[str, Any]:
        """Closed-form ridge runs on the training device too (torch backend for CUDA)."""
        on_cuda = str(self.device or "cpu").startswith("cuda")
        return {"backend": "torch", "device": self.device} if on_cuda else {"backend": "numpy"}

    def _alphas(self) -> np.ndarray:
        from brain_workbench.sdk.numerics import DEFAULT_ALPHAS

        return np.asarray(DEFAULT_ALPHAS if self.alphas is None else self.alphas, dtype=np.float64)

    def _identity(self, digest_: str) -> dict[str, Any]:
        keys = ("latent_dim", "hidden", "lr", "weight_decay", "batch_size", "cv", "seed")
        return {"model": "shared-encoder", "data": digest_, "alphas": self._alphas().tolist(),
                **{k: getattr(self, k) for k in keys}}

    # ---- fitting ---------------------------------------------------------------------------
    def fit(self, data: Any, y: Any = None, progress: training.Progress | None = None) -> SharedEncoder:
        """Fit the shared transform and every subject's unit embeddings on ``{subject: (X, Y)}``."""
        if self.embedding_prior not in PRIORS:
            raise WorkbenchError(f"unknown embedding_prior {self.embedding_prior!r}; use one of {', '.join(PRIORS)}")
        if int(self.latent_dim) < 1 or int(self.epochs) < 0:
            raise WorkbenchError("shared-encoder needs latent_dim ≥ 1 and epochs ≥ 0")
        subjects = parse_subjects(data, y, what=("features", "brain"))
        device = training.resolve_device(self.device)
        with training.torch_threads(self.n_threads):
            fixed, init = self._closed_form(subjects)
            self._build(fixed, init, device)
            self._train(subjects, device, progress)
        self._finalise()
        self.n_features_in_ = self.fixed_["x_mean"].shape[0]
        return self

    def _closed_form(self, subjects: Mapping[str, Pair]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        x_mean, x_scale = standardiser(np.concatenate([p.a for p in subjects.values()]))
        fixed: dict[str, np.ndarray] = {"x_mean": x_mean, "x_scale": x_scale}
        Xz = {s: (p.a - x_mean) / x_scale for s, p in subjects.items()}
        d = x_mean.shape[0]
        C = sum(X.T @ X for X in Xz.values()) / sum(len(X) for X in Xz.values())
        M = np.zeros((d, d))
        for i, (s, p) in enumerate(subjects.items()):
            y_mean, y_scale = standardiser(p.b)
            fixed[f"y_mean_{i}"], fixed[f"y_scale_{i}"] = y_mean, y_scale
            res = ridge_cv(Xz[s], (p.b - y_mean) / y_scale, self._alphas(), folds_for(self.cv, len(p.b)),
                           dtype="float64", **self._solver())
            M += res.coef @ res.coef.T / p.b.shape[1]
        evals, evecs = np.linalg.eigh(C)
        evals = np.clip(evals, 1e-6 * max(evals.max(), 1e-12), None)
        half, inv_half = (evecs * np.sqrt(evals)) @ evecs.T, (evecs / np.sqrt(evals)) @ evecs.T
        w, U = np.linalg.eigh(half @ M @ half)
        k = int(min(self.latent_dim, d))
        A = inv_half @ U[:, ::-1][:, :k]
        F = {s: X @ A for s, X in Xz.items()}
        embeddings = {}
        for i, (s, p) in enumerate(subjects.items()):
            Yz = (p.b - fixed[f"y_mean_{i}"]) / fixed[f"y_scale_{i}"]
            res = ridge_cv(F[s], Yz, self._alphas(), folds_for(self.cv, len(Yz)),
                           dtype="float64", **self._solver())
            embeddings[s] = (res.coef, res.intercept)
        fixed["A"] = A
        return fixed, {"subjects": list(subjects), "embeddings": embeddings, "Xz": Xz}

    def _build(self, fixed: Mapping[str, np.ndarray], init: Mapping[str, Any], device: Any) -> None:
        import torch

        from brain_workbench_plugins.shared_models.modules import FeatureTransform

        A = np.asarray(fixed["A"])
        self.subject_names_ = list(init["subjects"])
        torch.manual_seed(int(self.seed))
        f = FeatureTransform(A.shape[0], A.shape[1], int(self.hidden))
        with torch.no_grad():
            f.linear.weight.copy_(torch.as_tensor(A.T, dtype=torch.float32))
            f.linear.bias.zero_()
            if f.mlp is not None:
                f.mlp[-1].weight.zero_()
                f.mlp[-1].bias.zero_()
        self.transform_ = f.to(device)
        self.emb_ = {s: (torch.nn.Parameter(torch.as_tensor(E, dtype=torch.float32, device=device).clone()),
                         torch.nn.Parameter(torch.as_tensor(b, dtype=torch.float32, device=device).clone()))
                     for s, (E, b) in init["embeddings"].items()}
        self.fixed_ = {k: np.asarray(v) for k, v in fixed.items()}
        self._set_stats()

    def _set_stats(self) -> None:
        self.stats_ = {s: (self.fixed_[f"y_mean_{i}"], self.fixed_[f"y_scale_{i}"])
                       for i, s in enumerate(self.subject_names_)}

    def _train(self, subjects: Mapping[str, Pair], device: Any, progress: training.Progress | None) -> None:
        import torch

        store = training.as_store(self.store)
        identity = self._identity(data_digest(subjects))
        key = training.run_key(self.run_name or f"encoder-{digest(identity)}") if store is not None else None
        params = {f"transform.{n}": p for n, p in self.transform_.named_parameters()}
        for i, s in enumerate(self.subject_names_):
            params[f"emb.{i}.E"], params[f"emb.{i}.b"] = self.emb_[s]
        trainer = training.Trainer(params, float(self.lr), float(self.weight_decay), int(self.seed), identity,
                                   store, key, int(self.checkpoint_every), int(self.keep))
        if store is not None:
            ckpt = training.latest_checkpoint(store, key)
            if ckpt is not None:
                trainer.restore(ckpt)
                self.fixed_ = {k: ckpt.arrays[f"fixed_{k}"] for k in self.fixed_}
                self._set_stats()
        x_mean, x_scale = self.fixed_["x_mean"], self.fixed_["x_scale"]
        tensors = []
        for s in self.subject_names_:
            y_mean, y_scale = self.stats_[s]
            p = subjects[s]
            tensors.append((torch.as_tensor((p.a - x_mean) / x_scale, dtype=torch.float32, device=device),
                            torch.as_tensor((p.b - y_mean) / y_scale, dtype=torch.float32, device=device)))
        steps = max(1, -(-max(len(t[0]) for t in tensors) // int(self.batch_size)))

        def epoch_step(epoch: int) -> float:
            plans = [training.batches(len(X), int(self.batch_size), int(self.seed), epoch, j)
                     for j, (X, _) in enumerate(tensors)]
            total = 0.0
            for i in range(steps):
                loss = 0.0
                for j, s in enumerate(self.subject_names_):
                    idx = torch.as_tensor(plans[j][i % len(plans[j])], device=device)
                    X, Y = tensors[j]
                    E, b = self.emb_[s]
                    loss = loss + torch.mean((self.transform_(X[idx]) @ E + b - Y[idx]) ** 2)
                loss = loss / len(self.subject_names_)
                trainer.opt.zero_grad(set_to_none=True)
                loss.backward()
                trainer.opt.step()
                total += float(loss.detach())
            return total / steps

        trainer.run(int(self.epochs), epoch_step, self.fixed_, {"subjects": self.subject_names_, "key": key},
                    progress)
        self.loss_curve_ = np.asarray(trainer.history)
        self.resumed_from_ = trainer.resumed_from
        self.checkpoint_key_ = key

    def _finalise(self) -> None:
        self.transform_ = self.transform_.cpu().eval()
        for p in self.transform_.parameters():
            p.requires_grad_(False)
        self.subjects_ = {s: (E.detach().cpu().numpy().astype(np.float64), b.detach().cpu().numpy().astype(np.float64))
                          for s, (E, b) in self.emb_.items()}
        del self.emb_

    # ---- use -------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not hasattr(self, "subjects_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this SharedEncoder is not fitted yet; call fit first")

    def features(self, X: np.ndarray) -> np.ndarray:
        """The shared transform f(x) of stimulus features (rows × latent_dim)."""
        import torch

        self._require_fitted()
        X = dense_rows("features", X)
        if X.shape[1] != self.fixed_["x_mean"].shape[0]:
            raise width_error(self, X.shape[1], self.fixed_["x_mean"].shape[0])
        with torch.no_grad():
            Xt = torch.as_tensor((X - self.fixed_["x_mean"]) / self.fixed_["x_scale"], dtype=torch.float32)
            return self.transform_(Xt).numpy().astype(np.float64)

    def adapt(self, subject: str, X: np.ndarray, Y: np.ndarray, stimulus_ids: Any = None) -> SharedEncoder:
        """Fit only ``subject``'s unit embeddings (a ridge per unit on the frozen f(x), closed form)."""
        self._require_fitted()
        p = parse_subjects({str(subject): (X, Y)}, what=("features", "brain"))[str(subject)]
        F = self.features(p.a)
        y_mean, y_scale = standardiser(p.b)
        Yz = (p.b - y_mean) / y_scale
        k = F.shape[1]
        E0, b0 = np.zeros((k, Yz.shape[1])), np.zeros(Yz.shape[1])
        if self.embedding_prior == "mean":
            widths = {E.shape[1] for s, (E, _) in self.subjects_.items() if s in self.subject_names_}
            if widths != {Yz.shape[1]}:
                raise WorkbenchError(f"embedding_prior='mean' needs every subject in one unit space; the new subject "
                                     f"has {Yz.shape[1]} units, the training subjects {sorted(widths)}")
            E0 = np.mean([self.subjects_[s][0] for s in self.subject_names_], axis=0)
            b0 = np.mean([self.subjects_[s][1] for s in self.subject_names_], axis=0)
        res = ridge_cv(F, Yz - F @ E0 - b0, self._alphas(), folds_for(self.cv, len(Yz)),
                       dtype="float64", **self._solver())
        self.subjects_[str(subject)] = (E0 + res.coef, b0 + res.intercept)
        self.stats_[str(subject)] = (y_mean, y_scale)
        return self

    def predict(self, subject: Any, X: np.ndarray | None = None) -> np.ndarray:
        """Predicted responses of ``subject``'s units (``predict(X)`` for a single subject)."""
        if X is None:
            subject, X = SINGLE, subject
        subject = str(subject)
        self._require_fitted()
        if subject not in self.subjects_:
            raise WorkbenchError(f"subject {subject!r} is not fitted; known: {', '.join(self.subjects_)} "
                                 "(call adapt for a new subject)")
        E, b = self.subjects_[subject]
        y_mean, y_scale = self.stats_[subject]
        return (self.features(X) @ E + b) * y_scale + y_mean

    def score_per_unit(self, subject: Any, X: np.ndarray, Y: np.ndarray | None = None) -> np.ndarray:
        """Pearson r per unit on held-out stimuli (``score(X, Y)`` for a single subject)."""
        if Y is None:
            subject, X, Y = SINGLE, subject, X
        return pearson_per_unit(dense_rows("responses", Y, columns=True), self.predict(subject, X))

    def score(self, subject: Any, X: np.ndarray, Y: np.ndarray | None = None) -> float:
        """Mean over units of ``score_per_unit``: one number, as scikit-learn's model selection needs."""
        return float(np.mean(self.score_per_unit(subject, X, Y)))
