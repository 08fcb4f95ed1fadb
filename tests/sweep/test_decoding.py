"""Decode cells: a decode head fits brain → features (not features → brain) and is scored by retrieval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.analysis.recordings import prepare_recording
from brain_workbench.numerics.decoding import chance_levels, decoding_scores, score_similarity
from brain_workbench.sweep import Sweep, load_cell_scores, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import LayerInfo, WorkbenchError, digest
from brain_workbench_plugins.analyses.common import decoding_inputs


class PixelEncoder:
    """8 × 8 thumbnails: the low-level statistics the demo's early visual ROIs follow."""

    name = "pixel-decode-test"
    modality = "image"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("thumbnail", 1.0)]

    def encode(self, batch, layers):
        arrays = [np.asarray(im.convert("L").resize((8, 8)), dtype=np.float32).ravel() / 255 for im in batch]
        return {"thumbnail": np.stack(arrays)}

    def fingerprint(self) -> str:
        return digest("pixel-decode-test", 1)


@pytest.fixture(autouse=True)
def _encoder():
    wb.register("pixel-decode-test", PixelEncoder, kind="encoder", replace=True)


def config(tmp_path: Path, **changes) -> dict:
    data = {
        "name": "decode", "store": str(tmp_path / "store.zarr"),
        "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 160, "n_test": 40, "noise": 0.5}},
        "encoders": [{"name": "pixel-decode-test"}],
        "heads": [{"name": "decoder", "options": {"alphas": [1.0, 100.0, 10000.0], "cv": 3}}],
        "decoding": {"rois": ["all", "V1"], "n_way": [10], "n_subsets": 5},
        "permutations": 50,
    }
    data.update(changes)
    return data


def test_decode_head_fits_brain_to_features_and_scores_retrieval(tmp_path):
    cfg = config_from_dict(config(tmp_path))
    summary = Sweep(cfg).run()
    assert summary["computed"] == 2, "one decode cell per unit set"
    frame = results_table(Sweep(cfg).store, "decode")
    assert set(frame["kind"]) == {"decoding"} and set(frame["roi"]) == {"all", "V1"}
    v1 = frame[frame["roi"] == "V1"].iloc[0]
    assert v1["top5_brain_to_image"] > 2 * v1["chance_top5_brain_to_image"]
    assert v1["top1_10way_brain_to_image"] > 2 * v1["chance_top1_10way_brain_to_image"] == 0.2
    assert v1["two_way"] > 0.7 and v1["p_two_way"] < 0.05 and v1["q_two_way"] < 0.05
    (cell, arrays), = [c for c in load_cell_scores(Sweep(cfg).store, "decode", kinds=("decoding",))
                       if c[0]["task"]["roi"] == "V1"]
    assert arrays["score"].shape == (64,), "one r per feature dimension"


def test_decode_cell_equals_a_direct_fit(tmp_path):
    cfg = config_from_dict(config(tmp_path, decoding={"rois": ["V1"]}, permutations=0))
    sweep = Sweep(cfg)
    sweep.run()
    rec = sweep.dataset.recording("1")
    data = prepare_recording(rec, True, "test", None)
    B_train, B_test, _ = decoding_inputs(data, "V1", None)
    mean, sd = B_train.mean(0), B_train.std(0)
    enc = PixelEncoder()
    images = sweep.dataset.stimuli("image")
    F_train = enc.encode(images.get(data["train_ids"]), ["thumbnail"])["thumbnail"]
    F_test = enc.encode(images.get(data["test_ids"]), ["thumbnail"])["thumbnail"]
    head = wb.head("decoder", alphas=[1.0, 100.0, 10000.0], cv=3).fit((B_train - mean) / sd, F_train)
    direct = head.score_per_unit((B_test - mean) / sd, F_test)
    (_, arrays), = list(load_cell_scores(sweep.store, "decode", kinds=("decoding",)))
    np.testing.assert_allclose(arrays["score"], direct, atol=1e-4)
    encode_r = results_table(sweep.store, "decode")["mean_r"].iloc[0]
    assert np.isclose(encode_r, np.nanmean(direct), atol=1e-4)


def test_scores_on_known_similarities():
    S = np.eye(4) + 0.1 * np.arange(16).reshape(4, 4) / 16
    out = score_similarity(S, ks=(1,), n_way=(2,), n_subsets=3)
    assert out["top1_brain_to_image"] == 1.0 and out["top1_image_to_brain"] == 1.0 and out["two_way"] == 1.0
    tied = np.ones((3, 3))
    assert score_similarity(tied, ks=(1,))["top1_brain_to_image"] == 0.0, "ties count as failures"
    assert score_similarity(tied, ks=(1,))["two_way"] == 0.0
    assert chance_levels(100, (1, 5), (10,)) == {
        "top1_brain_to_image": 0.01, "top1_image_to_brain": 0.01, "top5_brain_to_image": 0.05,
        "top5_image_to_brain": 0.05, "top1_10way_brain_to_image": 0.1, "top1_10way_image_to_brain": 0.1,
        "two_way": 0.5}
    rng = np.random.default_rng(0)
    null = decoding_scores(rng.standard_normal((60, 5)), rng.standard_normal((60, 5)), permutations=99)
    assert 0.35 < null["two_way"]["value"] < 0.65 and null["two_way"]["p_permutation"] > 0.01


