"""Preferred images: the shared tiny sweep ranks the demo stimuli (and a folder of images) by each target's
predicted response under the fitted readout; the stored ends equal a ranking recomputed from the cached features,
measured responses come from the recording, and the table, figure and report show them."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.sdk.analysis import Store, load_features, prepared_recording
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench_plugins.analyses import readout
from fixtures_pixel_sweep import TARGETS, pixel_config


def test_ranking_matches_the_readout_on_cached_features(pixel_sweep) -> None:
    sweep, _ = pixel_sweep
    table = results_table(sweep.store, "px")
    rows = table[table["kind"] == "preferred"]
    assert list(rows["roi"]) == ["V1", "VOT", "VOT-V1"]
    cell = next(c for c in sweep.plan().cells if c.analysis == "preferred")
    store = Store(sweep.config.store, mode="r")
    entry = store.open(cell.result_path("px"))
    source = readout.encoding_cells(sweep.context(), layer="pixels")[0]
    fitted = readout.fit_readout(sweep.config.store, readout.readout_task(source))
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


def test_results_show_figures_and_report_sections(pixel_sweep) -> None:
    from brain_workbench.figures.sweep import FigureKit
    from brain_workbench.report import ReportKit
    from brain_workbench_plugins.analyses.preferred import PreferredAnalysis
    from brain_workbench_plugins.analyses.synthesis import SynthesisAnalysis

    sweep, tmp = pixel_sweep
    shown = CliRunner().invoke(app, ["results", "show", "px", "--store", sweep.config.store])
    assert shown.exit_code == 0, shown.output
    assert "preferred images" in shown.output and "VOT-V1" in shown.output and "synthesized images, guide / judge" in shown.output
    table = results_table(sweep.store, "px")
    store = Store(sweep.config.store, mode="r")
    cells = [(c.key, c.describe()) for c in sweep.plan().cells]
    out = tmp / "figures"
    out.mkdir(exist_ok=True)
    kit = FigureKit(store, "px", out, cells, {}, False)
    for analysis, title in ((PreferredAnalysis(), "Preferred images"), (SynthesisAnalysis(), "Synthesized images")):
        rows = table[table["kind"] == analysis.name]
        paths = analysis.figures(rows, kit)
        assert paths and all(p.exists() and p.stat().st_size > 5000 for p in paths)
        assert kit.captions[paths[0].name].startswith(title)
        section = analysis.report_section(rows, ReportKit())[0]
        assert section.title.startswith(title) and "VOT" in section.body
    assert "judging objective (pixel-test/pixels readout fitted on the disjoint other half)" in " ".join(
        kit.captions.values())


def test_a_folder_bank_is_ranked_and_bad_banks_are_refused(pixel_sweep, tmp_path) -> None:
    from PIL import Image

    _, tmp = pixel_sweep
    folder = tmp_path / "bank"
    folder.mkdir()
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128)]):
        Image.new("RGB", (40, 40), colour).save(folder / f"img{i}.png")
    sweep = Sweep(config_from_dict(pixel_config(tmp, "px-folder", preferred={"bank": str(folder), "top": 2},
                                                synthesis=False)))
    sweep.run()
    cell = next(c for c in sweep.plan().cells if c.analysis == "preferred")
    entry = Store(sweep.config.store, mode="r").open(cell.result_path("px-folder"))
    assert set(str(s) for s in entry["top_ids"][0]) <= {f"img{i}.png" for i in range(4)}
    assert np.isnan(entry["top_measured"]).all(), "folder images were never recorded"
    with pytest.raises(wb.WorkbenchError, match="neither 'dataset' nor an existing folder"):
        Sweep(config_from_dict(pixel_config(tmp, preferred={"bank": str(tmp_path / "nowhere")}))).run()
    with pytest.raises(wb.WorkbenchError, match="has no ROI 'FFA'"):
        Sweep(config_from_dict(pixel_config(tmp, preferred={"targets": ["FFA"]}))).plan()
    with pytest.raises(wb.WorkbenchError, match="plans none"):
        Sweep(config_from_dict(pixel_config(tmp, preferred={"head": "banded"}))).plan()
