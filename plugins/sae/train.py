"""Training TopK, BatchTopK and Matryoshka SAEs on features cached in the store, with resumable checkpoints.

* TopK (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"): keep the k largest
  pre-activations per sample; unit-norm decoder rows (the gradient component parallel to each row
  is removed before every step); tied initialisation; the AuxK loss (coefficient 1/32) lets the
  ``aux_k`` most active dead latents reconstruct the residual.
* BatchTopK (Bussmann et al. 2024): keep the ``k × batch`` largest activations of the whole batch;
  at inference a single threshold (a running average of the smallest kept activation) replaces
  the batch, so the exported SAE is a JumpReLU SAE with that threshold for every latent.
* Matryoshka (Bussmann et al. 2025, "Learning multi-level features with Matryoshka SAEs"): BatchTopK
  latents whose nested prefixes (``prefixes``, default d_sae/8, /4, /2, 1) must each reconstruct the
  input; the loss sums the prefix reconstruction errors.

Inputs are scaled by one dataset-wide factor so that their mean squared norm is ``d_in``
(SAELens' ``expected_average_only_in``); the factor is folded back into the weights whenever an
SAE leaves the trainer, so exported weights act on the raw features. Batches are drawn with a
generator seeded by (seed, step), and every checkpoint holds the weights, the Adam moments, the
dead-latent counters and the metric history, so a resumed run reproduces an uninterrupted one.

Metrics, evaluated on a held-out ``eval_fraction`` of the stimuli: explained variance
(1 − SSE / total sum of squares about the mean), L0 (mean active latents per stimulus, with the
inference activation) and the dead fraction (latents that fired on none of the last
``dead_samples`` training samples). Checkpoints are store entries ``sae/<name>/step-<step>``; the
last ``keep`` are kept.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from brain_workbench.sdk import WorkbenchError, digest
from brain_workbench.sdk.data import ArraySpec, Store, check_key, load_features, safe_name
from brain_workbench_plugins.sae.model import SAEConfig, SparseAutoencoder, from_arrays, save_saelens

KINDS = ("topk", "batchtopk", "matryoshka")
PREFIX = "sae"
CHECKPOINT = re.compile(r"^step-(\d{8})$")
PARAMS = ("W_enc", "b_enc", "W_dec", "b_dec")
BOOKKEEPING = ("steps", "checkpoint_every", "log_every", "keep")
Progress = Callable[[int, dict[str, float]], None]


@dataclass
class TrainConfig:
    """Hyper-parameters of one SAE training run; all but the bookkeeping ones go into its store key."""

    kind: str = "topk"
    d_sae: int | None = None
    expansion: int = 8
    k: int = 32
    steps: int = 2000
    batch_size: int = 1024
    lr: float | None = None
    seed: int = 0
    aux_k: int | None = None
    aux_coef: float = 1 / 32
    dead_samples: int | None = None
    prefixes: list[int] | None = None
    threshold_lr: float = 0.01
    eval_fraction: float = 0.1
    checkpoint_every: int = 500
    log_every: int = 100
    keep: int = 2

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise WorkbenchError(f"unknown SAE kind {self.kind!r}; use one of {', '.join(KINDS)}")
        for name in ("k", "steps", "batch_size", "expansion", "checkpoint_every", "log_every", "keep"):
            if int(getattr(self, name)) < 1:
                raise WorkbenchError(f"SAE training option {name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise WorkbenchError(f"eval_fraction must lie in [0, 1), got {self.eval_fraction}")

    def identity(self) -> dict[str, Any]:
        """The options that define the SAE being trained (not how long or how often it is saved)."""
        return {k: v for k, v in asdict(self).items() if k not in BOOKKEEPING}

    def resolved(self, d_in: int) -> dict[str, Any]:
        """Concrete values of the options left to defaults, for a given input width."""
        d_sae = int(self.d_sae or self.expansion * d_in)
        if self.k > d_sae:
            raise WorkbenchError(f"k={self.k} exceeds the number of latents d_sae={d_sae}")
        prefixes = sorted({int(p) for p in (self.prefixes or [d_sae // 8, d_sae // 4, d_sae // 2])} | {d_sae})
        prefixes = [p for p in prefixes if p >= max(1, self.k) or p == d_sae]
        if any(p > d_sae for p in prefixes):
            raise WorkbenchError(f"Matryoshka prefixes {prefixes} must not exceed d_sae={d_sae}")
        return {
            "d_sae": d_sae,
            "lr": float(self.lr or min(1e-2, 2e-4 / math.sqrt(d_sae / 2 ** 14))),
            "aux_k": int(self.aux_k or max(1, min(d_in // 2, d_sae))),
            "prefixes": prefixes,
        }


@dataclass
class TrainResult:
    """Where a run's checkpoints are, how far it got and how good the SAE is."""

    key: str
    step: int
    metrics: dict[str, float]
    history: list[dict[str, float]]
    checkpoint: str
    resumed_from: int = 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def sae_key(features_path: str, config: TrainConfig, name: str | None = None) -> str:
    """Store key of a run: ``sae/<name>``, by default named after the kind and a hash of data and options."""
    if name:
        return check_key(f"{PREFIX}/{safe_name(name)}")
    layer = safe_name(features_path.rstrip("/").rsplit("/", 1)[-1])
    return check_key(f"{PREFIX}/{config.kind}-{layer}-{digest(features_path, config.identity())}")


