"""`encoders info clip` lists layers without building the model; `store ls` shows size, kind, label and options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brain_workbench.cli import app

runner = CliRunner()


def test_clip_info_lists_layers_without_loading_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    from brain_workbench_plugins.clip import ClipEncoder

    def refuse(self) -> None:
        raise AssertionError("info built the model")

    monkeypatch.setattr(ClipEncoder, "load_model", refuse)
    result = runner.invoke(app, ["encoders", "info", "clip", "-o", "model=ViT-B-32", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [layer["name"] for layer in data["layers"]] == [f"block{i}" for i in range(12)] + ["embedding"]
    assert "fingerprint" not in data and data["weights"].startswith("random")
    result = runner.invoke(app, ["encoders", "info", "clip", "--fingerprint", "--json"])
    assert isinstance(result.exception, AssertionError), "--fingerprint loads the model"


def test_store_ls_shows_size_label_and_options(tmp_path: Path) -> None:
    import numpy as np

    import brain_workbench as wb
    from brain_workbench.sweep import Sweep
    from brain_workbench.sweep.config import SweepConfig
    from brain_workbench.types import LayerInfo, digest

    class Colour:
        name, modality = "colour-ls", "image"

        def layers(self):
            return [LayerInfo("colour", 1.0)]

        def encode(self, batch, layers):
            arrays = [np.asarray(im.convert("RGB").resize((4, 4)), dtype=np.float32) / 255 for im in batch]
            return {"colour": np.stack([a.mean((0, 1)) for a in arrays])}

        def fingerprint(self):
            return digest("colour-ls", 1)

    wb.register("colour-ls", Colour, kind="encoder", replace=True)
    store = str(tmp_path / "s.zarr")
    Sweep(SweepConfig(**{
        "name": "ls", "store": store,
        "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 30, "n_test": 10}},
        "encoders": [{"name": "colour-ls", "layers": [1.0], "label": "rgb"}],
        "heads": [{"name": "ridge", "options": {"cv": 3}}], "permutations": 5})).run()
    rows = {row["kind"]: row for row in json.loads(runner.invoke(app, ["store", "ls", "--store", store, "--json"]).stdout)}
    assert set(rows) == {"features", "responses", "cell", "manifest"}
    features = next((tmp_path / "s.zarr").glob("features/*/colour"))
    on_disk = sum(p.stat().st_size for p in features.rglob("*") if p.is_file())
    assert rows["features"]["size"] == on_disk and rows["features"]["label"] == "colour-ls · colour · 40 stimuli"
    assert rows["responses"]["options"] == "n_subjects=1, n_train=30, n_test=10"
    assert rows["cell"]["options"] == "cv=3" and "rgb · colour · ridge · s1" in rows["cell"]["label"]
    text = runner.invoke(app, ["store", "ls", "--store", store], terminal_width=200).stdout
    assert "n_train=30" in text and "total " in text
