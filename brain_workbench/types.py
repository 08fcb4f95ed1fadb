"""Data contracts shared by every plugin kind: stimuli, recordings, datasets, encoders, heads, metrics.

The core only ever talks to plugins through these shapes, so a dataset and an encoder written by
two different labs meet here and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Modality = Literal["image", "text"]
Direction = Literal["encode", "decode"]
MetricKind = Literal["similarity", "distance"]
Hemisphere = Literal["left", "right"]
Space = Literal["fsaverage", "fsaverage5", "fsaverage6", "fsaverage7", "func1pt8mm", "func1mm", "MNI152", "T1w",
                "eeg-10-20", "meg", "custom"]
"""Unit spaces: surfaces (fsaverage meshes), volumes (NSD's native grids, MNI152, T1w), sensors (EEG/MEG),
and ``custom`` for a lab's own space (coordinates in ``Units.coords``)."""

MODALITIES: tuple[str, ...] = typing.get_args(Modality)
DIRECTIONS: tuple[str, ...] = typing.get_args(Direction)
METRIC_KINDS: tuple[str, ...] = typing.get_args(MetricKind)
HEMISPHERES: tuple[str, ...] = typing.get_args(Hemisphere)
SPACES: tuple[str, ...] = typing.get_args(Space)
_HEMISPHERE_ALIASES = {"left": "left", "right": "right", "lh": "left", "rh": "right"}


class WorkbenchError(ValueError):
    """An error caused by bad input: the message is one sentence saying what, where and how to fix.

    A ``ValueError``, so code written for scikit-learn (which expects ``ValueError`` for bad input)
    handles it as such.
    """


class NotASurfaceError(WorkbenchError):
    """Units that cannot be drawn on a cortical surface (volume or sensor space, or no vertex indices)."""


class MeshUnavailableError(WorkbenchError):
    """A surface mesh that is not on this machine; the message names what to fetch and where."""


@dataclass(frozen=True)
class SurfaceMesh:
    """An fsaverage mesh: vertices per hemisphere and where nilearn keeps it.

    ``folder`` is its folder under nilearn's data directory (None: bundled with nilearn); the first
    10,242 vertices of every fsaverage mesh are fsaverage5's, so data can be drawn on a coarser mesh.
    """

    name: str
    vertices: int
    folder: str | None

    def how_to_fetch(self, data_dir: str | Path = "~/nilearn_data") -> str:
        """Where the mesh goes under nilearn's ``data_dir`` and the one call that downloads it there."""
        if self.folder is None:
            return f"{self.name} ships with nilearn"
        return (f"fetch it once, online, into {Path(data_dir) / self.folder} with "
                f"nilearn.datasets.load_fsaverage({self.name!r})")


SURFACE_MESHES: dict[str, SurfaceMesh] = {mesh.name: mesh for mesh in (
    SurfaceMesh("fsaverage5", 10242, None),
    SurfaceMesh("fsaverage6", 40962, "fsaverage6"),
    SurfaceMesh("fsaverage7", 163842, "fsaverage"),
)}
SURFACE_MESHES["fsaverage"] = SURFACE_MESHES["fsaverage7"]
"""The fsaverage meshes unit spaces may name (``fsaverage`` is FreeSurfer's name for fsaverage7)."""


def surface_mesh(space: str) -> SurfaceMesh:
    """The mesh of a surface space, or :class:`NotASurfaceError` naming the spaces that are surfaces."""
    if space not in SURFACE_MESHES:
        raise NotASurfaceError(f"units in space {space!r} are not on a cortical surface; brain maps need one of "
                               f"{', '.join(SURFACE_MESHES)}")
    return SURFACE_MESHES[space]


def check_value(what: str, value: Any, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``, else one sentence listing them."""
    if value not in allowed:
        raise WorkbenchError(f"{what} {value!r} is not one of {', '.join(allowed)}")
    return value


def normalize_hemispheres(labels: Any) -> np.ndarray:
    """Hemisphere labels as ``left``/``right`` (``lh``/``rh`` accepted); anything else is refused."""
    arr = as_str_array(labels)
    uniq = np.unique(arr)
    bad = [u for u in uniq if u.lower() not in _HEMISPHERE_ALIASES]
    if bad:
        raise WorkbenchError(f"hemisphere label {str(bad[0])!r} is not left/right (or lh/rh)")
    mapping = {u: _HEMISPHERE_ALIASES[u.lower()] for u in uniq}
    return np.array([mapping[u] for u in uniq], dtype="<U5")[np.searchsorted(uniq, arr)] if arr.size else \
        arr.astype("<U5")


def as_str_array(values: Any) -> np.ndarray:
    """A fixed-width unicode array from any sequence of strings (lists, object or StringDType arrays)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "OT":
        arr = arr.astype(object)
    return arr.astype(str)


def digest(*parts: Any, length: int = 16) -> str:
    """A short, stable content hash of JSON-able parts (dict keys sorted, numpy arrays by bytes)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str(part.dtype).encode() + str(part.shape).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:length]


@dataclass(frozen=True)
class StimulusSet:
    """Ordered stimulus ids of one modality and a loader that turns ids into images or strings.

    The same ids may exist in several modalities (an NSD image and its COCO caption share the id),
    which is how an image encoder and a text encoder become comparable on one recording.
    """

    ids: tuple[str, ...]
    modality: Modality
    loader: Callable[[Sequence[str]], list] = field(repr=False, compare=False)
    content_digest: str = ""
    categories: tuple[str, ...] | None = field(default=None, repr=False)
    digest_given: bool = field(default=False, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.ids, (str, bytes)):
            raise WorkbenchError("stimulus ids must be a sequence of strings, not one string")
        object.__setattr__(self, "ids", tuple(str(i) for i in self.ids))
        if self.modality not in ("image", "text"):
            raise WorkbenchError(f"stimulus modality {self.modality!r} is not 'image' or 'text'")
        if len(set(self.ids)) != len(self.ids):
            raise WorkbenchError("stimulus ids must be unique; the stimulus set repeats some ids")
        object.__setattr__(self, "digest_given", bool(self.content_digest))
        if not self.content_digest:
            object.__setattr__(self, "content_digest", digest(self.modality, list(self.ids)))
        if self.categories is not None:
            if isinstance(self.categories, (str, bytes)):
                raise WorkbenchError("stimulus categories must be a sequence of strings (one per id), not one string")
            categories = tuple(self.categories)
            if len(categories) != len(self.ids):
                raise WorkbenchError(f"the stimulus set has {len(self.ids)} ids but {len(categories)} categories; "
                                     "give one category per stimulus, in the order of the ids")
            bad = [c for c in categories if not isinstance(c, str) or not c]
            if bad:
                raise WorkbenchError(f"stimulus category {bad[0]!r} is not a non-empty string; categories are "
                                     "names such as 'animal' or 'aardvark'")
            object.__setattr__(self, "categories", categories)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def digest(self) -> str:
        return self.content_digest

    def get(self, ids: Sequence[str]) -> list:
        """Load the stimuli for ``ids`` (PIL images for ``image``, strings for ``text``)."""
        return self.loader(list(ids))

    def subset(self, ids: Sequence[str]) -> StimulusSet:
        known = set(self.ids)
        missing = [i for i in ids if i not in known]
        if missing:
            raise WorkbenchError(
                f"{len(missing)} stimulus ids are not in this stimulus set (first: {missing[0]!r}); "
                "check that the recording and the stimuli come from the same dataset release"
            )
        categories = None if self.categories is None else tuple(self.category_of(ids))
        return StimulusSet(tuple(ids), self.modality, self.loader, digest(self.content_digest, list(ids)), categories)

    def category_of(self, ids: Sequence[str]) -> list[str]:
        """The category of each of ``ids`` (the dataset's labels, e.g. THINGS concepts or the demo's shapes)."""
        if self.categories is None:
            raise WorkbenchError("this stimulus set has no categories; use a dataset that labels its stimuli "
                                 "(e.g. demo, things-eeg2) for metrics that need categories")
        by_id = dict(zip(self.ids, self.categories))
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise WorkbenchError(f"{len(missing)} stimulus ids are not in this stimulus set (first: {missing[0]!r}); "
                                 "check that the recording and the stimuli come from the same dataset release")
        return [by_id[i] for i in ids]


def identified_stimuli(dataset: Any, modality: str | None = None) -> StimulusSet:
    """A dataset's stimuli with an identity that covers what they are, not only their ids: a stimulus set whose
    dataset gave no ``content_digest`` is keyed by the dataset's name and fingerprint as well, so two datasets
    (or two versions of one) that reuse ids for other pictures never share cached features."""
    stimuli = dataset.stimuli(modality)
    if stimuli.digest_given:
        return stimuli
    return replace(stimuli, content_digest=digest(stimuli.modality, list(stimuli.ids), str(dataset.name),
                                                  dataset.fingerprint()))


@dataclass(frozen=True)
class Units:
    """What each response column is: its space, its position and the ROIs it belongs to.

    ``rois`` maps an ROI name to a boolean mask over units; ``hemisphere`` is ``left``/``right`` per
    unit (``lh``/``rh`` are normalised); ``vertex`` holds surface vertex indices, ``ijk`` voxel indices
    into a volume of ``shape`` with ``affine``; ``names`` channel names (EEG). Immutable, validated once.
    """

    space: str
    n: int
    rois: Mapping[str, np.ndarray] = field(default_factory=dict)
    hemisphere: np.ndarray | None = None
    vertex: np.ndarray | None = None
    ijk: np.ndarray | None = None
    shape: tuple[int, ...] | None = None
    affine: np.ndarray | None = None
    names: np.ndarray | None = None
    coords: np.ndarray | None = None

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        check_value("unit space", self.space, SPACES)
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 0:
            raise WorkbenchError(f"units.n must be a non-negative integer, got {self.n!r}")
        set_("n", int(self.n))
        rois = {}
        for name, mask in dict(self.rois).items():
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (self.n,):
                raise WorkbenchError(f"ROI {name!r} mask has shape {mask.shape}, expected ({self.n},)")
            rois[str(name)] = mask
        set_("rois", rois)
        for attr in ("hemisphere", "vertex", "ijk", "names", "coords"):
            value = getattr(self, attr)
            if value is not None and (np.ndim(value) == 0 or len(value) != self.n):
                size = len(value) if np.ndim(value) else "a scalar, not one value per unit"
                raise WorkbenchError(f"units.{attr} has {size} entries for {self.n} units")
            if value is not None:
                set_(attr, np.asarray(value))
        if self.hemisphere is not None:
            set_("hemisphere", normalize_hemispheres(self.hemisphere))
        if self.vertex is not None and self.space in SURFACE_MESHES and self.n:
            mesh = SURFACE_MESHES[self.space]
            vertex = self.vertex
            if vertex.dtype.kind not in "iuf" or not np.array_equal(vertex, np.floor(vertex)) or vertex.min() < 0 \
                    or vertex.max() >= mesh.vertices:
                raise WorkbenchError(f"units.vertex must be integer indices in 0..{mesh.vertices - 1} of the "
                                     f"{mesh.name} mesh (per hemisphere)")
        if self.shape is not None:
            set_("shape", tuple(int(v) for v in self.shape))
        if self.affine is not None and np.shape(self.affine) != (4, 4):
            raise WorkbenchError(f"units.affine must be a 4 × 4 matrix, got shape {np.shape(self.affine)}")

    def roi_labels(self) -> np.ndarray:
        """One label per unit: the first ROI containing it, or '' when none does."""
        labels = np.full(self.n, "", dtype=object)
        for name, mask in self.rois.items():
            labels[(labels == "") & mask] = name
        return labels

    def select(self, index: np.ndarray) -> Units:
        index = np.asarray(index)
        pick = lambda a: None if a is None else np.asarray(a)[index]  # noqa: E731
        n = int(index.sum()) if index.dtype == bool else len(index)
        return Units(
            space=self.space, n=n, rois={k: v[index] for k, v in self.rois.items()},
            hemisphere=pick(self.hemisphere), vertex=pick(self.vertex), ijk=pick(self.ijk),
            shape=self.shape, affine=self.affine, names=pick(self.names), coords=pick(self.coords),
        )


@dataclass(frozen=True)
class Recording:
    """One subject of one dataset: trial responses, the stimulus of each trial, and unit metadata.

    ``responses`` is ``n_trials × n_units`` (fMRI) or ``n_trials × n_units × n_times`` (M/EEG).
    Repetitions stay separate trials; averaging is the explicit, recorded ``average_repetitions``.
    ``noise_ceiling`` is per unit, as the fraction of variance (0–1) explainable in the average of
    the repetitions the recording holds (NSD's convention). ``splits`` maps a split name to the
    stimulus ids in it (e.g. ``train`` and ``test``). ``trial_groups`` maps a grouping name (``session``,
    ``run``, ...) to one label per trial, for leave-one-group-out schemes and "first k sessions" designs.
    """

    dataset: str
    subject: str
    responses: np.ndarray
    trial_stimulus_ids: np.ndarray
    units: Units
    splits: Mapping[str, np.ndarray] = field(default_factory=dict)
    times: np.ndarray | None = None
    noise_ceiling: np.ndarray | None = None
    preprocessing: list[dict] = field(default_factory=list)
    trial_groups: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        where = f"{self.dataset}/{self.subject}"
        set_("subject", str(self.subject))
        set_("responses", np.asarray(self.responses))
        set_("trial_stimulus_ids", as_str_array(self.trial_stimulus_ids))
        if not isinstance(self.units, Units):
            raise WorkbenchError(f"{where}: units must be a Units instance")
        if self.trial_stimulus_ids.ndim != 1:
            raise WorkbenchError(f"{where}: trial_stimulus_ids must be one id per trial")
        if self.responses.ndim not in (2, 3):
            raise WorkbenchError(f"responses of {where} have {self.responses.ndim} dims; "
                                 "expected trials × units or trials × units × times")
        if self.responses.dtype.kind not in "fiu":
            raise WorkbenchError(f"{where}: responses must be numbers, got dtype {self.responses.dtype}")
        if len(self.trial_stimulus_ids) != self.responses.shape[0]:
            raise WorkbenchError(f"{where}: {self.responses.shape[0]} response trials but "
                                 f"{len(self.trial_stimulus_ids)} trial stimulus ids")
        if self.responses.shape[1] != self.units.n:
            raise WorkbenchError(f"{where}: responses have {self.responses.shape[1]} units "
                                 f"but unit metadata describes {self.units.n}")
        if self.responses.ndim == 3 and (self.times is None or len(self.times) != self.responses.shape[2]):
            raise WorkbenchError(f"{where}: time-resolved responses need one time per sample")
        if self.times is not None:
            set_("times", np.asarray(self.times, dtype=np.float64))
        if self.noise_ceiling is not None:
            nc = np.asarray(self.noise_ceiling, dtype=np.float32)
            if nc.shape != (self.units.n,):
                raise WorkbenchError(f"{where}: noise_ceiling has shape {nc.shape}, "
                                     f"expected one value per unit ({self.units.n},)")
            finite = nc[np.isfinite(nc)]
            if finite.size and (finite.min() < 0 or finite.max() > 1 + 1e-6):
                raise WorkbenchError(f"{where}: noise_ceiling must be a fraction of explainable variance in 0–1 "
                                     f"(NaN where unknown), got values in [{finite.min():.3g}, {finite.max():.3g}]")
            set_("noise_ceiling", nc)
        seen = set(self.trial_stimulus_ids.tolist())
        splits = {}
        for name, ids in dict(self.splits).items():
            ids = as_str_array(ids)
            unknown = [i for i in ids.tolist() if i not in seen]
            if unknown:
                raise WorkbenchError(f"{where}: split {name!r} names {len(unknown)} stimuli no trial shows "
                                     f"(first: {unknown[0]!r})")
            splits[str(name)] = ids
        set_("splits", splits)
        groups = {}
        for name, labels in dict(self.trial_groups).items():
            labels = as_str_array(labels)
            if labels.shape != self.trial_stimulus_ids.shape:
                raise WorkbenchError(f"{where}: trial group {name!r} has {labels.size} labels "
                                     f"for {len(self.trial_stimulus_ids)} trials")
            groups[str(name)] = labels
        set_("trial_groups", groups)
        set_("preprocessing", [dict(step) for step in self.preprocessing])

    def non_finite_units(self) -> np.ndarray:
        """Indices of units with any NaN or infinite response (the core refuses to cache these)."""
        return non_finite_units(self.responses)

    @property
    def n_units(self) -> int:
        return self.units.n

    def stimulus_ids(self) -> np.ndarray:
        """Unique stimulus ids in first-seen trial order."""
        _, first = np.unique(self.trial_stimulus_ids, return_index=True)
        return self.trial_stimulus_ids[np.sort(first)]

    def fingerprint(self) -> str:
        return digest(self.dataset, self.subject, self.preprocessing, self.responses.shape,
                      self.responses[: min(64, len(self.responses))].astype(np.float32))

    def average_repetitions(self, chunk_columns: int = 2048) -> Recording:
        """Average trials that share a stimulus; the result has one row per unique stimulus.

        The noise ceiling is rescaled from the repetitions each row held before (``noise_ceiling_n``)
        to the number averaged now (NSD's formula with 1/n the mean of 1/count over stimuli). Sums
        run in float64 over column chunks, so memory stays near the size of the float32 result.
        """
        ids = self.stimulus_ids()
        position = {s: i for i, s in enumerate(ids)}
        rows = np.array([position[s] for s in self.trial_stimulus_ids])
        counts = np.bincount(rows, minlength=len(ids)).astype(np.float64)
        order = np.argsort(rows, kind="stable")
        starts = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
        flat = self.responses.reshape(len(rows), -1)
        mean = np.empty((len(ids), flat.shape[1]), dtype=np.float32)
        for c0 in range(0, flat.shape[1], chunk_columns):
            block = flat[order, c0:c0 + chunk_columns].astype(np.float64)
            mean[:, c0:c0 + chunk_columns] = np.add.reduceat(block, starts, axis=0) / counts[:, None]
        mean = mean.reshape((len(ids),) + self.responses.shape[1:])
        step = {"step": "average_repetitions", "min_repetitions": int(counts.min()),
                "max_repetitions": int(counts.max())}
        noise_ceiling = self.noise_ceiling
        if noise_ceiling is not None:
            before = self.noise_ceiling_n
            after = 1.0 / float(np.mean(1.0 / (counts * before)))
            noise_ceiling = rescale_noise_ceiling(noise_ceiling, before, after)
            step["noise_ceiling_n"] = round(after, 4)
        return replace(self, responses=mean, trial_stimulus_ids=ids, noise_ceiling=noise_ceiling,
                       preprocessing=[*self.preprocessing, step], trial_groups={})

    @property
    def noise_ceiling_n(self) -> float:
        """How many repetitions each row's noise ceiling assumes (1 unless a step recorded otherwise)."""
        n = 1.0
        for step in self.preprocessing:
            if step.get("step") == "noise_ceiling" and "n" in step:
                n = float(step["n"])
            elif step.get("step") == "average_repetitions" and "noise_ceiling_n" in step:
                n = float(step["noise_ceiling_n"])
        return n

    def select_units(self, mask: np.ndarray) -> Recording:
        mask = np.asarray(mask)
        nc = None if self.noise_ceiling is None else self.noise_ceiling[mask]
        return replace(self, responses=self.responses[:, mask], units=self.units.select(mask), noise_ceiling=nc)

    def select_trials(self, stimulus_ids: Sequence[str]) -> Recording:
        """The trials showing ``stimulus_ids``; splits keep only the stimuli that remain."""
        keep = np.isin(self.trial_stimulus_ids, as_str_array(stimulus_ids))
        left = set(self.trial_stimulus_ids[keep].tolist())
        splits = {k: v[np.isin(v, list(left))] for k, v in self.splits.items()}
        return replace(self, responses=self.responses[keep], trial_stimulus_ids=self.trial_stimulus_ids[keep],
                       splits=splits, trial_groups={k: v[keep] for k, v in self.trial_groups.items()})


RDM_DISTANCES = ("correlation", "euclidean", "mahalanobis", "crossnobis", "custom")


@dataclass(frozen=True)
class BrainRDMs:
    """A brain RDM a dataset provides instead of responses: one subject, ROI (and session, if any).

    ``rdm`` may be given square (n × n) or condensed (the upper triangle, i < j, row-major, as
    scipy's ``squareform``); it is stored condensed. ``distance`` names the dissimilarity that made it
    (``correlation`` = 1 − Pearson r, as rsatoolbox; ``custom`` for anything else). Validated once:
    ids unique, at least 3 stimuli, finite, and for square input symmetric with a zero diagonal.
    """

    dataset: str
    subject: str
    roi: str
    stimulus_ids: np.ndarray
    rdm: np.ndarray
    distance: str = "correlation"
    session: str | None = None

    def __post_init__(self) -> None:
        from scipy.spatial.distance import squareform

        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        where = f"RDM {self.dataset}/{self.subject}/{self.roi}" + (f"/{self.session}" if self.session else "")
        set_("subject", str(self.subject))
        set_("roi", str(self.roi))
        if self.session is not None:
            set_("session", str(self.session))
        check_value(f"{where}: distance", self.distance, RDM_DISTANCES)
        ids = as_str_array(self.stimulus_ids)
        if ids.ndim != 1 or len(ids) < 3:
            raise WorkbenchError(f"{where}: needs one id per stimulus and at least 3 stimuli, got {ids.shape}")
        if len(np.unique(ids)) != len(ids):
            raise WorkbenchError(f"{where}: stimulus ids repeat; each RDM row must be one stimulus")
        values = np.asarray(self.rdm, dtype=np.float64)
        if not np.isfinite(values).all():
            raise WorkbenchError(f"{where}: dissimilarities must be finite (NaN or infinite values found)")
        n = len(ids)
        if values.ndim == 2:
            if values.shape != (n, n):
                raise WorkbenchError(f"{where}: a square RDM must be {n} × {n} for {n} stimuli, got {values.shape}")
            tol = 1e-8 * max(1.0, float(np.abs(values).max()))
            if not np.allclose(values, values.T, rtol=1e-6, atol=tol):
                raise WorkbenchError(f"{where}: a square RDM must be symmetric")
            if np.any(np.abs(np.diag(values)) > tol):
                raise WorkbenchError(f"{where}: a square RDM must have a zero diagonal")
            values = squareform((values + values.T) / 2, checks=False)
        elif values.ndim != 1 or len(values) != n * (n - 1) // 2:
            raise WorkbenchError(f"{where}: a condensed RDM of {n} stimuli has {n * (n - 1) // 2} values, got "
                                 f"shape {values.shape}")
        values = values.copy()
        values.flags.writeable = False
        ids.flags.writeable = False
        set_("stimulus_ids", ids)
        set_("rdm", values)

    @property
    def n_stimuli(self) -> int:
        return len(self.stimulus_ids)

    def square(self) -> np.ndarray:
        """The n × n form (a new array)."""
        from scipy.spatial.distance import squareform

        return squareform(self.rdm, checks=False)

    def select(self, ids: Sequence[str]) -> BrainRDMs:
        """The RDM of the stimuli ``ids``, in that order (each must be one of this RDM's)."""
        position = {s: i for i, s in enumerate(self.stimulus_ids.tolist())}
        missing = [s for s in ids if s not in position]
        if missing:
            raise WorkbenchError(f"RDM {self.dataset}/{self.subject}/{self.roi} has no stimulus {missing[0]!r}")
        index = np.array([position[s] for s in ids])
        return replace(self, stimulus_ids=np.asarray(ids), rdm=self.square()[np.ix_(index, index)])


def non_finite_units(responses: Any, slice_bytes: int = 64 * 2**20) -> np.ndarray:
    """Indices of units (axis 1) with any NaN or infinite response, read in bounded slices of trials."""
    responses = np.asarray(responses)
    if responses.dtype.kind not in "fc":
        return np.zeros(0, dtype=np.int64)
    step = max(1, slice_bytes // max(1, responses[:1].nbytes))
    bad = np.zeros(responses.shape[1], dtype=bool)
    for start in range(0, responses.shape[0], step):
        block = responses[start:start + step]
        bad |= ~np.isfinite(block).reshape(block.shape[0], block.shape[1], -1).all(axis=(0, 2))
    return np.flatnonzero(bad)


def noise_ceiling_from_ncsnr(ncsnr: Any, inverse_n: float) -> np.ndarray:
    """NSD's noise ceiling as a fraction of variance: NC = ncsnr² / (ncsnr² + 1/n), with ``inverse_n``
    the mean of 1/count over the stimuli scored (1 for single trials). NaN stays NaN."""
    s2 = np.asarray(ncsnr, dtype=np.float64) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return (s2 / (s2 + inverse_n)).astype(np.float32)


def rescale_noise_ceiling(noise_ceiling: np.ndarray, n_before: float, n_after: float) -> np.ndarray:
    """The noise ceiling for ``n_after`` repetitions, from the same ceiling for ``n_before`` (NSD's formula)."""
    nc = np.clip(np.asarray(noise_ceiling, dtype=np.float64), 0.0, 1.0 - 1e-9)
    return noise_ceiling_from_ncsnr(np.sqrt(nc / (n_before * (1.0 - nc))), 1.0 / n_after)


@dataclass(frozen=True)
class LayerInfo:
    """A selectable layer: its name and its relative depth (0 = input side, 1 = output)."""

    name: str
    depth: float


@runtime_checkable
class Dataset(Protocol):
    """A source of recordings and the stimuli they were recorded with."""

    name: str
    modalities: tuple[str, ...]

    def subjects(self) -> list[str]: ...
    def stimuli(self, modality: str | None = None) -> StimulusSet: ...
    def recording(self, subject: str) -> Recording: ...
    def fetch(self, dest: str | Path, accept_terms: bool = False, **options: Any) -> Path: ...
    def fingerprint(self) -> str: ...

    # Optional: a dataset published as RDMs sets ``provides = "rdms"`` and defines
    # ``rdms(subject) -> list[BrainRDMs]`` (one per ROI and session); sweeps then run metric cells only.


DATASET_PROVIDES = ("responses", "rdms")


def dataset_provides(dataset: Any) -> str:
    """``responses`` (a :class:`Recording` per subject) or ``rdms`` (a list of :class:`BrainRDMs`)."""
    provides = getattr(dataset, "provides", "responses")
    check_value(f"dataset {getattr(dataset, 'name', dataset)!r}: provides", provides, DATASET_PROVIDES)
    if provides == "rdms" and not callable(getattr(dataset, "rdms", None)):
        raise WorkbenchError(f"dataset {getattr(dataset, 'name', dataset)!r} provides rdms but has no rdms(subject) "
                             "method")
    return provides


@runtime_checkable
class Encoder(Protocol):
    """A model whose intermediate representations we compare with the brain."""

    name: str
    modality: str

    def layers(self) -> list[LayerInfo]: ...
    def encode(self, batch: list, layers: Sequence[str]) -> dict[str, np.ndarray]: ...
    def fingerprint(self) -> str: ...


@runtime_checkable
class DifferentiableEncoder(Protocol):
    """Optional encoder capability: ``differentiable(layer)`` returns a torch module mapping float images
    (B, 3, H, W) in [0, 1] to that layer's features (B, d) with gradients, with the preprocessing and pooling
    of ``encode`` (what preferred-image synthesis ascends)."""

    def differentiable(self, layer: str) -> Any: ...


def differentiable_path(encoder: Any, layer: str) -> Any:
    """The encoder's differentiable module for ``layer``, or one sentence saying it has none."""
    name = getattr(encoder, "name", type(encoder).__name__)
    if not callable(getattr(encoder, "differentiable", None)):
        raise WorkbenchError(f"encoder {name!r} has no differentiable path (no differentiable(layer) method), so "
                             "images cannot be optimised through it; use efficientnet, clip (image tower) or sae")
    if getattr(encoder, "modality", "image") != "image":
        raise WorkbenchError(f"encoder {name!r} reads {encoder.modality}, not images: it has no differentiable "
                             "image path")
    return encoder.differentiable(layer)


@runtime_checkable
class Head(Protocol):
    """A scikit-learn estimator mapping features to brain (``encode``) or brain to features (``decode``).

    ``score(X, Y)`` returns one number, the mean over output units, as scikit-learn's model selection
    (``cross_val_score``, ``GridSearchCV``) needs; ``score_per_unit(X, Y)`` returns one value per unit,
    the map a brain scientist looks at.
    """

    direction: str

    def fit(self, X: np.ndarray, y: np.ndarray) -> Head: ...
    def predict(self, X: np.ndarray) -> np.ndarray: ...
    def score(self, X: np.ndarray, y: np.ndarray) -> float: ...
    def score_per_unit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Metric(Protocol):
    """Compares two representations of the same stimuli (rows aligned) without fitting."""

    kind: str
    invariances: tuple[str, ...]
    cross_validated: bool

    def compare(self, X: np.ndarray, Y: np.ndarray) -> float: ...


@runtime_checkable
class Codec(Protocol):
    """An image codec: images <-> flat latent vectors (reconstruction stage 1 decodes brain-predicted latents).

    Images are ``uint8`` arrays ``(n, H, W, 3)``; ``encode`` resizes them to ``image_size`` and returns
    ``float32 (n, latent_dim)``; ``decode`` maps such rows back to ``uint8 (n, image_size, image_size, 3)``.
    """

    name: str
    image_size: int

    @property
    def latent_dim(self) -> int: ...
    def encode(self, images: np.ndarray) -> np.ndarray: ...
    def decode(self, latents: np.ndarray) -> np.ndarray: ...
    def fingerprint(self) -> str: ...


@runtime_checkable
class Generator(Protocol):
    """Turns decoded embeddings (and optionally a starting image) into images (reconstruction stage 3).

    ``embedding_space`` names the encoder whose image embedding the generator was trained on, and
    ``embedding_dim`` its width; both are checked against the decode cell before any generation.
    """

    name: str
    embedding_space: str
    embedding_dim: int

    def generate(self, image_embeds: np.ndarray, init_images: np.ndarray | None = None,
                 text_embeds: np.ndarray | None = None, seed: int = 0) -> np.ndarray: ...
    def fingerprint(self) -> str: ...


@runtime_checkable
class ImageMetric(Protocol):
    """Scores reconstructions against the images that were seen: one value per image pair."""

    kind: str  # similarity | distance

    def score(self, reconstructions: np.ndarray, targets: np.ndarray) -> np.ndarray: ...


def resolve_layers(available: Sequence[LayerInfo], wanted: Sequence[str | float] | None) -> list[str]:
    """Turn layer names or relative depths (0–1) into layer names; ``None`` means every layer.

    A depth picks the layer whose relative depth is nearest, so "0.5" means the middle of any model.
    """
    if wanted is None:
        return [layer.name for layer in available]
    if isinstance(wanted, (str, int, float)):
        wanted = [wanted]
    if not available:
        raise WorkbenchError("the encoder lists no layers to choose from")
    names = [layer.name for layer in available]
    out: list[str] = []
    for item in wanted:
        if isinstance(item, str) and item in names:
            choice = item
        else:
            try:
                depth = float(item)
            except (TypeError, ValueError):
                raise WorkbenchError(
                    f"unknown layer {item!r}; choose one of {', '.join(names)} or a relative depth 0–1"
                ) from None
            if not 0.0 <= depth <= 1.0:
                raise WorkbenchError(f"relative depth {depth} is outside 0–1")
            choice = min(available, key=lambda layer: (abs(layer.depth - depth), layer.depth)).name
        if choice not in out:
            out.append(choice)
    return out


def as_mapping(options: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(options or {})
