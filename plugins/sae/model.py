"""The sparse autoencoder used at inference time, and its SAELens on-disk format.

A folder in SAELens format holds ``cfg.json`` and ``sae_weights.safetensors`` with ``W_enc``
(d_in × d_sae), ``b_enc``, ``W_dec`` (d_sae × d_in), ``b_dec`` and, for JumpReLU SAEs,
``threshold``. Both the SAELens 6 config (``architecture``: standard | topk | jumprelu, ``k``) and
the older one (``activation_fn_str``: relu | topk, ``activation_fn_kwargs.k``) are read. Gated SAEs
and other activations are refused with a clear message rather than approximated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from brain_workbench.sdk import WorkbenchError

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
ACTIVATIONS = ("relu", "topk", "jumprelu")
NORMALIZATIONS = ("none", "constant_norm_rescale", "layer_norm", "expected_average_only_in")


@dataclass
class SAEConfig:
    """What the encode/decode maths needs; ``metadata`` carries provenance (base layer, training)."""

    d_in: int
    d_sae: int
    activation: str = "topk"
    k: int | None = None
    apply_b_dec_to_input: bool = True
    normalize_activations: str = "none"
    norm_scaling_factor: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise WorkbenchError(f"SAE activation {self.activation!r} is not supported; use one of {ACTIVATIONS}")
        if self.activation == "topk" and (self.k is None or not 0 < int(self.k) <= self.d_sae):
            raise WorkbenchError(f"a TopK SAE needs 0 < k <= d_sae ({self.d_sae}), got k={self.k}")
        if self.normalize_activations not in NORMALIZATIONS:
            raise WorkbenchError(f"SAE normalize_activations={self.normalize_activations!r} is not supported; "
                                 f"use one of {NORMALIZATIONS}")
        if self.normalize_activations == "expected_average_only_in" and not self.norm_scaling_factor:
            raise WorkbenchError("this SAE normalises inputs by a dataset-wide factor (expected_average_only_in) "
                                 "that its folder does not record; fold it into the weights (SAELens: "
                                 "fold_activation_norm_scaling_factor) or add norm_scaling_factor to cfg.json")

    def summary(self) -> dict[str, Any]:
        """The fields that change the numbers (for fingerprints)."""
        return {k: v for k, v in asdict(self).items() if k != "metadata"}


class SparseAutoencoder(nn.Module):
    """``latents = act((x' - b_dec) W_enc + b_enc)``, ``x̂ = latents W_dec + b_dec`` with x' the normalised input."""

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.W_enc = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_sae))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, cfg.d_in))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        self.register_buffer("threshold", torch.zeros(cfg.d_sae))

    def _normalize(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        mode = self.cfg.normalize_activations
        if mode == "constant_norm_rescale":
            coeff = (self.cfg.d_in ** 0.5) / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            return x * coeff, ("scale", coeff)
        if mode == "layer_norm":
            mu = x.mean(dim=-1, keepdim=True)
            centred = x - mu
            std = centred.std(dim=-1, keepdim=True)
            return centred / (std + 1e-5), ("ln", mu, std)
        if mode == "expected_average_only_in":
            return x * float(self.cfg.norm_scaling_factor or 1.0), ("scale", float(self.cfg.norm_scaling_factor or 1.0))
        return x, None

    @staticmethod
    def _denormalize(x_hat: torch.Tensor, state: Any) -> torch.Tensor:
        if state is None:
            return x_hat
        if state[0] == "scale":
            return x_hat / state[1]
        return x_hat * state[2] + state[1]

    def pre_activation(self, x_normalized: torch.Tensor) -> torch.Tensor:
        if self.cfg.apply_b_dec_to_input:
            x_normalized = x_normalized - self.b_dec
        return x_normalized @ self.W_enc + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        if self.cfg.activation == "relu":
            return torch.relu(pre)
        if self.cfg.activation == "jumprelu":
            return torch.relu(pre) * (pre > self.threshold)
        top = torch.topk(pre, int(self.cfg.k), dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent activations (n, d_sae) of inputs (n, d_in)."""
        x_normalized, _ = self._normalize(x)
        return self.activate(self.pre_activation(x_normalized))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents and the reconstruction of ``x`` in its own (unnormalised) space."""
        x_normalized, state = self._normalize(x)
        latents = self.activate(self.pre_activation(x_normalized))
        return latents, self._denormalize(latents @ self.W_dec + self.b_dec, state)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {name: p.detach().cpu().numpy().astype(np.float32) for name, p in
               (("W_enc", self.W_enc), ("b_enc", self.b_enc), ("W_dec", self.W_dec), ("b_dec", self.b_dec))}
        if self.cfg.activation == "jumprelu":
            out["threshold"] = self.threshold.detach().cpu().numpy().astype(np.float32)
        return out


def from_arrays(cfg: SAEConfig, arrays: Mapping[str, Any]) -> SparseAutoencoder:
    """Build an SAE from weight arrays, checking every shape against ``cfg``."""
    expected = {"W_enc": (cfg.d_in, cfg.d_sae), "b_enc": (cfg.d_sae,), "W_dec": (cfg.d_sae, cfg.d_in),
                "b_dec": (cfg.d_in,)}
    if cfg.activation == "jumprelu":
        expected["threshold"] = (cfg.d_sae,)
    sae = SparseAutoencoder(cfg)
    with torch.no_grad():
        for name, shape in expected.items():
            if name not in arrays:
                raise WorkbenchError(f"SAE weights lack {name!r} (have {', '.join(sorted(arrays))})")
            value = torch.as_tensor(np.asarray(arrays[name], dtype=np.float32) if not isinstance(arrays[name], torch.Tensor)
                                    else arrays[name].float())
            if tuple(value.shape) != shape:
                raise WorkbenchError(f"SAE weight {name} has shape {tuple(value.shape)}, expected {shape} "
                                     f"for d_in={cfg.d_in}, d_sae={cfg.d_sae}")
            getattr(sae, name).copy_(value)
    return sae.requires_grad_(False).eval()


def config_from_saelens(raw: Mapping[str, Any], weight_names: set[str]) -> SAEConfig:
    """Read a SAELens ``cfg.json`` (version 6 or older) into an :class:`SAEConfig`."""
    try:
        d_in, d_sae = int(raw["d_in"]), int(raw["d_sae"])
    except (KeyError, TypeError, ValueError):
        raise WorkbenchError("SAELens cfg.json must give integer d_in and d_sae") from None
    architecture = str(raw.get("architecture") or "standard").lower()
    activation_fn = str(raw.get("activation_fn_str") or raw.get("activation_fn") or "").lower()
    kwargs = raw.get("activation_fn_kwargs") or {}
    k = raw.get("k", kwargs.get("k") if isinstance(kwargs, dict) else None)
    if architecture in ("gated",):
        raise WorkbenchError("gated SAEs are not supported by the sae encoder; use a standard, TopK or JumpReLU SAE")
    if architecture == "jumprelu" or "threshold" in weight_names:
        activation = "jumprelu"
    elif architecture in ("topk", "batchtopk") or activation_fn == "topk":
        activation = "topk"
    elif architecture == "standard" and activation_fn in ("", "relu"):
        activation = "relu"
    else:
        raise WorkbenchError(f"SAELens architecture {architecture!r} with activation {activation_fn!r} is not supported; "
                             "supported: standard (relu), topk, jumprelu")
    metadata = dict(raw.get("metadata") or raw.get("meta") or {})
    for key in ("hook_name", "model_name", "hook_layer"):
        if raw.get(key) is not None:
            metadata.setdefault(key, raw[key])
    if isinstance(raw.get("workbench"), dict):
        metadata["workbench"] = raw["workbench"]
    return SAEConfig(
        d_in=d_in, d_sae=d_sae, activation=activation, k=None if k is None else int(k),
        apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", True)),
        normalize_activations=str(raw.get("normalize_activations") or "none"),
        norm_scaling_factor=raw.get("norm_scaling_factor"), metadata=metadata,
    )


def load_saelens(folder: str | Path) -> SparseAutoencoder:
    """Load an SAE saved in SAELens format (``cfg.json`` + ``sae_weights.safetensors``)."""
    from safetensors.torch import load_file

    folder = Path(folder).expanduser()
    cfg_path, weights_path = folder / CFG_FILE, folder / WEIGHTS_FILE
    if not cfg_path.is_file() or not weights_path.is_file():
        raise WorkbenchError(f"{folder} is not an SAELens folder: it needs {CFG_FILE} and {WEIGHTS_FILE}")
    raw = json.loads(cfg_path.read_text())
    weights = load_file(str(weights_path))
    if raw.get("finetuning_scaling_factor") and "scaling_factor" in weights:
        raise WorkbenchError("SAEs with a finetuning scaling factor are not supported; fold it into W_dec first")
    cfg = config_from_saelens(raw, set(weights))
    cfg.metadata.setdefault("source", str(folder))
    return from_arrays(cfg, weights)


def save_saelens(sae: SparseAutoencoder, folder: str | Path, threshold_architecture: str = "jumprelu") -> Path:
    """Write ``sae`` as an SAELens folder readable by SAELens 6 (and by older readers for relu/topk)."""
    from safetensors.torch import save_file

    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    cfg = sae.cfg
    architecture = {"relu": "standard", "topk": "topk", "jumprelu": threshold_architecture}[cfg.activation]
    meta = {k: v for k, v in cfg.metadata.items() if k != "workbench"}
    raw: dict[str, Any] = {
        "architecture": architecture, "d_in": cfg.d_in, "d_sae": cfg.d_sae, "dtype": "float32", "device": "cpu",
        "apply_b_dec_to_input": cfg.apply_b_dec_to_input, "normalize_activations": cfg.normalize_activations,
        "reshape_activations": "none", "metadata": meta,
        "hook_name": meta.get("hook_name"), "model_name": meta.get("model_name"),
    }
    if cfg.activation == "topk":
        raw.update(k=int(cfg.k), activation_fn_str="topk", activation_fn_kwargs={"k": int(cfg.k)})
    elif cfg.activation == "relu":
        raw.update(activation_fn_str="relu", activation_fn_kwargs={})
    if cfg.norm_scaling_factor:
        raw["norm_scaling_factor"] = cfg.norm_scaling_factor
    if "workbench" in cfg.metadata:
        raw["workbench"] = cfg.metadata["workbench"]
    tensors = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in sae.arrays().items()}
    save_file(tensors, str(folder / WEIGHTS_FILE))
    (folder / CFG_FILE).write_text(json.dumps(raw, indent=2, default=str))
    return folder


def random_sae(d_in: int, d_sae: int, k: int, seed: int = 0) -> SparseAutoencoder:
    """An untrained TopK SAE with unit-norm decoder rows and a tied encoder (a baseline, reproducible)."""
    generator = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(d_sae, d_in, generator=generator)
    W_dec /= W_dec.norm(dim=-1, keepdim=True)
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, activation="topk", k=k, metadata={"source": f"random-seed{seed}"})
    return from_arrays(cfg, {"W_enc": W_dec.T.contiguous(), "b_enc": torch.zeros(d_sae), "W_dec": W_dec,
                             "b_dec": torch.zeros(d_in)})
