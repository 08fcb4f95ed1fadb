"""Adaptation cells: one (model, new subject, k sessions) of a sweep's ``shared:`` section.

A worker loads every subject's cached recording and the target layer's features, prepares the
experiment (:func:`brain_workbench.analysis.adaptation.prepare_adaptation`), fits the model on the training
subjects (multi-subject models only; the fit is kept in the process for the model's other k) and
adapts or fits it on the new subject's first k sessions. Workers only compute; the coordinator
writes the cell.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from typing import Any

import numpy as np

from brain_workbench.analysis.adaptation import fit_model, prepare_adaptation, score_sessions
from brain_workbench.store.features import load_features
from brain_workbench.store import Store, load_recording
from brain_workbench.sweep.cells import Cell, select_rois
from brain_workbench.types import Recording, WorkbenchError

ADAPTATION_CODE_VERSION = "adaptation-v1"


def _window(rec: Recording, window: list[float] | None) -> Recording:
    """Trials × units: time-resolved responses averaged within the configured window."""
    import dataclasses

    if rec.responses.ndim == 2:
        if window is not None:
            raise WorkbenchError("shared.time_window needs time-resolved responses (M/EEG)")
        return rec
    if window is None:
        raise WorkbenchError(f"{rec.dataset}/{rec.subject} is time-resolved; set shared.time_window [start, end] "
                             "(seconds) to average its samples before the shared models")
    t = np.asarray(rec.times)
    pick = (t >= window[0]) & (t <= window[1])
    if not pick.any():
        raise WorkbenchError(f"shared.time_window {window} holds no sample; the recording spans "
                             f"{t.min():.3f}–{t.max():.3f} s")
    return dataclasses.replace(rec, responses=np.asarray(rec.responses)[:, :, pick].mean(axis=2), times=None)


@functools.lru_cache(maxsize=2)
def _prepared(store_url: str, setup_json: str) -> Any:
    setup = json.loads(setup_json)
    store = Store(store_url, mode="r")
    recordings = {s: _window(select_rois(load_recording(store, path), setup["rois"]), setup["time_window"])
                  for s, path in setup["responses"].items()}
    ids = sorted({i for r in recordings.values() for i in r.trial_stimulus_ids.tolist()})
    targets = load_features(Store(store_url), setup["feature_path"], ids).astype(np.float64)
    return prepare_adaptation(recordings, ids, targets, setup["new_subject"], setup["train_subjects"],
                              setup["train_split"], setup["align"]["split"], setup["align"]["fraction"],
                              setup["session_group"], setup["seed"])


@functools.lru_cache(maxsize=4)
def _fitted(store_url: str, setup_json: str, spec_json: str) -> Any:
    return fit_model(json.loads(spec_json), _prepared(store_url, setup_json))


def compute_adaptation_cell(store_url: str, cell: Cell) -> dict[str, Any]:
    """Score one model on the new subject after its first k sessions (per-dimension or per-unit r kept)."""
    started = time.time()
    task = cell.task
    setup_json = json.dumps(task["setup"], sort_keys=True)
    spec = task["model"]
    prepared = _prepared(store_url, setup_json)
    fitted = _fitted(store_url, setup_json, json.dumps(spec, sort_keys=True))
    if fitted[1] != task["direction"]:
        raise WorkbenchError(f"shared model {spec['label']!r} ({spec['name']}) is a {fitted[1]} head, but "
                             f"shared.direction is {task['direction']}")
    if fitted[2]:
        fitted = (copy.deepcopy(fitted[0]), *fitted[1:])  # adapt adds the new subject; keep the cached fit clean
    base, scores, chance, r = score_sessions(prepared, spec, fitted, task["k"], task["n_candidates"])
    row: dict[str, Any] = {"roi": "all", "n_units": int(prepared.eval_brain.shape[1]), "model_kind": base["kind"],
                           "k_sessions": base["k_sessions"], "all_sessions": bool(base["all_sessions"]),
                           "n_stimuli": base["n_stimuli"], "n_trials": base["n_trials"], **scores,
                           **{f"chance_{name}": value for name, value in chance.items()}}
    return {"score": r.astype(np.float32), "rois": [row], "n_test": int(len(prepared.eval_brain)),
            "timing_s": round(time.time() - started, 3)}
