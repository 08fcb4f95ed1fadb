"""ROI label arrays from files (NSD-style lh./rh. .mgz with a colour table, .npy labels, .npz masks) as masks over
a recording's units, and through the CLI for --outline / figure rois; --view for best-layer maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench.cli import app
from brain_workbench.figures.roi_files import label_names, load_roi_files
from brain_workbench.types import WorkbenchError


@pytest.fixture(scope="module")
def units():
    return wb.dataset("demo", n_subjects=1, n_train=10, n_test=10).recording("1").units


def write_nsd_style(folder: Path, units) -> tuple[Path, Path, Path]:
    """lh./rh. .mgz label volumes over fsaverage5 vertices (1 = V1, 2 = V2 of the demo) and their colour table."""
    import nibabel as nib

    folder.mkdir(exist_ok=True)
    paths = []
    for prefix, hemi in (("lh", "left"), ("rh", "right")):
        labels = np.zeros(10242, dtype=np.int32)
        mine = units.hemisphere == hemi
        labels[units.vertex[mine & units.rois["V2"]]] = 2
        labels[units.vertex[mine & units.rois["V1"]]] = 1
        path = folder / f"{prefix}.prf-visualrois.mgz"
        nib.save(nib.MGHImage(labels.reshape(-1, 1, 1), np.eye(4)), str(path))
        paths.append(path)
    ctab = folder / "prf-visualrois.mgz.ctab"
    ctab.write_text("0 Unknown 0 0 0 0\n1 V1v 110 10 10 0\n2 V2v 10 110 10 0\n")
    return paths[0], paths[1], ctab


def test_nsd_style_label_files_give_the_masks(tmp_path, units):
    lh, rh, ctab = write_nsd_style(tmp_path, units)
    masks = load_roi_files([lh, rh], units, str(ctab))
    assert list(masks) == ["V1v", "V2v"]
    np.testing.assert_array_equal(masks["V1v"], units.rois["V1"])
    np.testing.assert_array_equal(masks["V2v"], units.rois["V2"] & ~units.rois["V1"])
    only_left = load_roi_files([lh], units, "1=V1,2=V2")
    np.testing.assert_array_equal(only_left["V1"], units.rois["V1"] & (units.hemisphere == "left"))
    assert list(load_roi_files([lh], units)) == ["label 1", "label 2"]


def test_npy_labels_and_npz_masks_per_unit(tmp_path, units):
    labels = np.where(units.rois["VOT"], 3, 0)
    np.save(tmp_path / "labels.npy", labels)
    np.savez(tmp_path / "masks.npz", mine=units.rois["LO"].astype(np.uint8))
    masks = load_roi_files([tmp_path / "masks.npz", tmp_path / "labels.npy"], units, "3=ventral")
    assert list(masks) == ["mine", "ventral"]
    np.testing.assert_array_equal(masks["ventral"], units.rois["VOT"])
    np.testing.assert_array_equal(masks["mine"], units.rois["LO"])


@pytest.mark.parametrize("make, message", [
    (lambda d: np.save(d / "x.npy", np.zeros(5)), "5 labels for 20484 units"),
    (lambda d: np.savez(d / "x.npz", a=np.full(20484, 2)), "must be a 0/1 mask"),
    (lambda d: (d / "x.txt").write_text("1"), "use .npz, .npy or a surface label file"),
    (lambda d: np.save(d / "x.npy", np.zeros(20484)), "hold no ROI over these units"),
])
def test_bad_roi_files_are_refused_in_one_sentence(tmp_path, units, make, message):
    make(tmp_path)
    path = next(tmp_path.iterdir())
    with pytest.raises(WorkbenchError, match=message):
        load_roi_files([path], units)


def test_label_names_refuse_a_bad_spec():
    assert label_names("1=V1v, 2=V2v") == {1: "V1v", 2: "V2v"}
    with pytest.raises(WorkbenchError, match="INDEX=NAME"):
        label_names("V1v")


def test_cli_outlines_rois_from_files_and_views_best_layer_maps(tmp_path):
    from brain_workbench.sweep import Sweep
    from brain_workbench.sweep.config import config_from_dict
    from fixtures_encoders import ColourEncoder

    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    store = str(tmp_path / "s.zarr")
    sweep = Sweep(config_from_dict({"name": "maps", "store": store, "dataset": {"name": "demo", "options": {
        "n_subjects": 1, "n_train": 30, "n_test": 10}}, "encoders": [{"name": "colour-test"}],
        "heads": [{"name": "ridge", "options": {"cv": 3}}], "permutations": 0}))
    sweep.run()
    lh, rh, ctab = write_nsd_style(tmp_path / "rois", sweep.dataset.recording("1").units)
    run = CliRunner()
    base = ["figure", "brainmap", "maps", "--store", store, "--value", "best-layer"]
    default = run.invoke(app, [*base, "--out", str(tmp_path / "all.png")])
    assert default.exit_code == 0, default.output
    one = run.invoke(app, [*base, "--view", "lateral", "--hemi", "left", "--roi-file", str(lh), "--roi-file", str(rh),
                           "--roi-names", str(ctab), "--outline", "V1v", "--outline", "V2v",
                           "--out", str(tmp_path / "one.png")])
    assert one.exit_code == 0, one.output
    assert Image.open(tmp_path / "one.png").width < Image.open(tmp_path / "all.png").width / 2
    bad = run.invoke(app, [*base, "--roi-file", str(lh), "--outline", "V9", "--out", str(tmp_path / "x.png")])
    assert bad.exit_code != 0 and "unknown ROI 'V9'" in str(bad.exception)
    rois = run.invoke(app, ["figure", "rois", "maps", "--store", store, "--roi-file", str(lh), "--roi-file", str(rh),
                            "--roi-names", str(ctab), "--view", "ventral", "--out", str(tmp_path / "rois.png")])
    assert rois.exit_code == 0, rois.output
    assert (tmp_path / "rois.png").stat().st_size > 1000
