"""The things-eeg2 dataset plugin on a toy copy of the OSF layout, and its fetch from a fake OSF API."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.plugin.registry import get_registry
from brain_workbench.plugin.testing import check_dataset
from brain_workbench.store import Store
from brain_workbench.types import WorkbenchError
from fixtures_datasets import EEG_CHANNELS, FileServer, make_things_eeg2, make_things_eeg2_raw, zip_folder

te = pytest.importorskip("brain_workbench_plugins.things_eeg2")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("eeg") / "THINGS-EEG2"
    return root, make_things_eeg2(root)


@pytest.fixture()
def copy(built: tuple[Path, dict], tmp_path: Path) -> Path:
    return Path(shutil.copytree(built[0], tmp_path / "THINGS-EEG2"))


def dataset(root: Path, store: Store | None = None, **options) -> te.ThingsEEG2Dataset:
    return te.ThingsEEG2Dataset(local_path=root, store=store, cache=store is not None, **options)


def independent_nc(test: np.ndarray, n: float) -> np.ndarray:
    """Per channel and time: signal = total − noise variance; NC = snr²/(snr² + 1/n); mean over time."""
    n_img, reps, n_ch, n_t = test.shape
    out = np.zeros(n_ch)
    for c in range(n_ch):
        values = []
        for t in range(n_t):
            x = test[:, :, c, t].astype(np.float64)
            noise = np.mean([np.var(x[i], ddof=1) for i in range(n_img)])
            total = np.var(x.ravel(), ddof=1)
            snr2 = max(total - noise, 0) / noise
            values.append(snr2 / (snr2 + 1 / n))
        out[c] = np.mean(values)
    return out


def test_registered_and_cheap_without_data() -> None:
    entry = get_registry().get("dataset", "things-eeg2")
    assert "Gifford" in entry.card.citation
    ds = wb.dataset("things-eeg2")
    assert ds.modalities == ("image",) and ds.subjects() == [str(s) for s in range(1, 11)]
    with pytest.raises(WorkbenchError, match="workbench data fetch things-eeg2 --dest DIR"):
        ds.recording("1")


def test_conformance(built: tuple[Path, dict], tmp_store: Store) -> None:
    check_dataset(dataset(built[0], tmp_store), subjects=["1", "2"])


def test_trials_channels_and_times(built: tuple[Path, dict]) -> None:
    root, truth = built
    rec = dataset(root).recording("2")
    meta = truth["meta"]
    train_ids = [f[:-4] for f in meta["train_img_files"]]
    test_ids = [f[:-4] for f in meta["test_img_files"]]
    train, test = truth["train"][2], truth["test"][2]
    assert rec.responses.shape == (train.shape[0] * 4 + test.shape[0] * 6, len(EEG_CHANNELS), len(truth["times"]))
    np.testing.assert_array_equal(rec.responses[: train.shape[0] * 4], train.reshape(-1, *train.shape[2:]))
    np.testing.assert_array_equal(rec.responses[train.shape[0] * 4:], test.reshape(-1, *test.shape[2:]))
    assert list(rec.trial_stimulus_ids[:5]) == [train_ids[0]] * 4 + [train_ids[1]]
    assert list(rec.trial_stimulus_ids[-6:]) == [test_ids[-1]] * 6
    assert list(rec.splits["train"]) == train_ids and list(rec.splits["test"]) == test_ids
    np.testing.assert_allclose(rec.times, truth["times"])
    assert rec.units.space == "eeg-10-20" and list(rec.units.names) == list(EEG_CHANNELS)
    assert list(rec.units.rois["occipital"]) == [True, True, True, False, False, False, False]
    assert list(rec.units.rois["parieto-occipital"]) == [False, False, False, True, True, False, False]
    assert list(rec.units.rois["parietal"]) == [False] * 5 + [True, True]


def test_preprocessed_data_have_no_session_grouping(built: tuple[Path, dict]) -> None:
    """The published preprocessing shuffles the sessions' repetitions together: no session to report."""
    assert "session" not in dataset(built[0]).recording("1").trial_groups


def test_channel_regions() -> None:
    assert te.channel_region("Fp1") == "prefrontal" and te.channel_region("FCz") == "fronto-central"
    assert te.channel_region("TP9") == "temporo-parietal" and te.channel_region("Cz") == "central"
    assert te.channel_region("stim") is None


