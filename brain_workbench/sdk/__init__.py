"""The plugin SDK: the contracts, base class, hook marker, option marker and errors every plugin needs.

Plugins (the built-ins included) import from this package only, so the core behind it can move::

    from brain_workbench.sdk import EncoderBase, LayerInfo, Option, WorkbenchError, hookimpl
    from brain_workbench.sdk.torch import resolve_device        # torch helpers (imports torch)
    from brain_workbench.sdk.data import open_store, local_root  # store, images, downloads (imports zarr)
    from brain_workbench.sdk.numerics import ridge_cv             # ridge, scores, stats, alignment (scipy)

This package imports neither torch, zarr nor scipy, so registering a plugin stays cheap; the helper
submodules do, so plugins import them where they are used. The helpers' old flat names here still
work, with a ``DeprecationWarning`` naming their submodule.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from brain_workbench.plugin.bases import EncoderBase
from brain_workbench.plugin.hooks import hookimpl
from brain_workbench.plugin.options import Option
from brain_workbench.types import (
    BrainRDMs,
    Codec,
    Dataset,
    DifferentiableEncoder,
    Encoder,
    Generator,
    Head,
    ImageMetric,
    LayerInfo,
    Metric,
    Recording,
    StimulusSet,
    Units,
    WorkbenchError,
    as_str_array,
    dataset_provides,
    differentiable_path,
    digest,
    noise_ceiling_from_ncsnr,
    resolve_layers,
)

if TYPE_CHECKING:
    from brain_workbench.sdk.data import *  # noqa: F403
    from brain_workbench.sdk.numerics import *  # noqa: F403
    from brain_workbench.sdk.torch import *  # noqa: F403

_MOVED = ("numerics", "data", "torch")
"""Submodules whose names the package once re-exported flat (lightest first: torch is imported last)."""


def build_encoder(name: str, **options: Any) -> Encoder:
    """Build another registered encoder by name (how a wrapping plugin, e.g. an SAE, reaches its base)."""
    import brain_workbench

    return brain_workbench.encoder(name, **options)


def build_head(name: str, **options: Any) -> Head:
    """Build another registered head by name (how a multi-subject model fits its ordinary per-space head)."""
    import brain_workbench

    return brain_workbench.head(name, **options)


__all__ = [
    "BrainRDMs", "Codec", "Dataset", "EncoderBase", "Encoder", "Generator", "Head", "ImageMetric", "LayerInfo",
    "Metric", "Option", "Recording", "StimulusSet", "Units", "WorkbenchError", "as_str_array", "build_encoder",
    "build_head", "dataset_provides", "digest", "hookimpl", "noise_ceiling_from_ncsnr", "resolve_layers",
    "DifferentiableEncoder", "differentiable_path",
]


if not TYPE_CHECKING:  # a module __getattr__ would make every unknown name Any to a type checker

    def __getattr__(name: str) -> Any:
        for sub in _MOVED:
            module = importlib.import_module(f"brain_workbench.sdk.{sub}")
            if name in module.__all__:
                warnings.warn(f"brain_workbench.sdk.{name} moved to brain_workbench.sdk.{sub}.{name}",
                              DeprecationWarning, stacklevel=2)
                return getattr(module, name)
        raise AttributeError(f"brain_workbench.sdk has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, *_MOVED])
