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
    from typer.testing import CliRunner

    from brain_workbench.cli import app

    shown = CliRunner().invoke(app, ["results", "show", "checked", "--wide"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "best layer per ROI" in shown.output and "SEM" in shown.output


def test_dir_lists_the_api_only() -> None:
    names = dir(wb)
    assert {"dataset", "encoder", "head", "register", "WorkbenchError"} <= set(names)
    assert not {"Any", "Callable", "annotations", "get_registry"} & set(names)


def test_store_ls_after_a_run_lists_that_runs_store(tmp_path, monkeypatch) -> None:
    """``store ls`` without --store right after a sweep (the demo) lists the sweep's store, not stores/default.zarr."""
    import json

    from typer.testing import CliRunner

    from brain_workbench.cli import app

    wb.register("two-layers", TwoLayers, kind="encoder", replace=True)
    Sweep(config_from_dict(config(tmp_path, name="listed"))).run()
    monkeypatch.delenv("WORKBENCH_STORE", raising=False)
    result = CliRunner().invoke(app, ["store", "ls", "--json"])
    assert result.exit_code == 0, result.output
    entries = [e["path"] for e in json.loads(result.stdout)]
    assert any(p.startswith("results/listed/") for p in entries) and any(p.startswith("features/") for p in entries)
