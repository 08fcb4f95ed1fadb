"""Reconstruction cells: brain → TAEF2 latents → images in the store, scored against the seen images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workbench.images import read_images
from workbench.sweep import Sweep, load_cell_scores, results_table
from workbench.sweep.config import config_from_dict
from workbench.types import WorkbenchError


def config(tmp_path: Path, **changes) -> dict:
    data = {
        "name": "rec", "store": str(tmp_path / "store.zarr"),
        "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 120, "n_test": 24, "noise": 0.5}},
        "reconstruction": {
            "codec": {"name": "taef2", "options": {"image_size": 16}}, "rois": ["V1"], "seen_size": 32,
            "head": {"name": "decoder", "options": {"alphas": [10.0, 1000.0, 100000.0], "cv": 3}},
            "metrics": [{"name": "pixcorr", "options": {"size": 64}}, {"name": "ssim", "options": {"size": 64}}],
        },
        "permutations": 0,
    }
    data.update(changes)
    return data


def test_reconstructions_are_stored_and_beat_the_baselines(tmp_path):
    cfg = config_from_dict(config(tmp_path))
    assert Sweep(cfg).run()["computed"] == 1
    sweep = Sweep(cfg)
    row = results_table(sweep.store, "rec").iloc[0]
    assert row["kind"] == "reconstruction" and row["encoder"] == "taef2 latents"
    assert row["pixcorr"] > row["shuffled_pixcorr"] + 0.2 and row["pixcorr"] > row["mean_image_pixcorr"] + 0.2
    assert row["ssim"] > row["shuffled_ssim"] and row["ssim"] > row["mean_image_ssim"]
    (cell, arrays), = list(load_cell_scores(sweep.store, "rec", kinds=("reconstruction",)))
    assert arrays["image_pixcorr"].shape == (24,)
    images = read_images(sweep.store, cell["key"])
    assert images.shape == (24, 16, 16, 3) and images.dtype == np.uint8
    assert sweep.run()["computed"] == 0, "a rerun reconstructs nothing"


def test_a_dataset_without_images_is_refused(tmp_path):
    from workbench.sweep.runner import Sweep as Runner

    cfg = config_from_dict(config(tmp_path))
    runner = Runner(cfg)
    runner.dataset.modalities = ("text",)
    with pytest.raises(WorkbenchError, match="reconstruction needs image stimuli"):
        runner.plan()


def test_a_sweep_needs_something_to_compute(tmp_path):
    with pytest.raises(WorkbenchError, match="needs encoders"):
        config_from_dict({"name": "x", "dataset": {"name": "demo"}})
