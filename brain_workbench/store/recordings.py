"""Recordings in the store: serialisation, and the one recording cache every dataset and sweep uses.

A cached recording lives at ``responses/<dataset>/<subject>-<hash>``; the hash covers the dataset's
fingerprint, the subject and, for datasets read from files, the files' signature (path, size,
mtime). That key is the only invalidation rule: a complete entry at the key *is* the recording, and
anything that changes the numbers changes the key. Responses with NaN or infinite values are
refused (or their units dropped, on request) before anything is written.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from brain_workbench.store.entries import ArraySpec, Store, safe_name, suggest_block_rows
from brain_workbench.store.paths import rdms_key, recording_key
from brain_workbench.types import BrainRDMs, Recording, Units, WorkbenchError, as_str_array, non_finite_units

NON_FINITE = ("error", "drop_units")
_CHECK_BYTES = 64 * 2**20


def save_recording(store: Store, path: str, recording: Recording, attrs: Mapping[str, Any] | None = None,
                   check_finite: bool = True) -> None:
    """Cache a recording (responses chunked by units for fast per-ROI reads, plus unit metadata).

    Responses with NaN or infinite values are refused before anything is written (``check_finite``
    is for callers that already ran :func:`finite_recording`).
    """
    r = finite_recording(recording, "error") if check_finite else recording
    n_trials = r.responses.shape[0]
    unit_cols = suggest_block_rows(n_trials * 4 * (r.responses.shape[2] if r.responses.ndim == 3 else 1),
                                   r.units.n)
    arrays: dict[str, tuple[np.ndarray, tuple[int, ...] | None]] = {
        "responses": (r.responses.astype(np.float32), (n_trials, unit_cols) + r.responses.shape[2:]),
        "trial_stimulus_ids": (as_str_array(r.trial_stimulus_ids), None),
    }
    if r.noise_ceiling is not None:
        arrays["noise_ceiling"] = (np.asarray(r.noise_ceiling, dtype=np.float32), None)
    if r.times is not None:
        arrays["times"] = (np.asarray(r.times, dtype=np.float64), None)
    for attr in ("hemisphere", "vertex", "ijk", "names", "coords"):
        value = getattr(r.units, attr)
        if value is not None:
            value = np.asarray(value)
            arrays[f"units_{attr}"] = (as_str_array(value) if value.dtype.kind in "OUST" else value, None)
    for name, mask in r.units.rois.items():
        arrays[f"roi_{safe_name(name)}"] = (mask.astype(bool), None)
    for name, ids in r.splits.items():
        arrays[f"split_{safe_name(name)}"] = (as_str_array(ids), None)
    for name, labels in r.trial_groups.items():
        arrays[f"group_{safe_name(name)}"] = (as_str_array(labels), None)
    specs = {k: ArraySpec(v.shape, "str" if v.dtype.kind in "OUT" else str(v.dtype), blocked=False)
             for k, (v, _) in arrays.items()}
    meta = {
        "dataset": r.dataset, "subject": r.subject, "space": r.units.space, "shape": list(r.units.shape or []),
        "affine": None if r.units.affine is None else np.asarray(r.units.affine).tolist(),
        "rois": {safe_name(k): k for k in r.units.rois}, "splits": {safe_name(k): k for k in r.splits},
        "trial_groups": {safe_name(k): k for k in r.trial_groups},
        "preprocessing": r.preprocessing,
    }
    with store.writer(path, specs, kind="responses", attrs={**dict(attrs or {}), "recording": meta}) as w:
        for name, (value, chunks) in arrays.items():
            w.put(name, value, chunks=chunks)
        w.finish()


def load_recording(store: Store, path: str, verify: bool = True) -> Recording:
    """Read back a recording cached by ``save_recording`` (ROI and split order included), checked
    against its checksums (``verify``)."""
    reader = store.open(path, verify=verify)
    meta = reader.attrs.get("recording")
    if not isinstance(meta, dict):
        raise WorkbenchError(f"entry {path!r} in {store.url} is not a cached recording")
    keys = set(reader.names())
    responses = reader["responses"]  # checked first: the metadata's shape is not trusted before the data
    units = Units(
        space=meta["space"], n=responses.shape[1],
        rois={name: reader[f"roi_{key}"].astype(bool) for key, name in meta["rois"].items()},
        shape=tuple(meta["shape"]) or None,
        affine=None if meta["affine"] is None else np.asarray(meta["affine"]),
        **{a: reader[f"units_{a}"] for a in ("hemisphere", "vertex", "ijk", "names", "coords")
           if f"units_{a}" in keys},
    )
    return Recording(
        dataset=meta["dataset"], subject=meta["subject"], responses=responses,
        trial_stimulus_ids=reader["trial_stimulus_ids"], units=units,
        splits={name: reader[f"split_{key}"] for key, name in meta["splits"].items()},
        times=reader["times"] if "times" in keys else None,
        noise_ceiling=reader["noise_ceiling"] if "noise_ceiling" in keys else None,
        preprocessing=list(meta["preprocessing"]),
        trial_groups={name: reader[f"group_{key}"] for key, name in meta.get("trial_groups", {}).items()},
    )




def recording_key_for(dataset: Any, subject: str) -> str:
    """The cache key of ``dataset``'s recording of ``subject``: the dataset's own ``cache_key(subject)``
    when it defines one (datasets read from files include the files' signature), else
    :func:`recording_key` of its name, the subject and its fingerprint."""
    own = getattr(dataset, "cache_key", None)
    return own(subject) if callable(own) else recording_key(dataset.name, subject, dataset.fingerprint())


def finite_recording(recording: Recording, non_finite: str = "error") -> Recording:
    """``recording`` if every response is finite; else refuse (``"error"``) or drop the units holding
    NaN or infinite values (``"drop_units"``, recorded as a preprocessing step)."""
    if non_finite not in NON_FINITE:
        raise WorkbenchError(f"unknown non_finite policy {non_finite!r}; use one of {', '.join(NON_FINITE)}")
    bad = non_finite_units(recording.responses)
    if not bad.size:
        return recording
    n = recording.responses.shape[1]
    shown = ", ".join(map(str, bad[:5].tolist())) + (", …" if bad.size > 5 else "")
    what = f"{recording.dataset} subject {recording.subject}: {bad.size} of {n} units have NaN or infinite responses"
    if non_finite == "error":
        raise WorkbenchError(f"{what} (unit indices {shown}); refusing to cache them: fix the input data or "
                             "drop those units with non_finite='drop_units'")
    if bad.size == n:
        raise WorkbenchError(f"{what}, i.e. all of them; there is nothing left to analyse: check the input data")
    keep = np.ones(n, dtype=bool)
    keep[bad] = False
    kept = recording.select_units(keep)
    step = {"step": "drop_non_finite_units", "n_dropped": int(bad.size), "units": bad.tolist()}
    return Recording(**{**kept.__dict__, "preprocessing": [*recording.preprocessing, step]})


def cached_recording(store: Store | None, key: str, build: Callable[[], Recording], *,
                     attrs: Mapping[str, Any] | None = None, non_finite: str = "error") -> Recording:
    """The recording cached at ``key``, else ``build()`` checked by :func:`finite_recording` and cached there.

    A complete entry at ``key`` is returned as it is (read with checksum checks); an incomplete one
    is rebuilt. ``store=None`` only builds and checks. A failed save leaves nothing half-written.
    With ``non_finite="drop_units"`` build the key with the same policy (:func:`recording_key`).
    """
    if non_finite not in NON_FINITE:
        raise WorkbenchError(f"unknown non_finite policy {non_finite!r}; use one of {', '.join(NON_FINITE)}")
    if store is not None and store.is_complete(key):
        return load_recording(store, key)
    recording = finite_recording(build(), non_finite)
    if store is None or store.is_complete(key):  # ``build`` may itself have cached it at the same key
        return recording
    try:
        save_recording(store, key, recording, attrs, check_finite=False)
    except BaseException:
        writer = (store.meta(key) or {}).get("writer") or {}
        ours = not writer or (writer.get("pid") == os.getpid() and writer.get("host") == socket.gethostname())
        if ours and not store.is_complete(key):
            store.delete(key)
        raise
    return recording




def save_rdms(store: Store, path: str, rdms: list[BrainRDMs], attrs: Mapping[str, Any] | None = None) -> None:
    """Cache one subject's RDMs as one entry: ``rdm_<i>`` (condensed) and ``ids_<i>`` per RDM."""
    if not rdms or not all(isinstance(r, BrainRDMs) for r in rdms):
        raise WorkbenchError(f"{path}: rdms(subject) must return a non-empty list of BrainRDMs")
    labels = [(r.roi, r.session) for r in rdms]
    if len(set(labels)) != len(labels):
        raise WorkbenchError(f"{path}: two RDMs share ROI and session {labels[0]!r}; give each its own ROI or session")
    arrays: dict[str, np.ndarray] = {}
    for i, r in enumerate(rdms):
        arrays[f"rdm_{i}"] = np.asarray(r.rdm, dtype=np.float64)
        arrays[f"ids_{i}"] = as_str_array(r.stimulus_ids)
    specs = {k: ArraySpec(v.shape, "str" if v.dtype.kind in "OUT" else str(v.dtype), blocked=False)
             for k, v in arrays.items()}
    meta = [{"dataset": r.dataset, "subject": r.subject, "roi": r.roi, "session": r.session, "distance": r.distance}
            for r in rdms]
    with store.writer(path, specs, kind="rdms", attrs={**dict(attrs or {}), "rdms": meta}) as w:
        for name, value in arrays.items():
            w.put(name, value)
        w.finish()


def load_rdms(store: Store, path: str) -> list[BrainRDMs]:
    """The RDMs :func:`save_rdms` cached (reads checked)."""
    reader = store.open(path)
    return [BrainRDMs(stimulus_ids=reader[f"ids_{i}"].astype(str), rdm=reader[f"rdm_{i}"], **meta)
            for i, meta in enumerate(reader.attrs["rdms"])]


__all__ = ["cached_recording", "load_rdms", "rdms_key", "save_rdms", "finite_recording", "load_recording",
           "non_finite_units", "NON_FINITE", "recording_key", "recording_key_for", "save_recording"]


def _store_load_recording(self: Store, path: str, verify: bool = True) -> Recording:
    """The previous release's ``Store.load_recording(path)`` method: ``load_recording(store, path)`` with a
    DeprecationWarning, for one release."""
    import warnings

    warnings.warn("Store.load_recording(path) is the previous release's spelling and goes away in the release after "
                  "next; call brain_workbench.store.load_recording(store, path) (brain_workbench.sdk: "
                  "cached_recording for a dataset's cached recording)", DeprecationWarning, stacklevel=2)
    return load_recording(self, path, verify=verify)


Store.load_recording = _store_load_recording  # type: ignore[attr-defined]
