"""The nsd dataset plugin on a toy copy of NSD's published layout, and its fetch against a local server."""

from __future__ import annotations

import gzip
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.plugin.registry import get_registry
from brain_workbench.plugin.testing import check_dataset
from brain_workbench.store import Store
from brain_workbench.types import WorkbenchError
from fixtures_datasets import FileServer, make_nsd, nsd_trial_images_from_csv

nsd = pytest.importorskip("brain_workbench_plugins.nsd")

SESSIONS = 3


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("nsd") / "NSD"
    return root, make_nsd(root, n_sessions=SESSIONS)


@pytest.fixture(autouse=True)
def toy_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy release has 3 sessions per subject, none held out."""
    monkeypatch.setattr(nsd, "N_SESSIONS", {s: SESSIONS for s in range(1, 9)})
    monkeypatch.setattr(nsd, "HELD_OUT_SESSIONS", 0)


@pytest.fixture()
def copy(built: tuple[Path, dict], tmp_path: Path) -> Path:
    """A private copy of the toy NSD that a test may damage."""
    return Path(shutil.copytree(built[0], tmp_path / "NSD"))


def dataset(root: Path, store: Store | None = None, **options) -> nsd.NSDDataset:
    return nsd.NSDDataset(local_path=root, store=store, cache=store is not None, **options)


def assert_store_clean(store: Store) -> None:
    assert store.verify() == []
    assert store.ls() == []


# ---- registration and conformance --------------------------------------------------------------
def test_registered_through_the_entry_point_and_cheap_without_data() -> None:
    entry = get_registry().get("dataset", "nsd")
    assert "Allen" in entry.card.citation and "local_path" in entry.options()
    ds = wb.dataset("nsd")
    assert ds.modalities == ("image", "text") and ds.subjects() == [str(s) for s in range(1, 9)]
    with pytest.raises(WorkbenchError, match="workbench data fetch nsd --dest DIR"):
        ds.recording("1")
    with pytest.raises(WorkbenchError, match="local_path"):
        ds.stimuli("image")


@pytest.mark.parametrize("space", ["fsaverage", "func1pt8mm"])
def test_conformance(built: tuple[Path, dict], tmp_store: Store, space: str) -> None:
    check_dataset(dataset(built[0], tmp_store, space=space), subjects=["1", "2"])


def test_bad_options_are_refused() -> None:
    with pytest.raises(WorkbenchError, match="space"):
        nsd.NSDDataset(space="MNI")
    with pytest.raises(WorkbenchError, match="beta version"):
        nsd.NSDDataset(beta_version="betas_x")
    with pytest.raises(WorkbenchError, match="subjects 1–8"):
        nsd.subject_number("9")
    assert nsd.subject_number("subj03") == nsd.subject_number(3) == 3


# ---- content ------------------------------------------------------------------------------------
def test_trials_map_to_images_like_the_csv(built: tuple[Path, dict]) -> None:
    root, truth = built
    rec = dataset(root, space="func1pt8mm", zscore=False).recording("2")
    n = SESSIONS * truth["tps"]
    expected = nsd_trial_images_from_csv(root, 2, n)
    assert (expected > 0).all()
    assert list(rec.trial_stimulus_ids) == [f"nsd-{k:05d}" for k in expected]


def test_each_trial_carries_its_session(built: tuple[Path, dict]) -> None:
    root, truth = built
    rec = dataset(root, space="fsaverage").recording("1")
    expected = np.repeat([str(s) for s in range(1, SESSIONS + 1)], truth["tps"])
    assert np.array_equal(rec.trial_groups["session"], expected)
    part = dataset(root, space="fsaverage", sessions=[2, 3]).recording("1")
    assert list(dict.fromkeys(part.trial_groups["session"])) == ["2", "3"]
    assert np.array_equal(part.trial_stimulus_ids, rec.trial_stimulus_ids[truth["tps"]:])


def test_volume_betas_are_int16_over_300_in_the_mask(built: tuple[Path, dict]) -> None:
    root, truth = built
    rec = dataset(root, space="func1pt8mm", zscore=False).recording("1")
    general = truth["vol_rois"][1]["nsdgeneral"]
    ijk = np.argwhere(general > 0)
    assert rec.units.space == "func1pt8mm" and rec.units.shape == general.shape
    np.testing.assert_array_equal(rec.units.ijk, ijk)
    np.testing.assert_allclose(rec.units.affine, truth["affine"])
    np.testing.assert_allclose(rec.units.coords[0], truth["affine"][:3, :3] @ ijk[0] + truth["affine"][:3, 3])
    tps = truth["tps"]
    for sess in range(1, SESSIONS + 1):
        vol = truth["vol"][1][sess]
        expected = vol[ijk[:, 0], ijk[:, 1], ijk[:, 2], :].T
        np.testing.assert_allclose(rec.responses[(sess - 1) * tps: sess * tps], expected, rtol=1e-6, atol=1e-6)


def test_surface_betas_and_per_session_zscore(built: tuple[Path, dict]) -> None:
    root, truth = built
    rec = dataset(root, space="fsaverage").recording("1")
    general = truth["surf_rois"]["nsdgeneral"] > 0
    assert rec.units.n == general.sum()
    n_lh = 10
    assert list(rec.units.hemisphere) == ["left"] * int(general[:n_lh].sum()) + ["right"] * int(general[n_lh:].sum())
    np.testing.assert_array_equal(rec.units.vertex, np.concatenate([np.arange(10), np.arange(9)])[general])
    tps = truth["tps"]
    for sess in range(1, SESSIONS + 1):
        raw = truth["surf"][1][sess][general].T
        z = (raw - raw.mean(0)) / raw.std(0)
        np.testing.assert_allclose(rec.responses[(sess - 1) * tps: sess * tps], z, rtol=1e-4, atol=1e-5)
    assert {"step": "zscore", "per": "session", "over": "trials", "zero_variance": "set to 0"} in rec.preprocessing


def test_splits_are_shared1000_and_the_rest(built: tuple[Path, dict]) -> None:
    root, truth = built
    rec = dataset(root, space="fsaverage").recording("2")
    seen = set(rec.trial_stimulus_ids)
    shared = {f"nsd-{k:05d}" for k in truth["sharedix"]}
    assert set(rec.splits["test"]) == shared & seen and len(rec.splits["test"]) == len(shared)
    assert set(rec.splits["train"]) == seen - shared
    assert set(rec.splits["train"]).isdisjoint(rec.splits["test"])


def test_roi_masks_take_their_names_from_the_ctab(built: tuple[Path, dict]) -> None:
    root, truth = built
    rec = dataset(root, space="func1pt8mm").recording("1")
    rois = truth["vol_rois"][1]
    inside = rois["nsdgeneral"] > 0
    assert rec.units.rois["nsdgeneral"].all()
    np.testing.assert_array_equal(rec.units.rois["V1v"], rois["prf-visualrois"][inside] == 1)
    np.testing.assert_array_equal(rec.units.rois["hV4"], rois["prf-visualrois"][inside] == 4)
    np.testing.assert_array_equal(rec.units.rois["FFA-1"], rois["floc-faces"][inside] == 2)
    assert "Unknown" not in rec.units.rois
    surf = dataset(root, space="fsaverage").recording("1")
    general = truth["surf_rois"]["nsdgeneral"] > 0
    np.testing.assert_array_equal(surf.units.rois["V1d"], truth["surf_rois"]["prf-visualrois"][general] == 2)
    assert "floc-faces" in surf.preprocessing[0]["rois_missing"]


def test_noise_ceiling_follows_nsd_formula(built: tuple[Path, dict]) -> None:
    root, truth = built
    ncsnr = truth["vol_ncsnr"][1][truth["vol_rois"][1]["nsdgeneral"] > 0].astype(np.float64)
    single = dataset(root, space="func1pt8mm").recording("1")
    np.testing.assert_allclose(single.noise_ceiling, ncsnr**2 / (ncsnr**2 + 1.0), rtol=1e-5)
    averaged = dataset(root, space="func1pt8mm", average_repetitions=True).recording("1")
    np.testing.assert_allclose(averaged.noise_ceiling, ncsnr**2 / (ncsnr**2 + 1.0 / 3), rtol=1e-5)
    assert averaged.preprocessing[-1]["n"] == 3.0
    assert 0 <= averaged.noise_ceiling.min() and averaged.noise_ceiling.max() <= 1


def test_average_repetitions_is_explicit_and_recorded(built: tuple[Path, dict]) -> None:
    root, _ = built
    trials = dataset(root, space="fsaverage").recording("1")
    mean = dataset(root, space="fsaverage", average_repetitions=True).recording("1")
    assert mean.responses.shape[0] == len(set(trials.trial_stimulus_ids))
    for k in (0, 5):
        sid = mean.trial_stimulus_ids[k]
        np.testing.assert_allclose(mean.responses[k], trials.responses[trials.trial_stimulus_ids == sid].mean(0),
                                   rtol=1e-5, atol=1e-6)
    assert any(s["step"] == "average_repetitions" for s in mean.preprocessing)


def test_stimuli_images_and_captions_share_ids(built: tuple[Path, dict]) -> None:
    root, truth = built
    ds = dataset(root)
    images, texts = ds.stimuli("image"), ds.stimuli("text")
    assert images.ids == texts.ids
    assert set(images.ids) == {f"nsd-{k:05d}" for k in np.unique(truth["subjectim"][:2])}
    pick = ["nsd-00007", images.ids[3], "nsd-00007"]
    loaded = images.get(pick)
    for sid, img in zip(pick, loaded):
        k = int(sid[4:]) - 1
        np.testing.assert_array_equal(np.asarray(img), truth["brick"][k])
    assert texts.get(["nsd-00003", "nsd-00004"]) == ["first caption 3", "first caption 4"]
    assert dataset(root, caption="all").stimuli("text").get(["nsd-00002"]) == ["first caption 2 second caption 2"]
    assert images.digest != texts.digest


def test_second_load_comes_from_the_store(built: tuple[Path, dict], tmp_store: Store,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = built
    ds = dataset(root, tmp_store, space="func1pt8mm", average_repetitions=True)
    first = ds.recording("1")
    [entry] = tmp_store.ls()
    assert entry.path.startswith("responses/nsd/subj01-") and entry.complete
    monkeypatch.setattr(nsd.NSDDataset, "_build_recording", lambda *a: pytest.fail("betas were read again"))
    again = dataset(root, tmp_store, space="func1pt8mm", average_repetitions=True).recording("1")
    np.testing.assert_array_equal(again.responses, first.responses)
    np.testing.assert_array_equal(again.trial_stimulus_ids, first.trial_stimulus_ids)
    np.testing.assert_allclose(again.noise_ceiling, first.noise_ceiling)
    assert set(again.units.rois) == set(first.units.rois) and again.preprocessing == first.preprocessing
    assert dataset(root, tmp_store, space="func1pt8mm").cache_key("1") != entry.path


# ---- bad input ----------------------------------------------------------------------------------
def test_missing_session_is_reported_or_refused(copy: Path, tmp_store: Store) -> None:
    gone = copy / nsd.session_files(1, "func1pt8mm", "betas_fithrf_GLMdenoise_RR", 2)[0]
    gone.unlink()
    with pytest.warns(UserWarning, match=r"sessions 2 are missing .*\(1, 3\)"):
        rec = dataset(copy, space="func1pt8mm").recording("1")
    assert rec.preprocessing[0]["sessions"] == [1, 3] and rec.preprocessing[0]["missing_sessions"] == [2]
    assert rec.responses.shape[0] == 2 * rec.preprocessing[0]["trials_per_session"]
    with pytest.raises(WorkbenchError, match=r"betas_session02\.nii\.gz is missing .*sessions=\[2\]") as err:
        dataset(copy, tmp_store, space="func1pt8mm", sessions=[1, 2]).recording("1")
    assert str(gone) in str(err.value)
    assert_store_clean(tmp_store)


def test_truncated_nifti_names_the_file(copy: Path, tmp_store: Store) -> None:
    path = copy / nsd.session_files(1, "func1pt8mm", "betas_fithrf_GLMdenoise_RR", 3)[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WorkbenchError, match="truncated or corrupt") as err:
        dataset(copy, tmp_store, space="func1pt8mm").recording("1")
    assert str(path) in str(err.value) and "workbench data fetch nsd" in str(err.value)
    assert_store_clean(tmp_store)


def test_nan_betas_name_the_file(copy: Path, tmp_store: Store, built: tuple[Path, dict]) -> None:
    import nibabel as nib

    truth = built[1]
    path = copy / nsd.session_files(2, "fsaverage", "betas_fithrf_GLMdenoise_RR", 2)[1]
    rh = truth["surf"][2][2][10:].astype(np.float32)
    rh[1, 4] = np.nan
    nib.save(nib.MGHImage(rh.reshape(rh.shape[0], 1, 1, -1), np.eye(4)), path)
    with pytest.raises(WorkbenchError, match="NaN or infinite betas") as err:
        dataset(copy, tmp_store, space="fsaverage").recording("2")
    assert "rh.betas_session02.mgh" in str(err.value)
    assert_store_clean(tmp_store)


def test_stimulus_missing_from_the_image_file(copy: Path, built: tuple[Path, dict]) -> None:
    import h5py

    truth = built[1]
    path = copy / nsd.STIMULI_HDF5
    last = int(truth["subjectim"][:2].max())
    with h5py.File(path, "w") as f:
        f.create_dataset("imgBrick", data=truth["brick"][: last - 1])
    with pytest.raises(WorkbenchError, match=rf"nsd-{last:05d} is not in .*nsd_stimuli\.hdf5"):
        dataset(copy).stimuli("image")
    with pytest.raises(WorkbenchError, match="nsd_stimuli.hdf5"):
        dataset(copy)._load_images([f"nsd-{last:05d}"])
    with pytest.raises(WorkbenchError, match="not an NSD stimulus id"):
        dataset(copy)._load_images(["coco-1"])


def test_corrupt_design_file(copy: Path) -> None:
    (copy / nsd.EXPDESIGN).write_bytes(b"not a mat file")
    with pytest.raises(WorkbenchError, match="nsd_expdesign.mat"):
        dataset(copy).stimuli("image")


# ---- fetch ----------------------------------------------------------------------------------------
def test_fetch_needs_terms(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match=r"cvnlab\.slite\.page.*--accept-terms"):
        nsd.NSDDataset().fetch(tmp_path / "d", subjects=["1"], base_url="http://127.0.0.1:9/")
    assert not (tmp_path / "d").exists()


def test_fetch_downloads_only_what_the_analysis_needs(built: tuple[Path, dict], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = built
    monkeypatch.setattr(nsd, "N_SESSIONS", {s: SESSIONS + 1 for s in range(1, 9)})
    monkeypatch.setattr(nsd, "HELD_OUT_SESSIONS", 1)
    dest = tmp_path / "fetched"
    session2 = nsd.session_files(1, "func1pt8mm", "betas_fithrf_GLMdenoise_RR", 2)[0]
    with FileServer(root, drop_first={session2}) as server:
        out = nsd.NSDDataset(space="func1pt8mm").fetch(
            dest, accept_terms=True, subjects=["1"], base_url=server.url + "/", rois=["prf-visualrois"],
            retry_wait=0, quiet=True)
        assert server.gets(session2)[1].startswith("bytes=")
    assert out == dest
    got = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert nsd.STIMULI_HDF5 in got and nsd.EXPDESIGN in got and all(c in got for c in nsd.CAPTION_FILES)
    assert not any("subj02" in p or "fsaverage" in p or "floc-faces" in p for p in got)
    assert (dest / session2).read_bytes() == (root / session2).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fetched = dataset(dest, space="func1pt8mm", rois=["prf-visualrois"]).recording("1")
    original = dataset(root, space="func1pt8mm", rois=["prf-visualrois"]).recording("1")
    np.testing.assert_array_equal(fetched.responses, original.responses)
    assert fetched.preprocessing[0]["held_out_sessions"] == [4]
    assert set(fetched.units.rois) == {"V1v", "V1d", "V2v", "hV4"}


def test_fetch_refuses_a_corrupt_download(built: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = built
    with FileServer(root, etags={nsd.EXPDESIGN: "f" * 32}) as server:
        with pytest.raises(WorkbenchError, match="nsd_expdesign.mat: md5 checksum mismatch"):
            nsd.NSDDataset(space="fsaverage").fetch(tmp_path / "d", accept_terms=True, subjects=["2"],
                                                   base_url=server.url, include_images=False, quiet=True,
                                                   retry_wait=0)
    assert not (tmp_path / "d" / nsd.EXPDESIGN).exists()


def test_fetch_unknown_option(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="no option 'colour'"):
        nsd.NSDDataset().fetch(tmp_path, accept_terms=True, colour="red")


def test_gzip_sanity_of_fixture(built: tuple[Path, dict]) -> None:
    path = built[0] / nsd.session_files(1, "func1pt8mm", "betas_fithrf_GLMdenoise_RR", 1)[0]
    assert gzip.open(path).read(4)


def test_fingerprint_follows_options_and_data_on_disk(copy: Path) -> None:
    base = dataset(copy).fingerprint()
    assert base == dataset(copy).fingerprint() != dataset(copy, zscore=False).fingerprint()
    (copy / nsd.session_files(2, "fsaverage", "betas_fithrf_GLMdenoise_RR", 3)[1]).unlink()
    assert dataset(copy).fingerprint() != base


def test_cli_fetch(built: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from brain_workbench.cli import main

    root, _ = built
    dest = tmp_path / "cli"
    with FileServer(root) as server:
        args = ["data", "fetch", "nsd", "--dest", str(dest), "-s", "2", "-o", "space=func1pt8mm",
                "-o", f"base_url={server.url}/", "-o", "sessions=[1, 3]", "-o", "rois=[]",
                "-o", "include_images=false", "-o", "quiet=true"]
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code == 1 and "--accept-terms" in capsys.readouterr().err
        with pytest.raises(SystemExit) as exit_:
            main(args + ["--accept-terms"])
        assert exit_.value.code == 0 and "ready:" in capsys.readouterr().out
    got = sorted(p.name for p in (dest / nsd.betas_dir(2, "func1pt8mm", "betas_fithrf_GLMdenoise_RR")).iterdir())
    assert got == ["betas_session01.nii.gz", "betas_session03.nii.gz", "ncsnr.nii.gz"]
    assert not (dest / nsd.STIMULI_HDF5).exists()
    rec = dataset(dest, space="func1pt8mm", rois=[], sessions=[1, 3]).recording("2")
    assert rec.preprocessing[0]["sessions"] == [1, 3]


def test_every_voxel_without_a_mask(built: tuple[Path, dict]) -> None:
    root, truth = built
    rec = dataset(root, space="func1pt8mm", mask=None, zscore=False).recording("1")
    assert rec.units.n == 6 * 5 * 4
    np.testing.assert_allclose(rec.responses[: truth["tps"]], truth["vol"][1][1].reshape(-1, truth["tps"]).T,
                               atol=1e-6)
    np.testing.assert_array_equal(rec.units.rois["nsdgeneral"], truth["vol_rois"][1]["nsdgeneral"].ravel() > 0)
