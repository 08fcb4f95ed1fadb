"""Data contracts: layer resolution, stimulus sets, recordings and unit metadata."""

from __future__ import annotations

import numpy as np
import pytest

from brain_workbench.types import (
    SURFACE_MESHES,
    LayerInfo,
    NotASurfaceError,
    Recording,
    StimulusSet,
    Units,
    WorkbenchError,
    as_str_array,
    digest,
    surface_mesh,
)

LAYERS = [LayerInfo("embed", 0.0), LayerInfo("block1", 0.25), LayerInfo("block2", 0.5),
          LayerInfo("block3", 0.75), LayerInfo("head", 1.0)]


# ---- resolve_layers -------------------------------------------------------------------------
def test_resolve_layers_by_name_and_depth() -> None:
    from brain_workbench.types import resolve_layers

    assert resolve_layers(LAYERS, None) == [layer.name for layer in LAYERS]
    assert resolve_layers(LAYERS, ["head", "embed"]) == ["head", "embed"]
    assert resolve_layers(LAYERS, [0.5, "0.5", 0.49, 1, 0]) == ["block2", "head", "embed"]
    assert resolve_layers(LAYERS, [0.125]) == ["embed"], "ties go to the shallower layer"
    assert resolve_layers(LAYERS, [0.9, "block3"]) == ["head", "block3"]
    assert resolve_layers(LAYERS, "block1") == ["block1"]
    assert resolve_layers(LAYERS, 0.3) == ["block1"]
    numeric = [LayerInfo("0", 0.0), LayerInfo("1", 1.0)]
    assert resolve_layers(numeric, ["1"]) == ["1"], "a name wins over a depth"


@pytest.mark.parametrize("wanted, message", [
    (["block9"], "unknown layer 'block9'; choose one of embed, block1"),
    ([1.5], "outside 0–1"), ([-0.1], "outside 0–1"), (["nan"], "outside 0–1"), ([None], "unknown layer None"),
])
def test_resolve_layers_errors(wanted: list, message: str) -> None:
    from brain_workbench.types import resolve_layers

    with pytest.raises(WorkbenchError, match=message):
        resolve_layers(LAYERS, wanted)


def test_resolve_layers_needs_layers() -> None:
    from brain_workbench.types import resolve_layers

    with pytest.raises(WorkbenchError, match="no layers"):
        resolve_layers([], [0.5])


# ---- StimulusSet ----------------------------------------------------------------------------
def _stimuli(ids=("a", "b", "c"), modality: str = "text") -> StimulusSet:
    return StimulusSet(tuple(ids), modality, lambda got: [f"text of {i}" for i in got])


def test_stimulus_set_digest_is_stable_and_content_based() -> None:
    s = _stimuli()
    assert s.digest == _stimuli().digest == digest("text", ["a", "b", "c"])
    assert s.digest != _stimuli(("a", "c", "b")).digest, "order matters"
    assert s.digest != _stimuli(modality="image").digest
    assert StimulusSet(("a",), "text", list, content_digest="given").digest == "given"
    assert len(s) == 3 and s.get(["c", "a"]) == ["text of c", "text of a"]
    assert StimulusSet(["x", "y"], "text", list).ids == ("x", "y")
    assert StimulusSet(np.array(["x", "y"]), "text", list).digest == StimulusSet(("x", "y"), "text", list).digest


def test_stimulus_set_subset() -> None:
    s = _stimuli()
    sub = s.subset(["c", "a"])
    assert sub.ids == ("c", "a") and sub.modality == "text"
    assert sub.digest != s.digest and sub.digest == s.subset(["c", "a"]).digest
    assert sub.get(["a"]) == ["text of a"]
    with pytest.raises(WorkbenchError, match=r"2 stimulus ids are not in this stimulus set \(first: 'x'\)"):
        s.subset(["a", "x", "y"])
    with pytest.raises(WorkbenchError, match="unique"):
        s.subset(["a", "a"])


def test_stimulus_set_validation() -> None:
    with pytest.raises(WorkbenchError, match="unique"):
        _stimuli(("a", "b", "a"))
    with pytest.raises(WorkbenchError, match="modality 'audio'"):
        _stimuli(modality="audio")
    with pytest.raises(WorkbenchError, match="not one string"):
        StimulusSet("abc", "text", list)  # type: ignore[arg-type]


