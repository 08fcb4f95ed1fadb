"""A finished sweep is found by name from any folder (per-user index), and read commands create nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.sweep.index import index_path, lookup_store, read_index
from brain_workbench.types import LayerInfo, WorkbenchError, digest

runner = CliRunner()


class TinyPixels:
    """Colour statistics of each image: a fast deterministic encoder for CLI tests."""

    name, modality = "tiny-pixels", "image"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("colour", 1.0)]

    def encode(self, batch, layers):
        import numpy as np

        arrays = [np.asarray(im.convert("RGB").resize((8, 8)), dtype=np.float32) / 255 for im in batch]
        return {"colour": np.stack([np.r_[a.mean((0, 1)), a.std((0, 1))] for a in arrays])}

    def fingerprint(self) -> str:
        return digest("tiny-pixels", 1)


@pytest.fixture
def tiny_sweep(tmp_path: Path) -> tuple[Path, Path]:
    """A one-layer sweep config whose store lives in its own folder, away from the working directory."""
    wb.register("tiny-pixels", TinyPixels, kind="encoder", replace=True)
    home = tmp_path / "project"
    home.mkdir()
    config = home / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny-index", "store": str(home / "store.zarr"),
        "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 30, "n_test": 10}},
        "encoders": [{"name": "tiny-pixels", "layers": [1.0]}],
        "heads": [{"name": "ridge", "options": {"cv": 3}}], "permutations": 5}))
    return config, home / "store.zarr"


def test_finished_sweep_is_found_from_another_folder(tiny_sweep, tmp_path, monkeypatch) -> None:
    config, store = tiny_sweep
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(app, ["sweep", "run", str(config)])
    assert result.exit_code == 0, result.output
    assert f"workbench results show tiny-index --store {store}" in result.output
    assert lookup_store("tiny-index") == str(store)
    assert json.loads(index_path().read_text())["sweeps"]["tiny-index"]["store"] == str(store)

    result = runner.invoke(app, ["results", "show", "tiny-index", "--json"])
    assert result.exit_code == 0, result.output
    assert {row["roi"] for row in json.loads(result.output)} >= {"V1"}
    result = runner.invoke(app, ["figure", "layers", "tiny-index", "--out", "layers.png"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", "tiny-index", "--out", "report"])
    assert result.exit_code == 0, result.output
    assert (elsewhere / "report" / "index.html").exists()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["layers.png", "report"]


def test_read_commands_create_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for args in (["results", "show", "nope"], ["figure", "layers", "nope", "--out", "x.png"],
                 ["report", "nope", "--out", "r"], ["store", "ls"]):
        result = runner.invoke(app, args)
        assert result.exit_code != 0 and isinstance(result.exception, WorkbenchError), args
    assert list(tmp_path.iterdir()) == []
    assert not index_path().exists() and read_index() == {}


def test_unreadable_index_is_one_sentence(monkeypatch, tmp_path) -> None:
    index_path().parent.mkdir(parents=True, exist_ok=True)
    index_path().write_text("{not json")
    with pytest.raises(WorkbenchError, match="sweep index .* is unreadable"):
        lookup_store("demo")
