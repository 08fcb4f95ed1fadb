"""Units whose test responses are constant have no Pearson r: NaN per unit, left out of the ROI means, counted,
and a warning that the run shows and the result records (as scipy's ``pearsonr`` and scikit-learn do)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from brain_workbench.sdk.analysis import Cell, Store
from brain_workbench.sweep import Sweep
from brain_workbench.sweep.config import config_from_dict
from brain_workbench_plugins.analyses import common, encoding

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures_encoders import ColourEncoder  # noqa: E402


def test_constant_columns_are_found_at_any_scale():
    Y = np.random.default_rng(0).normal(size=(10, 4)) * 1e6
    Y[:, 1] = 3e6
    Y[:, 3] = 0.0
    assert common.constant_columns(Y).tolist() == [False, True, False, True]


def test_constant_test_responses_score_nan_are_excluded_counted_and_warned(tmp_path, monkeypatch):
    import brain_workbench as wb

    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    cfg = config_from_dict({"name": "flat", "store": str(tmp_path / "s.zarr"),
                            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 40, "n_test": 12}},
                            "encoders": [{"name": "colour-test"}], "heads": [{"name": "ridge"}],
                            "metrics": [], "permutations": 5})
    real = encoding.prepared_recording

    def flatten(store_url, prep):
        data = dict(real(store_url, prep))
        Y = np.array(data["Y_test"], copy=True)
        Y[:, :7] = 2.5
        data["Y_test"] = Y
        return data

    monkeypatch.setattr(encoding, "prepared_recording", flatten)
    with pytest.warns(UserWarning, match="7 of .* units have constant test responses"):
        Sweep(cfg).run()
    store = Store(cfg.store, mode="r")
    sweep = Sweep(cfg)
    cell: Cell = next(c for c in sweep.plan().cells if c.analysis == "encoding")
    entry = store.open(cell.result_path("flat"))
    score = entry["score"]
    assert np.isnan(score[:7]).all() and np.isfinite(score[7:]).all()
    rows = {r["roi"]: r for r in entry.attrs["rois"]}
    assert rows["all"]["n_constant"] == 7 and rows["all"]["n_units"] == len(score) - 7
    assert rows["all"]["mean_r"] == pytest.approx(float(np.mean(score[7:])), abs=1e-6)
    assert "constant test responses" in entry.attrs["warnings"][0]


def test_constant_target_dimensions_of_a_decode_cell_score_nan_and_are_counted(tmp_path, monkeypatch):
    import brain_workbench as wb
    from brain_workbench_plugins.analyses import decoding

    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    cfg = config_from_dict({"name": "flatdec", "store": str(tmp_path / "s.zarr"),
                            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 40, "n_test": 12}},
                            "encoders": [{"name": "colour-test"}], "metrics": [], "permutations": 0,
                            "heads": [{"name": "decoder", "options": {"cv": 3}}],
                            "decoding": {"rois": ["all"], "n_way": [2]}})
    real = decoding.load_features

    def flat(store, path, ids):
        X = np.array(real(store, path, ids), copy=True)
        X[:, 0] = 1.5
        return X

    monkeypatch.setattr(decoding, "load_features", flat)
    with pytest.warns(UserWarning, match="target dimensions are constant over the test stimuli"):
        Sweep(cfg).run()
    cell = next(c for c in Sweep(cfg).plan().cells if c.analysis == "decoding")
    entry = Store(cfg.store, mode="r").open(cell.result_path("flatdec"))
    assert np.isnan(entry["score"][0]) and np.isfinite(entry["score"][1:]).all()
    assert entry.attrs["rois"][0]["n_constant"] == 1


def test_inner_group_on_decoding_cells_is_refused_not_ignored(tmp_path):
    import brain_workbench as wb

    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    cfg = config_from_dict({"name": "ig", "store": str(tmp_path / "s.zarr"),
                            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 40, "n_test": 12}},
                            "encoders": [{"name": "colour-test"}], "metrics": [], "permutations": 0,
                            "heads": [{"name": "decoder"}], "decoding": {"rois": ["all"]},
                            "cv": {"scheme": "split", "inner_group": "session"}})
    with pytest.raises(wb.WorkbenchError, match="cv.inner_group is applied to encoding cells only"):
        Sweep(cfg).run()
    assert not (tmp_path / "s.zarr" / "responses").exists()
