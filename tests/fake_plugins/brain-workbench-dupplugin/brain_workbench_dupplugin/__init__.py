"""A plugin that registers an encoder name that brain-workbench-fakeplugin already uses."""

from __future__ import annotations

from brain_workbench.sdk import hookimpl


class _NothingEncoder:
    """A stand-in: the duplicate is refused before anything is built."""


class _NothingMetric:
    """A stand-in for the innocent metric (a class carries one plugin name)."""


@hookimpl
def register_encoders(register) -> None:
    register("fake-encoder", _NothingEncoder, description="a clashing encoder name")


@hookimpl
def register_metrics(register) -> None:
    register("dup-metric", _NothingMetric, description="an innocent metric of the clashing plugin")
