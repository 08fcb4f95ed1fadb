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
    [record] = json.loads(index_path().read_text())["sweeps"]["tiny-index"]
    assert record["store"] == str(store) and record["project"] == str(elsewhere.resolve())

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


@pytest.fixture(scope="module")
def index_seen_by_module_fixtures() -> Path:
    return index_path()


def test_module_fixtures_already_write_an_isolated_index(index_seen_by_module_fixtures) -> None:
    assert index_seen_by_module_fixtures != Path.home() / ".local" / "state" / "brain-workbench" / "sweeps.json"
    assert "workbench-tests-" in str(index_seen_by_module_fixtures)


def project_with_sweep(root: Path, label: str, name: str = "pilot") -> Path:
    """A project folder with configs/<name>.yaml whose store is its own stores/<name>.zarr; the encoder's
    label tells the projects' results apart."""
    wb.register("tiny-pixels", TinyPixels, kind="encoder", replace=True)
    (root / "configs").mkdir(parents=True)
    (root / "configs" / f"{name}.yaml").write_text(yaml.safe_dump({
        "name": name, "store": f"stores/{name}.zarr",
        "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 20, "n_test": 10}},
        "encoders": [{"name": "tiny-pixels", "layers": [1.0], "label": label}],
        "heads": [{"name": "ridge", "options": {"cv": 3}}], "metrics": [], "permutations": 0}))
    return root


def encoders_shown(name: str) -> set[str]:
    result = runner.invoke(app, ["results", "show", name, "--json"])
    assert result.exit_code == 0, result.output
    return {row["encoder"] for row in json.loads(result.output)}


def test_a_sweep_name_reads_this_projects_store_never_another_projects(tmp_path, monkeypatch) -> None:
    a, b = project_with_sweep(tmp_path / "a", "from-a"), project_with_sweep(tmp_path / "b", "from-b")
    for project in (a, b):  # b finishes last, as in the reported case
        monkeypatch.chdir(project)
        assert runner.invoke(app, ["sweep", "run", "configs/pilot.yaml"]).exit_code == 0
    monkeypatch.chdir(a)
    assert encoders_shown("pilot") == {"from-a"}, "a's own store, named by its local config"
    (a / "configs" / "pilot.yaml").unlink()
    assert encoders_shown("pilot") == {"from-a"}, "without its config, this folder's own record still wins"
    c = tmp_path / "c"
    c.mkdir()
    monkeypatch.chdir(c)
    result = runner.invoke(app, ["results", "show", "pilot"])
    assert result.exit_code == 1 and isinstance(result.exception, WorkbenchError)
    message = str(result.exception)
    assert "was run in 2 stores from other folders" in message and str(a) in message and str(b) in message


def test_a_sweep_only_another_folder_ran_is_read_and_said_aloud(tmp_path, monkeypatch) -> None:
    a = project_with_sweep(tmp_path / "a", "from-a")
    monkeypatch.chdir(a)
    assert runner.invoke(app, ["sweep", "run", "configs/pilot.yaml"]).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(app, ["results", "show", "pilot"])
    assert result.exit_code == 0, result.output
    assert f"reading {a / 'stores' / 'pilot.zarr'}" in " ".join(result.output.split())


RECORD = """
import sys
from brain_workbench.sweep.index import record_sweep
record_sweep(sys.argv[1], "/tmp/store-" + sys.argv[1])
"""


def test_sweeps_finishing_together_lose_no_record(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "WORKBENCH_SWEEP_INDEX": str(tmp_path / "sweeps.json")}
    procs = [subprocess.Popen([sys.executable, "-c", RECORD, f"s{i}"], env=env) for i in range(6)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    recorded = json.loads((tmp_path / "sweeps.json").read_text())["sweeps"]
    assert sorted(recorded) == [f"s{i}" for i in range(6)]


def test_an_index_of_the_first_format_is_still_read(monkeypatch, tmp_path) -> None:
    index_path().parent.mkdir(parents=True, exist_ok=True)
    index_path().write_text(json.dumps({"version": 1, "sweeps": {
        "old": {"store": str(tmp_path), "config": None, "finished": 1.0}}}))
    monkeypatch.chdir(tmp_path)
    assert lookup_store("old") == str(tmp_path)
