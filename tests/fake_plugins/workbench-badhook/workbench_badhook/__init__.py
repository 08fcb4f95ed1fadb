"""A plugin that registers a dataset and then fails in its encoder hook."""

from __future__ import annotations

import workbench


@workbench.hookimpl
def register_datasets(register) -> None:
    register("badhook-data", dict, description="registered before the failure; must be rolled back")


@workbench.hookimpl
def register_encoders(register) -> None:
    raise RuntimeError("cannot reach the model zoo [offline]")
