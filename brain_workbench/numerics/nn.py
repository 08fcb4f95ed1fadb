"""Torch helpers shared by encoder plugins: device and precision, forward-hook capture, pooling, digests.

Encoders import this module lazily (inside their classes) so that registering a plugin never
imports torch. Nothing here names a model: helpers take modules and tensors, so every encoder
captures several layers from one forward pass, pools tokens and fingerprints weights the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from brain_workbench.types import WorkbenchError

PRECISIONS = ("fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")


def check_option(owner: str, option: str, value: Any, choices: Sequence[Any]) -> Any:
    """Refuse an option value outside ``choices`` with one clear sentence."""
    if value not in choices:
        raise WorkbenchError(
            f"{owner}: option {option}={value!r} is not supported; choose one of "
            f"{', '.join(repr(c) for c in choices)}"
        )
    return value


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn "auto" into cuda, then mps, then cpu; refuse a device this machine lacks."""
    if isinstance(device, torch.device):
        return device
    name = str(device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise WorkbenchError(f"device {name!r} was asked for but torch sees no CUDA GPU; use device='cpu'")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise WorkbenchError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}") from exc


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass: fp32 runs as is, fp16/bf16 use ``torch.autocast``."""
    check_option("encoder", "precision", precision, PRECISIONS)
    if precision == "fp32":
        return contextlib.nullcontext()
    if device.type == "cpu" and precision == "fp16":
        raise WorkbenchError("precision='fp16' needs a GPU; use 'bf16' or 'fp32' on the CPU")
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block (random weight init) under a fixed torch seed without disturbing the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def weights_digest(weights: nn.Module | Mapping[str, torch.Tensor], length: int = 32) -> str:
    """SHA-256 over every state-dict tensor (name, dtype, shape, bytes), in sorted key order.

    Equal for a module and for the checkpoint it was loaded from, whatever the device.
    """
    state = weights.state_dict() if isinstance(weights, nn.Module) else weights
    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor):
            continue
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{str(t.dtype).removeprefix('torch.')}|{tuple(t.shape)}".encode())
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.view(torch.int16)
        elif t.dtype == torch.bool:
            t = t.to(torch.uint8)
        if t.numel():
            h.update(t.reshape(-1).numpy().data)
        h.update(b"\x00")
    return h.hexdigest()[:length]


class _StopForward(Exception):
    """Raised by a hook once every wanted activation is captured, to skip the rest of the model."""


@contextlib.contextmanager
def capture(
    outputs: Mapping[str, nn.Module] | None = None,
    inputs: Mapping[str, nn.Module] | None = None,
    stop: bool = False,
    detach: bool = True,
) -> Iterator[dict[str, torch.Tensor]]:
    """Record module outputs (forward hooks) and inputs (pre-hooks) under names during one forward pass.

    With ``stop=True`` the forward pass is cut short once every tap has fired; the exception that
    does so is swallowed by this context, so only use it when the model's return value is not needed.
    A tuple output or input is reduced to its first element. ``detach=False`` keeps the autograd graph (a
    differentiable encoder path).
    """
    taps = {**{k: ("out", m) for k, m in (outputs or {}).items()}, **{k: ("in", m) for k, m in (inputs or {}).items()}}
    got: dict[str, torch.Tensor] = {}
    handles = []

    def record(name: str, value: Any) -> None:
        if isinstance(value, (tuple, list)):
            value = value[0]
        if name not in got:
            got[name] = value.detach() if detach and isinstance(value, torch.Tensor) else value
        if stop and len(got) == len(taps):
            raise _StopForward

    for name, (kind, module) in taps.items():
        if kind == "out":
            handles.append(module.register_forward_hook(lambda _m, _i, out, _n=name: record(_n, out)))
        else:
            handles.append(module.register_forward_pre_hook(lambda _m, args, _n=name: record(_n, args)))
    try:
        yield got
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the token axis of ``x`` (n, t, d) where ``mask`` (n, t) is true; padding (even NaN) is ignored."""
    mask = mask.to(torch.bool)
    summed = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(1)
    count = mask.sum(1, keepdim=True).clamp(min=1).to(summed.dtype)
    return summed / count


def last_index(mask: torch.Tensor) -> torch.Tensor:
    """Position of the last true entry of each row of ``mask`` (n, t): works for left or right padding."""
    mask = mask.to(torch.bool)
    t = mask.shape[1]
    return (t - 1) - mask.flip(1).to(torch.int64).argmax(1)


