"""Adaptation cells: one (model, new subject, k sessions) of a sweep's ``shared:`` section.

A worker loads every subject's cached recording and the target layer's features, prepares the
experiment (``prepare_adaptation``), fits the model on the training subjects (multi-subject models only;
the fit is kept in the process for the model's other k) and adapts or fits it on the new subject's first
k sessions. Workers only compute; the coordinator writes the cell.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from brain_workbench.sdk.analysis import (
    Analysis,
    Cell,
    CellResult,
    PlanContext,
    Recording,
    Store,
    TextTable,
    WorkbenchError,
    fit_model,
    head_direction,
    load_features,
    load_recording,
    plain,
    prepare_adaptation,
    resolve_layers,
    score_sessions,
    select_rois,
)
from brain_workbench_plugins.analyses import sections


@dataclass(frozen=True)
class AdaptationTask:
    """``setup`` (subjects, splits, alignment, target features) is shared by every model and k of a new subject."""

    setup: Mapping[str, Any]
    model: Mapping[str, Any]
    k: int | None
    direction: str
    n_candidates: int | None


def model_options(context_or_registry: Any, model: Any, device: str | None) -> dict[str, Any]:
    """A shared model's options, with ``shared.device`` where its head has a ``device`` option it leaves unset."""
    registry = getattr(context_or_registry, "registry", context_or_registry)
    options = dict(model.options)
    if device is not None and "device" not in options and "device" in (registry.get("head", model.name).options() or {}):
        options["device"] = device
    return options


class AdaptationAnalysis(Analysis):
    """``shared:``: models trained on some subjects, adapted to (or fitted on) k sessions of a new one."""

    name = "adaptation"
    version = "1"
    sections = ("shared",)
    id_columns = ("model_kind", "k_sessions", "all_sessions", "n_stimuli", "n_trials")
    score_columns = ("top1", "two_way", "mean_r", "median_r", "chance_top1", "chance_two_way", "chance_mean_r",
                     "chance_median_r")

    def validate(self, config: Any, dataset: Any, registry: Any) -> None:
        spec = sections.shared(config)
        if spec is None:
            return
        target = spec.target.encoder
        if not any(target in (e.name, e.display) for e in config.encoders):
            raise WorkbenchError(f"{config.name}: shared.target.encoder {target!r} is not one of the sweep's encoders "
                                 f"({', '.join(e.display for e in config.encoders) or 'none'})")
        if config.subjects != "all":
            unknown = [s for s in [*spec.new_subjects, *(spec.train_subjects or [])] if s not in set(config.subjects)]
            if unknown:
                raise WorkbenchError(f"{config.name}: shared names subject {unknown[0]!r}, which is not in subjects")
        device = spec.device or ""
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise WorkbenchError(f"shared.device is {device!r} but CUDA is not available here; "
                                     "use --set shared.device=cpu")
        for model in spec.models:
            registry.check_options("head", model.name, model_options(registry, model, spec.device))
            direction = head_direction(registry, model.name)
            if direction != spec.direction:
                raise WorkbenchError(f"shared model {model.label or model.name!r} ({model.name}) is a {direction} "
                                     f"head, but shared.direction is {spec.direction}")

    def plan(self, context: PlanContext) -> list[Cell]:
        cfg, spec = context.config, sections.shared(context.config)
        if spec is None:
            return []
        subjects = list(context.subjects)
        self._check_recordings(context)
        encoder = context.encoder(spec.target.encoder)
        layer = resolve_layers(list(encoder.layers), [spec.target.layer])[0]
        fpath = encoder.feature_path(layer)
        models = [{"name": m.name, "options": model_options(context, m, spec.device), "label": m.label or m.name}
                  for m in spec.models]
        cells = []
        for new in spec.new_subjects:
            if new not in subjects:
                raise WorkbenchError(f"shared.new_subjects names {new!r}, which is not a subject of the sweep "
                                     f"({', '.join(subjects)})")
            train = spec.train_subjects or [s for s in subjects if s != new]
            unknown = [s for s in train if s not in subjects]
            if unknown:
                raise WorkbenchError(f"shared.train_subjects names {unknown[0]!r}, which is not a subject of the "
                                     f"sweep ({', '.join(subjects)})")
            if not train:
                raise WorkbenchError(f"shared: no training subject is left once {new!r} is held out; "
                                     "the sweep needs at least two subjects")
            responses = {s: context.response_path(s) for s in [*train, new]}
            setup = {"responses": responses, "feature_path": fpath, "new_subject": new, "train_subjects": train,
                     "train_split": spec.train_split, "align": spec.align.model_dump(),
                     "session_group": spec.session_group, "rois": cfg.rois,
                     "time_window": None if spec.time_window is None else list(spec.time_window), "seed": cfg.seed}
            for model in models:
                for k in spec.sessions:
                    key = self.cell_key(new, "a", context.dataset.fingerprint, setup, encoder.key, model, k,
                                        spec.direction, spec.n_candidates)
                    cells.append(Cell(key=key, analysis=self.name, subject=new, model=encoder.label,
                                      model_name=encoder.name, layer=layer, depth=encoder.depth(layer),
                                      label=model["label"], head=model["name"], feature_path=fpath,
                                      response_path=responses[new], reads=(*responses.values(), fpath),
                                      task=AdaptationTask(setup, model, k, spec.direction, spec.n_candidates)))
        return cells

    @staticmethod
    def _check_recordings(context: PlanContext) -> None:
        spec = sections.shared(context.config)
        for subject, info in context.recordings.items():
            if not info.cached:
                continue
            for field, split in (("shared.train_split", spec.train_split), ("shared.align.split", spec.align.split)):
                if split not in info.splits:
                    raise WorkbenchError(f"{context.dataset.name}/{subject} has no split {split!r} ({field}); its "
                                         f"splits are {', '.join(info.splits) or 'none'}")
            if spec.session_group not in info.groups:
                raise WorkbenchError(f"{context.dataset.name}/{subject} labels no trial {spec.session_group!r} "
                                     f"(shared.session_group); its trial groupings are "
                                     f"{', '.join(info.groups) or 'none'}, and adaptation needs each trial's session")

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        return adapt(store_url, cell)

    def table(self, rows: Any, sweep: str, value: str) -> list[TextTable]:
        scores = [c for c in ("top1", "two_way", "mean_r", "median_r") if c in rows.columns and rows[c].notna().any()]
        keys, values = [], []
        for (model, k), part in rows.groupby(["analysis", "k_sessions"], sort=False):
            keys.append((str(model), str(int(k)), str(int(part["n_stimuli"].mean()))))
            values.append(tuple(f"{part[c].mean():.3f} [{part['chance_' + c].mean():.3f}]" for c in scores))
        return [TextTable(f"{sweep}: new-subject adaptation (mean over new subjects; chance in brackets)",
                          ("model", "sessions", "stimuli"), tuple(c.replace("_", " ") for c in scores), tuple(keys),
                          tuple(values))]

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        return [kit.draw("adaptation.png", kit.keys_of(self.name), kit.adaptation,
                         "New-subject adaptation: each model's score on the new subject's held-out stimuli against "
                         "the number of the new subject's sessions it was given, averaged over the new subjects.")]