def test_noise_ceiling_per_channel(built: tuple[Path, dict]) -> None:
    root, truth = built
    single = dataset(root).recording("1")
    np.testing.assert_allclose(single.noise_ceiling, independent_nc(truth["test"][1], 1), rtol=1e-5)
    mean = dataset(root, average_repetitions=True).recording("1")
    np.testing.assert_allclose(mean.noise_ceiling, independent_nc(truth["test"][1], 6), rtol=1e-5)
    assert mean.preprocessing[-1]["n"] == 6.0 and mean.preprocessing[-1]["per"] == "channel"
    assert mean.responses.shape[0] == len(mean.splits["train"]) + len(mean.splits["test"])
    np.testing.assert_allclose(mean.responses[0], truth["train"][1][0].mean(0), rtol=1e-5, atol=1e-6)
    assert dataset(root, noise_ceiling=False).recording("1").noise_ceiling is None


def test_stimuli_are_the_image_files(built: tuple[Path, dict]) -> None:
    root, truth = built
    stim = dataset(root).stimuli()
    assert stim.ids[0] == "aardvark_01b" and len(stim) == 8 + 3
    first, last = stim.get([stim.ids[0], stim.ids[-1]])
    assert first.size == (16, 12) and first.mode == "RGB"
    assert abs(int(np.asarray(last)[0, 0, 1]) - 100) < 8
    with pytest.raises(WorkbenchError, match="not a THINGS-EEG2 image"):
        stim.get(["unicorn_01b"])
    with pytest.raises(WorkbenchError, match="only the image modality"):
        dataset(root).stimuli("text")


def test_second_load_comes_from_the_store(built: tuple[Path, dict], tmp_store: Store,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = built
    first = dataset(root, tmp_store).recording("1")
    [entry] = tmp_store.ls()
    assert entry.path.startswith("responses/things-eeg2/sub-01-")
    monkeypatch.setattr(te.ThingsEEG2Dataset, "_build_recording", lambda *a: pytest.fail("data were read again"))
    again = dataset(root, tmp_store).recording("1")
    np.testing.assert_array_equal(again.responses, first.responses)
    np.testing.assert_array_equal(again.units.names, first.units.names)
    np.testing.assert_allclose(again.times, first.times)


def test_truncated_file_names_it_and_leaves_the_store_clean(copy: Path, tmp_store: Store) -> None:
    path = copy / te.preprocessed_file(1, "test")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WorkbenchError, match="truncated or corrupt") as err:
        dataset(copy, tmp_store).recording("1")
    assert str(path) in str(err.value)
    assert tmp_store.verify() == [] and tmp_store.ls() == []


def test_nan_values_and_wrong_shapes_are_refused(copy: Path, tmp_store: Store, built: tuple[Path, dict]) -> None:
    truth = built[1]
    path = copy / te.preprocessed_file(2, "training")
    data = truth["train"][2].copy()
    data[1, 2, 3, 4] = np.nan
    np.save(path, {"preprocessed_eeg_data": data, "ch_names": list(EEG_CHANNELS), "times": truth["times"]})
    with pytest.raises(WorkbenchError, match="NaN") as err:
        dataset(copy, tmp_store).recording("2")
    assert str(path) in str(err.value)
    np.save(path, {"preprocessed_eeg_data": data[:-1], "ch_names": list(EEG_CHANNELS), "times": truth["times"]})
    with pytest.raises(WorkbenchError, match="expected \\(8 images"):
        dataset(copy, tmp_store).recording("2")
    (copy / te.preprocessed_file(1, "test")).unlink()
    with pytest.raises(WorkbenchError, match="preprocessed_eeg_test.npy is missing"):
        dataset(copy, tmp_store).recording("1")
    assert tmp_store.verify() == [] and tmp_store.ls() == []


