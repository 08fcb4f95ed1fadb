"""things-eeg2-sim: the shipped CLIP embeddings, the simulated EEG's layouts, provenance and planted structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tomllib

import brain_workbench as wb
from brain_workbench.plugin.testing import check_dataset, check_encoder
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.eeg_zeroshot import embeddings as emb
from brain_workbench_plugins.eeg_zeroshot.simulate import LAYOUTS, ThingsEEG2SimDataset

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"n_train_concepts": 12, "images_per_concept": 2, "n_test": 10, "train_reps": 2, "test_reps": 3}


def test_shipped_embeddings_are_the_nice_assets_with_licence_and_package_data() -> None:
    images, centres = emb.real_embeddings()
    assert images.shape == centres.shape == (200, 768) and images.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    own = np.sum(images * centres / np.linalg.norm(centres, axis=1, keepdims=True), axis=1)
    assert own.mean() > 0.85  # each test image lies near its own concept centre
    assert "MIT License" in (emb.ASSETS / "LICENSE").read_text()
    assert "eeyhsong/NICE-EEG" in (emb.ASSETS / "README.md").read_text()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "brain_workbench_plugins.eeg_zeroshot" in data["packages"]
    assert set(data["package-data"]["brain_workbench_plugins.eeg_zeroshot"]) >= {
        "assets/*.npy", "assets/LICENSE", "assets/README.md"}


def test_training_concepts_lie_near_real_ones_and_test_rows_are_real() -> None:
    e = emb.simulate_embeddings(n_test=5, n_train_concepts=4, images_per_concept=3, concept_spread=0.02, seed=1)
    images, centres = emb.real_embeddings()
    np.testing.assert_array_equal(e.image[-5:], images[:5])
    np.testing.assert_array_equal(e.centre[-5:], centres[:5])
    unit = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    train_centres = e.centre[:12] / np.linalg.norm(e.centre[:12], axis=1, keepdims=True)
    near = np.sum(train_centres * unit[e.anchor[:12]], axis=1)
    assert near.min() > 0.7 and near.max() < 0.999


def test_conformance_and_both_layouts_with_provenance() -> None:
    for name, (n_ch, n_t) in (("17x100", (17, 100)), ("63x250", (63, 250))):
        ds = wb.dataset("things-eeg2-sim", layout=name, **SMALL)
        rec = ds.recording("1")
        assert rec.responses.shape == (12 * 2 * 2 + 10 * 3, n_ch, n_t)
        step = rec.preprocessing[0]
        assert step["layout"] == name and step["n_channels"] == n_ch and step["sfreq_hz"] == LAYOUTS[name].sfreq
        assert list(rec.units.names) == list(LAYOUTS[name].channels)
        assert list(rec.trial_stimulus_ids[:2]) == ["sim_c0001_01"] * 2 and rec.splits["test"][0] == "sim_test_001"
    check_dataset(wb.dataset("things-eeg2-sim", **SMALL), subjects=["2"])


def test_nice_clip_encoder_returns_the_generating_embeddings() -> None:
    ds = wb.dataset("things-eeg2-sim", **SMALL)
    stimuli = ds.stimuli()
    encoder = wb.encoder("nice-clip")
    check_encoder(encoder, stimuli.get(stimuli.ids[:4]))
    out = encoder.encode(stimuli.get(stimuli.ids[-3:]), ["image", "centre"])
    images, centres = emb.real_embeddings()
    np.testing.assert_array_equal(out["image"], images[7:10])
    np.testing.assert_array_equal(out["centre"], centres[7:10])
    from PIL import Image

    with pytest.raises(WorkbenchError, match="things-eeg2-sim stimuli only"):
        encoder.encode([Image.new("RGB", (8, 8))], ["image"])


def test_signal_lives_in_the_planted_window() -> None:
    ds = ThingsEEG2SimDataset(**{**SMALL, "test_reps": 8, "noise": 0.5})
    rec = ds.recording("1")
    test = rec.responses[-10 * 8:].reshape(10, 8, 17, 100)
    between = test.mean(axis=1).var(axis=0).mean(axis=0)  # stimulus variance of the repetition mean per time
    t = rec.times
    inside = (t >= 0.1) & (t <= 0.3)
    assert between[inside].mean() > 3 * between[t < 0.0].mean()


@pytest.mark.parametrize("options, message", [
    ({"layout": "32x128"}, "neither of the two supported"),
    ({"n_test": 201}, "between 2 and the 200"),
    ({"response_window": (0.5, 1.5)}, "inside the layout"),
])
def test_bad_options_are_one_sentence(options: dict, message: str) -> None:
    with pytest.raises(WorkbenchError, match=message):
        wb.dataset("things-eeg2-sim", **options)
