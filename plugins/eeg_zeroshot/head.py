"""Contrastive EEG → image-embedding decode heads (NICE's TSConv, ATM-S): symmetric InfoNCE with a learned
temperature (optionally plus MSE), Adam, early stopping on a validation split of *training* concepts only,
seeded and deterministic on CPU, and resumable checkpoints in the store (``eeg-heads/<name>/<run>``).

Decode cells hand the head trials × (channels·times) with ``input_shape`` set to ``[channels, times]`` and the
training stimulus ids as ``groups``; a concept is the id without its last ``_`` part (THINGS ``aardvark_01b`` →
``aardvark``, simulated ``sim_c0001_01`` → ``sim_c0001``), so no validation concept is ever trained on.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from brain_workbench.sdk import Option, WorkbenchError, digest

PREFIX = "eeg-heads"
LAYOUT_SHAPES = {"17x100": (17, 100), "63x250": (63, 250)}
RUN_FIELDS = ("arch", "width", "depth", "dropout", "temporal_kernel", "pool", "pool_stride", "d_model", "heads",
              "init_temperature", "mse_weight", "lr", "weight_decay", "batch_size", "val_fraction", "seed")


def concept_of(stimulus_id: str) -> str:
    """The concept of a THINGS-style image id: everything before the last underscore."""
    text = str(stimulus_id)
    return text.rsplit("_", 1)[0] if "_" in text else text


def check_layout(layout: str, shape: tuple[int, int]) -> None:
    """``auto`` accepts any channels × times; a named layout must match exactly (one sentence otherwise)."""
    if layout == "auto":
        return
    if layout not in LAYOUT_SHAPES:
        raise WorkbenchError(f"EEG layout {layout!r} is neither of the two supported ones: 17x100 (17 posterior "
                             "channels × 100 samples, the official preprocessed release) or 63x250 (63 channels × "
                             "250 samples, NICE/ATM), or auto")
    channels, times = LAYOUT_SHAPES[layout]
    if shape[0] < channels:
        raise WorkbenchError(f"layout {layout} needs {channels} channels but the EEG has {shape[0]}: channels are "
                             "missing (decode from all channels, or pick the layout of this recording)")
    if shape != (channels, times):
        raise WorkbenchError(f"layout {layout} is {channels} channels × {times} samples but the EEG is "
                             f"{shape[0]} × {shape[1]}; pick the layout of this recording or auto")


class EEGContrastiveHead(BaseEstimator):
    """EEG trials (trials × channels × times, or flattened with ``input_shape``) → image embeddings."""

    direction = "decode"
    default_arch = "tsconv"

    def __init__(
        self,
        arch: Annotated[Literal["tsconv", "atms"] | None, Option(
            "tsconv (NICE) or atms (ATM-S: channel attention + TSConv); default: the registered head's")] = None,
        input_shape: Annotated[Sequence[int] | None, Option(
            "[channels, times] of flattened trials (decode cells set it)")] = None,
        layout: Annotated[str, Option("expected EEG layout: 17x100, 63x250 or auto")] = "auto",
        embedding_dim: Annotated[int | None, Option(
            "expected embedding width (CLIP ViT-L/14: 768); None accepts any")] = None,
        width: Annotated[int, Option("convolution filters")] = 40,
        depth: Annotated[int, Option("tsconv: temporal conv layers; atms: transformer layers")] = 1,
        dropout: Annotated[float, Option("dropout")] = 0.5,
        temporal_kernel: Annotated[int, Option("temporal kernel (samples; NICE: 25 at 250 Hz)")] = 25,
        pool: Annotated[int, Option("average pooling window (samples)")] = 51,
        pool_stride: Annotated[int, Option("average pooling stride (samples)")] = 5,
        d_model: Annotated[int, Option("atms: channel-token width")] = 64,
        heads: Annotated[int, Option("atms: attention heads")] = 4,
        init_temperature: Annotated[float, Option("initial InfoNCE temperature (learned)")] = 0.07,
        mse_weight: Annotated[float, Option("weight of an MSE term beside InfoNCE (ATM; 0: InfoNCE only)")] = 0.0,
        epochs: Annotated[int, Option("maximum training epochs")] = 200,
        patience: Annotated[int, Option("epochs without a better validation loss before stopping")] = 10,
        val_fraction: Annotated[float, Option("fraction of training concepts held out for early stopping")] = 0.1,
        batch_size: Annotated[int, Option("batch size (NICE: 1000)")] = 1000,
        lr: Annotated[float, Option("Adam learning rate (NICE: 2e-4)")] = 2e-4,
        weight_decay: Annotated[float, Option("Adam weight decay")] = 0.0,
        seed: Annotated[int, Option("seed (training is deterministic on CPU)")] = 0,
        device: Annotated[str | None, Option("torch device, e.g. cuda (default cpu)")] = None,
        n_threads: Annotated[int | None, Option(
            "torch CPU threads while training (default: 1 for small problems, else unchanged)")] = None,
        checkpoint: Annotated[str | None, Option(
            "run name: checkpoints go to the store under eeg-heads/<name>/<data digest> and a rerun resumes")] = None,
        store: Annotated[str | None, Option("store URL for checkpoints (default: $WORKBENCH_STORE)")] = None,
        checkpoint_every: Annotated[int, Option("epochs between checkpoints")] = 10,
    ) -> None:
        self.arch, self.input_shape, self.layout, self.embedding_dim = arch, input_shape, layout, embedding_dim
        self.width, self.depth, self.dropout = width, depth, dropout
        self.temporal_kernel, self.pool, self.pool_stride = temporal_kernel, pool, pool_stride
        self.d_model, self.heads, self.init_temperature, self.mse_weight = d_model, heads, init_temperature, mse_weight
        self.epochs, self.patience, self.val_fraction, self.batch_size = epochs, patience, val_fraction, batch_size
        self.lr, self.weight_decay, self.seed, self.device, self.n_threads = lr, weight_decay, seed, device, n_threads
        self.checkpoint, self.store, self.checkpoint_every = checkpoint, store, checkpoint_every

    # ---- inputs ----------------------------------------------------------------------------
    def _arch(self) -> str:
        arch = self.arch or self.default_arch
        if arch not in ("tsconv", "atms"):
            raise WorkbenchError(f"unknown EEG encoder arch {arch!r}; use tsconv or atms")
        return arch

    def _as_trials(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 2:
            shape = tuple(int(v) for v in self.input_shape) if self.input_shape is not None else (1, X.shape[1])
            if len(shape) != 2 or shape[0] * shape[1] != X.shape[1]:
                raise WorkbenchError(f"input_shape {list(shape)} does not match trials of {X.shape[1]} values; it "
                                     "must be [channels, times] with channels × times values per trial")
            X = X.reshape(len(X), *shape)
        if X.ndim != 3:
            raise WorkbenchError(f"EEG heads read trials × channels × times (or flattened with input_shape), got "
                                 f"shape {X.shape}")
        if not np.isfinite(X).all():
            raise WorkbenchError("the EEG holds NaN or infinite values; clean or drop those trials first")
        return X

    def _check(self, X: np.ndarray, Y: np.ndarray) -> None:
        check_layout(self.layout, (X.shape[1], X.shape[2]))
        if Y.ndim != 2 or len(Y) != len(X):
            raise WorkbenchError(f"X has {len(X)} trials but the embeddings have shape {Y.shape}; one row per trial")
        if self.embedding_dim is not None and Y.shape[1] != self.embedding_dim:
            raise WorkbenchError(f"the image embeddings are {Y.shape[1]} wide but this head expects "
                                 f"embedding_dim={self.embedding_dim} (CLIP ViT-L/14: 768); use the matching encoder "
                                 "layer or change embedding_dim")
        if not np.isfinite(Y).all():
            raise WorkbenchError("the image embeddings hold NaN or infinite values")
        if self.epochs < 1 or self.batch_size < 2 or not 0.0 <= self.val_fraction < 1.0:
            raise WorkbenchError("EEG heads need epochs ≥ 1, batch_size ≥ 2 and 0 ≤ val_fraction < 1")

    def _split(self, n: int, groups: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray, int]:
        """Training and validation rows: whole concepts are held out, never single trials of a concept."""
        concepts = np.asarray([concept_of(g) for g in groups]) if groups is not None else np.arange(n).astype(str)
        if len(concepts) != n:
            raise WorkbenchError(f"groups has {len(concepts)} ids for {n} trials")
        unique = np.unique(concepts)
        n_val = int(round(self.val_fraction * len(unique)))
        if self.val_fraction > 0 and n_val == 0 and len(unique) >= 2:
            n_val = 1
        held = np.random.default_rng([self.seed, 7]).permutation(unique)[:n_val]
        is_val = np.isin(concepts, held)
        return np.flatnonzero(~is_val), np.flatnonzero(is_val), n_val

    # ---- training --------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, groups: Sequence[str] | None = None) -> EEGContrastiveHead:
        """Train on trials X and embeddings y; ``groups`` (stimulus ids) define the held-out validation concepts."""
        import torch

        if np.ndim(X) != 3:
            X = validate_data(self, X, dtype=(np.float32, np.float64))
        trials = self._as_trials(X)
        if len(trials) < 2:
            raise WorkbenchError(f"EEG heads need at least 2 trials to train, got {len(trials)} sample")
        Y = check_array(y, dtype=np.float32, ensure_2d=False)
        Y = Y[:, None] if Y.ndim == 1 else Y
        self._check(trials, Y)
        self._ravel = np.asarray(y).ndim == 1
        self.n_features_in_ = int(np.prod(trials.shape[1:]))
        self.trial_shape_ = tuple(int(v) for v in trials.shape[1:])
        self.x_mean_, self.x_scale_ = trials.mean(0), trials.std(0) + 1e-6
        self.y_mean_, self.y_scale_ = Y.mean(0), Y.std(0) + 1e-6
        Xs = (trials - self.x_mean_) / self.x_scale_
        Ys = (Y - self.y_mean_) / self.y_scale_
        train_rows, val_rows, n_val = self._split(len(Xs), groups)
        if len(train_rows) < 2:
            raise WorkbenchError("EEG heads need at least 2 training trials outside the validation concepts")
        self.n_val_concepts_, self.n_val_trials_ = n_val, int(len(val_rows))
        threads = torch.get_num_threads()
        small = min(self.batch_size, len(Xs)) * Xs.shape[1] * Xs.shape[2] * max(self.width, Ys.shape[1]) < 2 ** 28
        torch.set_num_threads(int(self.n_threads) if self.n_threads else (1 if small else threads))
        try:
            self._train(torch, Xs, Ys, train_rows, val_rows)
        finally:
            torch.set_num_threads(threads)
        return self

    def _build(self, torch: Any, n_out: int) -> Any:
        from brain_workbench_plugins.eeg_zeroshot.models import EEGEncoder

        channels, times = self.trial_shape_
        return EEGEncoder(self._arch(), channels, times, n_out, self.width, self.depth, self.dropout,
                          self.temporal_kernel, self.pool, self.pool_stride, self.d_model, self.heads,
                          self.init_temperature)

    def _loss(self, torch: Any, model: Any, x: Any, y: Any) -> Any:
        from brain_workbench_plugins.eeg_zeroshot.models import info_nce

        pred = model(x)
        loss = info_nce(pred, y, model.logit_scale)
        if self.mse_weight:
            loss = loss + self.mse_weight * torch.mean((pred - y) ** 2)
        return loss

    def _val_loss(self, torch: Any, model: Any, Xv: Any, Yv: Any) -> float:
        model.eval()
        with torch.no_grad():
            losses = [float(self._loss(torch, model, Xv[s:s + self.batch_size], Yv[s:s + self.batch_size]))
                      for s in range(0, len(Xv), self.batch_size) if len(Xv[s:s + self.batch_size]) >= 2]
        return float(np.mean(losses)) if losses else float("nan")

    def _train(self, torch: Any, Xs: np.ndarray, Ys: np.ndarray, train_rows: np.ndarray, val_rows: np.ndarray) -> None:
        device = torch.device(self.device or "cpu")
        torch.manual_seed(self.seed)
        model = self._build(torch, Ys.shape[1]).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        Xt, Yt = torch.from_numpy(Xs[train_rows]).to(device), torch.from_numpy(Ys[train_rows]).to(device)
        Xv, Yv = torch.from_numpy(Xs[val_rows]).to(device), torch.from_numpy(Ys[val_rows]).to(device)
        state = {"epoch": 0, "best_val": float("inf"), "best_epoch": 0, "bad": 0, "history": []}
        best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        key = self._run_key(Xs, Ys, train_rows)
        store = self._open_store() if key else None
        self.resumed_from_ = 0
        if store is not None and key is not None:
            saved = _load_checkpoint(torch, store, key)
            if saved is not None:
                model.load_state_dict(saved["model"])
                opt.load_state_dict(saved["opt"])
                best = saved["best"]
                state = saved["state"]
                self.resumed_from_ = int(state["epoch"])
        n, bs = len(train_rows), min(self.batch_size, len(train_rows))
        started = time.time()
        while state["epoch"] < self.epochs and state["bad"] < self.patience:
            epoch = int(state["epoch"])
            torch.manual_seed(self.seed * 100_003 + epoch)
            order = torch.from_numpy(np.random.default_rng([self.seed, epoch]).permutation(n)).to(device)
            model.train()
            total = 0.0
            for start in range(0, n - bs + 1, bs):
                idx = order[start:start + bs]
                loss = self._loss(torch, model, Xt[idx], Yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    model.logit_scale.clamp_(0.0, float(np.log(100.0)))
                total += float(loss.detach()) * len(idx)
            val = self._val_loss(torch, model, Xv, Yv) if len(val_rows) >= 2 else total / n
            state["epoch"] = epoch + 1
            state["history"].append({"epoch": epoch + 1, "train_loss": round(total / max(1, n - n % bs), 6),
                                     "val_loss": round(val, 6), "temperature": round(float(
                                         (-model.logit_scale.detach()).exp()), 6)})
            if val < state["best_val"] - 1e-6:
                state["best_val"], state["best_epoch"], state["bad"] = val, epoch + 1, 0
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                state["bad"] += 1
            done = state["epoch"] >= self.epochs or state["bad"] >= self.patience
            if store is not None and key is not None and (done or state["epoch"] % max(1, self.checkpoint_every) == 0):
                _save_checkpoint(torch, store, key, model, opt, best, state)
        model.load_state_dict(best)
        model.eval()
        self.model_ = model.cpu()
        self.history_ = list(state["history"])
        self.best_epoch_, self.stopped_epoch_ = int(state["best_epoch"]), int(state["epoch"])
        self.checkpoint_key_ = key
        self.train_time_s_ = round(time.time() - started, 3)

    # ---- checkpoints -----------------------------------------------------------------------
    def _run_key(self, Xs: np.ndarray, Ys: np.ndarray, train_rows: np.ndarray) -> str | None:
        if not self.checkpoint:
            return None
        from brain_workbench.sdk.data import check_key, safe_name

        data = digest(Xs.shape, Ys.shape, train_rows.tolist(), _array_digest(Xs), _array_digest(Ys),
                      {f: getattr(self, f) for f in RUN_FIELDS}, self._arch())
        return check_key(f"{PREFIX}/{safe_name(self.checkpoint)}/{data}")

    def _open_store(self) -> Any:
        from brain_workbench.sdk.data import Store, open_store

        return Store(self.store) if self.store else open_store()

    # ---- prediction ------------------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        """Predicted embeddings (in the embeddings' own units), one row per trial."""
        import torch

        check_is_fitted(self, "model_")
        if np.ndim(X) != 3:
            X = validate_data(self, X, dtype=(np.float32, np.float64), reset=False)
        trials = self._as_trials(X)
        if tuple(trials.shape[1:]) != self.trial_shape_:
            raise WorkbenchError(f"the head was fitted on trials of {list(self.trial_shape_)} (channels × times), "
                                 f"not {list(trials.shape[1:])}")
        Xs = (trials - self.x_mean_) / self.x_scale_
        with torch.no_grad():
            out = np.concatenate([self.model_(torch.from_numpy(Xs[s:s + 4096])).numpy()
                                  for s in range(0, len(Xs), 4096)]) if len(Xs) else np.zeros((0, len(self.y_mean_)))
        pred = out.astype(np.float64) * self.y_scale_ + self.y_mean_
        return pred[:, 0] if getattr(self, "_ravel", False) else pred

    def score_per_unit(self, X: Any, y: Any) -> np.ndarray:
        """Pearson r between predicted and true embeddings, one value per embedding dimension."""
        from brain_workbench.sdk.numerics import pearson_per_output

        return pearson_per_output(np.asarray(y), self.predict(X))

    def score(self, X: Any, y: Any) -> float:
        """Mean over dimensions of ``score_per_unit``: one number, for scikit-learn's model selection."""
        return float(np.mean(self.score_per_unit(X, y)))


class TSConvHead(EEGContrastiveHead):
    """NICE's TSConv EEG encoder trained contrastively against image embeddings."""

    default_arch = "tsconv"


class ATMSHead(EEGContrastiveHead):
    """ATM-S: channel-wise attention, then TSConv, trained contrastively against image embeddings."""

    default_arch = "atms"


def _array_digest(x: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]


def _save_checkpoint(torch: Any, store: Any, key: str, model: Any, opt: Any, best: dict, state: dict) -> str:
    from brain_workbench.sdk.data import ArraySpec

    buffer = io.BytesIO()
    torch.save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "opt": opt.state_dict(),
                "best": {k: v.detach().cpu() for k, v in best.items()}}, buffer)
    blob = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
    path = f"{key}/epoch-{int(state['epoch']):05d}"
    with store.writer(path, {"state": ArraySpec(blob.shape, "uint8", blocked=False)}, kind="eeg-head",
                      attrs={"eeg_head": state}) as writer:
        writer.put("state", blob)
        writer.finish(config={"eeg_head": key, "epoch": int(state["epoch"])})
    for info in list(store.iter_entries(key)):
        if info.path != path and info.kind == "eeg-head":
            store.delete(info.path)
    return path


def _load_checkpoint(torch: Any, store: Any, key: str) -> dict | None:
    """The latest complete checkpoint of run ``key`` (weights-only unpickling), or None."""
    found = sorted(info.path for info in store.iter_entries(key) if info.complete and info.kind == "eeg-head")
    if not found:
        return None
    reader = store.open(found[-1])
    saved = torch.load(io.BytesIO(np.asarray(reader["state"]).tobytes()), weights_only=True)
    return {**saved, "state": dict(reader.attrs["eeg_head"])}
