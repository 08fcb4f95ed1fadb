"""Validation in seconds (issue 23, item 5): every config problem in one message with "did you mean" for
top-level keys, unknown layers refused before any recording or feature is touched, ``sweep run --dry-run``
printing the plan, and ``workbench --help`` without torch."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.store import open_store
from brain_workbench.sweep import Sweep, load_config
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import LayerInfo, WorkbenchError

ENCODED = {"calls": 0}


class TwoLayers:
    """An image encoder that counts its encode calls (a dry run or a refused config must make none)."""

    name = "two-layers"
    modality = "image"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("early", 0.0), LayerInfo("late", 1.0)]

    def encode(self, batch, layers):
        import numpy as np

        ENCODED["calls"] += 1
        arrays = [np.asarray(im.convert("RGB").resize((4, 4)), dtype=np.float32).ravel() / 255 for im in batch]
        return {layer: np.stack(arrays) for layer in layers}

    def fingerprint(self) -> str:
        return "two-layers-1"


@pytest.fixture(autouse=True)
def _encoder():
    wb.register("two-layers", TwoLayers, kind="encoder", replace=True)
    ENCODED["calls"] = 0


def config(tmp_path: Path, **changes) -> dict:
    data = {"name": "checked", "store": str(tmp_path / "store.zarr"),
            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 30, "n_test": 10}},
            "encoders": [{"name": "two-layers", "layers": ["early", "late"], "batch_size": 16}],
            "heads": [{"name": "ridge", "options": {"cv": 3}}]}
    data.update(changes)
    return data


def untouched(store_url: str) -> bool:
    """No recording, feature matrix or result was written to the store."""
    if not Path(store_url).exists():
        return True
    listing = [p.relative_to(store_url).parts[0] for p in Path(store_url).rglob("zarr.json")]
    return not {"responses", "features", "results"} & set(listing)


def test_every_problem_is_listed_at_once_before_any_work(tmp_path) -> None:
    data = config(tmp_path, encodrs=[], permutatons=3,
                  encoders=[{"name": "two-layers", "layers": ["early", "stage99"]}])
    started = time.perf_counter()
    with pytest.raises(WorkbenchError) as caught:
        Sweep(config_from_dict(data)).run()
    message = str(caught.value)
    assert time.perf_counter() - started < 3.0
    assert message.startswith("checked has 3 problems:")
    assert "section 'encodrs' (did you mean 'encoders'?)" in message
    assert "section 'permutatons' (did you mean 'permutations'?)" in message
    assert "encoders[0] (two-layers):" in message and "stage99" in message
    assert ENCODED["calls"] == 0 and untouched(data["store"])


def test_pydantic_problems_are_all_listed(tmp_path) -> None:
    with pytest.raises(WorkbenchError) as caught:
        config_from_dict(config(tmp_path, seed="x", permutations="many"), source="bad.yaml")
    message = str(caught.value)
    assert message.startswith("bad.yaml has 2 problems:") and "field seed:" in message and "field permutations:" in message


def test_dry_run_prints_the_plan_and_touches_nothing(tmp_path) -> None:
    path = tmp_path / "checked.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path)))
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", "run", str(path), "--dry-run"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output and "encoding" in result.output
    plan = Sweep(load_config(path)).dry_run()
    assert plan["analyses"] == {"encoding": {"cells": 2, "cached": 0}}
    assert (plan["feature_matrices"], plan["feature_matrices_cached"], plan["recordings"]) == (2, 0, 1)
    assert ENCODED["calls"] == 0 and untouched(str(tmp_path / "store.zarr"))
    Sweep(load_config(path)).run()
    again = Sweep(load_config(path), open_store(str(tmp_path / "store.zarr"))).dry_run()
    assert again["cells_cached"] == again["cells"] == 2 and again["feature_matrices_cached"] == 2
    assert again["recordings_cached"] == 1


def test_help_does_not_import_torch() -> None:
    code = ("import sys; sys.argv = ['workbench', '--help']\n"
            "from brain_workbench.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'workbench --help imported torch'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "sweep" in done.stdout
