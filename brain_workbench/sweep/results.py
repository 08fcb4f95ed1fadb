"""A finished sweep's results by name, for notebooks: the store is found as the CLI finds it."""

from __future__ import annotations

from typing import Any

from brain_workbench.store import open_store
from brain_workbench.sweep.index import find_store
from brain_workbench.sweep.tables import results_table
from brain_workbench.types import WorkbenchError


def load_results(name: str, store: str | None = None, folds: bool = False) -> Any:
    """The results table (pandas, one row per cell × ROI) of sweep ``name``: from ``store``, else the store
    ``workbench results show`` would read (this project's config or latest run, or the one store recorded)."""
    if store is None:
        found = find_store(name)
        if found is None:
            raise WorkbenchError(f"no sweep {name!r} is recorded from here or elsewhere; run it first "
                                 "(workbench sweep run) or pass store=")
        store = found.store
    return results_table(open_store(store, mode="r"), name, folds=folds)
