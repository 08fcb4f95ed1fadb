"""Random-weight encoders keep their label in tables (a random_weights column says so) and are marked in figures
and the report, with one warning; real-data configs refuse them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.sweep import Sweep, load_config, results_table
from brain_workbench.sweep.config import SweepConfig
from brain_workbench.types import LayerInfo, digest

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
runner = CliRunner()


class RandomPixels:
    """Colour statistics, declaring itself a random-weight model (as clip with pretrained=None does)."""

    name, modality, random_weights = "random-pixels", "image", True

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("colour", 1.0)]

    def encode(self, batch, layers):
        import numpy as np

        arrays = [np.asarray(im.convert("RGB").resize((8, 8)), dtype=np.float32) / 255 for im in batch]
        return {"colour": np.stack([np.r_[a.mean((0, 1)), a.std((0, 1))] for a in arrays])}

    def fingerprint(self) -> str:
        return digest("random-pixels", 1)


def test_clip_knows_when_its_weights_are_random() -> None:
    assert wb.encoder("clip", model="ViT-B-32").random_weights
    assert not wb.encoder("clip", model="ViT-B-32", pretrained="laion2b_s34b_b79k").random_weights
    assert not wb.encoder("clip", model="local-dir:/some/where").random_weights


@pytest.mark.parametrize("name", ["nsd-clip", "things-eeg2-clip"])
def test_real_data_configs_ask_for_pretrained_clip(name: str) -> None:
    cfg = load_config(CONFIGS / f"{name}.yaml", [])
    clip = [e for e in cfg.encoders if e.name == "clip"]
    assert clip and all(not wb.encoder("clip", **e.options).random_weights for e in clip)
    asked = load_config(CONFIGS / f"{name}.yaml", ["encoders.0.options.pretrained=null"])
    assert wb.encoder("clip", **asked.encoders[0].options).random_weights


def test_random_weights_are_labelled_with_one_warning(tmp_path: Path) -> None:
    wb.register("random-pixels", RandomPixels, kind="encoder", replace=True)
    data = {"name": "rnd", "store": str(tmp_path / "s.zarr"),
            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 30, "n_test": 10}},
            "encoders": [{"name": "random-pixels", "layers": [1.0], "label": "pix"}],
            "heads": [{"name": "ridge", "options": {"cv": 3}}], "permutations": 5}
    config = tmp_path / "rnd.yaml"
    config.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["sweep", "run", str(config)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "random weights" in line and "warning" in line]
    assert len(warnings) == 1, result.output
    frame = results_table(Sweep(SweepConfig(**data)).store, "rnd")
    assert set(frame["encoder"]) == {"pix"} and frame["random_weights"].all()
    assert set(frame[frame["encoder"] == "pix"]["cell"]) == set(frame["cell"])
    shown = runner.invoke(app, ["results", "show", "rnd", "--store", data["store"]])
    assert "random weights, no pretrained ones: pix (column random_weights)" in shown.output
    assert "pix (random" not in shown.output
    listed = runner.invoke(app, ["results", "show", "rnd", "--store", data["store"], "--json"])
    assert {row["encoder"] for row in json.loads(listed.output)} == {"pix"}
    out = tmp_path / "map.png"
    result = runner.invoke(app, ["figure", "brainmap", "rnd", "--encoder", "pix", "--store", data["store"], "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["figure", "brainmap", "rnd", "--encoder", "nope", "--store", data["store"], "--out", str(out)])
    assert result.exit_code != 0 and "its encoders are 'pix'" in str(result.exception)
    result = runner.invoke(app, ["report", "rnd", "--store", data["store"], "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report" / "index.html").read_text()
    assert "encoders: pix (random weights)" in page and "pix&#x27;s best layer" in page
    views = list((tmp_path / "report").rglob("surface_*.html"))
    assert views and "pix (random weights) · " in views[0].read_text()
    from brain_workbench.figures.layers import shown_names

    assert shown_names(frame, ["pix"]) == ["pix (random weights)"]
    assert shown_names(frame.assign(random_weights=False), ["pix"]) == ["pix"]


def test_stores_written_with_the_old_label_suffix_read_as_the_users_label() -> None:
    from brain_workbench.sweep.tables import encoder_status

    assert encoder_status({"encoder": "clip-random (random weights)"}) == ("clip-random", True)
    assert encoder_status({"encoder": "clip-random", "random_weights": True}) == ("clip-random", True)
    assert encoder_status({"encoder": "clip-random", "random_weights": False}) == ("clip-random", False)
    assert encoder_status({"encoder": "effnet"}) == ("effnet", False)
