"""Shared-subject decoder: per-subject linear maps into one latent space, one shared head to the target.

MindEye2's recipe (Scotti et al. 2024) at workbench scale. Stage 1 is closed form: each subject's
standardised units are ridge-regressed onto the standardised target embedding (alpha per dimension
by CV, :func:`brain_workbench.numerics.ridge.ridge_cv`); the stacked fitted values of all subjects give the
``latent_dim`` principal directions V of the target that brains predict (reduced-rank ridge), and
subject s's map into the latent is ``W_s = B_s V``. The head is ``h(l) = l Vᵀ + MLP(l)``, a linear
path started at V plus a residual MLP whose output layer starts at zero, so training starts from
the reduced-rank ridge decoder. Stage 2 trains the head and all maps jointly with the symmetric
InfoNCE loss plus an MSE term (each step takes one batch per subject), seeded and checkpointed
(:mod:`brain_workbench_plugins.shared_models.training`).

``adapt(subject, Y, X)`` fits only a new subject's map with the shared part frozen: ridge (CV)
from its units to the latent coordinates the frozen head decodes into the target, optionally
followed by ``adapt_epochs`` of gradient steps through the frozen head. With
``map_prior="mean"`` (units in a common space, e.g. fsaverage) the ridge shrinks the map towards
the training subjects' mean map instead of towards zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from sklearn.base import BaseEstimator

from brain_workbench.sdk import Option, WorkbenchError, digest
from brain_workbench.sdk.numerics import decode_scores, pearson_per_output, ridge_cv
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

MAP_PRIORS = ("none", "mean")


class SharedDecoder(BaseEstimator):
    """Brain (trials × units, per subject) → target embedding through a latent space shared by subjects.

    ``fit({subject: (Y_brain, X_target)})``, ``predict(subject, Y_brain)``, ``adapt(new_subject,
    Y_brain, X_target)``; ``score`` gives Pearson r per embedding dimension and ``decode_scores``
    retrieval top-1 and two-way identification. ``fit(Y, X)`` / ``predict(Y)`` work scikit-learn
    style for one subject.
    """

    direction = "decode"

    def __init__(
        self,
        latent_dim: Annotated[int, Option("width of the shared latent space")] = 64,
        hidden: Annotated[int, Option("hidden width of the head's residual MLP (0: linear head)")] = 256,
        epochs: Annotated[int, Option("joint training epochs after the closed-form start")] = 60,
        lr: Annotated[float, Option("AdamW learning rate")] = 1e-3,
        weight_decay: Annotated[float, Option("AdamW weight decay")] = 1e-4,
        temperature: Annotated[float, Option("InfoNCE temperature")] = 0.05,
        mse_weight: Annotated[float, Option("weight of the MSE term")] = 1.0,
        dropout: Annotated[float, Option("dropout in the head's MLP")] = 0.1,
        batch_size: Annotated[int, Option("rows per subject per step")] = 128,
        train_maps: Annotated[bool, Option("train subject maps jointly with the head")] = True,
        alphas: Annotated[Sequence[float] | None, Option("ridge alphas (one chosen per output by CV)")] = None,
        cv: Annotated[Any, Option("folds for choosing ridge alphas")] = 5,
        map_prior: Annotated[Literal["none", "mean"], Option(
            "adapt shrinks a new map towards zero or the training subjects' mean (common unit space)")] = "none",
        adapt_epochs: Annotated[int, Option("gradient epochs through the frozen head after the ridge")] = 0,
        adapt_lr: Annotated[float, Option("learning rate of those epochs")] = 1e-3,
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
        self.temperature = temperature
        self.mse_weight = mse_weight
        self.dropout = dropout
        self.batch_size = batch_size
        self.train_maps = train_maps
        self.alphas = alphas
        self.cv = cv
        self.map_prior = map_prior
        self.adapt_epochs = adapt_epochs
        self.adapt_lr = adapt_lr
        self.device = device
        self.seed = seed
        self.n_threads = n_threads
        self.store = store
        self.run_name = run_name
        self.checkpoint_every = checkpoint_every
        self.keep = keep

    # ---- helpers ---------------------------------------------------------------------------
    def _solver(self) -> dict[str, Any]:
        """Closed-form ridge runs on the training device too (torch backend for CUDA)."""
        on_cuda = str(self.device or "cpu").startswith("cuda")
        return {"backend": "torch", "device": self.device} if on_cuda else {"backend": "numpy"}

    def _alphas(self) -> np.ndarray:
        from brain_workbench.sdk.numerics import DEFAULT_ALPHAS

        return np.asarray(DEFAULT_ALPHAS if self.alphas is None else self.alphas, dtype=np.float64)

    def _identity(self, digest_: str) -> dict[str, Any]:
        keys = ("latent_dim", "hidden", "epochs", "lr", "weight_decay", "temperature", "mse_weight", "dropout",
                "batch_size", "train_maps", "cv", "seed")
        return {"model": "shared-decoder", "data": digest_, "alphas": self._alphas().tolist(),
                **{k: getattr(self, k) for k in keys}}

    def _check_options(self) -> None:
        if self.map_prior not in MAP_PRIORS:
            raise WorkbenchError(f"unknown map_prior {self.map_prior!r}; use one of {', '.join(MAP_PRIORS)}")
        for name in ("latent_dim", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise WorkbenchError(f"shared-decoder option {name} must be at least 1, got {getattr(self, name)}")
        if int(self.epochs) < 0 or int(self.adapt_epochs) < 0:
            raise WorkbenchError("shared-decoder epochs and adapt_epochs must be 0 or more")

    # ---- fitting ---------------------------------------------------------------------------
    def fit(self, data: Any, y: Any = None, progress: training.Progress | None = None) -> SharedDecoder:
        """Fit subject maps and the shared head on ``{subject: (Y_brain, X_target)}``."""
        self._check_options()
        subjects = parse_subjects(data, y, what=("brain", "target"))
        device = training.resolve_device(self.device)
        with training.torch_threads(self.n_threads):
            fixed, init = self._closed_form(subjects)
            self._build(fixed, init, device)
            self._train(subjects, fixed, device, progress)
        self._finalise()
        self.n_features_in_ = next(iter(subjects.values())).a.shape[1]
        return self

    def _closed_form(self, subjects: Mapping[str, Pair]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Standardisation, ridge per subject, the reduced-rank latent directions V and the initial maps."""
        x_mean, x_scale = standardiser(np.concatenate([p.b for p in subjects.values()]))
        fixed: dict[str, np.ndarray] = {"x_mean": x_mean, "x_scale": x_scale}
        fitted, coefs = [], {}
        for i, (s, p) in enumerate(subjects.items()):
            y_mean, y_scale = standardiser(p.a)
            Yz, Xz = (p.a - y_mean) / y_scale, (p.b - x_mean) / x_scale
            res = ridge_cv(Yz, Xz, self._alphas(), folds_for(self.cv, len(Yz)),
                           dtype="float64", **self._solver())
            coefs[s] = (res.coef, res.intercept)
            fitted.append(Yz @ res.coef + res.intercept)
            fixed[f"y_mean_{i}"], fixed[f"y_scale_{i}"] = y_mean, y_scale
        stacked = np.concatenate(fitted)
        _, _, Vt = np.linalg.svd(stacked - stacked.mean(axis=0), full_matrices=False)
        k = int(min(self.latent_dim, Vt.shape[0]))
        V = Vt[:k].T
        fixed["V"] = V
        maps = {s: (B @ V, c @ V) for s, (B, c) in coefs.items()}
        return fixed, {"subjects": list(subjects), "maps": maps, "V": V}

    def _build(self, fixed: Mapping[str, np.ndarray], init: Mapping[str, Any], device: Any) -> None:
        import torch

        V = np.asarray(fixed["V"])
        d, k = V.shape
        self.subject_names_ = list(init["subjects"])
        torch.manual_seed(int(self.seed))
        from brain_workbench_plugins.shared_models.modules import SharedHead

        head = SharedHead(k, d, int(self.hidden), float(self.dropout))
        with torch.no_grad():
            head.skip.weight.copy_(torch.as_tensor(V, dtype=torch.float32))
            head.skip.bias.zero_()
            if head.mlp is not None:
                head.mlp[-1].weight.zero_()
                head.mlp[-1].bias.zero_()
        self.head_ = head.to(device)
        self.maps_ = {}
        for s in self.subject_names_:
            W, c = init["maps"][s]
            self.maps_[s] = (torch.nn.Parameter(torch.as_tensor(W, dtype=torch.float32, device=device).clone()),
                             torch.nn.Parameter(torch.as_tensor(c, dtype=torch.float32, device=device).clone()))
        self.fixed_ = {k_: np.asarray(v) for k_, v in fixed.items()}
        self.stats_ = {s: (self.fixed_[f"y_mean_{i}"], self.fixed_[f"y_scale_{i}"])
                       for i, s in enumerate(self.subject_names_)}

    def _named_params(self) -> dict[str, Any]:
        params = {f"head.{n}": p for n, p in self.head_.named_parameters()}
        if self.train_maps:
            for i, s in enumerate(self.subject_names_):
                params[f"map.{i}.W"], params[f"map.{i}.c"] = self.maps_[s]
        return params

    def _train(self, subjects: Mapping[str, Pair], fixed: Mapping[str, np.ndarray], device: Any,
               progress: training.Progress | None) -> None:
        import torch

        store = training.as_store(self.store)
        identity = self._identity(data_digest(subjects))
        key = training.run_key(self.run_name or f"decoder-{digest(identity)}") if store is not None else None
        for p in (p for pair in self.maps_.values() for p in pair):
            p.requires_grad_(bool(self.train_maps))
        trainer = training.Trainer(self._named_params(), float(self.lr), float(self.weight_decay), int(self.seed),
                                   identity, store, key, int(self.checkpoint_every), int(self.keep))
        if store is not None:
            ckpt = training.latest_checkpoint(store, key)
            if ckpt is not None:
                trainer.restore(ckpt)
                self.fixed_ = {k: ckpt.arrays[f"fixed_{k}"] for k in fixed}
                self.stats_ = {s: (self.fixed_[f"y_mean_{i}"], self.fixed_[f"y_scale_{i}"])
                               for i, s in enumerate(self.subject_names_)}
        x_mean, x_scale = self.fixed_["x_mean"], self.fixed_["x_scale"]
        tensors = []
        for s in self.subject_names_:
            y_mean, y_scale = self.stats_[s]
            p = subjects[s]
            tensors.append((torch.as_tensor((p.a - y_mean) / y_scale, dtype=torch.float32, device=device),
                            torch.as_tensor((p.b - x_mean) / x_scale, dtype=torch.float32, device=device)))
        n_max = max(len(t[0]) for t in tensors)
        steps = max(1, -(-n_max // int(self.batch_size)))

        def epoch_step(epoch: int) -> float:
            self.head_.train()
            plans = [training.batches(len(Y), int(self.batch_size), int(self.seed), epoch, j)
                     for j, (Y, _) in enumerate(tensors)]
            total = 0.0
            for i in range(steps):
                loss = 0.0
                for j, s in enumerate(self.subject_names_):
                    idx = torch.as_tensor(plans[j][i % len(plans[j])], device=device)
                    Y, X = tensors[j]
                    W, c = self.maps_[s]
                    pred = self.head_(Y[idx] @ W + c)
                    loss = loss + training.info_nce(pred, X[idx], float(self.temperature)) \
                        + float(self.mse_weight) * torch.mean((pred - X[idx]) ** 2)
                loss = loss / len(self.subject_names_)
                trainer.opt.zero_grad(set_to_none=True)
                loss.backward()
                trainer.opt.step()
                total += float(loss.detach())
            return total / steps

        info = {"subjects": self.subject_names_, "key": key}
        trainer.run(int(self.epochs), epoch_step, self.fixed_, info, progress)
        self.loss_curve_ = np.asarray(trainer.history)
        self.resumed_from_ = trainer.resumed_from
        self.checkpoint_key_ = key

    def _finalise(self) -> None:
        self.head_.eval()
        self.head_ = self.head_.cpu()
        for p in self.head_.parameters():
            p.requires_grad_(False)
        self.subjects_ = {s: (W.detach().cpu().numpy().astype(np.float64), c.detach().cpu().numpy().astype(np.float64))
                          for s, (W, c) in self.maps_.items()}
        del self.maps_

    # ---- new subjects ----------------------------------------------------------------------
    def _latent_targets(self, Xz: np.ndarray) -> np.ndarray:
        """Latent coordinates whose linear decoding through the frozen head's skip path gives Xz."""
        S = self.head_.skip.weight.detach().numpy().astype(np.float64)
        b = self.head_.skip.bias.detach().numpy().astype(np.float64)
        return (Xz - b) @ np.linalg.pinv(S).T

    def _prior(self, n_units: int) -> tuple[np.ndarray, np.ndarray]:
        k = self.fixed_["V"].shape[1]
        if self.map_prior == "none":
            return np.zeros((n_units, k)), np.zeros(k)
        train = [self.subjects_[s] for s in self.subject_names_]
        widths = {W.shape[0] for W, _ in train}
        if widths != {n_units}:
            raise WorkbenchError(f"map_prior='mean' needs every subject in one unit space; the new subject has "
                                 f"{n_units} units, the training subjects {sorted(widths)}; use map_prior='none'")
        return np.mean([W for W, _ in train], axis=0), np.mean([c for _, c in train], axis=0)

    def adapt(self, subject: str, Y: np.ndarray, X: np.ndarray, stimulus_ids: Any = None,
              progress: training.Progress | None = None) -> SharedDecoder:
        """Fit only ``subject``'s map into the frozen shared latent from its (Y_brain, X_target) rows."""
        self._require_fitted()
        p = parse_subjects({str(subject): (Y, X)}, what=("brain", "target"))[str(subject)]
        if p.b.shape[1] != self.fixed_["x_mean"].shape[0]:
            raise WorkbenchError(f"subject {subject}: targets have {p.b.shape[1]} dims, the shared head decodes "
                                 f"{self.fixed_['x_mean'].shape[0]}")
        y_mean, y_scale = standardiser(p.a)
        Yz = (p.a - y_mean) / y_scale
        Xz = (p.b - self.fixed_["x_mean"]) / self.fixed_["x_scale"]
        L = self._latent_targets(Xz)
        P, c0 = self._prior(Yz.shape[1])
        res = ridge_cv(Yz, L - Yz @ P - c0, self._alphas(), folds_for(self.cv, len(Yz)),
                       dtype="float64", **self._solver())
        W, c = P + res.coef, c0 + res.intercept
        if int(self.adapt_epochs) > 0:
            W, c = self._finetune(Yz, Xz, W, c, progress)
        self.subjects_[str(subject)] = (W, c)
        self.stats_[str(subject)] = (y_mean, y_scale)
        return self

    def _finetune(self, Yz: np.ndarray, Xz: np.ndarray, W: np.ndarray, c: np.ndarray,
                  progress: training.Progress | None) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with training.torch_threads(self.n_threads):
            Wt = torch.nn.Parameter(torch.as_tensor(W, dtype=torch.float32))
            ct = torch.nn.Parameter(torch.as_tensor(c, dtype=torch.float32))
            Yt, Xt = torch.as_tensor(Yz, dtype=torch.float32), torch.as_tensor(Xz, dtype=torch.float32)
            trainer = training.Trainer({"W": Wt, "c": ct}, float(self.adapt_lr), float(self.weight_decay),
                                       int(self.seed), {"model": "shared-decoder-adapt"})

            def epoch_step(epoch: int) -> float:
                total = 0.0
                plan = training.batches(len(Yt), int(self.batch_size), int(self.seed), epoch, 0)
                for idx in plan:
                    idx = torch.as_tensor(idx)
                    pred = self.head_(Yt[idx] @ Wt + ct)
                    loss = training.info_nce(pred, Xt[idx], float(self.temperature)) \
                        + float(self.mse_weight) * torch.mean((pred - Xt[idx]) ** 2)
                    trainer.opt.zero_grad(set_to_none=True)
                    loss.backward()
                    trainer.opt.step()
                    total += float(loss.detach())
                return total / len(plan)

            trainer.run(int(self.adapt_epochs), epoch_step, {}, {}, progress)
        return Wt.detach().numpy().astype(np.float64), ct.detach().numpy().astype(np.float64)

    # ---- prediction and scores -------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not hasattr(self, "subjects_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this SharedDecoder is not fitted yet; call fit first")

    def _split_args(self, subject: Any, Y: Any) -> tuple[str, np.ndarray]:
        if Y is None:
            return SINGLE, np.asarray(subject)
        return str(subject), np.asarray(Y)

    def latent(self, subject: Any, Y: np.ndarray | None = None) -> np.ndarray:
        """Rows of ``subject``'s responses mapped into the shared latent space."""
        self._require_fitted()
        subject, Y = self._split_args(subject, Y)
        if subject not in self.subjects_:
            raise WorkbenchError(f"subject {subject!r} is not fitted; known: {', '.join(self.subjects_)} "
                                 "(call adapt for a new subject)")
        Y = dense_rows(f"subject {subject}: responses", Y)
        W, c = self.subjects_[subject]
        if Y.shape[1] != W.shape[0]:
            raise width_error(self, Y.shape[1], W.shape[0])
        y_mean, y_scale = self.stats_[subject]
        return ((Y - y_mean) / y_scale) @ W + c

    def predict(self, subject: Any, Y: np.ndarray | None = None) -> np.ndarray:
        """Predicted target embeddings for ``subject``'s responses (``predict(Y)`` for a single subject)."""
        import torch

        L = self.latent(subject, Y)
        with torch.no_grad():
            Z = self.head_(torch.as_tensor(L, dtype=torch.float32)).numpy().astype(np.float64)
        return Z * self.fixed_["x_scale"] + self.fixed_["x_mean"]

    def score_per_unit(self, subject: Any, Y: np.ndarray, X: np.ndarray | None = None) -> np.ndarray:
        """Pearson r per target dimension (``score(Y, X)`` for a single subject)."""
        if X is None:
            subject, Y, X = SINGLE, subject, Y
        return pearson_per_output(dense_rows("targets", X, columns=True), self.predict(subject, Y))

    def score(self, subject: Any, Y: np.ndarray, X: np.ndarray | None = None) -> float:
        """Mean over units of ``score_per_unit``: one number, as scikit-learn's model selection needs."""
        return float(np.mean(self.score_per_unit(subject, Y, X)))

    def decode_scores(self, subject: str, Y: np.ndarray, X: np.ndarray, n_candidates: int | None = None,
                      metric: str = "cosine") -> dict[str, float]:
        """Retrieval top-1 among ``n_candidates``-way subsets, two-way identification and mean r."""
        return decode_scores(self.predict(subject, Y), np.asarray(X), n_candidates, metric)

