"""Seeded, resumable gradient training shared by the multi-subject models, checkpointed in the store.

Every epoch draws its batches from ``numpy.random.default_rng([seed, epoch, i])`` and reseeds torch
(dropout) from ``(seed, epoch)``, so an epoch's updates depend only on the state at its start.
A checkpoint holds every parameter, the AdamW moments and step count, the fixed arrays of the
model's closed-form stage (standardisation, initial maps) and the loss history, as the store entry
``shared-models/<name>/epoch-<N>``; a run that finds checkpoints of the same data and options
resumes from the latest, so a killed run ends identical to an uninterrupted one (on the CPU; CUDA
kernels are not bitwise reproducible).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brain_workbench.sdk import WorkbenchError
from brain_workbench.sdk.data import ArraySpec, Store, check_key, open_store, safe_name

PREFIX = "shared-models"
CHECKPOINT = re.compile(r"^epoch-(\d{8})$")
KIND = "shared-model"
Progress = Callable[[int, float], None]


def resolve_device(device: str | None) -> Any:
    """The torch device to train on; asking for CUDA where there is none is an error, not a fallback."""
    import torch

    dev = torch.device(device or "cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise WorkbenchError(f"device={device!r} was requested but CUDA is not available here; use device='cpu'")
    return dev


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads (None: leave torch's setting), restoring it afterwards."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def as_store(store: Store | str | None) -> Store | None:
    if store is None or isinstance(store, Store):
        return store
    return open_store(store)


def run_key(name: str) -> str:
    return check_key(f"{PREFIX}/{safe_name(name)}")


def checkpoints(store: Store, key: str) -> list[tuple[int, str]]:
    """Complete checkpoints of run ``key`` as (epoch, entry path), oldest first."""
    found = []
    for info in store.iter_entries(key):
        match = CHECKPOINT.match(info.path.rsplit("/", 1)[-1])
        if match and info.complete and info.kind == KIND:
            found.append((int(match.group(1)), info.path))
    return sorted(found)


@dataclass
class Checkpoint:
    """What a checkpoint restores: the epoch reached, every saved array and the run's info."""

    epoch: int
    arrays: dict[str, np.ndarray]
    info: dict[str, Any]
    path: str


def latest_checkpoint(store: Store, key: str) -> Checkpoint | None:
    found = checkpoints(store, key)
    if not found:
        return None
    epoch, path = found[-1]
    reader = store.open(path)
    info = dict(reader.attrs.get("shared_model") or {})
    return Checkpoint(epoch=epoch, arrays={n: reader[n] for n in reader.names()}, info=info, path=path)


