"""Coordinate a sweep: cache recordings, plan its cells once (each analysis plans its own), extract features,
hand cells to an executor, write.

Each cell's key hashes everything that changes its numbers (dataset fingerprint, subject, preprocessing,
encoder fingerprint and stimuli, layer, head and options, seed, and the source of the code computing it),
so a rerun of the same config skips every finished cell and an edited config recomputes only the cells it
changed. Only this coordinating process writes to the store; the core knows no analysis by name.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from brain_workbench.analysis.contract import (
    Analysis,
    Cell,
    CellResult,
    DatasetInfo,
    EncoderInfo,
    FeatureJob,
    ImageJob,
    PlanContext,
    RecordingInfo,
    plain,
)
from brain_workbench.analysis.progress import progress_sink
from brain_workbench.plugin.registry import Registry, get_registry
from brain_workbench.store import (
    ArraySpec,
    Store,
    cached_recording,
    open_store,
    rdms_key,
    recording_key,
    recording_key_for,
    save_rdms,
)
from brain_workbench.store.claims import Claims, describe_holder
from brain_workbench.store.features import extract_features
from brain_workbench.store.paths import encoder_key, feature_path, features_prefix, manifest_path
from brain_workbench.sweep.compute import CellComputer
from brain_workbench.sweep.config import SweepConfig, did_you_mean, listed_problems
from brain_workbench.sweep.executors import get_executor
from brain_workbench.sweep.index import record_sweep
from brain_workbench.sweep.tables import export_table
from brain_workbench.types import StimulusSet, WorkbenchError, dataset_provides, identified_stimuli, resolve_layers


@dataclass(frozen=True)
class Plan:
    """The cells of one run and what the coordinator writes before they run (features, image entries)."""

    config: SweepConfig
    cells: tuple[Cell, ...]
    extractions: tuple[FeatureJob, ...]
    images: tuple[ImageJob, ...]
    subjects: tuple[str, ...]
    response_paths: dict[str, str]


class Sweep:
    """Runs a :class:`SweepConfig` against a store with a chosen executor, with the analyses of ``registry``."""

    def __init__(self, config: SweepConfig, store: Store | str | None = None, registry: Registry | None = None) -> None:
        self.config = config
        self.registry = registry or get_registry()
        self.store = store if isinstance(store, Store) else open_store(store or config.store)
        self.dataset = self.registry.create("dataset", config.dataset.name, **config.dataset.options)
        self.provides = dataset_provides(self.dataset)
        self._encoders: dict[int, Any] = {}
        self._analyses: dict[str, Analysis] | None = None
        self._used: tuple[tuple[str, ...], set[str]] | None = None
        self._claims: Claims | None = None
        self._reporter: Reporter | None = None
        self._left_out: dict[str, int] = {}  # computed cells that left their rows out, by why

    # ---- claims: two coordinators on one store never compute the same entry --------------------
    def _hold(self, path: str, what: str) -> AbstractContextManager[None]:
        """Hold the claim on ``path`` while writing it, first waiting for another sweep computing it."""
        if self._claims is None:
            return nullcontext()
        reporter = self._reporter or Reporter()
        return self._claims.hold(path, on_wait=lambda h: reporter.message(
            f"waiting for {what}: another sweep ({describe_holder(h)}) is computing it"))

    # ---- what the plan is made from ------------------------------------------------------------
    def analyses(self) -> dict[str, Analysis]:
        """Every registered analysis, in registration order (built-ins first)."""
        if self._analyses is None:
            names = list(self.registry.entries["analysis"])
            self._analyses = {name: self.registry.create("analysis", name) for name in names}
        return self._analyses

    def encoder(self, index: int) -> Any:
        if index not in self._encoders:
            spec = self.config.encoders[index]
            self._encoders[index] = self.registry.create("encoder", spec.name, **spec.options)
        return self._encoders[index]

    def encoder_label(self, index: int) -> str:
        """The encoder's name in tables, figures and the report: the config's label, never rewritten (whether its
        weights are random is the results' ``random_weights`` column)."""
        return self.config.encoders[index].display

    def random_weight_labels(self) -> set[str]:
        """Labels of the configured encoders that have random weights (no pretrained ones)."""
        return {spec.display for i, spec in enumerate(self.config.encoders)
                if getattr(self.encoder(i), "random_weights", False)}

    def subjects(self) -> list[str]:
        available = self.dataset.subjects()
        if self.config.subjects == "all":
            return available
        unknown = [s for s in self.config.subjects if s not in available]
        if unknown:
            raise WorkbenchError(f"dataset {self.config.dataset.name!r} has no subject {unknown[0]!r}; "
                                 f"its subjects are {', '.join(available)}")
        return list(self.config.subjects)

    def response_paths(self) -> dict[str, str]:
        return {s: self.recording_key(s) for s in self.subjects()}

    def stimuli(self, modality: str) -> StimulusSet:
        """The dataset's stimuli of ``modality`` that the planned subjects saw (all of them before caching)."""
        full = identified_stimuli(self.dataset, modality)
        used = self.used_stimulus_ids()
        if used is None or len(used) == len(full):
            return full
        return full.subset([s for s in full.ids if s in used])

    def stimuli_for(self, index: int) -> StimulusSet:
        enc = self.encoder(index)
        if enc.modality not in self.dataset.modalities:
            raise WorkbenchError(f"encoder {enc.name!r} reads {enc.modality} stimuli but dataset "
                                 f"{self.dataset.name!r} offers {', '.join(self.dataset.modalities)}")
        return self.stimuli(enc.modality)

    def used_stimulus_ids(self) -> set[str] | None:
        """Stimuli the planned subjects saw, once their recordings are cached (else None: not known yet).

        Encoding only these keeps a one-subject NSD sweep from paying for all 73k images; the
        feature key then depends on the subject set, so adding a subject re-extracts the union.
        """
        paths = tuple(self.response_paths().values())
        if not all(self.store.is_complete(p) for p in paths):
            return None
        if self._used is None or self._used[0] != paths:
            ids: set[str] = set()
            for path in paths:
                reader = self.store.open(path)
                names = [n for n in reader.names() if n.startswith("ids_")] if self.provides == "rdms" \
                    else ["trial_stimulus_ids"]
                for name in names:
                    ids.update(reader[name].tolist())
            self._used = (paths, ids)
        return self._used[1]

    def dataset_info(self) -> DatasetInfo:
        return DatasetInfo(self.config.dataset.name, self.dataset.fingerprint(), tuple(self.dataset.modalities),
                           self.provides, tuple(self.dataset.subjects()))

    def recording_info(self, subject: str, path: str) -> RecordingInfo:
        """What a cached recording (or set of RDMs) offers the plan: splits, ROIs, trial groupings."""
        if not self.store.is_complete(path):
            return RecordingInfo(subject, path)
        reader = self.store.open(path)
        if self.provides == "rdms":
            rois = tuple(dict.fromkeys(m["roi"] for m in reader.attrs["rdms"]))
            return RecordingInfo(subject, path, True, (), rois)
        meta = reader.attrs.get("recording", {})
        groups = {name: len(np.unique(np.asarray(reader[f"group_{key}"]).astype(str)))
                  for key, name in meta.get("trial_groups", {}).items()}
        return RecordingInfo(subject, path, True, tuple(meta.get("splits", {}).values()),
                             tuple(meta.get("rois", {}).values()), groups)

    def encoder_info(self, index: int) -> EncoderInfo:
        spec, enc = self.config.encoders[index], self.encoder(index)
        stimuli = self.stimuli_for(index)
        available = enc.layers()
        return EncoderInfo(index, spec.name, self.encoder_label(index), spec, enc.modality, tuple(available),
                           tuple(resolve_layers(available, spec.layers)), encoder_key(enc, stimuli))

    def context(self) -> PlanContext:
        paths = self.response_paths()
        return PlanContext(self.config, self.dataset_info(), tuple(paths),
                           {s: self.recording_info(s, p) for s, p in paths.items()},
                           tuple(self.encoder_info(i) for i in range(len(self.config.encoders))), self.registry,
                           self.stimuli)

    # ---- planning --------------------------------------------------------------------------
    def plan(self) -> Plan:
        """Every analysis plans its cells from the same context; the features and image entries they read follow.

        Planned before the recordings are cached (``status``), feature keys cover every stimulus and
        leave-one-group-out plans no fold; ``run`` plans once, after caching.
        """
        context = self.context()
        cells: list[Cell] = []
        jobs: dict[str, FeatureJob | ImageJob] = {}
        for name, analysis in self.analyses().items():
            planned = analysis.plan(context)
            wrong = [c for c in planned if c.analysis != name]
            if wrong:
                raise WorkbenchError(f"analysis {name!r} planned a cell of analysis {wrong[0].analysis!r}; "
                                     "an analysis plans only its own cells")
            cells.extend(planned)
            for job in analysis.requirements(context, planned) if planned else []:
                jobs.setdefault(job.key, job)
        if not cells:
            raise WorkbenchError(f"{self.config.name}: the config plans no cells: add heads, metrics or an analysis "
                                 "section with something to compute (a decoding section needs a decode head)")
        keys = [c.key for c in cells]
        if len(set(keys)) != len(keys):
            twice = next(k for k in keys if keys.count(k) > 1)
            raise WorkbenchError(f"two planned cells share the key {twice!r}; an analysis must key every cell apart")
        read = {c.feature_path for c in cells} | {p for c in cells for p in c.reads}
        extractions = [FeatureJob(e.key, tuple(layer.name for layer in e.layers if e.feature_path(layer.name) in read),
                                  e.spec.display, functools.partial(self.encoder, e.index),
                                  functools.partial(self.stimuli_for, e.index),
                                  e.spec.batch_size) for e in context.encoders]
        extractions += [j for j in jobs.values() if isinstance(j, FeatureJob)]
        images = tuple(j for j in jobs.values() if isinstance(j, ImageJob))
        paths = {s: info.path for s, info in context.recordings.items()}
        return Plan(self.config, tuple(cells), tuple(extractions), images, context.subjects, paths)

    def recording_key(self, subject: str) -> str:
        """Where the subject's recording (or, for a dataset that provides RDMs, its RDMs) is cached (one key
        per dataset files, options and non-finite policy)."""
        if self.provides == "rdms":
            return rdms_key(self.config.dataset.name, subject, self.dataset.fingerprint())
        if self.config.non_finite == "error":
            return recording_key_for(self.dataset, subject)
        return recording_key(self.config.dataset.name, subject, self.dataset.fingerprint(),
                             non_finite=self.config.non_finite)

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
    def cache_recordings(self, paths: dict[str, str] | Plan | None = None,
                         on_subject: Callable[[str], None] | None = None) -> None:
        """Cache every planned subject's recording (or RDMs) that the store does not hold yet."""
        paths = paths.response_paths if isinstance(paths, Plan) else paths or self.response_paths()
        for subject, path in paths.items():
            if not self.store.is_complete(path):
                with self._hold(path, f"the recording of subject {subject}"):
                    if self.store.is_complete(path):
                        pass  # the other sweep holding the claim cached it meanwhile
                    elif self.provides == "rdms":
                        save_rdms(self.store, path, self.dataset.rdms(subject),
                                  attrs={"dataset_fingerprint": self.dataset.fingerprint()})
                    else:
                        cached_recording(self.store, path, functools.partial(self.dataset.recording, subject),
                                         attrs={"dataset_fingerprint": self.dataset.fingerprint()},
                                         non_finite=self.config.non_finite)
            if on_subject:
                on_subject(subject)

    def check_recordings(self, paths: dict[str, str] | None = None) -> None:
        """Once recordings are cached and before any plan: the test split and every ROI of ``rois`` exist
        (each analysis checks the ROIs and splits of its own sections when it plans)."""
        cfg = self.config
        for subject, path in (paths or self.response_paths()).items():
            info = self.recording_info(subject, path)
            missing = sorted(set(cfg.rois or []) - set(info.rois))
            if self.provides == "rdms":
                if missing:
                    raise WorkbenchError(f"{cfg.dataset.name}/{subject} has no RDM of ROI {missing[0]!r}; its RDMs "
                                         f"are of {', '.join(info.rois)}")
                continue
            if cfg.cv_spec()["scheme"] == "split" and cfg.test_split not in info.splits:
                raise WorkbenchError(f"{cfg.dataset.name}/{subject} has no split {cfg.test_split!r}; its splits are "
                                     f"{', '.join(info.splits) or 'none'} (set test_split)")
            if missing:
                raise WorkbenchError(f"{cfg.dataset.name}/{subject} has no ROI {missing[0]!r}; its ROIs are "
                                     f"{', '.join(info.rois) or 'none'} (or use 'all')")

    def extract(self, plan: Plan, reporter: Reporter | None = None) -> None:
        """Extract every pending feature matrix; cached encoders are reported, not re-encoded."""
        reporter = reporter or Reporter()
        for job in plan.extractions:
            paths = [feature_path(job.key, layer) for layer in job.layers]
            if all(self.store.is_complete(p) for p in paths):
                reporter.message(f"features {job.label}: {len(paths)} layer(s) already in the store")
                continue
            with self._hold(features_prefix(job.key), f"features {job.label}"):
                if all(self.store.is_complete(p) for p in paths):
                    continue
                stimuli = job.stimuli()
                progress = reporter.progress(f"features {job.label}", len(stimuli))
                extract_features(self.store, job.encoder(), stimuli, list(job.layers), batch_size=job.batch_size,
                                 progress=progress)

    def write_images(self, plan: Plan) -> None:
        """The image entries cells read (e.g. the seen test images), written once by the coordinator."""
        from brain_workbench.store.images import images_path, write_images

        for job in plan.images:
            ids = job.ids(self.store)
            with self._hold(images_path(job.key), job.what):
                write_images(self.store, job.key, ids, job.load, attrs=dict(job.attrs))

    def pending_cells(self, plan: Plan) -> list[Cell]:
        return [c for c in plan.cells if not self.store.is_complete(c.result_path(self.config.name))]

    def write_cell(self, cell: Cell, result: CellResult) -> None:
        """Write a finished cell as one complete entry (its images first, as their own entry)."""
        if result.images is not None:
            from brain_workbench.store.images import write_images

            if result.image_ids is None:
                raise WorkbenchError(f"cell {cell.key} returned images without their stimulus ids")
            write_images(self.store, cell.key, result.image_ids, result.images,
                         attrs={"cell": cell.key, "sweep": self.config.name})
        arrays = dict(result.arrays)
        specs = {k: ArraySpec(v.shape, "str" if v.dtype.kind in "OUT" else str(v.dtype), blocked=False)
                 for k, v in arrays.items()}
        described = {**cell.describe(), "random_weights": cell.model in self.random_weight_labels()}
        attrs = {"cell": described, "task": plain(cell.task), "sweep": self.config.name,
                 "dataset": self.config.dataset.name, "rois": [dict(r) for r in result.rois], "n_test": result.n_test,
                 "timing_s": result.timing_s, **dict(result.info)}
        if result.warnings:
            attrs["warnings"] = list(result.warnings)
        with self.store.writer(cell.result_path(self.config.name), specs, kind="cell", attrs=attrs) as w:
            for name, value in arrays.items():
                w.put(name, value)
            w.finish(config=self.config.model_dump(), seed=self.config.seed)

    def write_manifest(self, plan: Plan, started: float) -> None:
        """Record the run's cell keys and config; an identical manifest is kept, so readers never miss it."""
        path = manifest_path(self.config.name)
        keys = np.asarray([c.key for c in plan.cells], dtype=str)
        if self.store.is_complete(path):
            old = self.store.open(path)
            if old.attrs.get("config") == self.config.model_dump() and old["cells"].astype(str).tolist() == keys.tolist():
                return
        self.store.delete(path)
        with self.store.writer(path, {"cells": ArraySpec(keys.shape, "str", blocked=False)}, kind="manifest",
                               attrs={"config": self.config.model_dump(), "sweep": self.config.name}) as w:
            w.put("cells", keys)
            w.finish(config=self.config.model_dump(), seed=self.config.seed, sweep_started=started)

    def validate(self, executor: str = "inline", workers: int | None = None) -> None:
        """Check everything a typo can break before any work: the executor, then each analysis's sections."""
        get_executor(executor, workers=workers)
        if workers is not None and workers < 1:
            raise WorkbenchError(f"-j/--workers must be at least 1, got {workers}")
        dataset = self.dataset_info()
        known = self.analyses()
        problems = [f"analyses section names {name!r}, which is not an installed analysis{did_you_mean(name, list(known))};"
                    f" installed: {', '.join(sorted(known))} (see workbench analyses list)"
                    for name in self.config.analyses if name not in known]
        claimed = {section for analysis in known.values() for section in analysis.sections}
        fields = [*SweepConfig.model_fields, *claimed]
        problems += [f"no installed analysis reads a section {name!r}{did_you_mean(name, fields)}; the sections "
                     f"analyses read are {', '.join(sorted(claimed)) or 'none'} (see workbench analyses list)"
                     for name in sorted(set(self.config.model_extra or {}) - claimed)]
        for analysis in known.values():
            try:
                analysis.validate(self.config, dataset, self.registry)
            except WorkbenchError as exc:
                problems.append(str(exc))
        problems += self.layer_problems()
        if problems:
            raise WorkbenchError(listed_problems(self.config.name, problems))

    def layer_problems(self) -> list[str]:
        """Each encoder's unknown layers (and unknown encoders), found before any recording or feature is touched."""
        problems = []
        for index, spec in enumerate(self.config.encoders):
            try:
                resolve_layers(self.encoder(index).layers(), spec.layers)
            except WorkbenchError as exc:
                problems.append(f"encoders[{index}] ({spec.display}): {exc}")
        return problems

    def dry_run(self, executor: str = "inline", workers: int | None = None) -> dict[str, Any]:
        """Validate and plan without computing anything: cells per analysis and how many are already in the
        store, the feature matrices and recordings to make. Nothing is written, no recording is built."""
        self.validate(executor, workers)
        plan = self.plan()
        analyses: dict[str, dict[str, int]] = {}
        for cell in plan.cells:
            counts = analyses.setdefault(cell.analysis, {"cells": 0, "cached": 0})
            counts["cells"] += 1
            counts["cached"] += int(self.store.is_complete(cell.result_path(self.config.name)))
        features = {c.feature_path for c in plan.cells}
        recordings = plan.response_paths.values()
        return {"sweep": self.config.name, "store": self.store.url, "analyses": analyses,
                "cells": len(plan.cells), "cells_cached": sum(a["cached"] for a in analyses.values()),
                "feature_matrices": len(features),
                "feature_matrices_cached": sum(self.store.is_complete(f) for f in features),
                "recordings": len(recordings), "recordings_cached": sum(self.store.is_complete(p) for p in recordings)}

    def run(self, executor: str = "inline", workers: int | None = None, reporter: Reporter | None = None,
            address: str | None = None) -> dict[str, Any]:
        """Run every pending piece of the sweep; returns counts and timing.

        Each recording, feature matrix and cell is claimed before it is computed, so a second sweep
        on the same store waits for what this one computes and then reads it, never computing it again.
        """
        started = time.time()
        reporter = reporter or Reporter()
        self.validate(executor, workers)
        with Claims(self.store) as claims:
            self._claims, self._reporter = claims, reporter
            try:
                return self._run(executor, workers, reporter, address, started)
            finally:
                self._claims = self._reporter = None

    def _run(self, executor: str, workers: int | None, reporter: Reporter, address: str | None,
             started: float) -> dict[str, Any]:
        paths = self.response_paths()
        for index, spec in enumerate(self.config.encoders):
            if getattr(self.encoder(index), "random_weights", False):
                reporter.warning(f"encoder {spec.display!r} ({spec.name}) has random weights, no pretrained "
                                 f"checkpoint; its scores are an untrained-architecture baseline")
        self.cache_recordings(paths)
        self.check_recordings(paths)
        plan = self.plan()  # once: feature keys follow the stimuli the cached recordings use
        reporter.message(f"sweep {self.config.name}: {len(plan.cells)} cells, {len(plan.subjects)} subject(s), "
                         f"{len(self.config.encoders)} encoder(s), store {self.store.url}")
        self.extract(plan, reporter)
        self.write_images(plan)
        pending = self.pending_cells(plan)
        analyses = self.analyses()
        compute = CellComputer({name: analyses[name] for name in {c.analysis for c in pending}})
        run_cells = get_executor(executor, workers=workers, address=address)
        in_workers = [c for c in pending if not analyses[c.analysis].in_coordinator]
        here = [c for c in pending if analyses[c.analysis].in_coordinator]
        computed = 0
        self._left_out = {}
        for cells, label, runner in ((in_workers, "fitting cells", lambda cs: run_cells(self.store.url, cs, compute)),
                                     (here, None, lambda cs: self._in_coordinator(cs, compute, reporter))):
            if not cells:
                continue
            label = label or analyses[cells[0].analysis].progress_label
            advance = reporter.progress(label, len(cells))
            # a cell of a later phase reads finished cells of earlier phases, so phases run in order
            for phase in sorted({c.phase for c in cells}):
                computed += self._run_claimed([c for c in cells if c.phase == phase], runner, advance)
        with self._hold(manifest_path(self.config.name), "the manifest"):
            self.write_manifest(plan, started)
            table_path = export_table(self.store, self.config.name)
        record_sweep(self.config.name, self.store.url)
        for why, n in self._left_out.items():
            reporter.warning(f"{n} of the {computed} computed cells left their rows out ({why}; value NaN)")
        return {"cells": len(plan.cells), "computed": computed, "skipped": len(plan.cells) - computed,
                "wall_time_s": round(time.time() - started, 2), "table": table_path, "store": self.store.url,
                "left_out": sum(self._left_out.values())}

    def _in_coordinator(self, cells: list[Cell], compute: Callable[[str, Cell], CellResult],
                        reporter: Reporter) -> Iterator[tuple[Cell, CellResult]]:
        """Cells computed here, one by one, each able to show its own steps (images, denoising steps)."""
        for cell in cells:
            with progress_sink(reporter.progress):
                result = compute(self.store.url, cell)
            yield cell, result

    def _run_claimed(self, cells: list[Cell], compute: Callable[[list[Cell]], Iterable[tuple[Cell, CellResult]]],
                     advance: Callable[[int], None], poll_s: float = 0.5) -> int:
        """Compute the cells no other sweep has claimed; wait for the others and count them when they land.

        A cell whose claimant goes away without finishing it (killed, interrupted) is claimed and
        computed here. Returns how many cells this process computed.
        """
        claims, computed, told = self._claims, 0, False
        remaining = list(cells)
        while remaining:
            mine, others = [], []
            for cell in remaining:
                path = cell.result_path(self.config.name)
                if self.store.is_complete(path):
                    advance(1)  # finished by another sweep
                elif claims is None or claims.try_claim(path):
                    if claims is not None and self.store.is_complete(path):
                        claims.release(path)  # another sweep finished it between the check and the claim
                        advance(1)
                    else:
                        mine.append(cell)
                else:
                    others.append(cell)
            if mine:
                try:
                    for cell, result in compute(mine):
                        self.write_cell(cell, result)
                        if result.info.get("left_out"):
                            self._left_out[str(result.info["left_out"])] = \
                                self._left_out.get(str(result.info["left_out"]), 0) + 1
                        for text in result.warnings:
                            (self._reporter or Reporter()).warning(
                                f"{cell.analysis} {cell.subject}/{cell.model}/{cell.layer}/{cell.label}: {text}")
                        if claims is not None:
                            claims.release(cell.result_path(self.config.name))
                        computed += 1
                        advance(1)
                finally:
                    if claims is not None:
                        for cell in mine:
                            claims.release(cell.result_path(self.config.name))
            elif others:
                if not told and self._reporter is not None:
                    self._reporter.message(f"waiting for {len(others)} cell(s) another sweep is computing")
                    told = True
                time.sleep(poll_s)
            remaining = others
        return computed


class Reporter:
    """Progress sink; the CLI replaces it with a Rich progress display."""

    def message(self, text: str) -> None:  # noqa: D401 - a sink
        pass

    def warning(self, text: str) -> None:
        """Something the user must know about the run (e.g. random weights): a Python warning unless a CLI shows it."""
        warnings.warn(text, UserWarning, stacklevel=3)

    def progress(self, label: str, total: int) -> Callable[[int], None]:
        return lambda n: None


def __getattr__(name: str) -> Any:
    """``load_cell_scores`` lived here in the previous release; it is ``brain_workbench.sweep.load_cell_scores``
    now (served here with a DeprecationWarning, for one release)."""
    if name == "load_cell_scores":
        from brain_workbench.sweep.tables import load_cell_scores

        warnings.warn("load_cell_scores moved from workbench.sweep.runner to brain_workbench.sweep (sweep.tables); "
                      "import it from brain_workbench.sweep (the old place goes away in the release after next)",
                      DeprecationWarning, stacklevel=2)
        return load_cell_scores
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
