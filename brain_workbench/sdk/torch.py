"""Torch helpers for encoders, codecs and generators: devices, precision, hooks, pooling, weights digests.

Importing this module imports torch, so plugins import it inside the methods that need it.
"""

from __future__ import annotations

from brain_workbench.numerics.nn import (
    DEVICES,
    PRECISIONS,
    SPATIAL_POOLS,
    TappedFeatures,
    autocast,
    capture,
    check_option,
    gather_tokens,
    masked_mean,
    pool_spatial,
    pool_tokens,
    resolve_device,
    seeded,
    stack_images,
    tensor_transform,
    to_numpy,
    weights_digest,
)

__all__ = [
    "DEVICES", "PRECISIONS", "SPATIAL_POOLS", "autocast", "capture", "check_option", "gather_tokens", "masked_mean",
    "pool_spatial", "pool_tokens", "resolve_device", "seeded", "stack_images", "to_numpy", "weights_digest",
    "TappedFeatures", "tensor_transform",
]