@dataclass
class Trainer:
    """AdamW over named torch parameters for a fixed number of epochs, with store checkpoints.

    ``identity`` (data digest and options) must match a checkpoint's for it to be resumed;
    ``fixed`` arrays (the closed-form stage) are saved with every checkpoint and handed back.
    """

    params: dict[str, Any]
    lr: float
    weight_decay: float
    seed: int
    identity: dict[str, Any]
    store: Store | None = None
    key: str | None = None
    checkpoint_every: int = 10
    keep: int = 2
    history: list[float] = field(default_factory=list)
    resumed_from: int = 0

    def __post_init__(self) -> None:
        import torch

        self.names = list(self.params)
        self.opt = torch.optim.AdamW([self.params[n] for n in self.names], lr=self.lr,
                                     weight_decay=self.weight_decay)
        if self.checkpoint_every < 1 or self.keep < 1:
            raise WorkbenchError("checkpoint_every and keep must be at least 1")

    # ---- state -----------------------------------------------------------------------------
    def _arrays(self, epoch: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, name in enumerate(self.names):
            p = self.params[name]
            out[f"param_{i:03d}"] = p.detach().cpu().numpy().astype(np.float32)
            state = self.opt.state.get(p, {})
            zeros = np.zeros(tuple(p.shape), dtype=np.float32)
            out[f"adam_m_{i:03d}"] = state["exp_avg"].detach().cpu().numpy() if state else zeros
            out[f"adam_v_{i:03d}"] = state["exp_avg_sq"].detach().cpu().numpy() if state else zeros
        step = self.opt.state.get(self.params[self.names[0]], {}).get("step")
        out["adam_step"] = np.array([0.0 if step is None else float(step)], dtype=np.float64)
        return out

    def restore(self, ckpt: Checkpoint) -> None:
        import torch

        saved = ckpt.info.get("identity")
        if saved != self.identity:
            raise WorkbenchError(f"{self.key} holds a run with other data or options; pass another name= "
                                 "(or delete the run's entries with `workbench store gc`/`store.delete`)")
        with torch.no_grad():
            for i, name in enumerate(self.names):
                self.params[name].copy_(torch.from_numpy(np.asarray(ckpt.arrays[f"param_{i:03d}"])))
        step = float(ckpt.arrays["adam_step"][0])
        if step > 0:
            state = self.opt.state_dict()
            device = self.params[self.names[0]].device
            state["state"] = {
                i: {"step": torch.tensor(step),
                    "exp_avg": torch.from_numpy(np.array(ckpt.arrays[f"adam_m_{i:03d}"])).to(device),
                    "exp_avg_sq": torch.from_numpy(np.array(ckpt.arrays[f"adam_v_{i:03d}"])).to(device)}
                for i in range(len(self.names))}
            self.opt.load_state_dict(state)
        self.history = [float(v) for v in ckpt.info.get("history", [])]
        self.resumed_from = ckpt.epoch

    def save(self, epoch: int, fixed: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> str | None:
        if self.store is None or self.key is None:
            return None
        path = f"{self.key}/epoch-{epoch:08d}"
        arrays = {**{f"fixed_{k}": np.asarray(v) for k, v in fixed.items()}, **self._arrays(epoch)}
        specs = {n: ArraySpec(tuple(v.shape), "str" if v.dtype.kind in "OUS" else str(v.dtype), blocked=False)
                 for n, v in arrays.items()}
        attrs = {"shared_model": {**dict(info), "identity": self.identity, "epoch": epoch, "history": self.history,
                                  "param_names": self.names}}
        with self.store.writer(path, specs, kind=KIND, attrs=attrs) as writer:
            for name, value in arrays.items():
                writer.put(name, value)
            writer.finish(config=self.identity, seed=self.seed)
        for _, old in checkpoints(self.store, self.key)[:-self.keep]:
            self.store.delete(old)
        return path

    # ---- loop ------------------------------------------------------------------------------
    def run(self, epochs: int, step: Callable[[int], float], fixed: Mapping[str, np.ndarray],
            info: Mapping[str, Any], progress: Progress | None = None) -> None:
        """Train epochs ``resumed_from + 1 … epochs``; ``step(epoch)`` does one epoch and returns its loss."""
        import torch

        start = self.resumed_from
        for epoch in range(start + 1, epochs + 1):
            devices = [self.params[self.names[0]].device] if self.params[self.names[0]].is_cuda else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(int(self.seed) * 1_000_003 + epoch)
                loss = float(step(epoch))
            if not math.isfinite(loss):
                raise WorkbenchError(f"training diverged at epoch {epoch} (loss {loss}); lower lr")
            self.history.append(loss)
            if epoch % self.checkpoint_every == 0 or epoch == epochs:
                self.save(epoch, fixed, info)
            if progress is not None:
                progress(epoch, loss)


def batches(n: int, batch_size: int, seed: int, epoch: int, stream: int) -> list[np.ndarray]:
    """The row batches of one epoch for one data stream (a subject), reproducible from (seed, epoch)."""
    order = np.random.default_rng([int(seed), int(epoch), int(stream)]).permutation(n)
    size = min(batch_size, n)
    return [order[i:i + size] for i in range(0, n - size + 1, size)] or [order]


def info_nce(pred: Any, target: Any, temperature: float) -> Any:
    """Symmetric InfoNCE (CLIP loss) between L2-normalised predictions and targets of one batch."""
    import torch
    import torch.nn.functional as F

    logits = F.normalize(pred, dim=1) @ F.normalize(target, dim=1).T / temperature
    labels = torch.arange(len(pred), device=pred.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
