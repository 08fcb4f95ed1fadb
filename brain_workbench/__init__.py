"""brain-workbench: compare any model representation with any brain recording.

The Python API that notebooks and the CLI share::

    import brain_workbench as wb
    ds = wb.dataset("demo")
    enc = wb.encoder("clip", model="ViT-B-32")
    head = wb.head("ridge")
    m = wb.metric("cka")
    wb.register("my-encoder", factory, kind="encoder")
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from typing import Any

from brain_workbench.plugin.hooks import hookimpl
from brain_workbench.plugin.legacy import install_old_name
from brain_workbench.plugin.registry import get_registry, reset_registry
from brain_workbench.types import (
    Dataset,
    Encoder,
    Head,
    LayerInfo,
    Metric,
    Recording,
    StimulusSet,
    Units,
    WorkbenchError,
)

install_old_name()  # the previous release's ``import workbench``, with a DeprecationWarning, for one release

try:
    __version__ = _version("brain-workbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"


def dataset(name: str, **options: Any) -> Dataset:
    """Build the dataset plugin ``name`` with its options (e.g. ``local_path=...``)."""
    return get_registry().create("dataset", name, **options)


def encoder(name: str, **options: Any) -> Encoder:
    """Build the encoder plugin ``name`` (e.g. ``wb.encoder("clip", model="ViT-B-32")``)."""
    return get_registry().create("encoder", name, **options)


def head(name: str, **options: Any) -> Head:
    """Build the head ``name``: a scikit-learn estimator; ``score`` is the mean per-unit score, ``score_per_unit`` each."""
    return get_registry().create("head", name, **options)


def metric(name: str, **options: Any) -> Metric:
    """Build the metric ``name`` (RSA, CKA, ...)."""
    return get_registry().create("metric", name, **options)


def codec(name: str, **options: Any) -> Any:
    """Build the image codec ``name`` (images ↔ latents, e.g. ``wb.codec("taef2", image_size=64)``)."""
    return get_registry().create("codec", name, **options)


def generator(name: str, **options: Any) -> Any:
    """Build the image generator ``name`` (decoded embeddings → images through a local diffusers pipeline)."""
    return get_registry().create("generator", name, **options)


def image_metric(name: str, **options: Any) -> Any:
    """Build the reconstruction metric ``name`` (PixCorr, SSIM, two-way identification, ...)."""
    return get_registry().create("image-metric", name, **options)


def register(name: str, factory: Callable[..., Any], kind: str, replace: bool = False, **card: Any):
    """Register a plugin at runtime, e.g. an encoder defined in a notebook cell."""
    return get_registry().register(name, factory, kind=kind, replace=replace, **card)


__all__ = [
    "Dataset", "Encoder", "Head", "LayerInfo", "Metric", "Recording", "StimulusSet", "Units",
    "WorkbenchError", "codec", "dataset", "encoder", "generator", "head", "hookimpl", "image_metric", "metric",
    "register",
    "reset_registry", "__version__",
]


def __dir__() -> list[str]:
    """``dir(wb)`` lists the API, not the module's imports (``Any``, ``Callable``, ``annotations``)."""
    return sorted(__all__)
