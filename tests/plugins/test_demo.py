"""The embedded demo dataset: contract, determinism, design, noise ceilings, planted structure."""

from __future__ import annotations

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.plugin.testing import check_dataset
from brain_workbench_plugins.demo import ROI_ORDER, DemoDataset


@pytest.fixture(scope="module")
def small() -> DemoDataset:
    return DemoDataset(n_subjects=2, n_train=30, n_test=12)


def test_demo_passes_the_dataset_conformance_check(small):
    check_dataset(small, subjects=small.subjects())


def test_demo_is_registered_through_its_entry_point():
    assert wb.get_registry().get("dataset", "demo").plugin == "demo"
    assert isinstance(wb.dataset("demo", n_train=20, n_test=10), DemoDataset)


def test_generation_is_deterministic(small):
    again = DemoDataset(n_subjects=2, n_train=30, n_test=12)
    a, b = small.recording("2"), again.recording("2")
    np.testing.assert_array_equal(a.responses, b.responses)
    np.testing.assert_array_equal(a.trial_stimulus_ids, b.trial_stimulus_ids)
    img_a, img_b = small.stimuli("image").get(["demo-00003"])[0], again.stimuli("image").get(["demo-00003"])[0]
    assert img_a.tobytes() == img_b.tobytes()
    assert small.fingerprint() == again.fingerprint() != DemoDataset(seed=1).fingerprint()


def test_design_is_nsd_shaped(small):
    r1, r2 = small.recording("1"), small.recording("2")
    np.testing.assert_array_equal(np.sort(r1.splits["test"]), np.sort(r2.splits["test"]))
    assert set(r1.splits["train"]) != set(r2.splits["train"])
    assert not set(r1.splits["train"]) & set(r1.splits["test"])
    _, counts = np.unique(r1.trial_stimulus_ids, return_counts=True)
    assert set(counts) == {3}
    assert r1.units.space == "fsaverage5" and r1.n_units == 20484
    assert list(r1.units.rois) == ROI_ORDER
    captions = small.stimuli("text").get(r1.splits["test"][:3])
    assert all(isinstance(c, str) and " on a " in c for c in captions)


def test_noise_ceiling_matches_an_independent_computation(small):
    rec = small.recording("1")
    rng = np.random.default_rng(0)
    units = rng.choice(rec.n_units, 25, replace=False)
    for u in units:
        y = rec.responses[:, u].astype(np.float64)
        z = (y - y.mean()) / y.std(ddof=1)
        variances = [np.var(z[rec.trial_stimulus_ids == s], ddof=1) for s in np.unique(rec.trial_stimulus_ids)]
        noise = np.mean(variances)
        snr2 = max(0.0, 1 - noise) / noise
        assert rec.noise_ceiling[u] == pytest.approx(snr2 / (snr2 + 1), abs=1e-4)
        averaged = rec.average_repetitions()
        assert averaged.noise_ceiling[u] == pytest.approx(snr2 / (snr2 + 1 / 3), abs=1e-4)


def test_signal_lives_in_the_rois_only(small):
    rec = small.recording("1")
    inside = np.any(np.stack(list(rec.units.rois.values())), axis=0)
    assert np.median(rec.noise_ceiling[inside]) > 0.3
    assert np.median(rec.noise_ceiling[~inside]) < 0.05


def test_bad_subject_and_stimulus_ids_are_refused(small):
    with pytest.raises(wb.WorkbenchError, match="subjects 1, 2"):
        small.recording("7")
    with pytest.raises(wb.WorkbenchError, match="not a demo stimulus"):
        small.stimuli("image").get(["nsd-00001"])


def test_fetch_writes_images_and_captions(tmp_path):
    ds = DemoDataset(n_subjects=1, n_train=10, n_test=10)
    out = ds.fetch(tmp_path / "demo")
    assert len(list((out / "images").glob("*.png"))) == ds.n_images
    assert (out / "captions.csv").read_text().count("\n") == ds.n_images + 1


def test_trials_carry_equal_consecutive_sessions(small):
    rec = small.recording("1")
    sessions = rec.trial_groups["session"]
    assert list(dict.fromkeys(sessions.tolist())) == [str(i) for i in range(1, 11)]
    counts = np.unique(sessions, return_counts=True)[1]
    assert counts.sum() == len(sessions) and counts.max() - counts.min() <= 1
    assert np.all(np.diff(sessions.astype(int)) >= 0), "sessions are consecutive blocks of trials"


def test_default_design_is_unchanged_by_the_new_options(small):
    ds = DemoDataset(n_subjects=2, n_train=30, n_test=12, n_sessions=3, shared_topography=0.0)
    a, b = small.recording("2"), ds.recording("2")
    np.testing.assert_array_equal(a.responses, b.responses)
    assert small.fingerprint() != ds.fingerprint()


def test_subjects_share_latent_factors_and_optionally_their_topography():
    def tuning_similarity(rho: float) -> tuple[float, float]:
        ds = DemoDataset(n_subjects=2, n_train=10, n_test=40, noise=0.1, shared_topography=rho)
        recs = [ds.recording(s) for s in ("1", "2")]
        recs = [r.select_units(r.units.rois["VOT"]).average_repetitions() for r in recs]
        test = [r.select_trials(r.splits["test"]) for r in recs]
        order = [np.argsort(t.trial_stimulus_ids) for t in test]
        a, b = (t.responses[o] for t, o in zip(test, order))
        same_vertex = np.mean([np.corrcoef(a[:, u], b[:, u])[0, 1] for u in range(a.shape[1])])
        # the shared latent: a linear read-out of subject 1's vertices predicts subject 2's
        coef, *_ = np.linalg.lstsq(a[:20], b[:20], rcond=None)
        pred = a[20:] @ coef
        shared = np.mean([np.corrcoef(pred[:, u], b[20:, u])[0, 1] for u in range(b.shape[1])])
        return float(same_vertex), float(shared)

    independent, correspondent = tuning_similarity(0.0), tuning_similarity(0.5)
    assert abs(independent[0]) < 0.1 and correspondent[0] > 0.4
    assert independent[1] > 0.5


def test_new_options_are_checked():
    with pytest.raises(wb.WorkbenchError, match="n_sessions"):
        DemoDataset(n_sessions=0)
    with pytest.raises(wb.WorkbenchError, match="shared_topography"):
        DemoDataset(shared_topography=1.5)


def test_demo_stimuli_carry_their_shape_category(small):
    from brain_workbench_plugins.demo import SHAPES

    for modality in ("image", "text"):
        stim = small.stimuli(modality)
        assert stim.categories is not None and set(stim.categories) <= set(SHAPES)
        assert list(stim.categories) == [p["shape"] for p in small.parameters]
    caption = small.captions([small.ids[0]])[0]
    assert small.stimuli("image").categories[0] in caption, "the category is the shape the caption names"
