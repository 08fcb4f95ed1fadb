"""A finished encoding cell as a linear readout: refitting its head gives the cell's own predictions, and
objectives over ROIs, unit lists and contrasts are linear functions of raw features."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.sdk.analysis import Store, load_features, prepared_recording
from brain_workbench.sweep import Sweep
from brain_workbench.sweep.config import config_from_dict
from brain_workbench_plugins.analyses import readout

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures_encoders import ColourEncoder  # noqa: E402


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    tmp = tmp_path_factory.mktemp("readout")
    cfg = {"name": "ro", "store": str(tmp / "s.zarr"),
           "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 40, "n_test": 12}},
           "encoders": [{"name": "colour-test"}], "heads": [{"name": "ridge"}], "metrics": [],
           "permutations": 0, "cv": {"scheme": "split", "keep_predictions": True}}
    sweep = Sweep(config_from_dict(cfg))
    sweep.run()
    return sweep


def test_refitted_readout_predicts_what_the_finished_cell_predicted(finished):
    context = finished.context()
    cells = readout.encoding_cells(context, encoder="colour-test", head="ridge")
    assert cells
    cell = cells[0]
    store = Store(finished.config.store, mode="r")
    stored = store.open(cell.result_path(finished.config.name))
    fitted = readout.fit_readout(finished.config.store, readout.readout_task(cell))
    data = prepared_recording(finished.config.store, cell.task.prep)
    X = load_features(store, cell.task.feature_path, [str(s) for s in stored["test_ids"]])
    np.testing.assert_allclose(fitted.predict(X), stored["prediction"], rtol=1e-4, atol=1e-4)
    assert fitted.coef.shape == (X.shape[1], data["n_units"])


def test_objectives_are_linear_in_raw_features_for_rois_units_and_contrasts(finished):
    cell = readout.encoding_cells(finished.context())[0]
    fitted = readout.fit_readout(finished.config.store, readout.readout_task(cell))
    rois = [r for r, m in fitted.unit_rois.items() if m.any()]
    X = np.random.default_rng(0).normal(size=(5, fitted.coef.shape[0]))
    pred = fitted.predict(X)
    for target in (rois[0], [0, 3, 7], {"roi": rois[0], "minus": rois[1]}):
        w, b = readout.objective_weights(fitted, target)
        np.testing.assert_allclose(X @ w + b, pred @ readout.unit_selection(fitted, target), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(pred[:, [0, 3, 7]].mean(axis=1), X @ readout.objective_weights(fitted, [0, 3, 7])[0]
                               + readout.objective_weights(fitted, [0, 3, 7])[1], rtol=1e-9, atol=1e-9)


def test_bad_targets_and_cells_are_refused_in_one_sentence(finished):
    cell = readout.encoding_cells(finished.context())[0]
    fitted = readout.fit_readout(finished.config.store, readout.readout_task(cell), units=np.arange(10))
    with pytest.raises(wb.WorkbenchError, match="not among the readout's ROIs"):
        readout.unit_selection(fitted, "FFA-9")
    with pytest.raises(wb.WorkbenchError, match="not in the readout"):
        readout.unit_selection(fitted, [12])
    with pytest.raises(wb.WorkbenchError, match="roi: A, minus: B"):
        readout.unit_selection(fitted, {"roi": "V1"})
    with pytest.raises(wb.WorkbenchError, match="not a fitted encoding cell"):
        readout.readout_task(cell.__class__(**{**cell.__dict__, "analysis": "decoding"}))
