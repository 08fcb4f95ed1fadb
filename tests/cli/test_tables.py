"""Result tables fit 80 columns (ROI columns split over tables, keys repeated); --wide prints one table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.cli.sweep import print_table
from brain_workbench.sweep import Sweep
from brain_workbench.sweep.config import SweepConfig
from brain_workbench.types import LayerInfo, digest

runner = CliRunner()


class Colour:
    name, modality = "colour-stats", "image"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("colour", 1.0)]

    def encode(self, batch, layers):
        arrays = [np.asarray(im.convert("RGB").resize((4, 4)), dtype=np.float32) / 255 for im in batch]
        return {"colour": np.stack([np.r_[a.mean((0, 1)), a.std((0, 1))] for a in arrays])}

    def fingerprint(self) -> str:
        return digest("colour-stats", 1)


def test_results_fit_80_columns_and_wide_keeps_one_table(tmp_path: Path) -> None:
    wb.register("colour-stats", Colour, kind="encoder", replace=True)
    store = str(tmp_path / "s.zarr")
    Sweep(SweepConfig(**{
        "name": "narrow", "store": store,
        "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 30, "n_test": 10}},
        "encoders": [{"name": "colour-stats", "layers": [1.0], "label": "a-rather-long-encoder-label"}],
        "heads": [{"name": "ridge", "options": {"cv": 3}}], "permutations": 5})).run()
    narrow = runner.invoke(app, ["results", "show", "narrow", "--store", store])
    assert narrow.exit_code == 0, narrow.output
    lines = narrow.output.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80, narrow.output
    rois = ["V1", "V2", "V3", "hV4", "LO", "VOT", "semantic", "all"]
    header = " ".join(line for line in lines if "encoder" in line)
    assert all(f" {roi} " in f"{header} " for roi in rois) and "(1/" in narrow.output
    pivot = narrow.output.split("best layer per ROI")[0]  # the best-layer table follows the per-ROI tables
    parts = pivot.count("(mean over subjects) (")
    assert parts >= 2 and pivot.count("a-rather-long-encoder-label") == parts
    wide = runner.invoke(app, ["results", "show", "narrow", "--store", store, "--wide"])
    assert wide.exit_code == 0 and "(1/" not in wide.output
    row = next(line for line in wide.output.splitlines() if "a-rather-long-encoder-label" in line)
    assert len(row.rstrip()) > 80 and len(row.split()) == 3 + len(rois)


def test_a_narrow_table_stays_whole(capsys) -> None:
    print_table("t", ["encoder"], ["V1", "V2"], [["e"]], [["0.100", "0.200"]])
    out = capsys.readouterr().out
    assert "(1/" not in out and "0.200" in out
