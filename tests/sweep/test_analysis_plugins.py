"""Analyses are plugins: a third-party analysis runs through ``sweep run``, ``results show``, the figures and the
report without touching the core; built-in cell keys follow the source of the code that computes them."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.sdk.analysis import (
    Analysis,
    Cell,
    CellResult,
    PlanContext,
    Preparation,
    Store,
    load_features,
    pearson_per_unit,
    prepared_recording,
    source_digest,
)
from brain_workbench.sweep import Sweep, results_table, tidy_table
from brain_workbench.sweep.config import config_from_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures_encoders import ColourEncoder  # noqa: E402

NAME = "roi-mean-vs-norm"


@dataclass(frozen=True)
class NormTask:
    prep: Preparation
    feature_path: str


class NormAnalysis(Analysis):
    """Toy analysis: does a stimulus's mean response in an ROI follow the norm of its features?"""

    name = NAME
    version = "1"
    score_columns = ("norm_r",)
    summary_value = "norm_r"

    def plan(self, context: PlanContext) -> list[Cell]:
        options = context.config.analyses.get(self.name)
        if options is None:
            return []
        cfg, cells = context.config, []
        for encoder in context.encoders:
            for subject in context.subjects:
                path = context.response_path(subject)
                for layer in encoder.listed:
                    fpath = encoder.feature_path(layer)
                    task = NormTask(Preparation(path, cfg.average_repetitions, cfg.test_split, fold=None), fpath)
                    cells.append(Cell(key=self.cell_key(subject, "n", encoder.key, layer, path, options),
                                      analysis=self.name, subject=subject, model=encoder.label, model_name=encoder.name,
                                      layer=layer, depth=encoder.depth(layer), label="norm", head="norm",
                                      feature_path=fpath, response_path=path, reads=(path, fpath), task=task))
        return cells

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        started = time.time()
        data = prepared_recording(store_url, cell.task.prep)
        X = load_features(Store(store_url), cell.task.feature_path, data["test_ids"])
        norm = np.linalg.norm(X, axis=1)[:, None]
        Y = data["Y_test"]
        per_unit = pearson_per_unit(Y, np.repeat(norm, Y.shape[1], axis=1)).astype(np.float32)
        rows = []
        for roi, mask in {"all": np.ones(Y.shape[1], dtype=bool), **data["rois"]}.items():
            r = float(pearson_per_unit(Y[:, mask].mean(axis=1, keepdims=True), norm)[0])
            rows.append({"roi": roi, "n_units": int(mask.sum()), "norm_r": r, "mean_r": 1.0 + r})
        return CellResult(tuple(rows), len(Y), round(time.time() - started, 3), {"score": per_unit})

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        return [kit.draw("norm.png", kit.keys_of(self.name), lambda p: kit.plot_layer_profiles(
            rows, "norm_r", title=f"{kit.sweep}: mean response vs feature norm", output_file=p))]


@pytest.fixture
def norm_analysis():
    wb.register(NAME, NormAnalysis, kind="analysis", replace=True)
    yield
    wb.get_registry().entries["analysis"].pop(NAME, None)


@pytest.fixture(autouse=True)
def _colour_encoder():
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)


def config(tmp_path: Path) -> dict:
    return {"name": "norm", "store": str(tmp_path / "s.zarr"),
            "dataset": {"name": "demo", "options": {"n_subjects": 2, "n_train": 30, "n_test": 12}},
            "encoders": [{"name": "colour-test"}],
            "heads": [], "metrics": [{"name": "rsa"}], "permutations": 0, "analyses": {NAME: {}}}


def test_a_third_party_analysis_runs_through_sweep_results_figures_and_report(tmp_path, norm_analysis):
    path = tmp_path / "norm.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path)))
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", "run", str(path)])
    assert result.exit_code == 0, result.output
    sweep = Sweep(config_from_dict(config(tmp_path)))
    table = results_table(sweep.store, "norm")
    mine = table[table["kind"] == NAME]
    assert set(mine["subject"]) == {"1", "2"} and "all" in set(mine["roi"]) and mine["norm_r"].between(-1, 1).all()
    long = tidy_table(sweep.store, "norm")
    scores = set(long[long["kind"] == NAME]["score"])
    assert scores == {"norm_r"}, "only the declared score reaches the tidy table (mean_r is not one of its scores)"
    shown = runner.invoke(app, ["results", "show", "norm", "--store", str(tmp_path / "s.zarr")])
    assert shown.exit_code == 0 and f"norm: {NAME}" in shown.output and "norm_r" in shown.output, shown.output
    out = tmp_path / "report"
    reported = runner.invoke(app, ["report", "norm", "--store", str(tmp_path / "s.zarr"), "--out", str(out)])
    assert reported.exit_code == 0, reported.output
    page = (out / "index.html").read_text()
    assert (out / "norm.png").exists() and "norm.png" in page
    assert f"{NAME.capitalize()}: norm, norm_r per ROI" in page


def test_sweep_takes_its_analyses_from_the_registry_it_is_given(tmp_path):
    from brain_workbench.plugin.registry import Registry

    registry = Registry()
    registry.load_entry_points()
    registry.register(NAME, NormAnalysis, kind="analysis")
    registry.register("colour-test", ColourEncoder, kind="encoder")
    sweep = Sweep(config_from_dict(config(tmp_path)), registry=registry)
    assert {c.analysis for c in sweep.plan().cells} == {"metric", NAME}
    assert NAME not in wb.get_registry().entries["analysis"]


def test_editing_the_computing_module_changes_the_cell_keys(tmp_path, monkeypatch):
    import importlib
    import sys

    source = tmp_path / "toy_analysis_mod.py"
    source.write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("toy_analysis_mod")
    before = source_digest("toy_analysis_mod")
    source.write_text("VALUE = 2  # the maths changed\n")
    importlib.reload(module)
    source_digest.cache_clear()
    assert source_digest("toy_analysis_mod") != before
    sys.modules.pop("toy_analysis_mod", None)


def test_built_in_keys_hold_the_source_digest_of_their_modules(monkeypatch):
    from brain_workbench.analysis import contract
    from brain_workbench_plugins.analyses.encoding import EncodingAnalysis

    analysis = EncodingAnalysis()
    key = analysis.cell_key("1", "", "same", "parts")
    assert analysis.cell_key("1", "", "same", "parts") == key
    real = contract.source_digest
    monkeypatch.setattr(contract, "source_digest", lambda *modules: real(*modules) + "-edited")
    assert analysis.cell_key("1", "", "same", "parts") != key, "an edit of the encoding module changes its keys"


def test_a_sweep_of_only_a_third_party_analysis_is_accepted(tmp_path, norm_analysis):
    cfg = {**config(tmp_path), "metrics": []}
    sweep = Sweep(config_from_dict(cfg))
    assert {c.analysis for c in sweep.plan().cells} == {NAME}


def test_an_analyses_section_naming_no_installed_analysis_is_refused_before_work(tmp_path, norm_analysis):
    cfg = {**config(tmp_path), "analyses": {"roi-mean-vs-nrom": {}}}
    sweep = Sweep(config_from_dict(cfg))
    with pytest.raises(wb.WorkbenchError, match="'roi-mean-vs-nrom', which is not an installed analysis"):
        sweep.run()
    assert not list((tmp_path / "s.zarr").glob("responses")), "nothing was cached"
