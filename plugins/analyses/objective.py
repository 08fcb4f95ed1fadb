"""A fitted encoding cell as a torch objective: an encoder's differentiable features through the cell's readout
(weights, intercept and feature standardisation folded into one linear map) averaged over each target — an ROI,
a list of units or a contrast. Preferred-image ranking and synthesis ascend or read it; imports torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from brain_workbench.sdk import WorkbenchError, differentiable_path
from brain_workbench.sdk.data import rgb_image
from brain_workbench_plugins.analyses.readout import LinearReadout, objective_weights


def target_name(target: Any) -> str:
    """How tables and figures name a target: the ROI, ``A-B`` for a contrast, ``units[...]`` for a list."""
    if isinstance(target, str):
        return target
    if isinstance(target, dict):
        return f"{target['roi']}-{target['minus']}"
    picks = [int(u) for u in target]
    return f"units[{','.join(map(str, picks[:4]))}{',…' if len(picks) > 4 else ''}]"


def linear_targets(readout: LinearReadout, targets: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Each target's mean predicted response as one linear map of raw features: ``W`` (d × T), ``b`` (T,)."""
    if not targets:
        raise WorkbenchError("an objective needs at least one target (an ROI, a list of units or a contrast)")
    pairs = [objective_weights(readout, target) for target in targets]
    return np.stack([w for w, _ in pairs], axis=1), np.array([b for _, b in pairs])


class ReadoutObjective(nn.Module):
    """Images (B, 3, H, W) in [0, 1] → each target's predicted response (B, T), differentiable in the images."""

    def __init__(self, features: nn.Module, weights: np.ndarray, bias: np.ndarray, names: Sequence[str]) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("weight", torch.as_tensor(np.asarray(weights), dtype=torch.float32))
        self.register_buffer("bias", torch.as_tensor(np.asarray(bias), dtype=torch.float32))
        self.names = list(names)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.features(images)
        if x.shape[1] != self.weight.shape[0]:
            raise WorkbenchError(f"the encoder's features are {x.shape[1]} wide but the readout was fitted on "
                                 f"{self.weight.shape[0]}: build the objective from the cell's own encoder and layer")
        return x.float() @ self.weight.to(x.device) + self.bias.to(x.device)


def readout_objective(encoder: Any, layer: str, readout: LinearReadout, targets: Sequence[Any]) -> ReadoutObjective:
    """The objective of ``targets`` through ``encoder``'s differentiable ``layer`` (refused when it has none)."""
    weights, bias = linear_targets(readout, targets)
    return ReadoutObjective(differentiable_path(encoder, layer), weights, bias, [target_name(t) for t in targets])


def images_to_tensor(images: Sequence[Any] | np.ndarray) -> torch.Tensor:
    """PIL images or a uint8 array (n, h, w, 3) as a float batch (n, 3, h, w) in [0, 1]."""
    if isinstance(images, np.ndarray):
        array = images
    else:
        array = np.stack([np.asarray(rgb_image(im)) for im in images])
    if array.ndim != 4 or array.shape[-1] != 3:
        raise WorkbenchError(f"images must be (n, h, w, 3); got shape {array.shape}")
    scale = 255.0 if array.dtype == np.uint8 else 1.0
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float() / scale


def tensor_to_uint8(images: torch.Tensor) -> np.ndarray:
    """A float batch (n, 3, h, w) in [0, 1] as uint8 images (n, h, w, 3), as the image store keeps them."""
    array = images.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    return np.round(array * 255).astype(np.uint8)
