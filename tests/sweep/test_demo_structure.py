"""End to end on the demo with real encoders: the planted layer-to-ROI structure is recovered.

This is the test that shows the pipeline finds signal where the generator put it (early ROIs at
early layers of an ImageNet-trained network, later ROIs at later layers, the caption-only
"semantic" ROI only through the text encoder) and not where it did not (vertices outside every ROI).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from brain_workbench.numerics.scoring import critical_r
from brain_workbench.store import load_recording
from brain_workbench.sweep import Sweep, load_cell_scores, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench_plugins.demo import ROI_ORDER

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory):
    config = config_from_dict({
        "name": "structure",
        "store": str(tmp_path_factory.mktemp("demo") / "store.zarr"),
        "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 300, "n_test": 100}},
        "encoders": [{"name": "efficientnet", "layers": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]},
                     {"name": "hf-lm", "layers": [1.0], "batch_size": 64}],
        "heads": [{"name": "ridge", "options": {"cv": 5}}],
        "permutations": 100,
    })
    sweep = Sweep(config)
    sweep.run()
    return sweep, results_table(sweep.store, "structure")


def best_depth(frame, encoder: str, roi: str) -> float:
    rows = frame[(frame["encoder"] == encoder) & (frame["roi"] == roi)]
    return float(rows.loc[rows["mean_r"].idxmax(), "depth"])


def test_best_layer_deepens_from_early_to_late_rois(demo_results):
    _, frame = demo_results
    visual = [roi for roi in ROI_ORDER if roi != "semantic"]
    depths = [best_depth(frame, "efficientnet", roi) for roi in visual]
    rho = stats.spearmanr(np.arange(len(visual)), depths).statistic
    assert rho > 0.8, dict(zip(visual, depths))
    assert depths[0] < depths[-1]
    assert max(depths[:3]) < min(depths[-2:])


def test_roi_scores_beat_the_permutation_null(demo_results):
    _, frame = demo_results
    effnet = frame[(frame["encoder"] == "efficientnet") & frame["roi"].isin(ROI_ORDER[:-1])]
    best = effnet.loc[effnet.groupby("roi")["mean_r"].idxmax()]
    assert (best["mean_r"] > best["null_mean_r_95"]).all()
    assert (best["p_permutation"] < 0.02).all()


def test_semantic_roi_is_explained_by_the_text_encoder_only(demo_results):
    _, frame = demo_results
    semantic = frame[frame["roi"] == "semantic"]
    text = semantic[semantic["encoder"] == "hf-lm"]["mean_r"].max()
    image = semantic[semantic["encoder"] == "efficientnet"]["mean_r"].max()
    assert text > 0.5 and text > image + 0.3


def test_no_signal_outside_the_rois(demo_results):
    sweep, _ = demo_results
    rec = load_recording(sweep.store, sweep.plan().response_paths["1"])
    outside = ~np.any(np.stack(list(rec.units.rois.values())), axis=0)
    for cell, arrays in load_cell_scores(sweep.store, "structure"):
        r = arrays["score"][outside]
        assert abs(float(r.mean())) < 0.03, cell["layer"]
        assert float(np.mean(r > critical_r(cell["n_test"]))) < 0.01, cell["layer"]
