"""The core recording cache: one key rule, non-finite responses refused or dropped, NaN never a ceiling of 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.numerics.ceilings import ncsnr, noise_ceiling_nsd, split_half_reliability
from brain_workbench.store import (
    Store,
    cached_recording,
    recording_key,
    recording_key_for,
    save_recording,
)
from brain_workbench.sweep import Sweep
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import LayerInfo, Recording, Units, WorkbenchError, digest


def _recording(bad_units: tuple[int, ...] = (), value: float = np.nan) -> Recording:
    rng = np.random.default_rng(0)
    ids = np.array([f"img-{i % 6:03d}" for i in range(18)])
    responses = rng.standard_normal((18, 9)).astype(np.float32)
    for u in bad_units:
        responses[u % 18, u] = value
    units = Units(space="fsaverage5", n=9, rois={"V1": np.arange(9) < 4}, vertex=np.arange(9))
    return Recording(dataset="toy", subject="1", responses=responses, trial_stimulus_ids=ids, units=units,
                     splits={"test": np.array(["img-000", "img-001"])},
                     noise_ceiling=rng.uniform(0, 1, 9).astype(np.float32))


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_responses_are_refused_before_caching(tmp_store: Store, value: float) -> None:
    rec = _recording((2, 5, 7), value)
    calls = []
    with pytest.raises(WorkbenchError, match=r"toy subject 1: 3 of 9 units have NaN or infinite responses "
                                             r"\(unit indices 2, 5, 7\).*non_finite='drop_units'"):
        cached_recording(tmp_store, "responses/toy/1-x", lambda: calls.append(1) or rec)
    assert calls == [1] and tmp_store.ls() == []
    with pytest.raises(WorkbenchError, match="3 of 9 units"):
        save_recording(tmp_store, "responses/toy/1-y", rec)
    assert tmp_store.ls() == []


def test_drop_units_is_explicit_and_recorded(tmp_store: Store) -> None:
    rec = _recording((2, 5))
    key = recording_key("toy", "1", "fp", non_finite="drop_units")
    assert key != recording_key("toy", "1", "fp")
    got = cached_recording(tmp_store, key, lambda: rec, non_finite="drop_units")
    assert got.n_units == 7 and np.isfinite(got.responses).all()
    assert got.preprocessing[-1] == {"step": "drop_non_finite_units", "n_dropped": 2, "units": [2, 5]}
    np.testing.assert_array_equal(got.units.vertex, [0, 1, 3, 4, 6, 7, 8])
    np.testing.assert_array_equal(got.noise_ceiling, np.delete(rec.noise_ceiling, [2, 5]))
    again = cached_recording(tmp_store, key, lambda: pytest.fail("must come from the store"), non_finite="drop_units")
    np.testing.assert_array_equal(again.responses, got.responses)
    assert again.preprocessing == got.preprocessing and tmp_store.verify() == []
    with pytest.raises(WorkbenchError, match="unknown non_finite policy 'skip'"):
        cached_recording(tmp_store, key, lambda: rec, non_finite="skip")
    with pytest.raises(WorkbenchError, match="all of them"):
        cached_recording(None, "", lambda: _recording(tuple(range(9))), non_finite="drop_units")


def test_one_key_rule_and_nested_caching(tmp_store: Store, tmp_path: Path) -> None:
    assert recording_key("nsd", "subj01", "fp") == recording_key("nsd", "subj01", "fp")
    assert recording_key("nsd", "subj01", "fp", inputs=[("a", 1, 2)]) != recording_key("nsd", "subj01", "fp")
    demo = wb.dataset("demo", n_subjects=1, n_train=10, n_test=10)
    assert recording_key_for(demo, "1") == recording_key("demo", "1", demo.fingerprint())
    key = "responses/toy/1-nested"
    inner = lambda: cached_recording(tmp_store, key, _recording)  # noqa: E731  (a dataset caching itself)
    rec = cached_recording(tmp_store, key, inner)
    assert [e.path for e in tmp_store.ls()] == [key] and rec.n_units == 9


def test_nan_units_never_get_a_perfect_noise_ceiling() -> None:
    rng = np.random.default_rng(1)
    ids = np.repeat(np.arange(10), 3)
    R = rng.standard_normal((30, 4)) + rng.standard_normal((10, 4))[ids]
    R[4, 1] = np.nan
    snr = ncsnr(R, ids)
    assert np.isnan(snr[1]) and np.isfinite(snr[[0, 2, 3]]).all()
    np.testing.assert_allclose(snr[[0, 2, 3]], ncsnr(R[:, [0, 2, 3]], ids))
    nc = noise_ceiling_nsd(R, ids)
    assert np.isnan(nc[1]) and (nc[[0, 2, 3]] < 1).all()
    assert np.isnan(split_half_reliability(R, ids)[1])
    constant = np.repeat(rng.standard_normal((10, 1)), 3, axis=0)  # no noise at all: ncsnr is infinite, NC is 1
    assert noise_ceiling_nsd(np.c_[constant, R[:, :1]], ids)[0] == 1.0


class _NaNDemo:
    """The demo dataset with NaN responses in two units (as a broken preprocessing would leave)."""

    name = "nan-demo"
    modalities = ("image", "text")

    def __init__(self) -> None:
        self.base = wb.dataset("demo", n_subjects=1, n_train=20, n_test=10)

    def subjects(self):
        return self.base.subjects()

    def stimuli(self, modality=None):
        return self.base.stimuli(modality)

    def fingerprint(self):
        return "nan-demo-" + self.base.fingerprint()

    def fetch(self, dest, accept_terms=False, **options):
        return self.base.fetch(dest, accept_terms, **options)

    def recording(self, subject):
        rec = self.base.recording(subject)
        responses = rec.responses.copy()
        responses[3, [10, 20]] = np.nan
        return Recording(**{**rec.__dict__, "responses": responses})


class _MeanColour:
    name, modality = "mean-colour", "image"

    def layers(self):
        return [LayerInfo("rgb", 1.0)]

    def encode(self, batch, layers):
        return {"rgb": np.stack([np.asarray(im.convert("RGB"), dtype=np.float32).mean((0, 1)) for im in batch])}

    def fingerprint(self):
        return digest("mean-colour")


def test_a_sweep_refuses_nan_responses_naming_the_units(tmp_path: Path) -> None:
    wb.register("nan-demo", _NaNDemo, kind="dataset", replace=True)
    wb.register("mean-colour", _MeanColour, kind="encoder", replace=True)
    cfg = config_from_dict({"name": "nan", "store": str(tmp_path / "s.zarr"), "dataset": {"name": "nan-demo"},
                            "encoders": [{"name": "mean-colour", "layers": [1.0]}], "heads": [{"name": "ridge"}],
                            "permutations": 0})
    sweep = Sweep(cfg)
    with pytest.raises(WorkbenchError, match=r"2 of \d+ units have NaN or infinite responses \(unit indices 10, 20\)"):
        sweep.run()
    assert [e for e in sweep.store.ls() if e.complete] == []


@pytest.mark.parametrize("damage", ["truncated", "shape"])
def test_damaged_array_metadata_of_a_recording_is_named_as_corrupt(tmp_store: Store, damage: str) -> None:
    import json

    from brain_workbench.store import CorruptEntryError, load_recording

    save_recording(tmp_store, "responses/toy/1-z", _recording())
    doc = Path(tmp_store.url) / "responses/toy/1-z/responses/zarr.json"
    if damage == "truncated":
        doc.write_text('{"zarr_format": 3, "node_type": "array", "shape": [')
    else:  # a shape that still parses: the units count must not be read from it before the data are checked
        meta = json.loads(doc.read_text())
        meta["shape"] = [5, 5]
        doc.write_text(json.dumps(meta))
    with pytest.raises(CorruptEntryError, match=r"entry 'responses/toy/1-z' in .* is corrupt"):
        load_recording(tmp_store, "responses/toy/1-z")
