"""Synthesized images through the shipped TAEF2 decoder on small demo data: guided images beat the unguided
loop on the same seeds under the independent (other-half) objective, runs are deterministic on CPU, cells are
cached, and bad input (no differentiable path, an ROI without units) is refused in one sentence."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.sdk.analysis import Store, read_images
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench_plugins.analyses.synthesis import SynthesisAnalysis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures_encoders import ColourEncoder, PixelEncoder  # noqa: E402


def config(tmp: Path, rois: list[str] | None = None, encoder: str = "pixel-test", layer: str = "pixels",
           **synthesis) -> dict:
    return {"name": "sy", "store": str(tmp / "s.zarr"), "rois": rois,
            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 40, "n_test": 12}},
            "encoders": [{"name": encoder, "layers": [layer]}], "heads": [{"name": "ridge"}], "metrics": [],
            "permutations": 0, "cv": {"scheme": "split"},
            "synthesis": {"encoder": encoder, "layer": layer, "targets": ["V1", "VOT"], "n_images": 2, "steps": 10,
                          "size": 16, "natural": 2, "device": "cpu", **synthesis}}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny convolutions run faster on one thread than on two contended ones (the test machine is shared)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    wb.register("pixel-test", PixelEncoder, kind="encoder", replace=True)
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    tmp = tmp_path_factory.mktemp("synthesis")
    sweep = Sweep(config_from_dict(config(tmp)))
    sweep.run()
    return sweep, tmp


def test_guided_beats_unguided_under_the_independent_objective(finished) -> None:
    sweep, _ = finished
    table = results_table(sweep.store, "sy")
    rows = table[table["kind"] == "synthesis"].set_index("roi")
    for target in ("V1", "VOT"):
        assert rows.loc[target, "judge"] > rows.loc[target, "control_judge"], rows.loc[target]
        assert rows.loc[target, "guide"] > rows.loc[target, "control_guide"]
        assert np.isfinite(rows.loc[target, ["natural_guide", "natural_judge"]].astype(float)).all()


def test_seeded_runs_are_deterministic_on_cpu_and_cells_are_cached(finished) -> None:
    sweep, _ = finished
    plan = sweep.plan()
    cell = next(c for c in plan.cells if c.analysis == "synthesis")
    again = SynthesisAnalysis().compute(sweep.config.store, cell)
    stored = read_images(Store(sweep.config.store, mode="r"), cell.key, list(again.image_ids))
    np.testing.assert_array_equal(again.images, stored)
    assert not sweep.pending_cells(plan), "a rerun computes nothing: every cell, synthesis included, is cached"


def test_bad_input_is_refused_in_one_sentence(finished) -> None:
    _, tmp = finished
    with pytest.raises(wb.WorkbenchError, match="no differentiable path"):
        Sweep(config_from_dict(config(tmp, encoder="colour-test", layer="colour"))).plan()
    with pytest.raises(wb.WorkbenchError, match="ROI 'VOT' has no units"):
        Sweep(config_from_dict({**config(tmp, rois=["V1"]), "name": "sy-v1"})).run()
    with pytest.raises(wb.WorkbenchError, match="multiple of 8"):
        Sweep(config_from_dict(config(tmp, size=30))).plan()
