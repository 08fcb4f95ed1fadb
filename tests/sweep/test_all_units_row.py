"""The row over all units is optional in tables (``all_units_row: false``), without recomputing cells."""

from __future__ import annotations

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.sweep import Sweep, results_table, tidy_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import LayerInfo, digest


class MeanEncoder:
    name = "mean-colour-test"
    modality = "image"

    def layers(self):
        return [LayerInfo("colour", 1.0)]

    def encode(self, batch, layers):
        return {"colour": np.stack([np.asarray(im.convert("RGB").resize((4, 4)), np.float32).reshape(-1) / 255
                                    for im in batch])}

    def fingerprint(self):
        return digest("mean-colour-test", 1)


def test_all_units_row_can_be_left_out(tmp_path):
    wb.register("mean-colour-test", MeanEncoder, kind="encoder", replace=True)
    data = {"name": "allrow", "store": str(tmp_path / "s.zarr"), "permutations": 0,
            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 20, "n_test": 10}},
            "encoders": [{"name": "mean-colour-test"}], "heads": [{"name": "ridge", "options": {"alphas": [10.0]}}],
            "metrics": [{"name": "cka"}]}
    Sweep(config_from_dict(data)).run()
    store = Sweep(config_from_dict(data)).store
    with_all = results_table(store, "allrow")
    assert (with_all["roi"] == "all").sum() == 2
    summary = Sweep(config_from_dict({**data, "all_units_row": False})).run()
    assert summary["computed"] == 0
    without = results_table(store, "allrow")
    assert "all" not in set(without["roi"]) and "all" not in set(tidy_table(store, "allrow")["roi"])
    rest = with_all[with_all["roi"] != "all"].reset_index(drop=True)
    assert without["mean_r"].fillna(-9).tolist() == pytest.approx(rest["mean_r"].fillna(-9).tolist())
