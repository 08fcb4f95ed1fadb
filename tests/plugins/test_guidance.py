"""Brain-guided diffusion (BrainDiVE's step) on a tiny random SD pipeline saved to a local folder: with an
analytic objective whose gradient is known (a fixed linear map of patch-averaged pixels, the pixel receptive-field
encoder), the objective of the final images rises monotonically with the guidance scale on the same seeds; runs
are deterministic; non-ε pipelines are refused from their configs before any weight is read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import brain_workbench as wb
import diffusion_fixtures as F
from brain_workbench_plugins.analyses.guidance import BrainGuidedSampler, GuidanceOptions, check_folder
from brain_workbench_plugins.analyses.objective import ReadoutObjective
from fixtures_encoders import PixelEncoder


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return F.save(F.sd_pipeline(), tmp_path_factory.mktemp("guided") / "sd")


def redness() -> ReadoutObjective:
    """Mean red minus mean green and blue over the 4 × 4 patches: the gradient is known everywhere."""
    weights = np.zeros((48, 2))
    weights[:16, 0], weights[16:, 0] = 1 / 16, -1 / 32
    weights[:, 1] = -weights[:, 0]
    return ReadoutObjective(PixelEncoder().differentiable("pixels"), weights, np.zeros(2), ["red", "cyan"])


def test_the_objective_rises_monotonically_with_the_scale_on_the_same_seeds(folder: Path) -> None:
    sampler = BrainGuidedSampler(str(folder), device="cpu")
    objective, seeds, columns = redness(), [0, 1, 2, 3], [0, 0, 1, 1]
    means, images = [], {}
    for scale in (0.0, 10.0, 100.0):
        images[scale] = sampler.sample(objective, columns, GuidanceOptions(steps=8, scale=scale), seeds)
        with torch.no_grad():
            means.append(float(objective(images[scale])[torch.arange(4), torch.as_tensor(columns)].mean()))
    print("objective at scale 0/10/100:", means)
    assert means[0] < means[1] < means[2], means
    again = sampler.sample(objective, columns, GuidanceOptions(steps=8, scale=10.0), seeds)
    np.testing.assert_array_equal(again.numpy(), images[10.0].numpy())


def test_non_epsilon_pipelines_are_refused_before_loading(folder: Path, tmp_path: Path) -> None:
    import shutil

    v = shutil.copytree(folder, tmp_path / "v")
    config = json.loads((v / "scheduler" / "scheduler_config.json").read_text())
    (v / "scheduler" / "scheduler_config.json").write_text(json.dumps({**config, "prediction_type": "v_prediction"}))
    with pytest.raises(wb.WorkbenchError, match="'v_prediction'-prediction pipeline"):
        check_folder(str(v))
    with pytest.raises(wb.WorkbenchError, match="has no model_index.json|does not exist"):
        check_folder(str(tmp_path / "nowhere"))
    shutil.rmtree(v / "vae")
    with pytest.raises(wb.WorkbenchError, match="lacks vae"):
        check_folder(str(v))


def test_the_synthesis_analysis_runs_the_diffusion_generator(pixel_sweep, folder: Path) -> None:
    from brain_workbench.sweep import Sweep, results_table
    from brain_workbench.sweep.config import config_from_dict
    from fixtures_pixel_sweep import pixel_config

    _, tmp = pixel_sweep
    cfg = pixel_config(tmp, "px-diffusion", preferred=False, synthesis={
        "generator": "diffusion", "n_images": 2, "natural": 1,
        "diffusion": {"path": str(folder), "steps": 3, "scale": 3000.0, "keep": 0.5}})
    sweep = Sweep(config_from_dict(cfg))
    sweep.run()
    rows = results_table(sweep.store, "px-diffusion").query("kind == 'synthesis'").set_index("roi")
    assert list(rows["n_images"]) == [1, 1], "half of each target's two candidates is kept"
    assert (rows["guide"] > rows["control_guide"]).all(), rows[["guide", "control_guide"]]
    with pytest.raises(wb.WorkbenchError, match="needs a synthesis.diffusion section"):
        Sweep(config_from_dict(pixel_config(tmp, preferred=False, synthesis={"generator": "diffusion"}))).run()
