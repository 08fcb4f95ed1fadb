"""Synthesized images through the shipped TAEF2 decoder on small demo data (the shared tiny sweep): guided images
beat the unguided loop on the same seeds under the independent (other-half) objective, runs are deterministic on
CPU, cells are cached, and bad input (no differentiable path, an ROI without units) is refused in one sentence."""

from __future__ import annotations

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.sdk.analysis import Store, read_images
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench_plugins.analyses.synthesis import SynthesisAnalysis
from fixtures_pixel_sweep import pixel_config


def test_guided_beats_unguided_under_the_independent_objective(pixel_sweep) -> None:
    sweep, _ = pixel_sweep
    table = results_table(sweep.store, "px")
    rows = table[table["kind"] == "synthesis"].set_index("roi")
    for target in ("V1", "VOT"):
        assert rows.loc[target, "judge"] > rows.loc[target, "control_judge"], rows.loc[target]
        assert rows.loc[target, "guide"] > rows.loc[target, "control_guide"]
        assert np.isfinite(rows.loc[target, ["natural_guide", "natural_judge"]].astype(float)).all()


def test_seeded_runs_are_deterministic_on_cpu_and_cells_are_cached(pixel_sweep) -> None:
    import torch

    sweep, _ = pixel_sweep
    plan = sweep.plan()
    cell = next(c for c in plan.cells if c.analysis == "synthesis")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        again = SynthesisAnalysis().compute(sweep.config.store, cell)
    finally:
        torch.set_num_threads(threads)
    stored = read_images(Store(sweep.config.store, mode="r"), cell.key, list(again.image_ids))
    np.testing.assert_array_equal(again.images, stored)
    assert not sweep.pending_cells(plan), "a rerun computes nothing: every cell, synthesis included, is cached"


def test_bad_input_is_refused_in_one_sentence(pixel_sweep) -> None:
    _, tmp = pixel_sweep
    with pytest.raises(wb.WorkbenchError, match="no differentiable path"):
        Sweep(config_from_dict(pixel_config(tmp, encoder="colour-test", layers=("colour",), preferred=False))).plan()
    with pytest.raises(wb.WorkbenchError, match="ROI 'VOT' has no units"):
        Sweep(config_from_dict(pixel_config(tmp, "px-v1", rois=["V1"], preferred=False,
                                            synthesis={"control": False, "steps": 1}))).run()
    with pytest.raises(wb.WorkbenchError, match="multiple of 8"):
        Sweep(config_from_dict(pixel_config(tmp, synthesis={"size": 30}))).plan()


def test_another_fitted_cell_can_judge(pixel_sweep) -> None:
    from brain_workbench_plugins.analyses.objective import images_to_tensor, readout_objective
    from brain_workbench_plugins.analyses.readout import encoding_cells, fit_readout, readout_task
    from fixtures_encoders import PixelEncoder

    _, tmp = pixel_sweep
    cfg = pixel_config(tmp, "px-judge", preferred=False, synthesis={
        "steps": 2, "n_images": 1, "control": False, "natural": 1, "judge": {"encoder": "pixel-test", "layer": "energy"}})
    sweep = Sweep(config_from_dict(cfg))
    sweep.run()
    cell = next(c for c in sweep.plan().cells if c.analysis == "synthesis")
    store = Store(sweep.config.store, mode="r")
    entry = store.open(cell.result_path("px-judge"))
    assert entry.attrs["judge"] == "pixel-test/energy readout" and entry.attrs["guide"] == "pixel-test/pixels readout"
    judge_cell = encoding_cells(sweep.context(), layer="energy")[0]
    judge = readout_objective(PixelEncoder(), "energy", fit_readout(sweep.config.store, readout_task(judge_cell)),
                              ["V1", "VOT"])
    images = read_images(store, cell.key, ["0:s0", "1:s0"])
    expected = judge(images_to_tensor(images)).detach().numpy()[[0, 1], [0, 1]]
    np.testing.assert_allclose(entry["judge"], expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(wb.WorkbenchError, match="names an encoder and its layer together"):
        Sweep(config_from_dict(pixel_config(tmp, preferred=False, synthesis={"judge": {"encoder": "pixel-test"}}))).run()
