"""A layer constant over the stimuli up to rounding (SD 1.5e-9 relative) gets no metric value from rounding noise:
the metrics refuse it, and a sweep leaves its rows out (NaN) with a warning saying how many."""

from __future__ import annotations

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.numerics.stats import CONSTANT_RTOL, relative_spread
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import LayerInfo, WorkbenchError, digest
from brain_workbench_plugins.metrics import ConstantRepresentation


def _nearly_constant(n: int = 20, d: int = 6, sd: float = 1.5e-9, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 1.0 + rng.standard_normal(d) * 0.3 + sd * rng.standard_normal((n, d))


def test_relative_spread_catches_a_layer_varying_at_1_5e_9():
    X = _nearly_constant()
    assert relative_spread(X) < CONSTANT_RTOL
    assert relative_spread(X) == pytest.approx(np.ptp(X, axis=0).max() / np.abs(X).max())
    assert relative_spread(np.zeros((5, 3))) == 0.0
    small = 1e-12 * np.random.default_rng(1).standard_normal((20, 6))  # tiny in magnitude, but it varies
    assert relative_spread(small) > 0.1


@pytest.mark.parametrize("name", ["rsa", "cka", "svcca"])
def test_metrics_refuse_a_nearly_constant_layer(name):
    X = _nearly_constant()
    Y = np.random.default_rng(2).standard_normal((20, 30))
    with pytest.raises(ConstantRepresentation, match=r"X is constant over the stimuli .*relative spread"):
        wb.metric(name).compare(X, Y)
    small = 1e-7 * np.random.default_rng(1).standard_normal((20, 6))  # small, but it varies
    assert np.isfinite(wb.metric(name).compare(small, Y))


def test_rsa_refuses_a_nearly_constant_layer_against_a_given_rdm():
    rdm = np.random.default_rng(3).uniform(0.5, 1.5, 20 * 19 // 2)
    with pytest.raises(WorkbenchError, match="constant over the stimuli"):
        wb.metric("rsa").compare_to_rdm(_nearly_constant(), rdm)


class FlatAndColour:
    """Two layers: image colour statistics, and a layer constant over the images up to SD 1.5e-9 (relative)."""

    name, modality = "flat-and-colour", "image"

    def layers(self):
        return [LayerInfo("flat", 0.5), LayerInfo("colour", 1.0)]

    def encode(self, batch, layers):
        arrays = [np.asarray(im.convert("RGB").resize((8, 8)), dtype=np.float64) / 255 for im in batch]
        colour = np.stack([np.r_[a.mean((0, 1)), a.std((0, 1))] for a in arrays])
        rng = np.random.default_rng(len(batch))
        flat = 3.0 + 1.5e-9 * 3.0 * rng.standard_normal((len(batch), 6))
        out = {"colour": colour, "flat": flat}
        return {k: out[k] for k in layers}

    def fingerprint(self):
        return digest("flat-and-colour", 1)


@pytest.mark.parametrize("dataset", [{"n_subjects": 2, "n_train": 10, "n_test": 16},
                                     {"n_subjects": 2, "n_train": 10, "n_test": 16, "as_rdms": True}])
def test_a_sweep_leaves_constant_layers_out_and_says_how_many(tmp_path, dataset):
    wb.register("flat-and-colour", FlatAndColour, kind="encoder", replace=True)
    metrics = [{"name": "rsa"}] + ([] if dataset.get("as_rdms") else [{"name": "cka"}])
    sweep = Sweep(config_from_dict({"name": "flat", "store": str(tmp_path / "s.zarr"), "seed": 0,
                                    "dataset": {"name": "demo", "options": dataset}, "heads": [],
                                    "encoders": [{"name": "flat-and-colour", "layers": ["flat", "colour"]}],
                                    "metrics": metrics, "permutations": 5, "bootstrap": 0}))
    with pytest.warns(UserWarning) as caught:
        summary = sweep.run()
    texts = [str(w.message) for w in caught]
    n_cells = 2 * len(metrics)
    assert summary["left_out"] == n_cells
    assert f"{n_cells} of the {2 * n_cells} computed cells left their rows out (constant layer; value NaN)" in texts
    assert sum("layer 'flat' is constant over the" in t and "left out (value NaN)" in t for t in texts) == n_cells
    frame = results_table(sweep.store, "flat")
    flat, colour = frame[frame.layer == "flat"], frame[frame.layer == "colour"]
    assert len(flat) and flat["value"].isna().all() and (flat["left_out"] == "constant layer").all()
    assert flat["p_permutation"].isna().all() if "p_permutation" in flat else True
    assert colour["value"].notna().all()
    assert set(flat["roi"]) == set(colour["roi"])
