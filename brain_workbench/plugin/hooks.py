"""Pluggy hook specifications: the whole surface a plugin implements.

A plugin module defines any of these functions decorated with ``@brain_workbench.hookimpl`` and is
listed under the ``workbench`` entry-point group of its distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "brain_workbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[..., None]


@hookspec
def register_datasets(register: Register) -> None:
    """Call ``register(name, factory, **card)`` for each dataset this plugin provides."""


@hookspec
def register_encoders(register: Register) -> None:
    """Call ``register(name, factory, **card)`` for each encoder this plugin provides."""


@hookspec
def register_heads(register: Register) -> None:
    """Call ``register(name, factory, **card)`` for each head (fit/predict/score estimator)."""


@hookspec
def register_metrics(register: Register) -> None:
    """Call ``register(name, factory, **card)`` for each metric (no fitting)."""


@hookspec
def register_codecs(register: Register) -> None:
    """Call ``register(name, factory, **card)`` for each image codec (images <-> latents)."""


@hookspec
def register_generators(register: Register) -> None:
    """Call ``register(name, factory, **card)`` for each image generator (embeddings -> images)."""


@hookspec
def register_image_metrics(register: Register) -> None:
    """Call ``register(name, factory, **card)`` for each reconstruction metric (images vs images)."""


@hookspec
def register_analyses(register: Register) -> None:
    """Call ``register(name, factory, **card)`` for each analysis (plans cells, computes them, presents them)."""


@hookspec
def register_commands(app: Any) -> None:
    """Add sub-commands to the ``workbench`` CLI; ``app`` is the root ``typer.Typer``."""


KIND_HOOKS = {
    "dataset": "register_datasets",
    "encoder": "register_encoders",
    "head": "register_heads",
    "metric": "register_metrics",
    "codec": "register_codecs",
    "generator": "register_generators",
    "image-metric": "register_image_metrics",
    "analysis": "register_analyses",
}
