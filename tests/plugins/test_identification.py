"""ROI identification from RDMs, leave one subject out, nearest centroid, under each RDM transform."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist

import brain_workbench as wb
from brain_workbench.sdk.analysis import prepared_recording
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.analyses.identification import identify
from brain_workbench_plugins.metrics import compare_rdms, transform_rdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures_encoders import ColourEncoder  # noqa: E402


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return compare_rdms(a, b, "pearson")


def test_planted_rois_are_identified_and_noise_is_not() -> None:
    rng = np.random.default_rng(0)
    bases = {roi: pdist(rng.standard_normal((15, 4))) for roi in ("A", "B", "C")}
    rdms = {f"s{k}": {roi: base + 0.3 * rng.random(base.shape) for roi, base in bases.items()} for k in range(5)}
    assert identify(rdms, _pearson) == {"A": 1.0, "B": 1.0, "C": 1.0}
    noise = {f"s{k}": {roi: rng.random(105) for roi in ("A", "B", "C")} for k in range(5)}
    assert np.mean(list(identify(noise, _pearson).values())) < 0.8


def test_identification_is_leave_one_subject_out_by_hand() -> None:
    """Two subjects: each held-out ROI is called by the other subject's RDMs alone."""
    a1, b1 = np.array([1.0, 2, 3]), np.array([3.0, 2, 1])
    a2, b2 = np.array([1.0, 2.5, 3]), np.array([1.0, 2.4, 3])
    got = identify({"1": {"A": a1, "B": b1}, "2": {"A": a2, "B": b2}}, _pearson)
    expected = {}
    for roi in ("A", "B"):
        hits = 0
        for held, other in (({"A": a1, "B": b1}, {"A": a2, "B": b2}), ({"A": a2, "B": b2}, {"A": a1, "B": b1})):
            scores = {c: _pearson(held[roi], other[c]) for c in ("A", "B")}
            hits += max(scores, key=scores.get) == roi
        expected[roi] = hits / 2
    assert got == expected
    with pytest.raises(WorkbenchError, match="at least 2 subjects"):
        identify({"1": {"A": a1, "B": b1}}, _pearson)
    with pytest.raises(WorkbenchError, match="at least 2 ROIs"):
        identify({"1": {"A": a1}, "2": {"A": a2}}, _pearson)


def test_sweep_table_per_transform(tmp_path):
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    cfg = {"name": "ident", "store": str(tmp_path / "s.zarr"),
           "dataset": {"name": "demo", "options": {"n_subjects": 2, "n_train": 20, "n_test": 30}},
           "encoders": [{"name": "colour-test"}], "heads": [], "metrics": [], "rois": ["V1", "V2", "VOT"],
           "permutations": 0, "roi_identification": {"transforms": ["none", "geodesic"], "low": 0.1, "up": 0.6}}
    sweep = Sweep(config_from_dict(cfg))
    sweep.run()
    rows = results_table(sweep.store, "ident")
    assert set(rows["transform"]) == {"none", "geodesic"} and set(rows["roi"]) == {"V1", "V2", "VOT"}
    (table,) = sweep.analyses()["roi-identification"].table(rows, "ident", "identified")
    assert table.key_names == ("transform",) and table.value_names == ("V1", "V2", "VOT", "mean") and "chance 0.33" in table.title
    cell = next(c for c in sweep.plan().cells if c.analysis == "roi-identification")
    rdms = {}
    for subject, prep in cell.task.preps:
        data = prepared_recording(sweep.config.store, prep)
        order = np.argsort(np.asarray(data["test_ids"]))
        rdms[subject] = {roi: transform_rdm(wb.metric("rsa").model_rdm(data["Y_test"][order][:, m]), "geodesic",
                                            0.1, 0.6) for roi, m in data["rois"].items() if m.any()}
    expected = identify(rdms, _pearson)
    got = rows[rows["transform"] == "geodesic"].set_index("roi")["identified"].to_dict()
    assert got == expected
    cfg["dataset"]["options"]["n_subjects"] = 1
    with pytest.raises(WorkbenchError, match="needs at least 2 subjects"):
        Sweep(config_from_dict({**cfg, "store": str(tmp_path / "t.zarr")})).run()
