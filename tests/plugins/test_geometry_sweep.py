"""Geometry metrics and RDM transforms through a sweep on the demo: categories reach the metrics from the
dataset, property metrics give the layer's and each ROI's value side by side, at equal numbers of units."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.sdk.analysis import Store, load_features, prepared_recording
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.demo import DemoDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures_encoders import ColourEncoder  # noqa: E402

METRICS = [{"name": "capacity", "options": {"n_t": 40, "n_reps": 1}}, {"name": "mmcr"},
           {"name": "eigenspectrum", "options": {"fit_from": 1, "fit_to": 5}},
           {"name": "rsa", "options": {"rdm_transform": "geodesic", "low": 0.1, "up": 0.6}},
           {"name": "relative", "options": {"metric": "cka", "anchors": 5}}]


def _config(tmp: Path, metrics: list, **dataset) -> dict:
    return {"name": "geo", "store": str(tmp / "s.zarr"),
            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 20, "n_test": 48, **dataset}},
            "encoders": [{"name": "colour-test"}], "heads": [], "metrics": metrics, "rois": ["V1", "VOT"],
            "permutations": 0}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    sweep = Sweep(config_from_dict(_config(tmp_path_factory.mktemp("geo"), METRICS)))
    sweep.run()
    return sweep


def test_property_metrics_give_model_and_brain_values_side_by_side(finished):
    rows = results_table(finished.store, "geo")
    cap = rows[rows["analysis"] == "capacity"]
    assert set(cap["roi"]) == {"all", "V1", "VOT"}
    assert (cap["n_units_matched"] == 6).all() and (cap["units_matching"] == "projection").all()
    assert cap["value"].between(0, 2).all() and cap["brain_value"].between(0, 2).all()
    assert cap["model_radius"].notna().all() and cap["brain_dimension"].notna().all()
    eig = rows[rows["analysis"] == "eigenspectrum"]
    assert (eig["brain_cross_validated"] == 1.0).all() and (eig["model_cross_validated"] == 0.0).all()
    tables = {t.title: t for t in finished.analyses()["metric"].table(rows[rows["analysis"] == "capacity"], "geo",
                                                                     "value")}
    (title, table), = tables.items()
    assert "side by side" in title and "N = 6 units (projection)" in title
    assert table.value_names[:2] == ("V1 model", "V1 brain"), table.value_names


def test_cells_equal_the_metrics_on_the_same_data(finished):
    rows = results_table(finished.store, "geo")
    cell = next(c for c in finished.plan().cells if c.label == "capacity")
    data = prepared_recording(finished.config.store, cell.task.prep)
    ids = list(data["test_ids"])
    X = load_features(Store(finished.config.store, mode="r"), cell.feature_path, ids).astype(np.float64)
    stim = wb.dataset("demo", n_subjects=1, n_train=20, n_test=48).stimuli()
    metric = wb.metric("capacity", n_t=40, n_reps=1, categories=stim.category_of(ids))
    V1 = data["Y_test"][:, data["rois"]["V1"]]
    row = rows[(rows["analysis"] == "capacity") & (rows["roi"] == "V1")].iloc[0]
    assert row["value"] == pytest.approx(metric.measure(X, 6)["alpha"], rel=1e-12)
    assert row["brain_value"] == pytest.approx(metric.measure(V1, 6)["alpha"], rel=1e-12)
    rsa = rows[(rows["analysis"] == "rsa") & (rows["roi"] == "V1")].iloc[0]
    assert rsa["score_name"] == "rsa_spearman_geodesic"
    expected = wb.metric("rsa", rdm_transform="geodesic", low=0.1, up=0.6).compare(X, V1)
    assert rsa["value"] == pytest.approx(expected, rel=1e-9)


def test_units_fewer_than_the_matched_n_are_refused(tmp_path):
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    cfg = _config(tmp_path, [{"name": "mmcr", "options": {"units": 50}}])
    with pytest.raises(WorkbenchError, match="has 6 units, fewer than the 50 the comparison is matched at"):
        Sweep(config_from_dict(cfg)).run()


class UnlabelledDemo(DemoDataset):
    """The demo without stimulus categories, as a dataset that gives none (NSD here)."""

    name = "demo-unlabelled"

    def stimuli(self, modality=None):
        return dataclasses.replace(super().stimuli(modality), categories=None)


def test_missing_categories_are_refused_before_any_work(tmp_path):
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    wb.register("demo-unlabelled", UnlabelledDemo, kind="dataset", replace=True)
    cfg = _config(tmp_path, [{"name": "capacity"}])
    cfg["dataset"]["name"] = "demo-unlabelled"
    sweep = Sweep(config_from_dict(cfg))
    with pytest.raises(WorkbenchError, match="gives its image stimuli no categories, which capacity and mmcr need"):
        sweep.run()
    assert not (tmp_path / "s.zarr" / "features").exists(), "refused before extracting features"


def test_a_category_with_too_few_test_stimuli_is_refused(tmp_path):
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    cfg = _config(tmp_path, [{"name": "capacity"}], n_test=10)
    with pytest.raises(WorkbenchError, match=r"capacity needs at least 2 stimuli per category, but category '\w+' has 1"):
        Sweep(config_from_dict(cfg)).run()


def test_bootstrap_gives_an_interval_of_model_minus_brain(tmp_path):
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    cfg = {**_config(tmp_path, [{"name": "mmcr"}, {"name": "eigenspectrum", "options": {"fit_to": 5}}]),
           "bootstrap": 12, "permutations": 4}
    sweep = Sweep(config_from_dict(cfg))
    sweep.run()
    rows = results_table(sweep.store, "geo")
    assert (rows["ci_low"] < rows["ci_high"]).all()
    diff = rows["value"] - rows["brain_value"]
    width = rows["ci_high"] - rows["ci_low"]
    assert ((rows["ci_low"] - width <= diff) & (diff <= rows["ci_high"] + width)).all(), "resampled around the estimate"
    assert "p_permutation" not in rows or rows["p_permutation"].isna().all(), "no stimulus null for a property"


def test_property_figure_is_drawn(finished, tmp_path):
    from brain_workbench.figures.sweep import figure_captions, write_figures

    paths = write_figures(finished.store, "geo", tmp_path)
    drawn = {Path(p).name for p in paths}
    assert {"layers_capacity.png", "layers_mmcr.png", "layers_eigenspectrum.png"} <= drawn
    assert "ROI brain" in figure_captions(tmp_path)["layers_capacity.png"]