def test_raw_data_need_mne(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mne", None)
    raw = copy / te.raw_file(1, 1, "training")
    raw.parent.mkdir(parents=True)
    np.save(raw, {"raw_eeg_data": np.zeros((3, 10))})
    with pytest.raises(WorkbenchError, match="pip install mne"):
        dataset(copy, data="raw").recording("1")


def test_raw_data_are_epoched_with_mne(copy: Path, built: tuple[Path, dict]) -> None:
    pytest.importorskip("mne")
    truth = make_things_eeg2_raw(copy, subject=1)
    meta = built[1]["meta"]
    train_ids = [f[:-4] for f in meta["train_img_files"]]
    test_ids = [f[:-4] for f in meta["test_img_files"]]
    rec = dataset(copy, data="raw", raw_sfreq=50.0).recording("1")
    expected = [train_ids[c - 1] for s in (1, 2) for c in truth["events"][("training", s)]]
    expected += [test_ids[c - 1] for s in (1, 2) for c in truth["events"][("test", s)]]
    assert list(rec.trial_stimulus_ids) == expected
    assert list(rec.units.names) == ["O1", "Oz", "P3", "Cz"] and rec.units.rois["central"].sum() == 1
    assert rec.times[0] == pytest.approx(-0.2) and np.allclose(np.diff(rec.times), 0.02) and rec.times.size == 50
    baseline = rec.responses[:, :, rec.times < 0].mean(-1)
    assert np.abs(baseline).max() < 1e-6 < rec.responses[:, :, (rec.times > 0.02) & (rec.times < 0.15)].mean()
    assert rec.noise_ceiling is not None and rec.noise_ceiling.shape == (4,)
    assert rec.preprocessing[0]["data"] == "raw"
    sessions = [str(s) for s in (1, 2) for _ in truth["events"][("training", s)]]
    sessions += [str(s) for s in (1, 2) for _ in truth["events"][("test", s)]]
    assert list(rec.trial_groups["session"]) == sessions


# ---- fetch from a fake OSF -----------------------------------------------------------------------
def osf_item(server_rel: str, materialized: str, path: Path) -> dict:
    data = path.read_bytes()
    return {"type": "files", "attributes": {
        "kind": "file", "name": Path(materialized).name, "materialized_path": "/" + materialized, "size": len(data),
        "extra": {"hashes": {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}}},
        "links": {"download": "{base}/" + server_rel}}


def fake_osf(built_root: Path, remote: Path) -> dict:
    """Zip the toy data like the OSF projects and return the JSON routes of their listings."""
    for s in (1, 2):
        zip_folder(built_root / "Preprocessed_data" / f"sub-{s:02d}", remote / f"pre/sub-{s:02d}.zip", f"sub-{s:02d}")
    for name in ("training_images", "test_images"):
        zip_folder(built_root / "image_set" / name, remote / f"img/{name}.zip", name)
    shutil.copy(built_root / "image_set" / "image_metadata.npy", remote / "img" / "image_metadata.npy")
    folder = {"type": "files", "attributes": {"kind": "folder", "name": "Preprocessed_data",
                                              "materialized_path": "/Preprocessed_data/"},
              "relationships": {"files": {"links": {"related": {"href": "{base}/v2/folder/pre/"}}}}}
    pre = [osf_item(f"pre/sub-{s:02d}.zip", f"Preprocessed_data/sub-{s:02d}.zip", remote / f"pre/sub-{s:02d}.zip")
           for s in (1, 2)]
    img = [osf_item(f"img/{n}", n, remote / "img" / n)
           for n in ("training_images.zip", "test_images.zip", "image_metadata.npy")]
    return {
        "v2/nodes/anp5v/files/osfstorage/": {"data": [folder], "links": {"next": None}},
        "v2/folder/pre/": {"data": pre[:1], "links": {"next": "{base}/v2/folder/pre/2"}},
        "v2/folder/pre/2": {"data": pre[1:], "links": {"next": None}},
        "v2/nodes/y63gw/files/osfstorage/": {"data": img, "links": {"next": None}},
    }


def test_fetch_needs_terms(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match=r"osf\.io/3jk45.*--accept-terms"):
        te.ThingsEEG2Dataset().fetch(tmp_path / "d", osf_api="http://127.0.0.1:9/v2/")
    assert not (tmp_path / "d").exists()


def test_fetch_from_osf_unpacks_into_the_published_layout(built: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = built
    remote = tmp_path / "remote"
    routes = fake_osf(root, remote)
    dest = tmp_path / "fetched"
    with FileServer(remote, json_routes=routes, drop_first={"img/training_images.zip"}) as server:
        out = te.ThingsEEG2Dataset().fetch(dest, accept_terms=True, subjects=["2"], osf_api=server.url + "/v2/",
                                           retry_wait=0, quiet=True, keep_archives=False)
        assert server.gets("img/training_images.zip")[1].startswith("bytes=")
        assert server.gets("pre/sub-01.zip") == []
        n_requests = len(server.log.requests)
        te.ThingsEEG2Dataset().fetch(dest, accept_terms=True, subjects=["2"], osf_api=server.url + "/v2/",
                                     retry_wait=0, quiet=True, keep_archives=False)
        assert [r for r in server.log.requests[n_requests:] if r[0] == "GET" and not r[1].startswith("v2/")] == []
    assert out == dest
    assert not (dest / "Preprocessed_data" / "sub-01").exists()
    fetched = dataset(dest).recording("2")
    original = dataset(root).recording("2")
    np.testing.assert_array_equal(fetched.responses, original.responses)
    assert dataset(dest).stimuli().ids == dataset(root).stimuli().ids
    assert len(dataset(dest).stimuli().get(dataset(dest).stimuli().ids)) == 11


def test_fetch_refuses_a_corrupt_archive(built: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = built
    remote = tmp_path / "remote"
    routes = fake_osf(root, remote)
    routes["v2/nodes/y63gw/files/osfstorage/"]["data"][2]["attributes"]["extra"]["hashes"]["sha256"] = "0" * 64
    with FileServer(remote, json_routes=routes) as server:
        with pytest.raises(WorkbenchError, match="image_metadata.npy: sha256 checksum mismatch"):
            te.ThingsEEG2Dataset().fetch(tmp_path / "d", accept_terms=True, subjects=["1"],
                                         osf_api=server.url + "/v2/", retry_wait=0, quiet=True)


def test_fingerprint_follows_options_and_data_on_disk(copy: Path) -> None:
    base = dataset(copy).fingerprint()
    assert base == dataset(copy).fingerprint() != dataset(copy, average_repetitions=True).fingerprint()
    shutil.rmtree(copy / "Preprocessed_data" / "sub-02")
    assert dataset(copy).fingerprint() != base


class _MakeDir:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.mkdir, (self.marker,)


def test_a_malicious_download_runs_no_code(copy: Path, tmp_path: Path, tmp_store: Store) -> None:
    """A preprocessed file that would run code when unpickled is refused, naming the file."""
    marker = tmp_path / "pwned"
    path = copy / te.preprocessed_file(1, "training")
    content = np.load(path, allow_pickle=True).item()
    np.save(path, {**content, "ch_names": [_MakeDir(marker)]}, allow_pickle=True)
    with pytest.raises(WorkbenchError, match="refusing to load") as err:
        dataset(copy, tmp_store).recording("1")
    assert str(path) in str(err.value) and "workbench data fetch things-eeg2" in str(err.value)
    assert not marker.exists()
    assert tmp_store.ls() == []


def test_a_listing_whose_pagination_loops_is_refused_in_one_sentence(built: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = built
    remote = tmp_path / "remote"
    routes = fake_osf(root, remote)
    routes["v2/folder/pre/2"]["links"]["next"] = "{base}/v2/folder/pre/"  # page 2 points back at page 1
    with FileServer(remote, json_routes=routes) as server:
        with pytest.raises(WorkbenchError, match=r"listing loops: page .*/v2/folder/pre/ was reached twice"):
            te.ThingsEEG2Dataset().fetch(tmp_path / "d", accept_terms=True, subjects=["1"],
                                         osf_api=server.url + "/v2/", retry_wait=0, quiet=True)
        assert len([r for r in server.log.requests if r[1].startswith("v2/")]) < 10


def test_a_listing_that_nests_without_end_is_refused_not_a_recursion_error(built: tuple[Path, dict],
                                                                            tmp_path: Path) -> None:
    root, _ = built
    remote = tmp_path / "remote"
    routes = fake_osf(root, remote)
    for i in range(40):  # folder i holds folder i + 1
        routes[f"v2/deep/{i}"] = {"data": [{"type": "files", "attributes": {
            "kind": "folder", "name": f"d{i}", "materialized_path": f"/d{i}/"},
            "relationships": {"files": {"links": {"related": {"href": f"{{base}}/v2/deep/{i + 1}"}}}}}],
            "links": {"next": None}}
    routes["v2/nodes/anp5v/files/osfstorage/"]["data"][0]["relationships"]["files"]["links"]["related"]["href"] = (
        "{base}/v2/deep/0")
    with FileServer(remote, json_routes=routes) as server:
        with pytest.raises(WorkbenchError, match="nests folders more than 32 deep"):
            te.ThingsEEG2Dataset().fetch(tmp_path / "d", accept_terms=True, subjects=["1"],
                                         osf_api=server.url + "/v2/", retry_wait=0, quiet=True)


def test_stimuli_are_labelled_with_their_things_concept(built: tuple[Path, dict]) -> None:
    root, _ = built
    stim = dataset(root).stimuli()
    meta = dataset(root).metadata()
    concepts = [c.split("_", 1)[1] for part in ("train", "test") for c in meta[f"{part}_img_concepts"]]
    assert stim.categories == tuple(concepts) and len(set(concepts)) > 1
    assert te.concept_name("00001_aardvark") == "aardvark" and te.concept_name("plain") == "plain"
