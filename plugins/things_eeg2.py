"""THINGS-EEG2 (Gifford et al. 2022): 64-channel EEG of 10 subjects viewing THINGS object images (RSVP).

Files are read in the published OSF layout under ``local_path``:

* ``Preprocessed_data/sub-XX/preprocessed_eeg_{training,test}.npy``: pickled dicts with
  ``preprocessed_eeg_data`` (training: 16540 images × 4 repetitions × 17 channels × 100 times;
  test: 200 × 80 × 17 × 100), ``ch_names`` and ``times`` (seconds).
* ``image_set/image_metadata.npy``: a pickled dict with ``train_img_files``, ``train_img_concepts``,
  ``test_img_files``, ``test_img_concepts``; images in ``image_set/{training,test}_images/<concept>/<file>``.
* optional raw data (``raw_data/sub-XX/ses-YY/raw_eeg_{training,test}.npy``), epoched with MNE-Python
  when ``data="raw"`` and MNE is installed.

The ``.npy`` files are pickles: load them only from the published source. Stimulus ids are the image
file names without extension (e.g. ``aardvark_01b``). Trials are image-major (all repetitions of the
first training image, then the next, ..., then the test images); responses are
trials × channels × times; ``units`` are the channels (space ``eeg-10-20``) with ROIs by scalp region.

Sessions: with ``data="raw"`` each trial's recording session (``ses-YY``, 1–4) is
``Recording.trial_groups["session"]``. The preprocessed release cannot say: its preprocessing
(Gifford et al.'s ``save_prepr``) shuffles the repetitions of the four sessions together, so the
preprocessed recording has no session grouping and the adaptation sweep needs ``data="raw"``.

The noise ceiling is per channel: NSD's ``ncsnr² / (ncsnr² + 1/n)`` computed at each channel and time
point from the repetitions of the test images, then averaged over time points. ``n = 1`` without
averaging; with averaging, ``1/n`` is the mean of ``1/count`` over the test images (``n = 80``).
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np

from brain_workbench.sdk import (
    Option,
    Recording,
    StimulusSet,
    Units,
    WorkbenchError,
    digest,
    hookimpl,
    noise_ceiling_from_ncsnr,
)

NAME = "things-eeg2"
CODE_VERSION = "2"
CITATION = ("Gifford, A.T., Dwivedi, K., Roig, G., Cichy, R.M. A large and rich EEG dataset for modeling human "
            "visual object recognition. NeuroImage 264, 119754 (2022). doi:10.1016/j.neuroimage.2022.119754")
TERMS_URL = "https://osf.io/3jk45/"
TERMS_NOTE = ("EEG data under CC BY 4.0, cite Gifford et al. 2022; the THINGS images are for academic research "
              "use only, see https://things-initiative.org")
OSF_API = "https://api.osf.io/v2/"
OSF_NODES = {"preprocessed": "anp5v", "images": "y63gw"}
RAW_DATA_URL = "https://doi.org/10.6084/m9.figshare.18470912"
N_SUBJECTS = 10
N_RAW_SESSIONS = 4
DATA_KINDS = ("preprocessed", "raw")
PREPROCESSED = "Preprocessed_data"
IMAGE_SET = "image_set"
METADATA = "image_set/image_metadata.npy"
CATCH_EVENT = 99999
REGIONS = {"Fp": "prefrontal", "AF": "anterior-frontal", "F": "frontal", "FC": "fronto-central",
           "FT": "fronto-temporal", "C": "central", "CP": "centro-parietal", "T": "temporal",
           "TP": "temporo-parietal", "P": "parietal", "PO": "parieto-occipital", "O": "occipital", "I": "inion"}


def subject_number(subject: str | int) -> int:
    """Accept 1, '1', '01' or 'sub-01'; return the subject number 1–10."""
    text = str(subject).strip().lower().removeprefix("sub-").removeprefix("sub")
    if not text.isdigit() or not 1 <= int(text) <= N_SUBJECTS:
        raise WorkbenchError(f"unknown THINGS-EEG2 subject {subject!r}; the dataset has subjects 1–{N_SUBJECTS}")
    return int(text)


def concept_name(folder: str) -> str:
    """A THINGS concept from its image folder name (``00001_aardvark`` → ``aardvark``)."""
    head, _, rest = str(folder).partition("_")
    return rest if head.isdigit() and rest else str(folder)


def preprocessed_file(subject: int, part: str) -> str:
    return f"{PREPROCESSED}/sub-{subject:02d}/preprocessed_eeg_{part}.npy"


def raw_file(subject: int, session: int, part: str) -> str:
    return f"raw_data/sub-{subject:02d}/ses-{session:02d}/raw_eeg_{part}.npy"


def channel_region(name: str) -> str | None:
    """Scalp region of a 10-20 channel name from its letter prefix ('PO7' → parieto-occipital)."""
    letters = re.match(r"^[A-Za-z]+", name)
    if not letters:
        return None
    prefix = letters.group(0).rstrip("z").rstrip("Z")
    for length in (2, 1):
        for key, region in REGIONS.items():
            if len(key) == length and prefix[:length].lower() == key.lower():
                return region
    return None


def noise_ceiling_per_channel(test: np.ndarray, inverse_n: float) -> np.ndarray:
    """Mean over time of ncsnr²/(ncsnr² + 1/n) per channel, from images × repetitions × channels × times."""
    x = np.asarray(test, dtype=np.float64)
    noise = x.var(axis=1, ddof=1).mean(axis=0)
    total = x.reshape(-1, *x.shape[2:]).var(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr2 = np.maximum(total - noise, 0.0) / noise
    nc = noise_ceiling_from_ncsnr(np.sqrt(snr2), inverse_n).astype(np.float64)
    return np.nan_to_num(nc, nan=0.0).mean(axis=-1).astype(np.float32)


FETCH_HINT = "`workbench data fetch things-eeg2 --dest DIR --accept-terms`"


def _fail_read(path: Path, exc: BaseException) -> WorkbenchError:
    return WorkbenchError(
        f"cannot read {path} ({type(exc).__name__}: {exc}); the file is truncated or corrupt: delete it and "
        f"download it again with {FETCH_HINT}"
    )


def _load_pickle(path: Path) -> dict:
    """One of the release's pickled dicts, through the SDK's restricted unpickler (no code runs)."""
    from brain_workbench.sdk.data import load_npy_dict

    return load_npy_dict(path, hint=f"delete it and download it again with {FETCH_HINT}")


class ThingsEEG2Dataset:
    """THINGS-EEG2 responses (trials × channels × times) and the THINGS images they were recorded with."""

    name = NAME
    modalities = ("image",)

    def __init__(
        self,
        local_path: Annotated[str | Path | None, Option("folder with Preprocessed_data/ and image_set/")] = None,
        data: Annotated[Literal["preprocessed", "raw"], Option(
            "raw needs MNE-Python and raw_data/ from figshare")] = "preprocessed",
        average_repetitions: Annotated[bool, Option("average the trials of each image")] = False,
        noise_ceiling: Annotated[bool, Option("per-channel noise ceiling from test repetitions")] = True,
        raw_sfreq: Annotated[float, Option("resampling rate of raw epochs (Hz)")] = 100.0,
        raw_tmin: Annotated[float, Option("raw data: epoch start in seconds relative to image onset")] = -0.2,
        raw_tmax: Annotated[float, Option("raw data: epoch end in seconds relative to image onset")] = 0.8,
        store: Annotated[Any, Option("store URL for the cached recording ($WORKBENCH_STORE)")] = None,
        cache: Annotated[bool, Option("cache recordings in the store")] = True,
    ) -> None:
        if data not in DATA_KINDS:
            raise WorkbenchError(f"data must be one of {', '.join(DATA_KINDS)}, not {data!r}")
        self.local_path = None if local_path in (None, "") else Path(str(local_path)).expanduser()
        self.data, self.average, self.with_nc = data, bool(average_repetitions), bool(noise_ceiling)
        self.raw_sfreq, self.raw_tmin, self.raw_tmax = float(raw_sfreq), float(raw_tmin), float(raw_tmax)
        self.store, self.cache = store, bool(cache)
        self._meta: dict[str, list[str]] | None = None

    def __repr__(self) -> str:
        return f"ThingsEEG2Dataset(local_path={self.local_path}, data={self.data!r})"

    # ---- files -------------------------------------------------------------------------------
    def _root(self) -> Path:
        from brain_workbench.sdk.data import local_root

        return local_root(self.local_path, "things-eeg2")

    def _file(self, rel: str, what: str) -> Path:
        from brain_workbench.sdk.data import local_file

        return local_file(self._root(), rel, what, "things-eeg2")

    def metadata(self) -> dict[str, list[str]]:
        """The image metadata dict (file names and concepts of the training and test images)."""
        if self._meta is None:
            path = self._file(METADATA, "the image metadata")
            meta = _load_pickle(path)
            keys = ("train_img_files", "train_img_concepts", "test_img_files", "test_img_concepts")
            missing = [k for k in keys if k not in meta]
            if missing:
                raise WorkbenchError(f"{path} has no key {missing[0]!r}; it is not THINGS-EEG2's image_metadata.npy")
            self._meta = {k: [str(v) for v in meta[k]] for k in keys}
            for part in ("train", "test"):
                if len(self._meta[f"{part}_img_files"]) != len(self._meta[f"{part}_img_concepts"]):
                    raise WorkbenchError(f"{path}: {part}_img_files and {part}_img_concepts differ in length")
        return self._meta

    def _ids(self) -> tuple[list[str], list[str]]:
        meta = self.metadata()
        train = [Path(f).stem for f in meta["train_img_files"]]
        test = [Path(f).stem for f in meta["test_img_files"]]
        if len(set(train + test)) != len(train) + len(test):
            raise WorkbenchError(f"{self._root() / METADATA} names some image twice; download it again")
        return train, test

    def _image_paths(self) -> dict[str, Path]:
        meta, root = self.metadata(), self._root()
        out = {}
        for part, folder in (("train", "training_images"), ("test", "test_images")):
            for f, c in zip(meta[f"{part}_img_files"], meta[f"{part}_img_concepts"]):
                out[Path(f).stem] = root / IMAGE_SET / folder / c / f
        return out

    # ---- protocol ----------------------------------------------------------------------------
    def subjects(self) -> list[str]:
        """Subjects with data under ``local_path`` (all ten when none are there yet)."""
        if self.local_path is not None and self.local_path.is_dir():
            base = self.local_path / (PREPROCESSED if self.data == "preprocessed" else "raw_data")
            found = [s for s in range(1, N_SUBJECTS + 1) if (base / f"sub-{s:02d}").is_dir()]
            if found:
                return [str(s) for s in found]
        return [str(s) for s in range(1, N_SUBJECTS + 1)]

    def fingerprint(self) -> str:
        """Options plus the sizes of the data files on disk (cheap stat calls only)."""
        raw = (self.raw_sfreq, self.raw_tmin, self.raw_tmax) if self.data == "raw" else None
        state = []
        if self.local_path is not None and self.local_path.is_dir():
            base = self.local_path / (PREPROCESSED if self.data == "preprocessed" else "raw_data")
            state = sorted((p.relative_to(self.local_path).as_posix(), p.stat().st_size)
                           for p in base.glob("sub-*/**/*.npy"))
        return digest(NAME, CODE_VERSION, self.data, self.average, self.with_nc, raw, state)

    def stimuli(self, modality: str | None = None) -> StimulusSet:
        """The 16540 training and 200 test images, lazily opened from ``image_set/``."""
        modality = modality or "image"
        if modality != "image":
            raise WorkbenchError(f"THINGS-EEG2 has only the image modality, not {modality!r}")
        train, test = self._ids()
        meta_path = self._root() / METADATA
        meta = self.metadata()
        concepts = [concept_name(c) for part in ("train", "test") for c in meta[f"{part}_img_concepts"]]
        return StimulusSet(tuple(train + test), "image", self._load_images,
                           digest("image", train + test, meta_path.stat().st_size), categories=tuple(concepts))

    def _load_images(self, ids: Sequence[str]) -> list:
        from PIL import Image

        from brain_workbench.sdk.data import rgb_image

        paths = self._image_paths()
        out = []
        for sid in ids:
            path = paths.get(str(sid))
            if path is None:
                raise WorkbenchError(f"{sid!r} is not a THINGS-EEG2 image in {self._root() / METADATA}")
            if not path.is_file():
                raise WorkbenchError(f"{path} is missing; download the image set with `workbench data fetch "
                                     f"things-eeg2 --dest {self._root()} --accept-terms`")
            try:
                with Image.open(path) as img:
                    out.append(rgb_image(img, sid))
            except Exception as exc:
                raise _fail_read(path, exc) from None
        return out

    # ---- recordings --------------------------------------------------------------------------
    def _input_files(self, subj: int) -> list[Path]:
        root = self._root()
        if self.data == "preprocessed":
            rels = [preprocessed_file(subj, p) for p in ("training", "test")]
            for rel in rels:
                self._file(rel, f"preprocessed EEG of subject {subj}")
        else:
            rels = [raw_file(subj, s, p) for s in range(1, N_RAW_SESSIONS + 1) for p in ("training", "test")]
            rels = [r for r in rels if (root / r).is_file()]
            if not rels:
                raise WorkbenchError(f"no raw EEG of subject {subj} under {root / 'raw_data'}; download it from "
                                     f"{RAW_DATA_URL} (raw data are not fetched automatically) or use "
                                     "data=preprocessed")
        return [root / METADATA] + [root / r for r in rels]

    def cache_key(self, subject: str | int) -> str:
        """Store path of this subject's recording (changes with options and input files)."""
        subj = subject_number(subject)
        root = self._root()
        from brain_workbench.sdk.data import files_signature, recording_key

        stats = files_signature(root, self._input_files(subj))
        return recording_key(NAME, f"sub-{subj:02d}", self.fingerprint(), inputs=stats)

    def _open_store(self):
        from brain_workbench.sdk.data import cache_store

        return cache_store(self.store, self.cache)

    def recording(self, subject: str | int) -> Recording:
        """EEG of one subject (trials × channels × times), loaded once and then read from the store."""
        subj = subject_number(subject)
        from brain_workbench.sdk.data import cached_recording

        store = self._open_store()
        key = self.cache_key(subj) if store is not None else ""
        attrs = {"source": str(self._root()), "dataset_options": {"data": self.data}}
        return cached_recording(store, key, lambda: self._build_recording(subj), attrs=attrs)

    def _build_recording(self, subj: int) -> Recording:
        train_ids, test_ids = self._ids()
        groups: dict[str, np.ndarray] = {}
        if self.data == "raw":
            responses, ids, names, times, test_block, step, groups = self._load_raw(subj, train_ids, test_ids)
        else:
            responses, ids, names, times, test_block, step = self._load_preprocessed(subj, train_ids, test_ids)
        rois: dict[str, np.ndarray] = {}
        regions = [channel_region(n) for n in names]
        for region in dict.fromkeys(r for r in regions if r):
            rois[region] = np.array([r == region for r in regions])
        units = Units(space="eeg-10-20", n=len(names), names=np.asarray(names), rois=rois)
        rec = Recording(dataset=NAME, subject=str(subj), responses=responses, trial_stimulus_ids=ids, units=units,
                        splits={"train": train_ids, "test": test_ids}, times=np.asarray(times, dtype=np.float64),
                        preprocessing=[step], trial_groups=groups)
        counts = dict(zip(*np.unique(ids, return_counts=True)))
        test_counts = [counts[i] for i in test_ids if i in counts] or list(counts.values())
        inverse_n = 1.0
        if self.average:
            rec = rec.average_repetitions()
            inverse_n = float(np.mean(1.0 / np.asarray(test_counts, dtype=np.float64)))
        if self.with_nc and test_block is not None:
            rec = replace(rec, noise_ceiling=noise_ceiling_per_channel(test_block, inverse_n), preprocessing=[
                *rec.preprocessing, {
                    "step": "noise_ceiling", "formula": "mean over times of ncsnr^2 / (ncsnr^2 + 1/n)",
                    "per": "channel", "source": "test-image repetitions", "n": round(1.0 / inverse_n, 6),
                    "n_rule": "mean 1/count over test images" if self.average else "single trial"}])
        return rec

    def _load_preprocessed(self, subj: int, train_ids: list[str], test_ids: list[str]):
        parts, names, times = [], None, None
        test_block = None
        for part, part_ids in (("training", train_ids), ("test", test_ids)):
            path = self._file(preprocessed_file(subj, part), f"preprocessed EEG of subject {subj}")
            content = _load_pickle(path)
            missing = [k for k in ("preprocessed_eeg_data", "ch_names", "times") if k not in content]
            if missing:
                raise WorkbenchError(f"{path} has no key {missing[0]!r}; it is not a THINGS-EEG2 preprocessed file")
            data = np.asarray(content["preprocessed_eeg_data"])
            ch, tm = [str(c) for c in content["ch_names"]], np.asarray(content["times"], dtype=np.float64).ravel()
            if data.ndim != 4 or data.shape[0] != len(part_ids) or data.shape[2] != len(ch) or data.shape[3] != tm.size:
                raise WorkbenchError(
                    f"{path} holds data of shape {data.shape}, expected ({len(part_ids)} images, repetitions, "
                    f"{len(ch)} channels, {tm.size} times) to match {METADATA}; download both again"
                )
            if names is not None and (ch != names or not np.allclose(tm, times)):
                raise WorkbenchError(f"{path} has other channels or times than the training file; download it again")
            names, times = ch, tm
            if not np.isfinite(data).all():
                raise WorkbenchError(f"{path} holds NaN or infinite values; download it again")
            reps = data.shape[1]
            parts.append((data.reshape(-1, *data.shape[2:]).astype(np.float32, copy=False), np.repeat(part_ids, reps)))
            if part == "test":
                test_block = data
        responses = np.concatenate([p[0] for p in parts], axis=0)
        ids = np.concatenate([p[1] for p in parts])
        step = {"step": "load", "data": "preprocessed", "order": "image-major (training then test)",
                "repetitions": {"training": int(parts[0][1].size // max(1, len(train_ids))),
                                "test": int(parts[1][1].size // max(1, len(test_ids)))}}
        return responses, ids, names, times, test_block, step

    def _load_raw(self, subj: int, train_ids: list[str], test_ids: list[str]):
        try:
            import mne
        except ImportError:
            raise WorkbenchError("data='raw' needs MNE-Python, which is not installed: `pip install mne` (the "
                                 "preprocessed data need no extra package)") from None
        root = self._root()
        blocks, ids, names, times, sessions, labels = [], [], None, None, [], []
        test_trials: dict[str, list[np.ndarray]] = {}
        for part, part_ids in (("training", train_ids), ("test", test_ids)):
            for s in range(1, N_RAW_SESSIONS + 1):
                path = root / raw_file(subj, s, part)
                if not path.is_file():
                    continue
                content = _load_pickle(path)
                try:
                    info = mne.create_info(list(content["ch_names"]), float(content["sfreq"]),
                                           list(content["ch_types"]))
                    raw = mne.io.RawArray(np.asarray(content["raw_eeg_data"], dtype=np.float64), info, verbose=False)
                    events = mne.find_events(raw, stim_channel="stim", shortest_event=1, verbose=False)
                except Exception as exc:
                    raise _fail_read(path, exc) from None
                events = events[events[:, 2] != CATCH_EVENT]
                if events.size == 0 or events[:, 2].max() > len(part_ids):
                    raise WorkbenchError(f"{path} has events outside 1–{len(part_ids)}; it does not match {METADATA}")
                epochs = mne.Epochs(raw, events, tmin=self.raw_tmin, tmax=self.raw_tmax, baseline=(None, 0),
                                    picks="eeg", preload=True, verbose=False)
                if self.raw_sfreq and self.raw_sfreq != epochs.info["sfreq"]:
                    epochs = epochs.resample(self.raw_sfreq, verbose=False)
                data = epochs.get_data(copy=True).astype(np.float32)
                trial_ids = np.asarray(part_ids)[epochs.events[:, 2] - 1]
                if names is not None and (epochs.ch_names != names or epochs.times.size != times.size):
                    raise WorkbenchError(f"{path} has other channels or sampling than the first raw session")
                names, times = list(epochs.ch_names), epochs.times.copy()
                blocks.append(data)
                ids.append(trial_ids)
                sessions.append(f"{part}/ses-{s:02d}")
                labels.append(np.full(len(trial_ids), str(s)))
                if part == "test":
                    for sid, x in zip(trial_ids, data):
                        test_trials.setdefault(str(sid), []).append(x)
        reps = min((len(v) for v in test_trials.values()), default=0)
        test_block = np.stack([np.stack(v[:reps]) for v in test_trials.values()]) if reps >= 2 else None
        step = {"step": "load", "data": "raw", "sessions": sessions, "epochs": [self.raw_tmin, self.raw_tmax],
                "baseline": "pre-stimulus mean", "resampled_hz": self.raw_sfreq, "catch_trials": "dropped",
                "order": "recorded order (training then test)"}
        return (np.concatenate(blocks), np.concatenate(ids), names, times, test_block, step,
                {"session": np.concatenate(labels)})

    # ---- download ----------------------------------------------------------------------------
    def fetch(self, dest: str | Path, accept_terms: bool = False, subjects: Sequence[str | int] | None = None,
              **options: Any) -> Path:
        """Download the preprocessed EEG of ``subjects`` and the image set from OSF, verified and unpacked."""
        from brain_workbench.sdk.data import RemoteFile, fetch_files, get_json, require_terms

        allowed = {"osf_api", "nodes", "include_images", "checksums", "retries", "retry_wait", "timeout",
                   "dry_run", "quiet", "keep_archives"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise WorkbenchError(f"things-eeg2 fetch has no option {unknown[0]!r}; its options are: "
                                 f"{', '.join(sorted(allowed))}")
        require_terms(accept_terms, "THINGS-EEG2", TERMS_URL, TERMS_NOTE)
        dest = Path(dest).expanduser()
        api = str(options.get("osf_api") or OSF_API).rstrip("/") + "/"
        nodes = {**OSF_NODES, **dict(options.get("nodes") or {})}
        retries, wait = int(options.get("retries", 5)), float(options.get("retry_wait", 1.0))
        timeout = float(options.get("timeout", 60.0))
        wanted = [subject_number(s) for s in (subjects or range(1, N_SUBJECTS + 1))]
        files: list[RemoteFile] = []
        for kind, node in nodes.items():
            if kind == "images" and not options.get("include_images", True):
                continue
            for item in _osf_list(f"{api}nodes/{node}/files/osfstorage/", get_json, retries, wait, timeout):
                rel = item["path"]
                if kind == "preprocessed":
                    match = re.search(r"sub-?0*(\d+)", rel)
                    if not match or int(match.group(1)) not in wanted:
                        continue
                if rel.lower().endswith(".zip"):
                    target = f".archives/{kind}/{rel}"
                else:
                    top = PREPROCESSED if kind == "preprocessed" else IMAGE_SET
                    target = f"{top}/{rel.removeprefix(top + '/')}"
                files.append(RemoteFile(target, item["url"], size=item["size"], sha256=item["sha256"],
                                        md5=item["md5"], meta={"kind": kind}))
        if not files:
            raise WorkbenchError(f"OSF lists no THINGS-EEG2 files for subjects {wanted} at {api}; "
                                 "check the osf_api and nodes options")
        installed = _installed(dest)
        files = [f for f in files if f.path not in installed]
        report = fetch_files(files, dest, dataset="THINGS-EEG2", terms_url=TERMS_URL, accept_terms=accept_terms,
                             terms_note=TERMS_NOTE, checksums=options.get("checksums"), retries=retries,
                             retry_wait=wait, timeout=timeout, dry_run=bool(options.get("dry_run", False)),
                             quiet=bool(options.get("quiet", False)))
        if options.get("dry_run"):
            return dest
        for f in report.files:
            if f.path.lower().endswith(".zip"):
                _install_archive(dest / f.path, dest, f.meta["kind"], keep=bool(options.get("keep_archives", True)))
        expected = [preprocessed_file(s, p) for s in wanted for p in ("training", "test")]
        if options.get("include_images", True):
            expected.append(METADATA)
        absent = [rel for rel in expected if not (dest / rel).is_file()]
        if absent:
            raise WorkbenchError(f"after the download {dest / absent[0]} is still missing ({len(absent)} files "
                                 "in all); the OSF project layout changed: report it, and place the files by hand "
                                 "meanwhile")
        return dest


def _osf_list(url: str, get_json, retries: int, wait: float, timeout: float) -> list[dict]:
    """Every file under an OSF storage folder: path, download URL, size and hashes (folders walked without
    recursion; a listing that loops or nests without end is refused by ``ListingWalk``)."""
    from brain_workbench.sdk.data import ListingWalk

    walk = ListingWalk(f"OSF ({url})")
    out: list[dict] = []
    folders: list[tuple[str, str, int]] = [(url, "", 0)]
    while folders:
        page_url: str | None
        page_url, prefix, depth = folders.pop(0)
        while page_url:
            walk.visit(page_url, depth)
            page = get_json(page_url, timeout=timeout, retries=retries, retry_wait=wait)
            for item in page.get("data", []):
                attrs = item.get("attributes", {})
                path = str(attrs.get("materialized_path") or f"{prefix}{attrs.get('name', '')}").lstrip("/")
                if attrs.get("kind") == "folder":
                    href = item.get("relationships", {}).get("files", {}).get("links", {}).get("related", {}).get("href")
                    if href:
                        folders.append((href, path.rstrip("/") + "/", depth + 1))
                    continue
                hashes = (attrs.get("extra") or {}).get("hashes") or {}
                download = item.get("links", {}).get("download")
                if not download or ".." in Path(path).parts:
                    continue
                out.append({"path": path, "url": download, "size": attrs.get("size"),
                            "sha256": hashes.get("sha256"), "md5": hashes.get("md5")})
            page_url = (page.get("links") or {}).get("next")
    return out


def _install_archive(archive: Path, dest: Path, kind: str, keep: bool = True) -> None:
    """Unpack a downloaded zip and move what it holds into the published layout (once per archive)."""
    marker_file = dest / ".archives" / "installed.json"
    marker_file.parent.mkdir(parents=True, exist_ok=True)
    installed = _installed(dest)
    key = archive.relative_to(dest).as_posix()
    if key in installed or not archive.is_file():
        return
    tmp = dest / ".archives" / f".unpack-{archive.stem}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                target = (tmp / member.filename).resolve()
                if tmp.resolve() not in target.parents and target != tmp.resolve():
                    raise WorkbenchError(f"{archive} holds an entry outside its folder ({member.filename}); "
                                         "refusing to unpack it")
            zf.extractall(tmp)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WorkbenchError(f"cannot unpack {archive} ({exc}); delete it and rerun the fetch") from None
    if kind == "preprocessed":
        for path in sorted(tmp.rglob("preprocessed_eeg_*.npy")):
            match = re.search(r"sub-?0*(\d+)", "/".join(path.relative_to(tmp).parts[:-1]) or archive.stem)
            if not match:
                raise WorkbenchError(f"{archive}: cannot tell which subject {path.name} belongs to")
            target = dest / PREPROCESSED / f"sub-{int(match.group(1)):02d}" / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), target)
    else:
        for name in ("training_images", "test_images"):
            found = sorted((p for p in tmp.rglob(name) if p.is_dir()), key=lambda p: len(p.parts))
            if found:
                target = dest / IMAGE_SET / name
                shutil.rmtree(target, ignore_errors=True)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(found[0]), target)
        for path in tmp.rglob("image_metadata.npy"):
            (dest / IMAGE_SET).mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), dest / METADATA)
    shutil.rmtree(tmp, ignore_errors=True)
    installed[key] = archive.stat().st_size
    marker_file.write_text(json.dumps(installed, indent=1))
    if not keep:
        archive.unlink()


def _installed(dest: Path) -> dict[str, int]:
    """Archives already unpacked into ``dest`` (path → size), so a rerun neither fetches nor unpacks them."""
    marker_file = dest / ".archives" / "installed.json"
    try:
        return dict(json.loads(marker_file.read_text()))
    except (FileNotFoundError, ValueError):
        return {}


@hookimpl
def register_datasets(register) -> None:
    register(NAME, ThingsEEG2Dataset, description="THINGS-EEG2: 64-channel EEG of 10 subjects, 16740 THINGS images "
             "(preprocessed: 17 occipito-parietal channels, 100 Hz)", modalities=("image",), citation=CITATION,
             terms=TERMS_URL)
