"""Notebook use (issue 23, item 9): a sweep's results by name, and ``dir(wb)`` listing only the API."""

from __future__ import annotations

import pytest

import brain_workbench as wb
from brain_workbench.sweep import Sweep, load_results, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import WorkbenchError
from test_validation import TwoLayers, config


def test_load_results_finds_the_sweeps_store_by_name(tmp_path) -> None:
    wb.register("two-layers", TwoLayers, kind="encoder", replace=True)
    sweep = Sweep(config_from_dict(config(tmp_path)))
    sweep.run()
    frame = load_results("checked")
    expected = results_table(sweep.store, "checked")
    assert frame.equals(expected) and {"V1", "all"} <= set(frame["roi"])
    assert load_results("checked", store=str(tmp_path / "store.zarr")).equals(expected)
    with pytest.raises(WorkbenchError, match="no sweep 'never-ran'"):
        load_results("never-ran")


def test_dir_lists_the_api_only() -> None:
    names = dir(wb)
    assert {"dataset", "encoder", "head", "register", "WorkbenchError"} <= set(names)
    assert not {"Any", "Callable", "annotations", "get_registry"} & set(names)
