"""Models compared with models: a layer × layer matrix per metric, a heatmap and a report section; the brain as
one side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.sdk import LayerInfo
from brain_workbench.sdk.analysis import Store, load_features, prepared_recording
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.analyses.compare import layer_matrix


class StackEncoder:
    """Three cheap layers of pixel statistics: 8 × 8 pixels, then two fixed random nonlinear projections."""

    name = "stack-test"
    modality = "image"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("pixels", 0.0), LayerInfo("mid", 0.5), LayerInfo("top", 1.0)]

    def encode(self, batch, layers):
        rng = np.random.default_rng(0)
        W1, W2 = rng.standard_normal((192, 40)) / 14, rng.standard_normal((40, 10)) / 6
        px = np.stack([np.asarray(im.convert("RGB").resize((8, 8)), dtype=np.float64).ravel() / 255 for im in batch])
        mid = np.tanh(px @ W1)
        out = {"pixels": px, "mid": mid, "top": np.tanh(mid @ W2)}
        return {k: out[k].astype(np.float32) for k in layers}

    def fingerprint(self) -> str:
        return "stack-test-1"


def _config(tmp: Path, encoders: list[str], metrics: list | None = None) -> dict:
    return {"name": "cmp", "store": str(tmp / "s.zarr"),
            "dataset": {"name": "demo", "options": {"n_subjects": 2, "n_train": 20, "n_test": 30}},
            "encoders": [{"name": "stack-test"}], "heads": [], "metrics": [], "rois": ["V1", "VOT"],
            "permutations": 0,
            "compare": {"encoders": encoders, "metrics": metrics or [{"name": "cka"}, {"name": "rsa"}]}}


@pytest.fixture(scope="module")
def itself(tmp_path_factory):
    wb.register("stack-test", StackEncoder, kind="encoder", replace=True)
    sweep = Sweep(config_from_dict(_config(tmp_path_factory.mktemp("cmp"), ["stack-test"])))
    sweep.run()
    return sweep


def test_layer_by_layer_cka_of_a_model_with_itself(itself):
    rows = results_table(itself.store, "cmp")
    cka = rows[rows["analysis"] == "cka"]
    matrix, names, columns = layer_matrix(cka)
    assert names == columns == ["pixels", "mid", "top"] and matrix.shape == (3, 3)
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-12)
    cell = next(c for c in itself.plan().cells if c.analysis == "compare")
    ids = list(prepared_recording(itself.config.store, cell.task.prep)["test_ids"])
    store = Store(itself.config.store, mode="r")
    X = {layer: load_features(store, path, ids).astype(np.float64) for layer, path in cell.task.row_paths}
    expected = np.array([[wb.metric("cka").compare(X[a], X[b]) for b in columns] for a in names])
    np.testing.assert_allclose(matrix, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-12)
    assert (matrix < 1 - 1e-6).sum() == 6, "different layers are not identical"
    assert set(rows["subject"]) == {"1"}, "model × model is one matrix, not one per subject"


def test_tables_figure_and_report(itself, tmp_path):
    from brain_workbench.figures.sweep import write_figures
    from brain_workbench.report import write_report

    rows = results_table(itself.store, "cmp")
    tables = itself.analyses()["compare"].table(rows, "cmp", "value")
    assert [t.title.split(",")[0] for t in tables] == ["cmp: cka", "cmp: rsa"]
    assert tables[0].value_names == ("pixels", "mid", "top")
    paths = write_figures(itself.store, "cmp", tmp_path / "fig")
    heatmaps = [p for p in paths if Path(p).name.startswith("compare_")]
    assert len(heatmaps) == 2 and all(Path(p).stat().st_size > 5000 for p in heatmaps)
    html = Path(write_report(itself.store, "cmp", tmp_path / "report")).read_text()
    assert "Compare: cka, stack-test × stack-test layers" in html


def test_brain_rois_as_rows(tmp_path):
    wb.register("stack-test", StackEncoder, kind="encoder", replace=True)
    sweep = Sweep(config_from_dict(_config(tmp_path, ["brain", "stack-test"], [{"name": "cka"}])))
    sweep.run()
    rows = results_table(sweep.store, "cmp")
    assert set(rows["subject"]) == {"1", "2"} and set(rows["rows_of"]) == {"brain"}
    matrix, names, columns = layer_matrix(rows[rows["subject"] == "1"])
    assert names == ["all", "V1", "VOT"] and columns == ["pixels", "mid", "top"]
    cell = next(c for c in sweep.plan().cells if c.subject == "1" and c.layer == "mid")
    data = prepared_recording(sweep.config.store, cell.task.prep)
    X = load_features(Store(sweep.config.store, mode="r"), cell.feature_path, list(data["test_ids"]))
    V1 = data["Y_test"][:, data["rois"]["V1"]]
    assert matrix[1, 1] == pytest.approx(wb.metric("cka").compare(V1, X.astype(np.float64)), rel=1e-10)


def test_bad_compare_sections_are_refused(tmp_path):
    wb.register("stack-test", StackEncoder, kind="encoder", replace=True)
    with pytest.raises(WorkbenchError, match="brain can only be the first side"):
        Sweep(config_from_dict(_config(tmp_path, ["stack-test", "brain"]))).validate()
    with pytest.raises(WorkbenchError, match="'capacity' is a property of one representation"):
        Sweep(config_from_dict(_config(tmp_path, ["stack-test"], [{"name": "capacity"}]))).validate()
    with pytest.raises(WorkbenchError, match="no encoder 'nope'"):
        Sweep(config_from_dict(_config(tmp_path, ["nope"]))).plan()
