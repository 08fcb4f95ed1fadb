"""Cross-validation folds of a sweep: a named test split, seeded k-fold over stimuli, or
leave-one-group-out over a grouping the dataset declares (``Recording.trial_groups``).

A fold is a boolean test mask over a recording's trials; every other trial trains. Folds depend
only on the stimulus ids or group labels, so they are the same for every encoder, layer and head.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from brain_workbench.types import Recording, WorkbenchError


def _groups(rec: Recording, name: str, what: str) -> np.ndarray:
    if name not in rec.trial_groups:
        raise WorkbenchError(f"cv.{what} {name!r} is not a trial grouping of {rec.dataset}/{rec.subject}; "
                             f"its groupings are {', '.join(rec.trial_groups) or 'none'} (set cv.{what} to one)")
    return np.asarray(rec.trial_groups[name]).astype(str)


def fold_count(cv: dict[str, Any], rec: Recording | None = None, group_labels: np.ndarray | None = None) -> int:
    """How many folds the scheme makes (``group`` needs the recording's labels)."""
    if cv["scheme"] in ("split", "all"):
        return 1
    if cv["scheme"] == "kfold":
        return int(cv["k"])
    if group_labels is not None:
        labels = group_labels
    elif rec is not None:
        labels = _groups(rec, cv["group"], "group")
    else:
        raise WorkbenchError("leave-one-group-out needs the recording's group labels to count its folds")
    return len(np.unique(labels))


def test_mask(rec: Recording, cv: dict[str, Any], fold: int) -> np.ndarray:
    """Boolean mask of the trials fold ``fold`` tests on."""
    scheme = cv["scheme"]
    if scheme == "split":
        if cv["split"] not in rec.splits:
            raise WorkbenchError(f"{rec.dataset}/{rec.subject} has no split {cv['split']!r}; "
                                 f"its splits are {', '.join(rec.splits) or 'none'}")
        return np.isin(rec.trial_stimulus_ids, np.asarray(rec.splits[cv["split"]]))
    if scheme == "all":
        return np.ones(len(rec.trial_stimulus_ids), dtype=bool)
    if scheme == "kfold":
        from sklearn.model_selection import KFold

        stimuli = np.unique(rec.trial_stimulus_ids)
        if not 2 <= int(cv["k"]) <= len(stimuli):
            raise WorkbenchError(f"cv.k={cv['k']} needs 2 ≤ k ≤ the {len(stimuli)} stimuli of "
                                 f"{rec.dataset}/{rec.subject}")
        folds = list(KFold(int(cv["k"]), shuffle=True, random_state=int(cv["seed"])).split(stimuli))
        return np.isin(rec.trial_stimulus_ids, stimuli[folds[fold][1]])
    if scheme == "group":
        labels = _groups(rec, cv["group"], "group")
        groups = np.unique(labels)
        if len(groups) < 2:
            raise WorkbenchError(f"cv.group {cv['group']!r} of {rec.dataset}/{rec.subject} has a single group; "
                                 "leave-one-group-out needs at least two")
        return labels == groups[fold]
    raise WorkbenchError(f"unknown cv scheme {scheme!r}; use split, kfold or group")


def inner_labels(rec: Recording, name: str, ids: np.ndarray) -> np.ndarray:
    """One ``name`` group label per row of ``ids`` (averaged rows take the label of their first trial),
    as fold labels for a head's inner cross-validation (the ridge head's ``cv``)."""
    labels = _groups(rec, name, "inner_group")
    first: dict[str, str] = {}
    for stimulus, label in zip(rec.trial_stimulus_ids.tolist(), labels.tolist()):
        first.setdefault(stimulus, label)
    out = np.array([first[s] for s in np.asarray(ids).tolist()])
    if len(np.unique(out)) < 2:
        raise WorkbenchError(f"cv.inner_group {name!r} leaves a single group among the training rows of "
                             f"{rec.dataset}/{rec.subject}; inner cross-validation needs at least two")
    return out