def first_index(mask: torch.Tensor) -> torch.Tensor:
    """Position of the first true entry of each row of ``mask`` (n, t)."""
    return mask.to(torch.bool).to(torch.int64).argmax(1)


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick one token per row: ``x`` (n, t, d), ``index`` (n,) → (n, d)."""
    return x[torch.arange(x.shape[0], device=x.device), index.to(x.device)]


def pool_tokens(x: torch.Tensor, mode: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pool a token sequence (n, t, d) to (n, d): "first", "last" or "mean" over real (mask) tokens."""
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if mode == "mean":
        return masked_mean(x, mask)
    if mode == "first":
        return gather_tokens(x, first_index(mask))
    if mode == "last":
        return gather_tokens(x, last_index(mask))
    raise WorkbenchError(f"unknown token pooling {mode!r}; use 'first', 'last' or 'mean'")


SPATIAL_POOLS = ("mean", "max", "grid2")


def pool_spatial(x: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """Pool a feature map (n, c, h, w) to (n, d): channel means, channel maxima, or a flattened 2×2 mean grid."""
    if x.ndim == 2:
        return x
    if x.ndim != 4:
        raise WorkbenchError(f"spatial pooling expects (n, c, h, w) maps, got shape {tuple(x.shape)}")
    if mode == "mean":
        return x.mean(dim=(2, 3))
    if mode == "max":
        return x.amax(dim=(2, 3))
    if mode == "grid2":
        return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)
    raise WorkbenchError(f"unknown spatial pooling {mode!r}; use one of {', '.join(SPATIAL_POOLS)}")


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """A float32, C-contiguous NumPy copy of a tensor on any device."""
    return np.ascontiguousarray(x.detach().to(device="cpu", dtype=torch.float32).numpy())


def stack_images(batch: Sequence[Any], transform: Any) -> torch.Tensor:
    """Apply an image transform to each PIL image (as 8-bit RGB, see ``rgb_image``) and stack the results into
    one batch tensor."""
    from brain_workbench.store.images import rgb_image

    tensors = []
    for image in batch:
        if getattr(image, "mode", "RGB") != "RGB":
            image = rgb_image(image)
        tensors.append(transform(image))
    return torch.stack(tensors)


def _rgb_conversion(step: Any) -> bool:
    """A PIL-only conversion to RGB (open_clip's ``_convert_to_rgb`` or ``MaybeConvertMode("RGB")``)."""
    return getattr(step, "__name__", "") == "_convert_to_rgb" or (
        type(step).__name__ == "MaybeConvertMode" and getattr(step, "mode", None) == "RGB")


def tensor_transform(transform: Any) -> nn.Module:
    """The tensor steps of a PIL image transform (a torchvision ``Compose``): resizes, crops and normalisations
    applied to float images (B, 3, H, W) in [0, 1], differentiably; ``ToTensor`` and PIL-only steps are dropped,
    any other step is refused so that the tensor path never silently differs from ``encode``."""
    import importlib

    T = importlib.import_module("torchvision.transforms")
    steps = list(getattr(transform, "transforms", [transform]))
    kept: list[nn.Module] = []
    for step in steps:
        if isinstance(step, (T.Resize, T.CenterCrop, T.Normalize)):
            kept.append(step)
        elif isinstance(step, (T.ToTensor, T.PILToTensor)) or _rgb_conversion(step):
            continue
        else:
            raise WorkbenchError(f"image transform step {type(step).__name__} has no tensor equivalent here; the "
                                 "differentiable path supports Resize, CenterCrop, ToTensor and Normalize")
    return nn.Sequential(*kept)


class TappedFeatures(nn.Module):
    """A differentiable encoder path: tensor preprocessing, one forward pass cut at a tapped module (its output,
    or its input with ``tap_input``), then pooling; the model's weights are frozen so gradients reach the image."""

    def __init__(self, model: nn.Module, preprocess: nn.Module, tap: nn.Module, pool: Any, *,
                 tap_input: bool = False, device: torch.device | None = None, precision: str = "fp32") -> None:
        super().__init__()
        self.model, self.preprocess, self.pool = model.requires_grad_(False), preprocess, pool
        self._tap, self.tap_input = tap, tap_input
        self.device = device or torch.device("cpu")
        self.precision = precision

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise WorkbenchError(f"a differentiable encoder takes images (B, 3, H, W) in [0, 1]; got shape "
                                 f"{tuple(images.shape)}")
        x = self.preprocess(images.to(self.device, torch.float32))
        taps = {"layer": self._tap}
        with autocast(self.device, self.precision), capture(outputs=None if self.tap_input else taps,
                                                            inputs=taps if self.tap_input else None,
                                                            stop=True, detach=False) as acts:
            self.model(x)
        return self.pool(acts["layer"]).float()


__all__ = [
    "DEVICES", "PRECISIONS", "SPATIAL_POOLS", "TappedFeatures", "autocast", "capture", "check_option", "first_index",
    "gather_tokens", "last_index", "masked_mean", "pool_spatial", "pool_tokens", "resolve_device", "seeded",
    "stack_images", "tensor_transform", "to_numpy", "weights_digest",
]
