"""Preferred images: a tiny sweep ranks the demo stimuli (and a folder of images) by each target's predicted
response under the fitted readout; the stored ends equal a ranking recomputed from the cached features, measured
responses come from the recording, and the table, figure and report show them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.sdk.analysis import Store, load_features, prepared_recording
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench_plugins.analyses import readout

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures_encoders import PixelEncoder  # noqa: E402

TARGETS = ["V1", "VOT", {"roi": "VOT", "minus": "V1"}]


def config(tmp: Path, **preferred) -> dict:
    return {"name": "pf", "store": str(tmp / "s.zarr"),
            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 40, "n_test": 12}},
            "encoders": [{"name": "pixel-test", "layers": ["pixels"]}], "heads": [{"name": "ridge"}], "metrics": [],
            "permutations": 0, "cv": {"scheme": "split"},
            "preferred": {"encoder": "pixel-test", "layer": "pixels", "targets": TARGETS, "top": 3, "thumb": 32,
                          **preferred}}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    wb.register("pixel-test", PixelEncoder, kind="encoder", replace=True)
    tmp = tmp_path_factory.mktemp("preferred")
    sweep = Sweep(config_from_dict(config(tmp)))
    sweep.run()
    return sweep, tmp


def test_ranking_matches_the_readout_on_cached_features(finished) -> None:
    sweep, _ = finished
    table = results_table(sweep.store, "pf")
    rows = table[table["kind"] == "preferred"]
    assert list(rows["roi"]) == ["V1", "VOT", "VOT-V1"]
    cell = next(c for c in sweep.plan().cells if c.analysis == "preferred")
    entry = Store(sweep.config.store, mode="r").open(cell.result_path("pf"))
    source = readout.encoding_cells(sweep.context(), layer="pixels")[0]
    fitted = readout.fit_readout(sweep.config.store, readout.readout_task(source))
    store = Store(sweep.config.store, mode="r")
    ids = [str(s) for s in store.open(source.feature_path)["stimulus_ids"]]
    X = load_features(store, source.feature_path)
    data = prepared_recording(sweep.config.store, source.task.prep)
    for t, target in enumerate(TARGETS):
        select = readout.unit_selection(fitted, target)
        predicted = fitted.predict(X) @ select
        order = np.argsort(-predicted, kind="stable")
        assert [str(s) for s in entry["top_ids"][t]] == [ids[i] for i in order[:3]]
        assert [str(s) for s in entry["bottom_ids"][t]] == [ids[i] for i in order[::-1][:3]]
        np.testing.assert_allclose(entry["top_predicted"][t], predicted[order[:3]], rtol=1e-4, atol=1e-5)
        top = str(entry["top_ids"][t][0])
        Y, rows_ids = (data["Y_test"], data["test_ids"]) if top in data["test_ids"] else (data["Y_train"],
                                                                                          data["train_ids"])
        np.testing.assert_allclose(entry["top_measured"][t][0], Y[list(rows_ids).index(top)] @ select, rtol=1e-4)
    assert rows.set_index("roi").loc["VOT", "top_predicted"] > rows.set_index("roi").loc["VOT", "bottom_predicted"]


def test_results_show_figure_and_report(finished) -> None:
    sweep, tmp = finished
    runner = CliRunner()
    shown = runner.invoke(app, ["results", "show", "pf", "--store", sweep.config.store])
    assert shown.exit_code == 0 and "preferred images" in shown.output and "VOT-V1" in shown.output, shown.output
    out = tmp / "report"
    reported = runner.invoke(app, ["report", "pf", "--store", sweep.config.store, "--out", str(out)])
    assert reported.exit_code == 0, reported.output
    page = (out / "index.html").read_text()
    figures = sorted(out.glob("preferred_*.png"))
    assert figures and figures[0].name in page and "Preferred images" in page


def test_a_folder_bank_is_ranked_and_bad_banks_are_refused(finished, tmp_path) -> None:
    from PIL import Image

    _, tmp = finished
    folder = tmp_path / "bank"
    folder.mkdir()
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128)]):
        Image.new("RGB", (40, 40), colour).save(folder / f"img{i}.png")
    sweep = Sweep(config_from_dict(config(tmp, bank=str(folder), top=2)))
    sweep.run()
    cell = next(c for c in sweep.plan().cells if c.analysis == "preferred")
    entry = Store(sweep.config.store, mode="r").open(cell.result_path("pf"))
    assert set(str(s) for s in entry["top_ids"][0]) <= {f"img{i}.png" for i in range(4)}
    assert np.isnan(entry["top_measured"]).all(), "folder images were never recorded"
    with pytest.raises(wb.WorkbenchError, match="neither 'dataset' nor an existing folder"):
        Sweep(config_from_dict(config(tmp, bank=str(tmp_path / "nowhere")))).run()
    with pytest.raises(wb.WorkbenchError, match="has no ROI 'FFA'"):
        Sweep(config_from_dict(config(tmp, targets=["FFA"]))).plan()
    with pytest.raises(wb.WorkbenchError, match="plans none"):
        Sweep(config_from_dict(config(tmp, head="banded"))).plan()