def test_stimulus_categories_are_validated_and_follow_subsets() -> None:
    s = StimulusSet(("a", "b", "c"), "image", list, categories=("cat", "dog", "cat"))
    assert s.categories == ("cat", "dog", "cat")
    assert s.category_of(["c", "b"]) == ["cat", "dog"]
    sub = s.subset(["b", "a"])
    assert sub.categories == ("dog", "cat")
    assert _stimuli().categories is None and _stimuli().subset(["a"]).categories is None
    with pytest.raises(WorkbenchError, match="has 3 ids but 2 categories"):
        StimulusSet(("a", "b", "c"), "image", list, categories=("cat", "dog"))
    with pytest.raises(WorkbenchError, match="not a non-empty string"):
        StimulusSet(("a", "b"), "image", list, categories=("cat", 3))  # type: ignore[arg-type]
    with pytest.raises(WorkbenchError, match="not one string"):
        StimulusSet(("a", "b"), "image", list, categories="ab")  # type: ignore[arg-type]
    with pytest.raises(WorkbenchError, match="has no categories"):
        _stimuli().category_of(["a"])
    with pytest.raises(WorkbenchError, match=r"1 stimulus ids are not in this stimulus set \(first: 'z'\)"):
        s.category_of(["a", "z"])


# ---- Units ----------------------------------------------------------------------------------
def test_units_validation() -> None:
    units = Units("fsaverage5", 4, rois={"V1": [1, 0, 1, 0], "V2": np.array([0, 1, 1, 0], bool)},
                  vertex=np.arange(4), hemisphere=np.array(["lh", "left", "rh", "right"]))
    assert units.rois["V1"].dtype == bool
    assert list(units.hemisphere) == ["left", "left", "right", "right"], "lh/rh are normalised"
    with pytest.raises(WorkbenchError, match="hemisphere label 'L' is not left/right"):
        Units("fsaverage5", 2, hemisphere=["L", "R"])
    with pytest.raises(WorkbenchError, match="unit space 'surface' is not one of"):
        Units("surface", 2)
    assert list(units.roi_labels()) == ["V1", "V2", "V1", ""]
    with pytest.raises(WorkbenchError, match=r"ROI 'V1' mask has shape \(3,\), expected \(4,\)"):
        Units("fsaverage5", 4, rois={"V1": np.ones(3, bool)})
    with pytest.raises(WorkbenchError, match="units.vertex has 5 entries for 4 units"):
        Units("fsaverage5", 4, vertex=np.arange(5))
    with pytest.raises(WorkbenchError, match="units.names has a scalar"):
        Units("eeg-10-20", 4, names=np.array("Cz"))
    with pytest.raises(WorkbenchError, match="non-negative integer"):
        Units("fsaverage5", -1)
    with pytest.raises(WorkbenchError, match="non-negative integer"):
        Units("fsaverage5", 2.5)  # type: ignore[arg-type]
    with pytest.raises(WorkbenchError, match="4 × 4"):
        Units("MNI152", 2, ijk=np.zeros((2, 3), int), shape=(2, 2, 2), affine=np.eye(3))


def test_surface_units_index_their_mesh() -> None:
    assert {name: mesh.vertices for name, mesh in SURFACE_MESHES.items()} == {
        "fsaverage5": 10242, "fsaverage6": 40962, "fsaverage7": 163842, "fsaverage": 163842}
    assert Units("fsaverage7", 2, vertex=[0, 163841]).vertex.tolist() == [0, 163841]
    with pytest.raises(WorkbenchError, match=r"indices in 0..10241 of the fsaverage5 mesh"):
        Units("fsaverage5", 2, vertex=[0, 10242])
    with pytest.raises(WorkbenchError, match="integer indices"):
        Units("fsaverage6", 2, vertex=[0.5, 1.0])
    assert surface_mesh("fsaverage").name == "fsaverage7"
    with pytest.raises(NotASurfaceError, match="'MNI152' are not on a cortical surface"):
        surface_mesh("MNI152")
    assert SURFACE_MESHES["fsaverage6"].how_to_fetch("/data") == ("fetch it once, online, into /data/fsaverage6 with "
                                                                   "nilearn.datasets.load_fsaverage('fsaverage6')")


def test_units_select() -> None:
    units = Units("func1pt8mm", 5, rois={"V1": np.array([1, 1, 0, 0, 1], bool)}, ijk=np.arange(15).reshape(5, 3),
                  shape=(3, 3, 3), affine=np.eye(4))
    picked = units.select(np.array([True, False, True, False, True]))
    assert picked.n == 3 and list(picked.rois["V1"]) == [True, False, True]
    np.testing.assert_array_equal(picked.ijk, units.ijk[[0, 2, 4]])
    assert units.select(np.array([4, 0])).n == 2 and picked.shape == (3, 3, 3)


