"""The zero-shot config (configs/things-eeg2-zeroshot.yaml) end to end: the THINGS-EEG2 fixture in the published
layout, and things-eeg2-sim with planted structure (linear decoder and contrastive heads in one sweep)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import brain_workbench as wb
from brain_workbench.numerics.decoding import decoding_scores
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import LayerInfo, WorkbenchError, digest
from brain_workbench_plugins.decoder.heads import DecoderHead
from brain_workbench_plugins.eeg_zeroshot.head import ATMSHead, TSConvHead
from brain_workbench_plugins.eeg_zeroshot.simulate import POSTERIOR_17
from fixtures_datasets import make_things_eeg2

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "things-eeg2-zeroshot.yaml"
TINY = {"epochs": 2, "width": 4, "d_model": 8, "heads": 2, "batch_size": 4, "patience": 5}


class ThumbnailCLIP:
    """768-wide stand-in for CLIP ViT-L/14: a fixed random projection of 4 × 4 thumbnails (offline, cheap)."""

    name = "thumbnail-768"
    modality = "image"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("embedding", 1.0)]

    def encode(self, batch, layers):
        thumbs = np.stack([np.asarray(im.convert("RGB").resize((4, 4)), dtype=np.float32).ravel() / 255
                           for im in batch])
        return {"embedding": thumbs @ np.random.default_rng(0).standard_normal((48, 768)).astype(np.float32)}

    def fingerprint(self) -> str:
        return digest("thumbnail-768", 1)


@pytest.fixture(autouse=True)
def _encoder():
    wb.register("thumbnail-768", ThumbnailCLIP, kind="encoder", replace=True)


def zeroshot_config(tmp_path: Path, **changes) -> dict:
    data = yaml.safe_load(CONFIG.read_text())
    data["store"] = str(tmp_path / "store.zarr")
    for head in data["heads"]:
        if head["name"] != "decoder":
            head["options"].update(TINY)
    data.update(changes)
    return data


def test_config_runs_on_the_things_eeg2_fixture_in_the_published_layout(tmp_path: Path) -> None:
    root = tmp_path / "THINGS-EEG2"
    make_things_eeg2(root, subjects=(1,), n_train_concepts=4, images_per_concept=3, n_test=4, train_reps=2,
                     test_reps=3, channels=POSTERIOR_17, n_times=100)
    data = zeroshot_config(tmp_path, subjects=["1"], permutations=10,
                           encoders=[{"name": "thumbnail-768", "layers": ["embedding"]}])
    data["dataset"]["options"]["local_path"] = str(root)
    data["decoding"]["k_way"] = [2, 4]
    data["heads"][0]["options"]["cv"] = 2
    Sweep(config_from_dict(data)).run()
    frame = results_table(Sweep(config_from_dict(data)).store, "things-eeg2-zeroshot")
    assert sorted(frame["analysis"]) == ["atm-s", "linear", "nice-tsconv"]
    for column in ("top1_of2_brain_to_image", "top1_of4_image_to_brain", "top1_of4_brain_to_image"):
        assert frame[column].between(0, 1).all() and frame[f"p_{column}"].between(0, 1).all()
    assert (frame["chance_top1_of4_brain_to_image"] == 0.25).all()
    assert "top5_of4_brain_to_image" not in frame
    assert (frame["preset"] == "17 ch × 100 @ 100 Hz, -0.2–0.8 s, averaged, z-scored").all()
    data["decoding"]["k_way"] = [2, 200]
    with pytest.raises(WorkbenchError, match="200-way retrieval needs at least 200 test concepts; the test set has 4"):
        Sweep(config_from_dict({**data, "name": "too-few"})).run()


def test_sim_sweep_records_the_preset_and_scores_both_targets(tmp_path: Path) -> None:
    data = zeroshot_config(tmp_path, subjects=["1"], permutations=20,
                           dataset={"name": "things-eeg2-sim", "options": {
                               "n_train_concepts": 30, "images_per_concept": 2, "n_test": 20, "train_reps": 1,
                               "test_reps": 4, "n_subjects": 1, "snr": 2.0}},
                           encoders=[{"name": "nice-clip", "layers": ["image", "centre"]}])
    data["heads"] = data["heads"][:2]
    data["decoding"]["k_way"] = [2, 10, 20]
    Sweep(config_from_dict(data)).run()
    store = Sweep(config_from_dict(data)).store
    frame = results_table(store, "things-eeg2-zeroshot")
    assert sorted(zip(frame["analysis"], frame["layer"])) == [
        ("linear", "centre"), ("linear", "image"), ("nice-tsconv", "centre"), ("nice-tsconv", "image")]
    linear = frame[(frame["analysis"] == "linear") & (frame["layer"] == "image")].iloc[0]
    assert linear["top1_of2_brain_to_image"] > 0.65 and linear["p_top1_of2_brain_to_image"] <= 0.05
    assert linear["preset"].startswith("17 ch × 100 @ 100 Hz, -0.2–0.79 s, averaged")
    entry = next(e for e in store.iter_entries("results") if e.kind == "cell")
    preset = json.loads(store.open(entry.path).attrs["preprocessing_preset"])
    assert preset["layout"] == "17x100" and preset["channels"] == list(POSTERIOR_17)
    assert preset["source"] == "things-eeg2-sim-v1" and preset["averaged_repetitions"] is True


def _sim_split(n_train_concepts: int, images_per_concept: int, n_test: int, seed: int = 0, **options):
    ds = wb.dataset("things-eeg2-sim", n_train_concepts=n_train_concepts, images_per_concept=images_per_concept,
                    n_test=n_test, train_reps=2, test_reps=4, n_subjects=1, seed=seed, **options)
    rec = ds.recording("1").average_repetitions()
    row = {s: i for i, s in enumerate(ds.ids)}
    train = np.isin(rec.trial_stimulus_ids, rec.splits["train"])
    Y = ds.embeddings.image[[row[s] for s in rec.trial_stimulus_ids]]
    X = rec.responses
    mean, sd = X[train].mean(0), X[train].std(0)
    f_mean, f_sd = Y[train].mean(0), Y[train].std(0)
    return ((X[train] - mean) / sd, (Y[train] - f_mean) / f_sd, rec.trial_stimulus_ids[train],
            (X[~train] - mean) / sd, (Y[~train] - f_mean) / f_sd)


def _kway(pred: np.ndarray, true: np.ndarray, ks: list[int]) -> dict[str, float]:
    return {k: v["value"] for k, v in decoding_scores(pred, true, (1,), (), k_way=ks, k_way_draws=5).items()}


def test_shuffled_embeddings_decode_at_chance() -> None:
    Xtr, Ytr, ids, Xte, Yte = _sim_split(40, 2, 40, snr=2.0)
    shuffled = Ytr[np.random.default_rng(0).permutation(len(Ytr))]
    linear = DecoderHead(alphas=[1e2, 1e4], cv=2).fit(Xtr.reshape(len(Xtr), -1), shuffled)
    scores = _kway(linear.predict(Xte.reshape(len(Xte), -1)), Yte, [2, 40])
    assert abs(scores["top1_of2_brain_to_image"] - 0.5) < 0.12 and scores["top1_of40_brain_to_image"] < 0.1
    honest = DecoderHead(alphas=[1e2, 1e4], cv=2).fit(Xtr.reshape(len(Xtr), -1), Ytr)
    assert _kway(honest.predict(Xte.reshape(len(Xte), -1)), Yte, [2])["top1_of2_brain_to_image"] > 0.8


@pytest.mark.slow
def test_contrastive_heads_beat_the_linear_decoder_on_200_way_and_shuffles_are_at_chance() -> None:
    Xtr, Ytr, ids, Xte, Yte = _sim_split(300, 10, 200)
    options = {"batch_size": 256, "lr": 1e-3, "width": 20, "epochs": 80, "patience": 10, "seed": 0}
    linear = DecoderHead(alphas=[1e2, 1e3, 1e4, 1e5], cv=3).fit(Xtr.reshape(len(Xtr), -1), Ytr)
    base = _kway(linear.predict(Xte.reshape(len(Xte), -1)), Yte, [2, 200])
    assert base["top1_of200_brain_to_image"] > 10 * (1 / 200)
    for cls in (TSConvHead, ATMSHead):
        head = cls(**options).fit(Xtr, Ytr, groups=ids)
        got = _kway(head.predict(Xte), Yte, [2, 200])
        assert got["top1_of200_brain_to_image"] > base["top1_of200_brain_to_image"], (cls.__name__, got, base)
        shuffled = cls(**{**options, "epochs": 15}).fit(Xtr, Ytr[np.random.default_rng(1).permutation(len(Ytr))],
                                                        groups=ids)
        null = _kway(shuffled.predict(Xte), Yte, [2, 200])
        assert abs(null["top1_of2_brain_to_image"] - 0.5) < 0.08 and null["top1_of200_brain_to_image"] < 0.03


def test_time_resolved_decoding_peaks_inside_the_planted_window(tmp_path: Path) -> None:
    from brain_workbench.figures.sweep import write_figures

    data = {
        "name": "eeg-timecourse", "store": str(tmp_path / "store.zarr"), "subjects": ["1"],
        "dataset": {"name": "things-eeg2-sim", "options": {
            "n_train_concepts": 40, "images_per_concept": 2, "n_test": 30, "train_reps": 1, "test_reps": 4,
            "n_subjects": 1, "snr": 2.0, "response_window": [0.15, 0.3]}},
        "average_repetitions": True, "test_split": "test",
        "encoders": [{"name": "nice-clip", "layers": ["image"]}],
        "heads": [{"name": "decoder", "options": {"alphas": [10.0, 1000.0], "cv": 2}}],
        "decoding": {"k_way": [2, 30], "sliding_windows": [-0.2, 0.7, 0.1, 0.1]},
        "permutations": 20,
    }
    sweep = Sweep(config_from_dict(data))
    sweep.run()
    frame = results_table(sweep.store, "eeg-timecourse")
    assert frame["window_centre_s"].nunique() == 9
    curve = frame.groupby("window_centre_s")["top1_of2_brain_to_image"].mean()
    assert 0.15 <= curve.idxmax() <= 0.3 and curve.max() > 0.7
    assert curve[curve.index < 0].max() < 0.72  # before onset: nothing to decode
    from brain_workbench.analysis.timecourse import timecourse_table

    (peak,) = timecourse_table(frame, "top1_of30_brain_to_image")
    assert 0.15 <= peak["peak_s"] <= 0.3 and peak["peak"] > peak["null95_at_peak"] >= peak["chance"] == 1 / 30
    paths = write_figures(sweep.store, "eeg-timecourse", tmp_path / "figures")
    assert tmp_path / "figures" / "decoding_timecourse.png" in paths
