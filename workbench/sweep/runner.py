"""Coordinate a sweep: plan its cells, cache responses and features, hand cells to an executor, write.

Each cell's key hashes everything that changes its numbers (dataset fingerprint, subject,
preprocessing, encoder fingerprint and stimuli, layer, head and options, seed), so a rerun of the
same config skips every finished cell and an edited config recomputes only the cells it changed.
Only this coordinating process writes to the store.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

import workbench as wb
from workbench.features import encoder_key, extract_features
from workbench.store import ArraySpec, Store, cached_recording, open_store, recording_key, recording_key_for, safe_name
from workbench.sweep.cells import CELL_CODE_VERSION, Cell
from workbench.sweep.config import SweepConfig
from workbench.sweep.executors import get_executor
from workbench.sweep.index import record_sweep
from workbench.paths import feature_path, manifest_path
from workbench.sweep.tables import export_table
from workbench.types import StimulusSet, WorkbenchError, digest, resolve_layers

RANDOM_WEIGHTS_LABEL = " (random weights)"


@dataclass
class Plan:
    config: SweepConfig
    cells: list[Cell]
    extractions: list[dict[str, Any]]
    subjects: list[str]
    response_paths: dict[str, str]


class Sweep:
    """Runs a :class:`SweepConfig` against a store with a chosen executor."""

    def __init__(self, config: SweepConfig, store: Store | str | None = None) -> None:
        self.config = config
        self.store = store if isinstance(store, Store) else open_store(store or config.store)
        self.dataset = wb.dataset(config.dataset.name, **config.dataset.options)
        self._encoders: dict[int, Any] = {}
        self._directions: dict[int, str] = {}

    # ---- planning --------------------------------------------------------------------------
    def encoder(self, index: int) -> Any:
        if index not in self._encoders:
            spec = self.config.encoders[index]
            self._encoders[index] = wb.encoder(spec.name, **spec.options)
        return self._encoders[index]

    def encoder_label(self, index: int) -> str:
        """The encoder's name in tables, figures and the report; random-weight encoders say so."""
        label = self.config.encoders[index].display
        if getattr(self.encoder(index), "random_weights", False) and RANDOM_WEIGHTS_LABEL not in label:
            label += RANDOM_WEIGHTS_LABEL
        return label

    def subjects(self) -> list[str]:
        available = self.dataset.subjects()
        if self.config.subjects == "all":
            return available
        unknown = [s for s in self.config.subjects if s not in available]
        if unknown:
            raise WorkbenchError(f"dataset {self.config.dataset.name!r} has no subject {unknown[0]!r}; "
                                 f"its subjects are {', '.join(available)}")
        return list(self.config.subjects)

    def stimuli_for(self, index: int) -> StimulusSet:
        enc = self.encoder(index)
        if enc.modality not in self.dataset.modalities:
            raise WorkbenchError(f"encoder {enc.name!r} reads {enc.modality} stimuli but dataset "
                                 f"{self.dataset.name!r} offers {', '.join(self.dataset.modalities)}")
        full = self.dataset.stimuli(enc.modality)
        used = self.used_stimulus_ids()
        if used is None or len(used) == len(full):
            return full
        return full.subset([s for s in full.ids if s in used])

    def used_stimulus_ids(self) -> set[str] | None:
        """Stimuli the planned subjects saw, once their recordings are cached (else None: not known yet).

        Encoding only these keeps a one-subject NSD sweep from paying for all 73k images; the
        feature key then depends on the subject set, so adding a subject re-extracts the union.
        """
        paths = [self.recording_key(s) for s in self.subjects()]
        if not all(self.store.is_complete(p) for p in paths):
            return None
        key = tuple(paths)
        if getattr(self, "_used", (None, None))[0] != key:
            ids: set[str] = set()
            for path in paths:
                ids.update(self.store.open(path)["trial_stimulus_ids"].tolist())
            self._used = (key, ids)
        return self._used[1]

    def plan(self) -> Plan:
        cfg = self.config
        subjects = self.subjects()
        ds_fp = self.dataset.fingerprint()
        responses = {s: self.recording_key(s) for s in subjects}
        prep = {"average_repetitions": cfg.average_repetitions, "test_split": cfg.test_split, "rois": cfg.rois,
                "standardize_features": True}
        cells: list[Cell] = []
        extractions = []
        for e_index, e_spec in enumerate(cfg.encoders):
            enc = self.encoder(e_index)
            label = self.encoder_label(e_index)
            stimuli = self.stimuli_for(e_index)
            available = enc.layers()
            layers = resolve_layers(available, e_spec.layers)
            depth = {layer.name: layer.depth for layer in available}
            key = encoder_key(enc, stimuli)
            extractions.append({"index": e_index, "layers": layers, "key": key})
            for subject in subjects:
                for layer in layers:
                    fpath = feature_path(key, layer)
                    for h_index, h_spec in enumerate(cfg.heads):
                        if self.head_direction(h_index) == "decode":
                            cells.extend(self._decode_cells(subject, e_spec, label, layer, float(depth[layer]), fpath,
                                                            h_spec, responses[subject], prep, ds_fp, key))
                            continue
                        ckey = digest(CELL_CODE_VERSION, ds_fp, subject, prep, key, layer, h_spec.model_dump(),
                                      cfg.seed, cfg.permutations)
                        task = {"response_path": responses[subject], "feature_path": fpath, "head": h_spec.model_dump(),
                                "prep": prep, "seed": cfg.seed, "permutations": cfg.permutations}
                        cells.append(Cell(key=f"{safe_name(subject)}-{ckey}", subject=subject, encoder=label,
                                          encoder_name=e_spec.name, layer=layer, depth=float(depth[layer]),
                                          head=h_spec.name, feature_path=fpath, response_path=responses[subject],
                                          task=task))
                    for m_spec in cfg.metrics:
                        ckey = digest(CELL_CODE_VERSION, ds_fp, subject, prep, key, layer, "metric", m_spec.model_dump())
                        task = {"response_path": responses[subject], "feature_path": fpath, "prep": prep,
                                "metric": m_spec.model_dump(), "seed": cfg.seed}
                        cells.append(Cell(key=f"{safe_name(subject)}-m{ckey}", subject=subject, encoder=label,
                                          encoder_name=e_spec.name, layer=layer, depth=float(depth[layer]),
                                          head=m_spec.name, feature_path=fpath, response_path=responses[subject],
                                          kind="metric", task=task))
        return Plan(cfg, cells, extractions, subjects, responses)

    def recording_key(self, subject: str) -> str:
        """Where the subject's recording is cached (one key per dataset files, options and non-finite policy)."""
        if self.config.non_finite == "error":
            return recording_key_for(self.dataset, subject)
        return recording_key(self.config.dataset.name, subject, self.dataset.fingerprint(),
                             non_finite=self.config.non_finite)

    def head_direction(self, index: int) -> str:
        """``encode`` or ``decode``, as the head itself declares it (built once, without fitting)."""
        if index not in self._directions:
            spec = self.config.heads[index]
            self._directions[index] = wb.head(spec.name, **spec.options).direction
        return self._directions[index]

    def _decode_cells(self, subject: str, e_spec: Any, label: str, layer: str, depth: float, fpath: str, h_spec: Any,
                      response: str, prep: dict[str, Any], ds_fp: str, key: str) -> list[Cell]:
        """One decoding cell per unit set (all units or an ROI) and time window."""
        cfg = self.config
        spec = cfg.decoding.model_dump()
        cells = []
        for roi in cfg.decoding.rois:
            for window in cfg.decoding.time_windows or [None]:
                unit_set = {"roi": roi, "time_window": None if window is None else list(window)}
                ckey = digest(CELL_CODE_VERSION, ds_fp, subject, prep, key, layer, "decode", h_spec.model_dump(),
                              unit_set, spec, cfg.seed, cfg.permutations)
                task = {"response_path": response, "feature_path": fpath, "head": h_spec.model_dump(), "prep": prep,
                        "seed": cfg.seed, "permutations": cfg.permutations, "decoding": spec, **unit_set}
                cells.append(Cell(key=f"{safe_name(subject)}-d{ckey}", subject=subject, encoder=label,
                                  encoder_name=e_spec.name, layer=layer, depth=depth, head=h_spec.name,
                                  feature_path=fpath, response_path=response, kind="decoding", task=task))
        return cells

    def status(self, plan: Plan | None = None) -> dict[str, Any]:
        plan = plan or self.plan()
        done = sum(self.store.is_complete(c.result_path(self.config.name)) for c in plan.cells)
        feats = {c.feature_path for c in plan.cells}
        return {
            "sweep": self.config.name, "store": self.store.url,
            "cells": len(plan.cells), "cells_done": done,
            "feature_matrices": len(feats), "feature_matrices_done": sum(self.store.is_complete(f) for f in feats),
            "recordings": len(plan.response_paths),
            "recordings_done": sum(self.store.is_complete(p) for p in plan.response_paths.values()),
        }

    # ---- running ---------------------------------------------------------------------------
    def cache_recordings(self, plan: Plan, on_subject: Callable[[str], None] | None = None) -> None:
        for subject, path in plan.response_paths.items():
            if not self.store.is_complete(path):
                cached_recording(self.store, path, lambda s=subject: self.dataset.recording(s),
                                 attrs={"dataset_fingerprint": self.dataset.fingerprint()},
                                 non_finite=self.config.non_finite)
            if on_subject:
                on_subject(subject)

    def extract(self, plan: Plan, reporter: "Reporter | None" = None) -> None:
        """Extract every pending feature matrix; cached encoders are reported, not re-encoded."""
        reporter = reporter or Reporter()
        for job in plan.extractions:
            spec = self.config.encoders[job["index"]]
            paths = [feature_path(job["key"], layer) for layer in job["layers"]]
            if all(self.store.is_complete(p) for p in paths):
                reporter.message(f"features {spec.display}: {len(paths)} layer(s) already in the store")
                continue
            enc = self.encoder(job["index"])
            stimuli = self.stimuli_for(job["index"])
            progress = reporter.progress(f"features {spec.display}", len(stimuli))
            extract_features(self.store, enc, stimuli, job["layers"], batch_size=spec.batch_size, progress=progress)

    def pending_cells(self, plan: Plan) -> list[Cell]:
        return [c for c in plan.cells if not self.store.is_complete(c.result_path(self.config.name))]

    def write_cell(self, cell: Cell, result: dict[str, Any]) -> None:
        arrays = {k: v for k, v in result.items() if isinstance(v, np.ndarray)}
        specs = {k: ArraySpec(v.shape, str(v.dtype), blocked=False) for k, v in arrays.items()}
        attrs = {"cell": {k: v for k, v in asdict(cell).items() if k != "task"}, "task": cell.task,
                 "sweep": self.config.name, "dataset": self.config.dataset.name,
                 "rois": result["rois"], "n_test": result["n_test"], "timing_s": result["timing_s"]}
        with self.store.writer(cell.result_path(self.config.name), specs, kind="cell", attrs=attrs) as w:
            for name, value in arrays.items():
                w.put(name, value)
            w.finish(config=self.config.model_dump(), seed=self.config.seed)

    def write_manifest(self, plan: Plan, started: float) -> None:
        path = manifest_path(self.config.name)
        self.store.delete(path)
        keys = np.asarray([c.key for c in plan.cells], dtype=str)
        with self.store.writer(path, {"cells": ArraySpec(keys.shape, "str", blocked=False)}, kind="manifest",
                               attrs={"config": self.config.model_dump(), "sweep": self.config.name}) as w:
            w.put("cells", keys)
            w.finish(config=self.config.model_dump(), seed=self.config.seed, sweep_started=started)

    def run(self, executor: str = "inline", workers: int | None = None, reporter: "Reporter | None" = None,
            address: str | None = None) -> dict[str, Any]:
        """Run every pending piece of the sweep; returns counts and timing."""
        started = time.time()
        reporter = reporter or Reporter()
        plan = self.plan()
        reporter.message(f"sweep {self.config.name}: {len(plan.cells)} cells, {len(plan.subjects)} subject(s), "
                         f"{len(plan.extractions)} encoder(s), store {self.store.url}")
        for index, spec in enumerate(self.config.encoders):
            if getattr(self.encoder(index), "random_weights", False):
                reporter.warning(f"encoder {spec.display!r} ({spec.name}) has random weights, no pretrained "
                                 f"checkpoint; its scores are an untrained-architecture baseline")
        self.cache_recordings(plan)
        plan = self.plan()  # feature keys follow the stimuli the cached recordings use
        self.extract(plan, reporter)
        pending = self.pending_cells(plan)
        if pending:
            advance = reporter.progress("fitting cells", len(pending))
            run_cells = get_executor(executor, workers=workers, address=address)
            for cell, result in run_cells(self.store.url, pending):
                self.write_cell(cell, result)
                advance(1)
        self.write_manifest(plan, started)
        table_path = export_table(self.store, self.config.name)
        record_sweep(self.config.name, self.store.url)
        return {"cells": len(plan.cells), "computed": len(pending), "skipped": len(plan.cells) - len(pending),
                "wall_time_s": round(time.time() - started, 2), "table": table_path, "store": self.store.url}


class Reporter:
    """Progress sink; the CLI replaces it with a Rich progress display."""

    def message(self, text: str) -> None:  # noqa: D401 - a sink
        pass

    def warning(self, text: str) -> None:
        """Something the user must know about the run (e.g. random weights): a Python warning unless a CLI shows it."""
        warnings.warn(text, UserWarning, stacklevel=3)

    def progress(self, label: str, total: int) -> Callable[[int], None]:
        return lambda n: None
