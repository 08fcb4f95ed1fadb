"""The Natural Scenes Dataset (Allen et al. 2022): single-trial fMRI betas of 8 subjects viewing COCO images.

Files are read in NSD's published layout (the ``natural-scenes-dataset`` bucket) under ``local_path``:

* ``nsddata/experiments/nsd/nsd_expdesign.mat``: ``masterordering`` (trial → column of
  ``subjectim``, 1-based), ``subjectim`` (8 × 10000 73k ids, 1-based) and ``sharedix`` (shared1000).
* ``nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5``: ``imgBrick`` (73000 × 425 × 425 × 3 uint8),
  read lazily row by row; COCO captions from ``.../annotations/captions_{train,val}2017.json``,
  matched through the ``cocoId`` column of ``nsd_stim_info_merged.csv``.
* ``nsddata_betas/ppdata/subjXX/<space>/<beta_version>/``: ``betas_sessionNN.nii.gz`` (int16,
  percent signal change × 300, divided by 300 here) or ``{lh,rh}.betas_sessionNN.mgh`` (fsaverage,
  float, already in percent signal change), plus ``ncsnr.nii.gz`` / ``{lh,rh}.ncsnr.mgh``.
* ROIs: ``nsddata/ppdata/subjXX/<space>/roi/<atlas>.nii.gz`` or
  ``nsddata/freesurfer/fsaverage/label/{lh,rh}.<atlas>.mgz``; label names from ``<atlas>.mgz.ctab``.

Stimulus ids are ``"nsd-KKKKK"`` with K the **1-based** 73k id of NSD's papers and .mat files
(``nsd-00001`` is row 0 of ``imgBrick`` and ``nsdId`` 0 of the CSV). Trial ``t`` (0-based) of session
``s`` (1-based) is experiment trial ``g = (s - 1) * T + t`` with ``T`` the number of trials in the
session file (750 in NSD); its image is ``subjectim[subject - 1, masterordering[g] - 1]``. Each trial's
session number is ``Recording.trial_groups["session"]`` (``"1"`` … ``"40"``), what the adaptation
sweep's "first k sessions" and leave-one-session-out cross-validation read.

The noise ceiling is NSD's ``NC = ncsnr² / (ncsnr² + 1/n)`` as a 0–1 fraction. Without averaging
``n = 1`` (single trials). With averaging, ``1/n`` is the mean of ``1/count`` over the test-split
images (NSD's formula for images with unequal repetitions; ``n = 3`` when every image has 3 trials).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

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

NAME = "nsd"
CODE_VERSION = "2"
CITATION = ("Allen, E.J., St-Yves, G., Wu, Y. et al. A massive 7T fMRI dataset to bridge cognitive neuroscience "
            "and artificial intelligence. Nat Neurosci 25, 116–126 (2022). doi:10.1038/s41593-021-00962-x")
BUCKET_URL = "https://natural-scenes-dataset.s3.amazonaws.com/"
TERMS_URL = "https://cvnlab.slite.page/p/IB6BSeW_7o/Terms-and-Conditions"
N_SESSIONS = {1: 40, 2: 40, 3: 32, 4: 30, 5: 40, 6: 32, 7: 40, 8: 30}
HELD_OUT_SESSIONS = 3
SPACES = ("fsaverage", "func1pt8mm", "func1mm")
BETA_VERSIONS = ("betas_fithrf_GLMdenoise_RR", "betas_fithrf", "betas_assumehrf")
DEFAULT_ROIS = ("nsdgeneral", "prf-visualrois", "floc-faces", "floc-bodies", "floc-places", "floc-words", "streams")
BETA_SCALE = 300.0
CAPTION_MODES = ("first", "all")

EXPDESIGN = "nsddata/experiments/nsd/nsd_expdesign.mat"
STIM_INFO = "nsddata/experiments/nsd/nsd_stim_info_merged.csv"
STIMULI_HDF5 = "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
CAPTION_FILES = ("nsddata_stimuli/stimuli/nsd/annotations/captions_train2017.json",
                 "nsddata_stimuli/stimuli/nsd/annotations/captions_val2017.json")
_ID = re.compile(r"^nsd-(\d{5})$")


def stimulus_id(number: int) -> str:
    """The workbench id of a 1-based NSD 73k id."""
    return f"nsd-{int(number):05d}"


def stimulus_number(sid: str) -> int:
    """The 1-based NSD 73k id of a workbench id such as ``nsd-00001``."""
    match = _ID.match(str(sid))
    if not match or int(match.group(1)) < 1:
        raise WorkbenchError(f"{sid!r} is not an NSD stimulus id; ids look like 'nsd-00001' (1-based 73k id)")
    return int(match.group(1))


def subject_number(subject: str | int) -> int:
    """Accept 1, '1', '01' or 'subj01'; return the subject number 1–8."""
    text = str(subject).strip().lower().removeprefix("subj").removeprefix("sub-")
    if not text.isdigit() or int(text) not in N_SESSIONS:
        raise WorkbenchError(f"unknown NSD subject {subject!r}; NSD has subjects 1–8")
    return int(text)


# ---- published file layout -----------------------------------------------------------------
def betas_dir(subject: int, space: str, beta_version: str) -> str:
    return f"nsddata_betas/ppdata/subj{subject:02d}/{space}/{beta_version}"


def session_files(subject: int, space: str, beta_version: str, session: int) -> list[str]:
    base = betas_dir(subject, space, beta_version)
    if space == "fsaverage":
        return [f"{base}/{h}.betas_session{session:02d}.mgh" for h in ("lh", "rh")]
    return [f"{base}/betas_session{session:02d}.nii.gz"]


def ncsnr_files(subject: int, space: str, beta_version: str) -> list[str]:
    base = betas_dir(subject, space, beta_version)
    return [f"{base}/{h}.ncsnr.mgh" for h in ("lh", "rh")] if space == "fsaverage" else [f"{base}/ncsnr.nii.gz"]


def roi_files(subject: int, space: str, atlas: str) -> list[str]:
    if space == "fsaverage":
        return [f"nsddata/freesurfer/fsaverage/label/{h}.{atlas}.mgz" for h in ("lh", "rh")]
    if atlas == "brainmask":
        return [f"nsddata/ppdata/subj{subject:02d}/{space}/brainmask.nii.gz"]
    return [f"nsddata/ppdata/subj{subject:02d}/{space}/roi/{atlas}.nii.gz"]


def ctab_files(subject: int, space: str, atlas: str) -> list[str]:
    """Where the label table of ``atlas`` may live, most specific first."""
    fs = f"nsddata/freesurfer/fsaverage/label/{atlas}.mgz.ctab"
    if space == "fsaverage":
        return [fs]
    return [f"nsddata/freesurfer/subj{subject:02d}/label/{atlas}.mgz.ctab", fs,
            f"nsddata/ppdata/subj{subject:02d}/{space}/roi/{atlas}.mgz.ctab"]


def read_ctab(path: Path) -> dict[int, str]:
    """Label number → name from a FreeSurfer-style colour table ('<index> <name> [r g b a]' lines)."""
    out: dict[int, str] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#") and re.fullmatch(r"-?\d+", parts[0]):
            out[int(parts[0])] = parts[1]
    return out


def _ranges(values: Sequence[int]) -> str:
    """[1, 2, 3, 5] → '1–3, 5'."""
    out: list[str] = []
    for v in sorted(values):
        if out and int(out[-1].split("–")[-1]) == v - 1:
            out[-1] = f"{out[-1].split('–')[0]}–{v}"
        else:
            out.append(str(v))
    return ", ".join(out)


def _fail_read(path: Path, exc: BaseException) -> WorkbenchError:
    return WorkbenchError(
        f"cannot read {path} ({type(exc).__name__}: {exc}); the file is truncated or corrupt: delete it and "
        "download it again with `workbench data fetch nsd --dest DIR --accept-terms`"
    )


class NSDDataset:
    """NSD single-trial betas in one space and beta version, with images and COCO captions as stimuli."""

    name = NAME
    modalities = ("image", "text")

    def __init__(
        self,
        local_path: Annotated[str | Path | None, Option(
            "NSD root in the bucket's layout (from `workbench data fetch nsd`)")] = None,
        space: Annotated[Literal["fsaverage", "func1pt8mm", "func1mm"], Option(
            "fsaverage surface (both hemispheres, MGH) or the native 1.8 mm / 1 mm volume (NIfTI)")] = "fsaverage",
        beta_version: Annotated[Literal["betas_fithrf_GLMdenoise_RR", "betas_fithrf", "betas_assumehrf"], Option(
            "GLM single-trial beta version (NSD's b3 GLMdenoise+ridge, b2 fitted HRF, b1 assumed HRF)")] = \
            "betas_fithrf_GLMdenoise_RR",
        mask: Annotated[str | None, Option(
            "atlas whose labels > 0 select the units; null keeps all")] = "nsdgeneral",
        rois: Annotated[Sequence[str] | None, Option("atlases whose labels become ROI masks")] = None,
        sessions: Annotated[Sequence[int] | None, Option(
            "sessions to load (default: every session present)")] = None,
        zscore: Annotated[bool, Option("z-score each unit within each session")] = True,
        average_repetitions: Annotated[bool, Option("average the trials of each image")] = False,
        caption: Annotated[Literal["first", "all"], Option(
            "text stimuli: the first COCO caption of each image, or all its captions joined")] = "first",
        store: Annotated[Any, Option("store URL for the cached recording ($WORKBENCH_STORE)")] = None,
        cache: Annotated[bool, Option("cache preprocessed recordings in the store")] = True,
    ) -> None:
        if space not in SPACES:
            raise WorkbenchError(f"unknown NSD space {space!r}; choose one of {', '.join(SPACES)}")
        if beta_version not in BETA_VERSIONS:
            raise WorkbenchError(f"unknown NSD beta version {beta_version!r}; choose one of {', '.join(BETA_VERSIONS)}")
        if caption not in CAPTION_MODES:
            raise WorkbenchError(f"caption must be one of {', '.join(CAPTION_MODES)}, not {caption!r}")
        self.local_path = None if local_path in (None, "") else Path(str(local_path)).expanduser()
        self.space, self.beta_version, self.mask = space, beta_version, mask
        self.rois = tuple(DEFAULT_ROIS if rois is None else ([rois] if isinstance(rois, str) else rois))
        self.sessions = None if sessions is None else sorted({int(s) for s in (
            [sessions] if isinstance(sessions, (int, str)) else sessions)})
        self.zscore, self.average = bool(zscore), bool(average_repetitions)
        self.caption, self.store, self.cache = caption, store, bool(cache)
        self._design: dict[str, np.ndarray] | None = None
        self._captions: dict[int, list[str]] | None = None

    def __repr__(self) -> str:
        return f"NSDDataset(local_path={self.local_path}, space={self.space!r}, beta_version={self.beta_version!r})"

    # ---- files -------------------------------------------------------------------------------
    def _root(self) -> Path:
        from brain_workbench.sdk.data import local_root

        return local_root(self.local_path, "nsd")

    def _file(self, rel: str, what: str) -> Path:
        from brain_workbench.sdk.data import local_file

        return local_file(self._root(), rel, what, "nsd", f" -o space={self.space}")

    def _design_arrays(self) -> dict[str, np.ndarray]:
        if self._design is None:
            from scipy.io import loadmat

            path = self._file(EXPDESIGN, "the NSD experimental design")
            try:
                mat = loadmat(str(path))
            except Exception as exc:
                raise _fail_read(path, exc) from None
            missing = [k for k in ("masterordering", "subjectim", "sharedix") if k not in mat]
            if missing:
                raise WorkbenchError(f"{path} has no variable {missing[0]!r}; it is not NSD's nsd_expdesign.mat")
            subjectim = np.asarray(mat["subjectim"], dtype=np.int64)
            if subjectim.ndim != 2 or subjectim.shape[0] < len(N_SESSIONS):
                raise WorkbenchError(f"{path}: subjectim has shape {subjectim.shape}, expected 8 × images")
            self._design = {"masterordering": np.asarray(mat["masterordering"], dtype=np.int64).ravel(),
                            "subjectim": subjectim,
                            "sharedix": np.asarray(mat["sharedix"], dtype=np.int64).ravel()}
        return self._design

    # ---- protocol ----------------------------------------------------------------------------
    def subjects(self) -> list[str]:
        """Subjects with betas under ``local_path`` (all eight when none are there yet)."""
        if self.local_path is not None and self.local_path.is_dir():
            found = [s for s in N_SESSIONS if (self.local_path / betas_dir(s, self.space, self.beta_version)).is_dir()]
            if found:
                return [str(s) for s in found]
        return [str(s) for s in N_SESSIONS]

    def fingerprint(self) -> str:
        """Options plus which sessions of which subjects are on disk (and their sizes): cheap stat calls only."""
        return digest(NAME, CODE_VERSION, self.space, self.beta_version, self.mask, list(self.rois),
                      self.sessions, self.zscore, self.average, self.caption, self._data_state())

    def _data_state(self) -> list:
        if self.local_path is None or not self.local_path.is_dir():
            return []
        state = []
        for subj in (subject_number(s) for s in self.subjects()):
            for s in self.sessions or range(1, N_SESSIONS[subj] + 1):
                paths = [self.local_path / r for r in session_files(subj, self.space, self.beta_version, s)]
                if all(p.is_file() for p in paths):
                    state.append((subj, s, sum(p.stat().st_size for p in paths)))
        return state

    def stimulus_numbers(self) -> np.ndarray:
        """Sorted 1-based 73k ids of every image shown to the subjects of ``subjects()``."""
        design = self._design_arrays()
        rows = [subject_number(s) - 1 for s in self.subjects()]
        return np.unique(design["subjectim"][rows].ravel())

    def stimuli(self, modality: str | None = None) -> StimulusSet:
        """Images (lazy rows of ``nsd_stimuli.hdf5``) or COCO captions, with the same ``nsd-KKKKK`` ids."""
        modality = modality or "image"
        if modality not in self.modalities:
            raise WorkbenchError(f"NSD has modalities {', '.join(self.modalities)}, not {modality!r}")
        numbers = self.stimulus_numbers()
        ids = tuple(stimulus_id(n) for n in numbers)
        if modality == "image":
            path = self._file(STIMULI_HDF5, "the NSD images")
            n_images = self._n_images(path)
            if numbers.size and numbers.max() > n_images:
                bad = int(numbers[numbers > n_images][0])
                raise WorkbenchError(
                    f"stimulus {stimulus_id(bad)} is not in {path}, which holds {n_images} images; the file is "
                    "incomplete or from another release: download it again with `workbench data fetch nsd`"
                )
            return StimulusSet(ids, "image", self._load_images,
                               digest("image", list(ids), path.name, path.stat().st_size))
        paths = [self._file(STIM_INFO, "NSD stimulus info (cocoId)")] + [
            self._file(rel, "COCO captions") for rel in CAPTION_FILES]
        return StimulusSet(ids, "text", self._load_captions,
                           digest("text", list(ids), self.caption, [p.stat().st_size for p in paths]))

    @staticmethod
    def _n_images(path: Path) -> int:
        import h5py

        try:
            with h5py.File(path, "r") as f:
                return int(f["imgBrick"].shape[0])
        except Exception as exc:
            raise _fail_read(path, exc) from None

    def _load_images(self, ids: Sequence[str]) -> list:
        import h5py
        from PIL import Image

        path = self._file(STIMULI_HDF5, "the NSD images")
        rows = np.array([stimulus_number(i) - 1 for i in ids], dtype=np.int64)
        try:
            with h5py.File(path, "r") as f:
                brick = f["imgBrick"]
                if rows.size and rows.max() >= brick.shape[0]:
                    bad = ids[int(np.argmax(rows >= brick.shape[0]))]
                    raise WorkbenchError(f"stimulus {bad} is not in {path}, which holds {brick.shape[0]} images; "
                                         "download the file again with `workbench data fetch nsd`")
                unique, inverse = np.unique(rows, return_inverse=True)
                data = brick[unique.tolist()] if unique.size else np.empty((0,) + brick.shape[1:], np.uint8)
        except WorkbenchError:
            raise
        except Exception as exc:
            raise _fail_read(path, exc) from None
        return [Image.fromarray(np.asarray(data[k], dtype=np.uint8)) for k in inverse.ravel()]

    def _caption_table(self) -> dict[int, list[str]]:
        if self._captions is None:
            import json

            import pandas as pd

            info_path = self._file(STIM_INFO, "NSD stimulus info (cocoId)")
            try:
                info = pd.read_csv(info_path, usecols=["nsdId", "cocoId"])
            except Exception as exc:
                raise _fail_read(info_path, exc) from None
            by_coco: dict[int, list[tuple[int, str]]] = {}
            for rel in CAPTION_FILES:
                path = self._file(rel, "COCO captions")
                try:
                    annotations = json.loads(path.read_text())["annotations"]
                except Exception as exc:
                    raise _fail_read(path, exc) from None
                for a in annotations:
                    by_coco.setdefault(int(a["image_id"]), []).append((int(a["id"]), str(a["caption"]).strip()))
            self._captions = {int(n) + 1: [c for _, c in sorted(by_coco.get(int(coco), []))]
                              for n, coco in zip(info["nsdId"], info["cocoId"])}
        return self._captions

    def _load_captions(self, ids: Sequence[str]) -> list[str]:
        table = self._caption_table()
        out = []
        for sid in ids:
            captions = table.get(stimulus_number(sid))
            if not captions:
                raise WorkbenchError(f"no COCO caption for {sid} in {', '.join(CAPTION_FILES)}; check that the "
                                     "caption files and nsd_stim_info_merged.csv come from the NSD release")
            out.append(captions[0] if self.caption == "first" else " ".join(captions))
        return out

    # ---- recordings --------------------------------------------------------------------------
    def _sessions(self, root: Path, subject: int) -> tuple[list[int], list[int]]:
        wanted = self.sessions or list(range(1, N_SESSIONS[subject] + 1))
        present, missing = [], []
        for s in wanted:
            files = [root / rel for rel in session_files(subject, self.space, self.beta_version, s)]
            exists = [f.is_file() for f in files]
            if all(exists):
                present.append(s)
            elif any(exists) or self.sessions is not None:
                absent = files[exists.index(False)]
                raise WorkbenchError(
                    f"{absent} is missing (subject {subject}, session {s}); download it with `workbench data fetch "
                    f"nsd --dest {root} -s {subject} -o space={self.space} -o sessions=[{s}] --accept-terms` "
                    "or leave the session out with the sessions option"
                )
            else:
                missing.append(s)
        if not present:
            first = root / session_files(subject, self.space, self.beta_version, wanted[0])[0]
            raise WorkbenchError(
                f"no {self.space} {self.beta_version} betas for NSD subject {subject} under {root} (e.g. {first}); "
                f"run `workbench data fetch nsd --dest {root} -s {subject} -o space={self.space} --accept-terms`"
            )
        released = N_SESSIONS[subject] - HELD_OUT_SESSIONS
        lost = [s for s in missing if s <= released]
        if lost:
            warnings.warn(f"NSD subject {subject}: sessions {_ranges(lost)} are missing under {root}; using the "
                          f"{len(present)} sessions present ({_ranges(present)})", stacklevel=3)
        return present, missing

    def _input_files(self, root: Path, subject: int, sessions: list[int]) -> list[Path]:
        rels = [EXPDESIGN] + [r for s in sessions for r in session_files(subject, self.space, self.beta_version, s)]
        rels += ncsnr_files(subject, self.space, self.beta_version)
        for atlas in {*self.rois, *([self.mask] if self.mask else [])}:
            rels += roi_files(subject, self.space, atlas) + ctab_files(subject, self.space, atlas)
        return [root / r for r in rels if (root / r).is_file()]

    def cache_key(self, subject: str | int) -> str:
        """Store path of this subject's preprocessed recording (changes with options and input files)."""
        subj = subject_number(subject)
        return self._cache_key(self._root(), subj, self._sessions(self._root(), subj)[0])

    def _cache_key(self, root: Path, subj: int, sessions: list[int]) -> str:
        from brain_workbench.sdk.data import files_signature, recording_key

        stats = files_signature(root, self._input_files(root, subj, sessions))
        return recording_key(NAME, f"subj{subj:02d}", self.fingerprint(), inputs=[sessions, stats])

    def _open_store(self):
        from brain_workbench.sdk.data import cache_store

        return cache_store(self.store, self.cache)

    def recording(self, subject: str | int) -> Recording:
        """Betas of one subject (trials × units), loaded once and then read from the store."""
        subj = subject_number(subject)
        root = self._root()
        sessions, missing = self._sessions(root, subj)
        from brain_workbench.sdk.data import cached_recording

        store = self._open_store()
        key = self._cache_key(root, subj, sessions) if store is not None else ""
        attrs = {"source": str(root), "dataset_options": {"space": self.space, "beta_version": self.beta_version,
                                                          "mask": self.mask}}
        return cached_recording(store, key, lambda: self._build_recording(subj, sessions, missing), attrs=attrs)

    def _build_recording(self, subj: int, sessions: list[int], missing: list[int]) -> Recording:
        root = self._root()
        design = self._design_arrays()
        order, subjectim = design["masterordering"], design["subjectim"][subj - 1]
        units, select, n_total, ncsnr, roi_notes = self._units(root, subj, sessions[0])
        responses, numbers, labels, per_session = None, [], [], None
        for k, s in enumerate(sessions):
            data, source = self._read_session(root, subj, s, select, n_total)
            n_trials = data.shape[0]
            if per_session is None:
                per_session = n_trials
                responses = np.empty((len(sessions) * n_trials, data.shape[1]), dtype=np.float32)
            elif n_trials != per_session:
                raise WorkbenchError(f"{source} holds {n_trials} trials but earlier sessions hold {per_session}; "
                                     "the file is not from the same release: download it again")
            trials = (s - 1) * n_trials + np.arange(n_trials)
            if trials[-1] >= order.size:
                raise WorkbenchError(f"{source} is session {s} with {n_trials} trials, but {EXPDESIGN} describes only "
                                     f"{order.size} trials; the design and the betas come from different releases")
            columns = order[trials] - 1
            if columns.min() < 0 or columns.max() >= subjectim.size:
                raise WorkbenchError(f"{EXPDESIGN}: masterordering points outside subjectim; download it again")
            numbers.append(subjectim[columns])
            labels.append(np.full(n_trials, str(s)))
            if self.zscore:
                mean, std = data.mean(0, dtype=np.float64), data.std(0, dtype=np.float64)
                data = ((data - mean) / np.where(std > 0, std, np.inf)).astype(np.float32)
            responses[k * n_trials: (k + 1) * n_trials] = data
        number = np.concatenate(numbers)
        ids = np.array([stimulus_id(n) for n in number])
        seen = np.unique(number)
        shared = np.isin(seen, design["sharedix"])
        held = [s for s in missing if s > N_SESSIONS[subj] - HELD_OUT_SESSIONS]
        steps: list[dict] = [{
            "step": "load", "space": self.space, "beta_version": self.beta_version, "mask": self.mask,
            "sessions": sessions, "missing_sessions": missing, "held_out_sessions": held,
            "trials_per_session": int(per_session), "units": "percent signal change"
                + (" (int16 / 300)" if self.space != "fsaverage" else ""), "rois_missing": roi_notes,
        }]
        if self.zscore:
            steps.append({"step": "zscore", "per": "session", "over": "trials", "zero_variance": "set to 0"})
        rec = Recording(
            dataset=NAME, subject=str(subj), responses=responses, trial_stimulus_ids=ids,
            units=units, splits={"train": [stimulus_id(n) for n in seen[~shared]],
                                 "test": [stimulus_id(n) for n in seen[shared]]},
            preprocessing=steps, trial_groups={"session": np.concatenate(labels)},
        )
        counts = dict(zip(*np.unique(ids, return_counts=True)))
        test = [counts[i] for i in rec.splits["test"]] or list(counts.values())
        inverse_n = 1.0
        if self.average:
            rec = rec.average_repetitions()
            inverse_n = float(np.mean(1.0 / np.asarray(test, dtype=np.float64)))
        if ncsnr is not None:
            rec = replace(rec, noise_ceiling=noise_ceiling_from_ncsnr(ncsnr, inverse_n), preprocessing=[*rec.preprocessing, {
                "step": "noise_ceiling", "formula": "ncsnr^2 / (ncsnr^2 + 1/n)", "n": round(1.0 / inverse_n, 6),
                "source": "ncsnr", "n_rule": "mean 1/count over test images" if self.average else "single trial"}])
        return rec

    # ---- reading betas, masks and ROIs ------------------------------------------------------
    def _read_session(self, root: Path, subj: int, session: int, select: np.ndarray,
                      n_total: int) -> tuple[np.ndarray, Path]:
        """Trials × selected units of one session; the mask is applied before converting to float."""
        paths = [root / r for r in session_files(subj, self.space, self.beta_version, session)]
        parts, offset, n_trials = [], 0, None
        for path in paths:
            flat, slope, inter = self._read_betas(path)
            if n_trials is not None and flat.shape[1] != n_trials:
                raise WorkbenchError(f"{path} holds {flat.shape[1]} trials but {paths[0]} holds {n_trials}; "
                                     "download both again")
            n_trials = flat.shape[1]
            index = select[(select >= offset) & (select < offset + flat.shape[0])] - offset
            parts.append(self._scale(flat[index], slope, inter))
            offset += flat.shape[0]
        if offset != n_total:
            raise WorkbenchError(f"{paths[0]} has {offset} units where the first session and the masks have "
                                 f"{n_total}; the file comes from another space or release: download it again")
        data = np.ascontiguousarray(np.concatenate(parts, axis=0).T)
        bad = ~np.isfinite(data)
        if bad.any():
            units = np.unique(np.nonzero(bad)[1])
            raise WorkbenchError(
                f"{' / '.join(map(str, paths))} holds NaN or infinite betas for {units.size} of the "
                f"{data.shape[1]} selected units; restrict the units with the mask option "
                "(e.g. mask=nsdgeneral) or download the file again"
            )
        return data, paths[0]

    def _read_betas(self, path: Path) -> tuple[np.ndarray, float, float]:
        """Units × trials in the file's own dtype (volumes flattened in C order), header slope and intercept."""
        import nibabel as nib

        try:
            img = nib.load(str(path))
            proxy = img.dataobj
            raw = np.asarray(proxy.get_unscaled()) if hasattr(proxy, "get_unscaled") else np.asarray(proxy)
            slope, inter = float(getattr(proxy, "slope", 1.0)), float(getattr(proxy, "inter", 0.0))
        except Exception as exc:
            raise _fail_read(path, exc) from None
        if self.space != "fsaverage" and raw.ndim != 4:
            raise WorkbenchError(f"{path} has shape {raw.shape}; NSD volume betas are x × y × z × trials")
        return raw.reshape(-1, raw.shape[-1]), slope, inter

    @staticmethod
    def _scale(raw: np.ndarray, slope: float, inter: float) -> np.ndarray:
        """Percent signal change: header slope/intercept, then / 300 for NSD's int16 files."""
        data = raw.astype(np.float32)
        if slope != 1.0 or inter != 0.0:
            data = data * np.float32(slope) + np.float32(inter)
        if np.issubdtype(raw.dtype, np.integer):
            data /= np.float32(BETA_SCALE)
        return data

    def _read_map(self, path: Path) -> tuple[np.ndarray, Any]:
        import nibabel as nib

        try:
            img = nib.load(str(path))
            return np.asarray(img.dataobj), img
        except Exception as exc:
            raise _fail_read(path, exc) from None

    def _surface_or_volume(self, root: Path, rels: list[str]) -> tuple[np.ndarray, Any] | None:
        paths = [root / r for r in rels]
        if not all(p.is_file() for p in paths):
            return None
        maps = [self._read_map(p) for p in paths]
        if self.space == "fsaverage":
            return np.concatenate([m.reshape(m.shape[0], -1)[:, 0] for m, _ in maps]), maps[0][1]
        return maps[0][0].reshape(maps[0][0].shape[:3]), maps[0][1]

    def _units(self, root: Path, subj: int, first_session: int
               ) -> tuple[Units, np.ndarray, int, np.ndarray | None, list[str]]:
        """Unit metadata, indices of the selected units among all, their count, ncsnr and missing atlases."""
        import nibabel as nib

        first = [root / r for r in session_files(subj, self.space, self.beta_version, first_session)]
        try:
            headers = [nib.load(str(p)) for p in first]
        except Exception as exc:
            raise _fail_read(first[0], exc) from None
        if self.space == "fsaverage":
            sizes = [h.shape[0] for h in headers]
            full = np.ones(sum(sizes), dtype=bool)
            hemisphere = np.repeat(np.array(["lh", "rh"]), sizes)
            vertex = np.concatenate([np.arange(n) for n in sizes])
        else:
            shape, affine = tuple(headers[0].shape[:3]), headers[0].affine
            full = np.ones(shape, dtype=bool)
        if self.mask:
            rels = roi_files(subj, self.space, self.mask)
            loaded = self._surface_or_volume(root, rels)
            if loaded is None:
                for rel in rels:
                    self._file(rel, f"the {self.mask} mask; or pass mask=None to keep every unit")
            values = loaded[0]
            if values.shape != full.shape:
                raise WorkbenchError(f"{root / rels[0]} has shape {values.shape} but the betas have {full.shape}; "
                                     "the mask and the betas come from different spaces")
            full = values > 0
        select = np.flatnonzero(full.ravel())
        if self.space == "fsaverage":
            units = Units(space="fsaverage", n=select.size, hemisphere=hemisphere[select], vertex=vertex[select])
        else:
            ijk = np.argwhere(full)
            coords = (np.c_[ijk, np.ones(len(ijk))] @ np.asarray(affine).T)[:, :3]
            units = Units(space=self.space, n=select.size, ijk=ijk, shape=shape, affine=np.asarray(affine),
                          coords=coords)
        notes = []
        for atlas in self.rois:
            loaded = self._surface_or_volume(root, roi_files(subj, self.space, atlas))
            if loaded is None:
                notes.append(atlas)
                continue
            labels = np.rint(np.asarray(loaded[0], dtype=np.float64)).astype(np.int64).ravel()
            if labels.size != full.size:
                raise WorkbenchError(f"{root / roi_files(subj, self.space, atlas)[0]} has {labels.size} units but the "
                                     f"betas have {full.size}; the ROI file comes from another space")
            labels = labels[select]
            names = {}
            for rel in ctab_files(subj, self.space, atlas):
                if (root / rel).is_file():
                    names = read_ctab(root / rel)
                    break
            values = sorted(set(np.unique(labels).tolist()) | {k for k in names if k > 0})
            values = [v for v in values if v > 0]
            for v in values:
                label = names.get(v) or (atlas if len(values) == 1 else f"{atlas}-{v}")
                if label in units.rois:
                    label = f"{atlas}:{label}"
                units.rois[label] = labels == v
        ncsnr = None
        loaded = self._surface_or_volume(root, ncsnr_files(subj, self.space, self.beta_version))
        if loaded is not None:
            values = np.asarray(loaded[0], dtype=np.float64).ravel()
            if values.size != full.size:
                raise WorkbenchError(f"{root / ncsnr_files(subj, self.space, self.beta_version)[0]} has {values.size} "
                                     f"units but the betas have {full.size}; download it again")
            ncsnr = values[select]
        return units, select, full.size, ncsnr, notes

    # ---- download ----------------------------------------------------------------------------
    def fetch(self, dest: str | Path, accept_terms: bool = False, subjects: Sequence[str | int] | None = None,
              **options: Any) -> Path:
        """Download, over HTTPS from NSD's public bucket, only the files this analysis needs."""
        from brain_workbench.sdk.data import RemoteFile, fetch_files

        allowed = {"space", "beta_version", "sessions", "rois", "mask", "base_url", "include_images",
                   "include_captions", "checksums", "retries", "retry_wait", "timeout", "dry_run", "quiet"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise WorkbenchError(f"nsd fetch has no option {unknown[0]!r}; its options are: "
                                 f"{', '.join(sorted(allowed))}")
        space = options.get("space", self.space)
        version = options.get("beta_version", self.beta_version)
        if space not in SPACES or version not in BETA_VERSIONS:
            raise WorkbenchError(f"fetch needs space in {SPACES} and beta_version in {BETA_VERSIONS}")
        sessions = options.get("sessions", self.sessions)
        if isinstance(sessions, (int, str)):
            sessions = [sessions]
        rois = options.get("rois", self.rois)
        rois = [rois] if isinstance(rois, str) else list(rois or [])
        mask = options.get("mask", self.mask)
        base = str(options.get("base_url") or BUCKET_URL).rstrip("/") + "/"
        subjects_n = [subject_number(s) for s in (subjects or list(N_SESSIONS))]

        def remote(rel: str, required: bool = True, why: str = "") -> RemoteFile:
            return RemoteFile(rel, base + quote(rel), required=required, meta={"why": why} if why else {})

        files = [remote(EXPDESIGN), remote(STIM_INFO)]
        if options.get("include_images", True):
            files.append(remote(STIMULI_HDF5))
        if options.get("include_captions", True):
            files += [remote(rel) for rel in CAPTION_FILES]
        for subj in subjects_n:
            released = N_SESSIONS[subj] - HELD_OUT_SESSIONS
            for s in (sessions or range(1, N_SESSIONS[subj] + 1)):
                why = "held out of the original release" if int(s) > released else "not on the server"
                files += [remote(r, required=sessions is not None, why=why)
                          for r in session_files(subj, space, version, int(s))]
            files += [remote(r, required=False) for r in ncsnr_files(subj, space, version)]
            for atlas in dict.fromkeys([*([mask] if mask else []), *rois]):
                files += [remote(r, required=atlas == mask) for r in roi_files(subj, space, atlas)]
                files += [remote(ctab_files(subj, space, atlas)[0], required=False)]
        unique = list({f.path: f for f in files}.values())
        fetch_files(unique, dest, dataset="NSD", terms_url=TERMS_URL, accept_terms=accept_terms,
                    terms_note="the NSD Data Access agreement",
                    checksums=options.get("checksums"), retries=int(options.get("retries", 5)),
                    retry_wait=float(options.get("retry_wait", 1.0)), timeout=float(options.get("timeout", 60.0)),
                    dry_run=bool(options.get("dry_run", False)), quiet=bool(options.get("quiet", False)))
        return Path(dest).expanduser()


@hookimpl
def register_datasets(register) -> None:
    register(NAME, NSDDataset, description="Natural Scenes Dataset: 7T fMRI single-trial betas, 8 subjects, COCO images "
             "and captions", modalities=("image", "text"), citation=CITATION,
             terms=TERMS_URL)
