"""Progress: per-batch advances, timestamped lines off a terminal (every 10 s or 5 %), --quiet and --verbose."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import yaml
from rich.console import Console
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.cli.common import LineReporter
from brain_workbench.store import Store
from brain_workbench.store.features import extract_features
from brain_workbench.types import LayerInfo, digest

runner = CliRunner()


class Noisy:
    """A random-weight encoder of colour statistics (so sweeps through it warn)."""

    name, modality, random_weights = "noisy-pixels", "image", True

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("colour", 1.0)]

    def encode(self, batch, layers):
        arrays = [np.asarray(im.convert("RGB").resize((4, 4)), dtype=np.float32) / 255 for im in batch]
        return {"colour": np.stack([np.r_[a.mean((0, 1)), a.std((0, 1))] for a in arrays])}

    def fingerprint(self) -> str:
        return digest("noisy-pixels", 1)


def _lines(console: Console) -> list[str]:
    return [line for line in console.export_text(clear=False).splitlines() if line]


def test_line_reporter_prints_every_five_percent_or_ten_seconds() -> None:
    out = Console(record=True, width=200, file=open("/dev/null", "w"))
    now = [0.0]
    advance = LineReporter(out, clock=lambda: now[0]).progress("features x", 1000)
    for _ in range(100):  # 10 per call: a line at every 50 (5 %)
        advance(10)
    lines = _lines(out)
    assert len(lines) == 1 + 20
    assert re.fullmatch(r"\d\d:\d\d:\d\d features x: 1000/1000 \(100 %\) 0 s", lines[-1])
    before = len(_lines(out))
    advance = LineReporter(out, clock=lambda: now[0]).progress("slow", 10_000)
    for _ in range(30):  # 1 row per call (< 5 %) but 11 s apart: a line each time
        now[0] += 11
        advance(1)
    assert len(_lines(out)) - before == 1 + 30 and "eta" in _lines(out)[-1]


def test_extraction_advances_per_batch(tmp_path: Path) -> None:
    ds = wb.dataset("demo", n_subjects=1, n_train=30, n_test=10)
    stimuli = ds.stimuli("image")
    calls: list[int] = []
    extract_features(Store(tmp_path / "s.zarr"), Noisy(), stimuli, ["colour"], batch_size=8, progress=calls.append)
    assert sum(calls) == len(stimuli.ids) and len(calls) == -(-len(stimuli.ids) // 8)


def _config(tmp_path: Path) -> Path:
    wb.register("noisy-pixels", Noisy, kind="encoder", replace=True)
    config = tmp_path / "p.yaml"
    config.write_text(yaml.safe_dump({
        "name": "progress", "store": str(tmp_path / "s.zarr"),
        "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 30, "n_test": 10}},
        "encoders": [{"name": "noisy-pixels", "layers": [1.0], "batch_size": 8}],
        "heads": [{"name": "ridge", "options": {"cv": 3}}], "permutations": 5}))
    return config


def test_sweep_off_a_terminal_prints_timestamped_progress(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sweep", "run", str(_config(tmp_path))])
    assert result.exit_code == 0, result.output
    stamped = [line for line in result.output.splitlines() if re.match(r"\d\d:\d\d:\d\d ", line)]
    assert any("features noisy-pixels: 40/40 (100 %)" in line for line in stamped), result.output
    assert any("fitting cells: 1/1 (100 %)" in line for line in stamped), result.output


def test_quiet_keeps_only_warnings_and_verbose_conflicts(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--quiet", "sweep", "run", str(_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "fitting cells" not in result.output and "sweep progress" not in result.output
    assert "has random weights" in result.output
    result = runner.invoke(app, ["--quiet", "--verbose", "plugins", "list"])
    assert result.exit_code != 0 and "contradict" in str(result.exception)