# ---- Recording ------------------------------------------------------------------------------
def _recording(**changes) -> Recording:
    ids = np.array(["s1", "s2", "s1", "s3", "s2", "s1"])
    responses = np.arange(6 * 3, dtype=np.float32).reshape(6, 3)
    kwargs = dict(dataset="demo", subject="sub-01", responses=responses, trial_stimulus_ids=ids,
                  units=Units("fsaverage5", 3), splits={"test": ["s3"]}, noise_ceiling=np.array([0.1, 0.5, 0.9]),
                  preprocessing=[{"step": "zscore"}])
    kwargs.update(changes)
    return Recording(**kwargs)


def test_recording_validation() -> None:
    rec = _recording()
    assert rec.n_units == 3 and list(rec.stimulus_ids()) == ["s1", "s2", "s3"]
    assert rec.splits["test"].dtype.kind == "U"
    with pytest.raises(WorkbenchError, match="6 response trials but 5 trial stimulus ids"):
        _recording(trial_stimulus_ids=np.array(["s1"] * 5))
    with pytest.raises(WorkbenchError, match="responses have 3 units but unit metadata describes 4"):
        _recording(units=Units("fsaverage5", 4))
    with pytest.raises(WorkbenchError, match="have 1 dims"):
        _recording(responses=np.zeros(6))
    with pytest.raises(WorkbenchError, match="time-resolved responses need one time per sample"):
        _recording(responses=np.zeros((6, 3, 4)))
    with pytest.raises(WorkbenchError, match="time-resolved"):
        _recording(responses=np.zeros((6, 3, 4)), times=np.arange(3.0))
    with pytest.raises(WorkbenchError, match="noise_ceiling has shape"):
        _recording(noise_ceiling=np.ones(2))
    with pytest.raises(WorkbenchError, match="one id per trial"):
        _recording(trial_stimulus_ids=np.array([["s1"] * 6]))
    assert _recording(responses=np.zeros((6, 3, 4)), times=np.arange(4.0)).responses.ndim == 3
    assert _recording(responses=[[0.0] * 3] * 6).responses.shape == (6, 3)


def test_average_repetitions_values_and_recorded_step() -> None:
    rec = _recording()
    avg = rec.average_repetitions()
    assert list(avg.trial_stimulus_ids) == ["s1", "s2", "s3"]
    np.testing.assert_allclose(avg.responses[0], rec.responses[[0, 2, 5]].mean(0))
    np.testing.assert_allclose(avg.responses[1], rec.responses[[1, 4]].mean(0))
    np.testing.assert_allclose(avg.responses[2], rec.responses[3])
    assert avg.responses.dtype == np.float32
    n_after = 1 / np.mean([1 / 3, 1 / 2, 1 / 1])
    assert avg.preprocessing == [{"step": "zscore"},
                                 {"step": "average_repetitions", "min_repetitions": 1, "max_repetitions": 3,
                                  "noise_ceiling_n": round(n_after, 4)}]
    assert rec.preprocessing == [{"step": "zscore"}], "the original recording is left alone"
    assert avg.fingerprint() != rec.fingerprint()
    ncsnr2 = rec.noise_ceiling / (1 - rec.noise_ceiling)
    np.testing.assert_allclose(avg.noise_ceiling, ncsnr2 / (ncsnr2 + 1 / n_after), rtol=1e-5)
    assert avg.noise_ceiling_n == pytest.approx(n_after, abs=1e-4)

    timed = _recording(responses=np.arange(6 * 3 * 2, dtype=np.float32).reshape(6, 3, 2), times=np.array([0.0, 0.1]))
    avg3 = timed.average_repetitions()
    assert avg3.responses.shape == (3, 3, 2)
    np.testing.assert_allclose(avg3.responses[1], timed.responses[[1, 4]].mean(0))


def test_recording_selection() -> None:
    rec = _recording(units=Units("fsaverage5", 3, rois={"V1": np.array([True, False, True])}))
    v1 = rec.select_units(rec.units.rois["V1"])
    assert v1.responses.shape == (6, 2) and v1.n_units == 2
    np.testing.assert_allclose(v1.noise_ceiling, [0.1, 0.9])
    some = rec.select_trials(["s2", "s3"])
    assert list(some.trial_stimulus_ids) == ["s2", "s3", "s2"]


def test_string_arrays_of_any_dtype() -> None:
    for values in (["ab", "c"], np.array(["ab", "c"], dtype=object),
                   np.array(["ab", "c"], dtype=np.dtypes.StringDType())):
        out = as_str_array(values)
        assert out.dtype.kind == "U" and list(out) == ["ab", "c"]
    rec = _recording(trial_stimulus_ids=np.array(["s1", "s2", "s1", "s3", "s2", "s1"], dtype=np.dtypes.StringDType()))
    assert rec.trial_stimulus_ids.dtype.kind == "U"
