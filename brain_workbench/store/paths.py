"""Every store key and path rule, in one place: features, recordings, RDMs, images, results, manifests.

A key hashes everything that changes what is stored under it, so a changed input makes a new entry
instead of silently reusing an old one.
"""

from __future__ import annotations

from typing import Any

from brain_workbench.store.entries import check_key, safe_name
from brain_workbench.types import Encoder, StimulusSet, WorkbenchError, digest

MANIFEST = "manifest"
RESERVED_SWEEP_NAMES = ("results", MANIFEST)  # the folder every sweep's results live under, and each one's manifest
WINDOWS_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                             *(f"lpt{i}" for i in range(1, 10))})


def check_sweep_name(name: str) -> str | None:
    """Refuse a sweep name that can collide with the store's layout or the files beside it (the results folder,
    the manifest, hidden names, names the CLI would read as options, the store's suffixes); return a
    warning for one that is valid here but awkward on another system (a Windows device name, say)."""
    lowered = str(name).lower()
    if "/" in name:
        check_key(name)
        raise WorkbenchError("sweep names may not contain '/'")
    if name.startswith((".", "-")) or lowered.endswith((".parquet", ".partial", ".json", ".zarr")):
        raise WorkbenchError(f"sweep name {name!r} would be read as a hidden file, an option or one of the "
                             "store's own files; start it with a letter or digit and drop the suffix")
    check_key(name)
    if lowered in RESERVED_SWEEP_NAMES:
        raise WorkbenchError(f"sweep name {name!r} is a name the store uses for its own layout "
                             f"({', '.join(RESERVED_SWEEP_NAMES)}); choose another")
    if lowered.split(".")[0] in WINDOWS_DEVICES:
        return (f"sweep name {name!r} is a reserved device name on Windows: its table and results cannot be "
                "copied to a Windows machine; consider another name")
    return None


def encoder_key(encoder: Encoder, stimuli: StimulusSet) -> str:
    """Key of an encoder applied to a stimulus set: changes with weights, preprocessing or stimuli."""
    return f"{safe_name(encoder.name)}-{digest(encoder.fingerprint(), stimuli.digest, stimuli.modality)}"


def features_prefix(encoder_key: str) -> str:
    """All layers of one encoder on one stimulus set."""
    return f"features/{encoder_key}"


def feature_path(encoder_key: str, layer: str) -> str:
    """Features of one layer of one encoder on one stimulus set."""
    return f"{features_prefix(encoder_key)}/{safe_name(layer)}"


def recording_key(dataset: str, subject: str | int, fingerprint: str, inputs: Any = None,
                  non_finite: str = "error") -> str:
    """Store path of a subject's cached recording: ``responses/<dataset>/<subject>-<hash>``.

    The hash covers ``fingerprint`` (the dataset's options and code version), the subject, when
    given ``inputs`` (e.g. :func:`files_signature` of the files read, so editing the data on disk
    makes a new key), and the ``non_finite`` policy when it is not the default.
    """
    subject = str(subject)
    parts: tuple[Any, ...] = (fingerprint, subject) if inputs is None else (fingerprint, subject, inputs)
    if non_finite != "error":
        parts += ({"non_finite": non_finite},)
    return f"responses/{safe_name(dataset)}/{safe_name(subject)}-{digest(*parts)}"


def rdms_key(dataset: str, subject: str | int, fingerprint: str) -> str:
    """Store path of the brain RDMs a dataset provides for one subject: ``rdms/<dataset>/<subject>-<hash>``."""
    subject = str(subject)
    return f"rdms/{safe_name(dataset)}/{safe_name(subject)}-{digest(fingerprint, subject)}"


def images_path(key: str) -> str:
    """Store path of the image entry ``key`` (e.g. a reconstruction cell key)."""
    return check_key(f"images/{key}")


def seen_images_key(stimuli_digest: str, size: int) -> str:
    """Image entry of the seen test images at ``size`` px (shared by every cell scored on a stimulus set)."""
    return f"seen-{stimuli_digest}-{size}"


def result_path(sweep: str, cell_key: str) -> str:
    """Scores (and fitted parameters) of one cell."""
    return f"results/{sweep}/{cell_key}"


def manifest_path(sweep: str) -> str:
    """Cell keys and config of a sweep's latest run."""
    return f"results/{sweep}/{MANIFEST}"


def results_prefix(sweep: str | None = None) -> str:
    """All results, or one sweep's."""
    return "results" if sweep is None else f"results/{sweep}"