def checkpoints(store: Store, key: str) -> list[tuple[int, str]]:
    """Complete checkpoints of a run as (step, entry path), oldest first."""
    key = _as_key(key)
    found = []
    for info in store.iter_entries(key):
        match = CHECKPOINT.match(info.path.rsplit("/", 1)[-1])
        if match and info.complete and info.kind == "sae":
            found.append((int(match.group(1)), info.path))
    return sorted(found)


def _as_key(key: str) -> str:
    key = key.strip("/")
    if CHECKPOINT.match(key.rsplit("/", 1)[-1]):
        key = key.rsplit("/", 1)[0]
    return check_key(key if key.startswith(f"{PREFIX}/") else f"{PREFIX}/{key}")


def load_checkpoint(store: Store, key: str) -> tuple[SparseAutoencoder, dict[str, Any]]:
    """The SAE of the latest checkpoint of run ``key`` (or of an explicit ``.../step-N`` entry), in raw feature space."""
    explicit = CHECKPOINT.match(key.strip("/").rsplit("/", 1)[-1])
    if explicit:
        path = check_key(key if key.startswith(f"{PREFIX}/") else f"{PREFIX}/{key}")
    else:
        found = checkpoints(store, key)
        if not found:
            raise WorkbenchError(f"store {store.url} has no SAE checkpoints under {_as_key(key)!r}; "
                                 "train one with `workbench sae train` or list them with `workbench sae list`")
        path = found[-1][1]
    reader = store.open(path)
    info = dict(reader.attrs.get("sae") or {})
    arrays = {name: reader[name] for name in reader.names()}
    return _inference_sae(info, arrays), {**info, "checkpoint": path}


def _inference_sae(info: dict[str, Any], arrays: dict[str, np.ndarray]) -> SparseAutoencoder:
    """Fold the input scale into the trained weights so the SAE reads raw features."""
    scale = float(info["scale"])
    kind = info["config"]["kind"]
    activation = "topk" if kind == "topk" else "jumprelu"
    metadata = {"hook_name": info.get("layer"), "model_name": info.get("encoder"),
                "workbench": {k: info.get(k) for k in ("features", "encoder", "fingerprint", "layer", "step", "config")}}
    cfg = SAEConfig(d_in=int(info["d_in"]), d_sae=int(info["d_sae"]), activation=activation,
                    k=int(info["config"]["k"]) if kind == "topk" else None, metadata=metadata)
    weights = {"W_enc": arrays["W_enc"] * scale, "b_enc": arrays["b_enc"], "W_dec": arrays["W_dec"] / scale,
               "b_dec": arrays["b_dec"] / scale}
    if activation == "jumprelu":
        weights["threshold"] = np.full(cfg.d_sae, float(arrays["threshold"][0]), dtype=np.float32)
    return from_arrays(cfg, weights)