def test_bad_decoding_input_is_one_sentence(tmp_path):
    with pytest.raises(WorkbenchError, match="20-way retrieval needs at least 20 test stimuli; the test set has 12"):
        decoding_scores(np.eye(12), np.eye(12), n_way=(20,))
    cfg = config_from_dict(config(tmp_path, decoding={"rois": ["nowhere"]}, permutations=0))
    sweep = Sweep(cfg)
    with pytest.raises(WorkbenchError, match="demo/1 has no ROI 'nowhere'; its ROIs are V1, V2"):
        sweep.run()
    assert not sweep.store.ls("features"), "the typo is caught before any feature is computed"


@pytest.mark.parametrize("changes, message", [
    ({"heads": [{"name": "decoder", "options": {"cv": 1}}]}, "cv=1 needs at least 2 folds"),
    ({"heads": [{"name": "decodr"}]}, "unknown head 'decodr'"),
    ({"heads": [{"name": "decoder", "options": {"alpha": 1}}]}, "has no option 'alpha'"),
    ({"metrics": [{"name": "rsa", "options": {"rdm": "cosine"}}]}, "option rdm='cosine' is not one of"),
])
def test_typos_are_refused_before_any_work(tmp_path, changes, message):
    sweep = Sweep(config_from_dict(config(tmp_path, **changes)))
    with pytest.raises(WorkbenchError, match=message):
        sweep.run()
    assert not (tmp_path / "store.zarr" / "responses").exists(), "nothing was cached"


def test_an_unknown_executor_is_refused_even_when_nothing_is_pending(tmp_path):
    with pytest.raises(WorkbenchError, match="unknown executor 'bogus'"):
        Sweep(config_from_dict(config(tmp_path))).run(executor="bogus")


def test_a_head_can_name_its_own_layers(tmp_path):
    from brain_workbench.sweep.config import config_from_dict as cfg_from

    data = config(tmp_path, encoders=[{"name": "pixel-decode-test", "layers": []}],
                  heads=[{"name": "ridge", "options": {"cv": 3}},
                         {"name": "decoder", "layers": ["thumbnail"], "options": {"cv": 3}}])
    plan = Sweep(cfg_from(data)).plan()
    assert [c.kind for c in plan.cells] == ["decoding", "decoding"], "ridge has no listed layer; decoder names its own"
    assert list(plan.extractions[0].layers) == ["thumbnail"]


@pytest.mark.parametrize("where", ["encoders", "heads"])
def test_a_boolean_layer_is_refused_not_read_as_depth_one(tmp_path, where):
    data = config(tmp_path)
    data[where][0]["layers"] = [True]
    with pytest.raises(WorkbenchError, match=rf"{where}\.0\.layers.*not true; write 1.0 for the last layer"):
        config_from_dict(data)


def test_bad_workers_no_work_and_an_unknown_split_are_refused_before_features(tmp_path):
    with pytest.raises(WorkbenchError, match="-j/--workers must be at least 1, got -1"):
        Sweep(config_from_dict(config(tmp_path))).run(workers=-1)
    assert not (tmp_path / "store.zarr" / "responses").exists(), "nothing was cached"
    with pytest.raises(WorkbenchError, match="the config plans no cells: .*a decoding section needs a decode head"):
        Sweep(config_from_dict(config(tmp_path, heads=[], metrics=[]))).run()
    with pytest.raises(WorkbenchError, match="a sweep with encoders needs heads, metrics, or an analysis section"):
        config_from_dict({k: v for k, v in config(tmp_path, heads=[], metrics=[]).items() if k != "decoding"})
    sweep = Sweep(config_from_dict(config(tmp_path, test_split="tset")))
    with pytest.raises(WorkbenchError, match="demo/1 has no split 'tset'; its splits are"):
        sweep.run()
    assert not sweep.store.ls("features"), "the typo is caught before any feature is computed"


def test_retrieval_figure_shows_the_similarities_the_scores_came_from(tmp_path, monkeypatch):
    from brain_workbench.figures import reconstructions
    from brain_workbench.figures.sweep import write_figures
    from brain_workbench.numerics.decoding import score_similarity as scored

    cfg = config_from_dict(config(tmp_path, decoding={"rois": ["V1"], "keep_predictions": True}, permutations=0))
    Sweep(cfg).run()
    store = Sweep(cfg).store
    (cell, arrays), = load_cell_scores(store, "decode", kinds=("decoding",))
    S = np.asarray(arrays["similarity"])
    assert S.shape == (40, 40)
    row = results_table(store, "decode").iloc[0]
    assert scored(S.astype(np.float64))["top1_brain_to_image"] == pytest.approx(row["top1_brain_to_image"], abs=1e-9)
    shown = {}
    real = reconstructions.plot_retrieval
    monkeypatch.setattr(reconstructions, "plot_retrieval",
                        lambda S, candidates, **kw: shown.update(S=S, candidates=candidates, **kw) or real(S, candidates, **kw))
    paths = write_figures(store, "decode", tmp_path / "figures")
    assert tmp_path / "figures" / "retrieval.png" in paths
    np.testing.assert_array_equal(shown["S"], S)
    assert shown["candidates"].shape[0] == 40 and shown["candidates"].dtype == np.uint8
    assert len(shown["queries"]) == 6


def test_retrieval_figure_without_kept_predictions_says_what_to_set(tmp_path):
    from brain_workbench.figures.reconstructions import draw_sweep_retrieval

    cfg = config_from_dict(config(tmp_path, decoding={"rois": ["V1"]}, permutations=0))
    Sweep(cfg).run()
    with pytest.raises(WorkbenchError, match="keep_predictions: true"):
        draw_sweep_retrieval(Sweep(cfg).store, "decode", tmp_path / "r.png")
