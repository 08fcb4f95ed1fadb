"""``workbench extract -l stage99`` is refused before the dataset's stimuli are loaded or a store is opened
(it printed a "0/720" progress bar first; issue 23, item 5)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.types import WorkbenchError
from fixtures_encoders import ColourEncoder


def test_unknown_layer_is_refused_before_any_work(tmp_path: Path, monkeypatch) -> None:
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    built = []
    monkeypatch.setattr(wb, "dataset", lambda *a, **k: built.append(a) or (_ for _ in ()).throw(AssertionError))
    store = tmp_path / "s.zarr"
    result = CliRunner().invoke(app, ["extract", "colour-test", "--dataset", "demo", "-l", "stage99",
                                      "--store", str(store)])
    assert isinstance(result.exception, WorkbenchError) and "unknown layer 'stage99'" in str(result.exception)
    assert not built and not store.exists() and "0/" not in result.output