def export_saelens(store: Store, key: str, dest: str) -> str:
    """Write the latest checkpoint of run ``key`` as an SAELens folder at ``dest``."""
    sae, _ = load_checkpoint(store, key)
    return str(save_saelens(sae, dest))


class _Run:
    """Mutable training state: parameters, optimiser, counters and history."""

    def __init__(self, cfg: TrainConfig, resolved: dict[str, Any], d_in: int, dead_samples: int) -> None:
        self.cfg, self.d_in, self.dead_samples = cfg, d_in, dead_samples
        self.d_sae, self.lr, self.aux_k, self.prefixes = (resolved[k] for k in ("d_sae", "lr", "aux_k", "prefixes"))
        self.params = {name: torch.nn.Parameter(torch.zeros(shape)) for name, shape in
                       (("W_enc", (d_in, self.d_sae)), ("b_enc", (self.d_sae,)), ("W_dec", (self.d_sae, d_in)),
                        ("b_dec", (d_in,)))}
        self.opt = torch.optim.Adam(list(self.params.values()), lr=self.lr, betas=(0.9, 0.999), eps=6.25e-10)
        self.since_fired = torch.zeros(self.d_sae, dtype=torch.int64)
        self.threshold = torch.zeros(1, dtype=torch.float64)
        self.history: list[dict[str, float]] = []
        self.step = 0

    def init_weights(self, x_train: torch.Tensor) -> None:
        generator = torch.Generator().manual_seed(self.cfg.seed)
        W_dec = torch.randn(self.d_sae, self.d_in, generator=generator)
        W_dec /= W_dec.norm(dim=-1, keepdim=True)
        with torch.no_grad():
            self.params["W_dec"].copy_(W_dec)
            self.params["W_enc"].copy_(W_dec.T)
            self.params["b_dec"].copy_(x_train.mean(0))

    def activate(self, pre: torch.Tensor, inference: bool = False) -> torch.Tensor:
        if self.cfg.kind == "topk":
            top = torch.topk(pre, self.cfg.k, dim=-1)
            return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
        if inference:
            return torch.relu(pre) * (pre > float(self.threshold))
        acts = torch.relu(pre).flatten()
        keep = min(acts.numel(), self.cfg.k * pre.shape[0])
        top = torch.topk(acts, keep)
        return torch.zeros_like(acts).scatter(-1, top.indices, top.values).reshape(pre.shape)

    def forward(self, x: torch.Tensor, inference: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self.params
        pre = (x - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
        z = self.activate(pre, inference)
        return pre, z, z @ p["W_dec"] + p["b_dec"]

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        p = self.params
        pre, z, x_hat = self.forward(x)
        mse = (x_hat - x).pow(2).sum(-1).mean()
        loss = mse
        if self.cfg.kind == "matryoshka":
            for width in self.prefixes[:-1]:
                inner = z[:, :width] @ p["W_dec"][:width] + p["b_dec"]
                loss = loss + (inner - x).pow(2).sum(-1).mean()
        dead = self.since_fired >= self.dead_samples
        n_dead = int(dead.sum())
        aux = torch.zeros(())
        if n_dead:
            k_aux = min(self.aux_k, n_dead)
            residual = (x - x_hat).detach()
            masked = torch.where(dead[None, :], pre, torch.full_like(pre, -torch.inf))
            top = torch.topk(masked, k_aux, dim=-1)
            z_aux = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
            aux = (z_aux @ p["W_dec"] - residual).pow(2).sum(-1).mean()
            loss = loss + self.cfg.aux_coef * min(n_dead / self.aux_k, 1.0) * aux
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            W, g = p["W_dec"], p["W_dec"].grad
            g -= (g * W).sum(-1, keepdim=True) * W
        self.opt.step()
        with torch.no_grad():
            p["W_dec"] /= p["W_dec"].norm(dim=-1, keepdim=True).clamp_min(1e-12)
            fired = (z > 0).any(0)
            self.since_fired += x.shape[0]
            self.since_fired[fired] = 0
            if self.cfg.kind != "topk":
                positive = z[z > 0]
                if positive.numel():
                    low = positive.min().double()
                    first = float(self.threshold) == 0.0
                    self.threshold = low.reshape(1) if first else \
                        (1 - self.cfg.threshold_lr) * self.threshold + self.cfg.threshold_lr * low
        return {"loss": float(loss.detach()), "mse": float(mse.detach()), "aux": float(aux.detach())}

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, chunk: int = 4096) -> dict[str, float]:
        err = total = l0 = 0.0
        mean = x.mean(0)
        for start in range(0, x.shape[0], chunk):
            xb = x[start:start + chunk]
            _, z, x_hat = self.forward(xb, inference=True)
            err += float((x_hat - xb).pow(2).sum())
            total += float((xb - mean).pow(2).sum())
            l0 += float((z > 0).sum())
        dead = float((self.since_fired >= self.dead_samples).float().mean())
        return {"explained_variance": 1.0 - err / max(total, 1e-12), "l0": l0 / x.shape[0], "dead_fraction": dead}


def _arrays(run: _Run) -> dict[str, np.ndarray]:
    out = {name: p.detach().numpy().astype(np.float32) for name, p in run.params.items()}
    out["threshold"] = run.threshold.numpy().astype(np.float64)
    out["since_fired"] = run.since_fired.numpy().astype(np.int64)
    for name in PARAMS:
        state = run.opt.state.get(run.params[name], {})
        out[f"adam_m_{name}"] = (state["exp_avg"] if state else torch.zeros_like(run.params[name])).numpy().astype(np.float32)
        out[f"adam_v_{name}"] = (state["exp_avg_sq"] if state else torch.zeros_like(run.params[name])).numpy().astype(np.float32)
    return out


def _restore(run: _Run, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
    with torch.no_grad():
        for name in PARAMS:
            run.params[name].copy_(torch.from_numpy(np.asarray(arrays[name], dtype=np.float32)))
    run.threshold = torch.from_numpy(np.asarray(arrays["threshold"], dtype=np.float64)).reshape(1)
    run.since_fired = torch.from_numpy(np.asarray(arrays["since_fired"], dtype=np.int64)).clone()
    run.step = int(info["step"])
    run.history = list(info.get("history", []))
    if run.step:
        state = run.opt.state_dict()
        state["state"] = {i: {"step": torch.tensor(float(run.step)),
                              "exp_avg": torch.from_numpy(np.asarray(arrays[f"adam_m_{name}"], dtype=np.float32)).clone(),
                              "exp_avg_sq": torch.from_numpy(np.asarray(arrays[f"adam_v_{name}"], dtype=np.float32)).clone()}
                          for i, name in enumerate(PARAMS)}
        run.opt.load_state_dict(state)


def _save(store: Store, key: str, run: _Run, info: dict[str, Any]) -> str:
    path = f"{key}/step-{run.step:08d}"
    arrays = _arrays(run)
    specs = {name: ArraySpec(tuple(value.shape), str(value.dtype), blocked=False) for name, value in arrays.items()}
    attrs = {"sae": {**info, "step": run.step, "history": run.history}}
    with store.writer(path, specs, kind="sae", attrs=attrs) as writer:
        for name, value in arrays.items():
            writer.put(name, value)
        writer.finish(config={"sae": info["config"], "step": run.step})
    for _, old in checkpoints(store, key)[:-run.cfg.keep]:
        store.delete(old)
    return path


@contextlib.contextmanager
def _threads_for(flops_per_step: float) -> Iterator[None]:
    """One intra-op thread for small problems, where thread start-up costs more than the matmuls."""
    before = torch.get_num_threads()
    if flops_per_step < 2 ** 27 and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_sae(store: Store, features_path: str, config: TrainConfig | None = None, name: str | None = None,
              progress: Progress | None = None) -> TrainResult:
    """Train (or resume training) an SAE on the cached feature entry ``features_path`` (read into memory).

    Returns the run's key, final metrics and history; checkpoints go to ``sae/<name>/step-N``.
    """
    cfg = config or TrainConfig()
    x_probe = store.open(features_path).array("data")
    n, d_in = x_probe.shape
    d_sae = cfg.resolved(d_in)["d_sae"]
    with _threads_for(6.0 * min(cfg.batch_size, n) * d_in * d_sae):
        return _train(store, features_path, cfg, name, progress)


def _train(store: Store, features_path: str, cfg: TrainConfig, name: str | None,
           progress: Progress | None) -> TrainResult:
    entry = store.open(features_path)
    x_all = load_features(store, features_path).astype(np.float32, copy=False)
    n, d_in = x_all.shape
    if n < 2:
        raise WorkbenchError(f"{features_path} holds {n} rows; an SAE needs at least 2 stimuli")
    resolved = cfg.resolved(d_in)
    key = sae_key(features_path, cfg, name)
    order = np.random.default_rng([cfg.seed, 7]).permutation(n)
    n_eval = int(round(cfg.eval_fraction * n)) if n >= 20 else 0
    eval_rows, train_rows = np.sort(order[:n_eval]), np.sort(order[n_eval:])
    x_train = torch.from_numpy(x_all[train_rows])
    x_eval = torch.from_numpy(x_all[eval_rows]) if n_eval else x_train

    info = {"features": features_path, "encoder": entry.attrs.get("encoder"), "fingerprint": entry.attrs.get("fingerprint"),
            "layer": entry.attrs.get("layer"), "modality": entry.attrs.get("modality"), "d_in": d_in,
            "d_sae": resolved["d_sae"], "config": cfg.identity(), "resolved": resolved,
            "n_train": len(train_rows), "n_eval": n_eval}
    run = _Run(cfg, resolved, d_in, int(cfg.dead_samples or max(10 * len(train_rows), 10 * cfg.batch_size)))
    found = checkpoints(store, key)
    resumed_from = 0
    if found:
        reader = store.open(found[-1][1])
        saved = dict(reader.attrs.get("sae") or {})
        if saved.get("config") != info["config"] or saved.get("features") != features_path:
            raise WorkbenchError(f"{key} holds an SAE trained with other options; pass another --name")
        scale = float(saved["scale"])
        info["wall_time_s"] = float(saved.get("wall_time_s", 0.0))
        _restore(run, {n_: reader[n_] for n_ in reader.names()}, saved)
        resumed_from = run.step
    else:
        scale = float(math.sqrt(d_in / max(float((x_train ** 2).sum(-1).mean()), 1e-12)))
    info["scale"] = scale
    x_train_s, x_eval_s = x_train * scale, x_eval * scale
    if not found:
        run.init_weights(x_train_s)
        run.history.append({"step": 0, **run.evaluate(x_eval_s)})

    batch = min(cfg.batch_size, len(train_rows))
    checkpoint = found[-1][1] if found else ""
    started = time.time()
    while run.step < cfg.steps:
        index = np.random.default_rng([cfg.seed, run.step]).integers(0, len(train_rows), size=batch)
        losses = run.train_step(x_train_s[torch.from_numpy(index)])
        run.step += 1
        if not all(math.isfinite(v) for v in losses.values()):
            raise WorkbenchError(f"SAE training diverged at step {run.step} (loss {losses['loss']}); lower --lr")
        if run.step % cfg.log_every == 0 or run.step == cfg.steps:
            record = {"step": run.step, **losses, **run.evaluate(x_eval_s)}
            run.history.append(record)
            if progress is not None:
                progress(run.step, record)
        if run.step % cfg.checkpoint_every == 0 or run.step == cfg.steps:
            info["wall_time_s"] = round(info.get("wall_time_s", 0.0) + time.time() - started, 3)
            started = time.time()
            checkpoint = _save(store, key, run, info)
    if not checkpoint:
        checkpoint = _save(store, key, run, info)
    metrics = {k: v for k, v in run.history[-1].items() if k != "step"} if run.history else {}
    return TrainResult(key=key, step=run.step, metrics=metrics, history=run.history, checkpoint=checkpoint,
                       resumed_from=resumed_from)
