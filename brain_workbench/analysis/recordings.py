"""Recordings prepared for a cell: train/test response matrices of a split or a cross-validation fold.

A worker prepares each (recording, preprocessing, fold) once and keeps it for the process's next cells;
the cache is keyed by a frozen :class:`Preparation`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from brain_workbench.analysis.folds import inner_labels, test_mask
from brain_workbench.store import Store, load_recording
from brain_workbench.types import Recording, WorkbenchError


@dataclass(frozen=True)
class CV:
    """A cross-validation scheme: a named test split, seeded k-fold, leave-one-group-out, or ``all`` (test only)."""

    scheme: str = "split"
    split: str | None = None
    k: int = 5
    group: str = "session"
    seed: int = 0
    keep_predictions: bool = False
    inner_group: str | None = None

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> CV:
        return cls(**{f.name: spec[f.name] for f in dataclasses.fields(cls) if f.name in spec})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Preparation:
    """How a cell's responses are prepared: the cached recording, averaging, test split, ROIs, and either
    the split scheme (``cv`` None) or one fold of ``cv``; ``fold`` None prepares the test side only."""

    path: str
    average: bool
    test_split: str
    rois: tuple[str, ...] | None = None
    cv: CV | None = None
    fold: int | None = 0


@functools.lru_cache(maxsize=4)
def prepared_recording(store_url: str, prep: Preparation) -> dict[str, Any]:
    """The train/test matrices of ``prep`` (cached per process: a worker's next cells on it reuse them)."""
    rec = load_recording(Store(store_url, mode="r"), prep.path)
    rois = list(prep.rois) if prep.rois else None
    cv = prep.cv
    if cv is None or (cv.scheme == "split" and not cv.inner_group):
        return prepare_recording(rec, prep.average, prep.test_split, rois, need_training=prep.fold is not None)
    return prepare_fold(rec, prep.average, rois, cv.as_dict(), prep.fold or 0)


def select_rois(rec: Recording, rois: list[str] | None) -> Recording:
    if not rois:
        return rec
    unknown = [r for r in rois if r not in rec.units.rois]
    if unknown:
        raise WorkbenchError(f"ROI {unknown[0]!r} is not defined for {rec.dataset}/{rec.subject}; "
                             f"known ROIs: {', '.join(rec.units.rois)}")
    return rec.select_units(np.any([rec.units.rois[r] for r in rois], axis=0))


def prepare_recording(rec: Recording, average: bool, test_split: str, rois: list[str] | None,
                      need_training: bool = True) -> dict[str, Any]:
    """Train/test response matrices in the order of their stimulus ids, plus unit metadata.

    Metric cells (``need_training=False``) use only the test side, so a test split may hold every stimulus.
    """
    rec = select_rois(rec, rois)
    if test_split not in rec.splits:
        raise WorkbenchError(f"{rec.dataset}/{rec.subject} has no split {test_split!r}; "
                             f"its splits are {', '.join(rec.splits) or 'none'}")
    if average:
        rec = rec.average_repetitions()
    test_ids = set(rec.splits[test_split])
    is_test = np.array([s in test_ids for s in rec.trial_stimulus_ids])
    if not is_test.any() or (is_test.all() and need_training):
        raise WorkbenchError(f"split {test_split!r} of {rec.dataset}/{rec.subject} leaves no training or no test trials")
    return _split_arrays(rec, rec, ~is_test, is_test, rec.noise_ceiling)


def prepare_fold(rec: Recording, average: bool, rois: list[str] | None, cv: dict[str, Any], fold: int) -> dict[str, Any]:
    """Train/test matrices of one cross-validation fold; each side is averaged over its own repetitions.

    The ``all`` scheme (metric cells of a cross-validated sweep) puts every stimulus on the test side.
    """
    rec = select_rois(rec, rois)
    is_test = test_mask(rec, cv, fold)
    if not is_test.any() or (is_test.all() and cv["scheme"] != "all"):
        raise WorkbenchError(f"fold {fold} of cv scheme {cv['scheme']!r} leaves no training or no test trials "
                             f"for {rec.dataset}/{rec.subject}")
    test = _trials(rec, is_test)
    test = test.average_repetitions() if average else test
    train = test if is_test.all() else _trials(rec, ~is_test)
    train = train.average_repetitions() if average and train is not test else train
    train_rows = np.full(len(train.trial_stimulus_ids), train is not test)
    data = _split_arrays(train, test, train_rows, np.ones(len(test.trial_stimulus_ids), dtype=bool),
                         test.noise_ceiling)
    if cv.get("inner_group") and cv["scheme"] != "all":
        data["inner_groups"] = inner_labels(_trials(rec, ~is_test), cv["inner_group"], data["train_ids"])
    return data


def _trials(rec: Recording, mask: np.ndarray) -> Recording:
    """The trials under a boolean mask (splits keep only the stimuli that remain)."""
    left = np.unique(rec.trial_stimulus_ids[mask])
    splits = {k: v[np.isin(v, left)] for k, v in rec.splits.items()}
    return dataclasses.replace(rec, responses=rec.responses[mask], trial_stimulus_ids=rec.trial_stimulus_ids[mask],
                               splits={k: v for k, v in splits.items() if len(v)},
                               trial_groups={k: np.asarray(v)[mask] for k, v in rec.trial_groups.items()})


def _split_arrays(train: Recording, test: Recording, train_rows: np.ndarray, test_rows: np.ndarray,
                  noise_ceiling: np.ndarray | None) -> dict[str, Any]:
    n_times = test.responses.shape[2] if test.responses.ndim == 3 else 1
    flat = lambda r: r.responses.reshape(r.responses.shape[0], -1)  # noqa: E731
    rois = dict(test.units.rois)
    if n_times > 1:
        # Time-resolved data: every (unit, time) pair becomes a column, unit-major, so one head fit is
        # a per-time-point encoding model; results are reshaped back to units × times.
        rois = {k: np.repeat(v, n_times) for k, v in rois.items()}
        noise_ceiling = None if noise_ceiling is None else np.repeat(noise_ceiling, n_times)
    return {
        "train_ids": train.trial_stimulus_ids[train_rows], "test_ids": test.trial_stimulus_ids[test_rows],
        "Y_train": flat(train)[train_rows].astype(np.float32), "Y_test": flat(test)[test_rows].astype(np.float32),
        "noise_ceiling": noise_ceiling, "rois": rois, "n_units": test.n_units, "n_times": n_times,
        "times": test.times, "unit_names": test.units.names, "preprocessing": list(test.preprocessing),
    }