def _window(rec: Recording, window: list[float] | None) -> Recording:
    """Trials × units: time-resolved responses averaged within the configured window."""
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


def adapt(store_url: str, cell: Cell) -> CellResult:
    """Score one model on the new subject after its first k sessions (per-dimension or per-unit r kept)."""
    started = time.time()
    task: AdaptationTask = cell.task
    setup_json = json.dumps(plain(task.setup), sort_keys=True)
    spec = plain(task.model)
    prepared = _prepared(store_url, setup_json)
    fitted = _fitted(store_url, setup_json, json.dumps(spec, sort_keys=True))
    if fitted[1] != task.direction:
        raise WorkbenchError(f"shared model {spec['label']!r} ({spec['name']}) is a {fitted[1]} head, but "
                             f"shared.direction is {task.direction}")
    if fitted[2]:
        fitted = (copy.deepcopy(fitted[0]), *fitted[1:])  # adapt adds the new subject; keep the cached fit clean
    base, scores, chance, r = score_sessions(prepared, spec, fitted, task.k, task.n_candidates)
    row: dict[str, Any] = {"roi": "all", "n_units": int(prepared.eval_brain.shape[1]), "model_kind": base["kind"],
                           "k_sessions": base["k_sessions"], "all_sessions": bool(base["all_sessions"]),
                           "n_stimuli": base["n_stimuli"], "n_trials": base["n_trials"], **scores,
                           **{f"chance_{name}": value for name, value in chance.items()}}
    return CellResult((row,), int(len(prepared.eval_brain)), round(time.time() - started, 3),
                      {"score": r.astype(np.float32)})
