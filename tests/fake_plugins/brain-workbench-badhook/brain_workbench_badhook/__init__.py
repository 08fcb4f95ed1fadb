"""A plugin that registers a dataset and then fails in its encoder hook."""

from __future__ import annotations

from brain_workbench.sdk import hookimpl


@hookimpl
def register_datasets(register) -> None:
    register("badhook-data", dict, description="registered before the failure; must be rolled back")


@hookimpl
def register_encoders(register) -> None:
    raise RuntimeError("cannot reach the model zoo [offline]")
