"""A plugin that registers an encoder name that brain-workbench-fakeplugin already uses."""

from __future__ import annotations

from brain_workbench.sdk import hookimpl


class _Nothing:
    """A stand-in: the duplicate is refused before anything is built."""


@hookimpl
def register_encoders(register) -> None:
    register("fake-encoder", _Nothing, description="a clashing encoder name")


@hookimpl
def register_metrics(register) -> None:
    register("dup-metric", _Nothing, description="an innocent metric of the clashing plugin")
