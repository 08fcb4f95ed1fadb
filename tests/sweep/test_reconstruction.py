"""Reconstruction cells: brain → TAEF2 latents → images in the store, scored against the seen images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brain_workbench.store.images import read_images
from brain_workbench.sweep import Sweep, load_cell_scores, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import WorkbenchError


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
    from brain_workbench.report import write_report

    page = write_report(sweep.store, "rec", tmp_path / "report").read_text()
    assert "<img src='reconstructions.png'" in page and "Reconstruction: held-out test images" in page
    assert "Reconstruction: " in page and "pixcorr" in page and "shuffled_pixcorr" in page, "the scores are tabled"


def test_a_dataset_without_images_is_refused(tmp_path):
    from brain_workbench.sweep.runner import Sweep as Runner

    cfg = config_from_dict(config(tmp_path))
    runner = Runner(cfg)
    runner.dataset.modalities = ("text",)
    with pytest.raises(WorkbenchError, match="reconstruction needs image stimuli"):
        runner.plan()


def test_a_sweep_needs_something_to_compute(tmp_path):
    with pytest.raises(WorkbenchError, match="needs encoders"):
        config_from_dict({"name": "x", "dataset": {"name": "demo"}})


class Thumbnail32:
    """A 32-wide 'embedding' (4 × 4 grey thumbnails, two scales): the width of the tiny test pipelines."""

    name, modality = "thumb32", "image"

    def layers(self):
        from brain_workbench.types import LayerInfo

        return [LayerInfo("embedding", 1.0)]

    def encode(self, batch, layers):
        rows = [np.r_[np.asarray(im.convert("L").resize((4, 4)), np.float32).ravel(),
                      np.asarray(im.convert("L").resize((4, 4)).resize((2, 2)), np.float32).ravel().repeat(4)] / 255
                for im in batch]
        return {"embedding": np.stack(rows)}

    def fingerprint(self):
        return "thumb32-v1"


@pytest.mark.slow  # a sweep that also runs a (tiny) Kandinsky diffusion pipeline per cell
def test_generation_cells_turn_decoded_embeddings_into_images(tmp_path):
    import brain_workbench as wb
    import diffusion_fixtures as F

    wb.register("thumb32", Thumbnail32, kind="encoder", replace=True)
    folder = F.save(F.kandinsky_pipeline(), tmp_path / "kandinsky")
    data = config(tmp_path)
    data.update(
        encoders=[{"name": "thumb32"}],
        heads=[{"name": "decoder", "options": {"alphas": [10.0, 1000.0], "cv": 3}}],
        decoding={"rois": ["V1"]},
        generation={"generator": {"name": "kandinsky-2.2", "options": {
                        "path": str(folder), "embedding_space": "tiny/test", "steps": 2, "size": 32,
                        "strength": 0.5, "device": "cpu"}},
                    "encoder": "thumb32", "roi": "V1", "init_from_reconstruction": True,
                    "metrics": [{"name": "pixcorr", "options": {"size": 64}}]},
    )
    data["reconstruction"]["rois"] = ["V1"]
    summary = Sweep(config_from_dict(data)).run()
    assert summary["computed"] == 3, "decode, reconstruction and generation cells"
    sweep = Sweep(config_from_dict(data))
    frame = results_table(sweep.store, "rec")
    row = frame[frame["kind"] == "generation"].iloc[0]
    assert np.isfinite(row["pixcorr"]) and row["encoder"] == "kandinsky-2.2"
    (cell, arrays), = list(load_cell_scores(sweep.store, "rec", kinds=("generation",)))
    assert read_images(sweep.store, cell["key"]).shape == (24, 32, 32, 3)
    assert sweep.run()["computed"] == 0


def test_the_evaluation_protocol_is_applied_and_recorded(tmp_path):
    from brain_workbench_plugins.analyses.reconstruction import ReconstructionAnalysis

    data = config(tmp_path, dataset={"name": "demo", "options": {"n_subjects": 1, "n_train": 40, "n_test": 10}})
    data["reconstruction"]["protocol"] = "mindeye2"
    data["reconstruction"]["metrics"] = [{"name": "pixcorr", "options": {"size": 64}}]
    cfg = config_from_dict(data)
    sweep = Sweep(cfg)
    sweep.run()
    frame = results_table(sweep.store, "rec")
    row = frame.iloc[0]
    assert row["protocol"] == "mindeye2"
    (cell, _), = list(load_cell_scores(sweep.store, "rec", kinds=("reconstruction",)))
    assert cell["task"]["reconstruction"]["protocol"] == "mindeye2", "the protocol is in the cell's provenance"
    (table,) = ReconstructionAnalysis().table(frame, "rec", "value")
    assert "protocol mindeye2" in table.title
    data["reconstruction"]["protocol"] = "default"
    assert Sweep(config_from_dict(data)).plan().cells[0].key != cell["key"], "another protocol is another cell"
    data["reconstruction"]["protocol"] = "mindeye9"
    with pytest.raises(WorkbenchError, match="protocol"):
        Sweep(config_from_dict(data)).plan()
