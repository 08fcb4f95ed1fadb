"""Coordinate a sweep: plan its cells, cache responses and features, hand cells to an executor, write.

Each cell's key hashes everything that changes its numbers (dataset fingerprint, subject,
preprocessing, encoder fingerprint and stimuli, layer, head and options, seed), so a rerun of the
same config skips every finished cell and an edited config recomputes only the cells it changed.
Only this coordinating process writes to the store.
"""

from __future__ import annotations

import time
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

import numpy as np

import brain_workbench as wb
from brain_workbench.store.features import extract_features
from brain_workbench.store.paths import encoder_key
from brain_workbench.store import (
    ArraySpec, Store, cached_recording, open_store, rdms_key, recording_key, recording_key_for, safe_name, save_rdms,
)
from brain_workbench.store.claims import Claims, describe_holder
from brain_workbench.sweep.cells import CELL_CODE_VERSION, Cell, rdm_metric
from brain_workbench.sweep.compute import compute_cell
from brain_workbench.sweep.config import SweepConfig, analysis_names
from brain_workbench.sweep.executors import get_executor
from brain_workbench.sweep.folds import fold_count
from brain_workbench.sweep.reconstruction import (
    LATENTS, CodecEncoder, check_reconstruction_metrics, load_seen_images, seen_images_key,
)
from brain_workbench.sweep.index import record_sweep
from brain_workbench.store.paths import feature_path, features_prefix, manifest_path
from brain_workbench.sweep.tables import export_table
from brain_workbench.types import StimulusSet, WorkbenchError, dataset_provides, digest, resolve_layers

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
        self.provides = dataset_provides(self.dataset)
        self._encoders: dict[int, Any] = {}
        self._directions: dict[int, str] = {}
        self._codec: CodecEncoder | None = None
        self._claims: Claims | None = None
        self._reporter: Reporter | None = None

    # ---- claims: two coordinators on one store never compute the same entry --------------------
    def _hold(self, path: str, what: str) -> AbstractContextManager[None]:
        """Hold the claim on ``path`` while writing it, first waiting for another sweep computing it."""
        if self._claims is None:
            return nullcontext()
        reporter = self._reporter or Reporter()
        return self._claims.hold(path, on_wait=lambda h: reporter.message(
            f"waiting for {what}: another sweep ({describe_holder(h)}) is computing it"))

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
                reader = self.store.open(path)
                names = [n for n in reader.names() if n.startswith("ids_")] if self.provides == "rdms" \
                    else ["trial_stimulus_ids"]
                for name in names:
                    ids.update(reader[name].tolist())
            self._used = (key, ids)
        return self._used[1]

    def plan(self) -> Plan:
        cfg = self.config
        self._check_scheme()
        if self.provides == "rdms":
            return self._plan_rdms()
        subjects = self.subjects()
        ds_fp = self.dataset.fingerprint()
        responses = {s: self.recording_key(s) for s in subjects}
        cv = cfg.cv_spec()
        prep = {"average_repetitions": cfg.average_repetitions, "test_split": cv["split"], "rois": cfg.rois,
                "standardize_features": True}
        legacy = cv["scheme"] == "split" and not cv["inner_group"] and not cv["keep_predictions"]
        enc_prep = prep if legacy else {**prep, "cv": cv}
        metric_prep = prep if cv["scheme"] == "split" else {**prep, "cv": {"scheme": "all"}}
        folds = {s: self.fold_count(cv, responses[s]) for s in subjects}
        stats = {"seed": cfg.seed, "permutations": cfg.permutations, "bootstrap": cfg.bootstrap}
        head_names, metric_names = analysis_names(cfg.heads), analysis_names(cfg.metrics)
        cells: list[Cell] = []
        extractions = []
        for e_index, e_spec in enumerate(cfg.encoders):
            enc = self.encoder(e_index)
            label = self.encoder_label(e_index)
            stimuli = self.stimuli_for(e_index)
            available = enc.layers()
            listed = resolve_layers(available, e_spec.layers)
            chosen = {i: self._head_layers(h, e_spec, listed, available) for i, h in enumerate(cfg.heads)}
            target = self._shared_layer(e_spec, available)
            layers = [layer.name for layer in available
                      if layer.name in listed or layer.name == target or any(layer.name in c for c in chosen.values())]
            depth = {layer.name: layer.depth for layer in available}
            key = encoder_key(enc, stimuli)
            extractions.append({"index": e_index, "layers": layers, "key": key})
            if target is not None:
                cells.extend(self._adaptation_cells(subjects, responses, ds_fp, key, label, e_spec.name, target,
                                                    float(depth[target])))
            for subject in subjects:
                for layer in layers:
                    fpath = feature_path(key, layer)
                    common = dict(subject=subject, encoder=label, encoder_name=e_spec.name, layer=layer,
                                  depth=float(depth[layer]), feature_path=fpath, response_path=responses[subject])
                    for h_index, h_spec in enumerate(cfg.heads):
                        if layer not in chosen[h_index]:
                            continue
                        head_dump = h_spec.model_dump(exclude={"label"})
                        if self.head_direction(h_index) == "decode":
                            cells.extend(self._decode_cells(subject, e_spec, label, layer, float(depth[layer]), fpath,
                                                            h_spec, responses[subject], prep, ds_fp, key))
                            continue
                        task = {"response_path": responses[subject], "feature_path": fpath, "head": head_dump,
                                "prep": enc_prep, "seed": cfg.seed, "permutations": cfg.permutations}
                        if cfg.bootstrap:
                            task["bootstrap"] = cfg.bootstrap
                        base = [CELL_CODE_VERSION, ds_fp, subject, enc_prep, key, layer, head_dump,
                                cfg.seed, cfg.permutations] + ([cfg.bootstrap] if cfg.bootstrap else [])
                        if cv["scheme"] == "split":
                            cells.append(Cell(key=f"{safe_name(subject)}-{digest(*base)}", head=h_spec.name, analysis=head_names[h_index],
                                              task=task, **common))
                            continue
                        fold_cells = [Cell(key=f"{safe_name(subject)}-f{i}-{digest(*base, i)}", head=h_spec.name, analysis=head_names[h_index],
                                           fold=str(i), task={**task, "fold": i}, **common)
                                      for i in range(folds[subject])]
                        cells.extend(fold_cells)
                        if fold_cells:
                            paths = [c.result_path(cfg.name) for c in fold_cells]
                            cells.append(Cell(key=f"{safe_name(subject)}-cv-{digest(*base, 'mean', len(paths))}",
                                              head=h_spec.name, analysis=head_names[h_index], fold="mean",
                                              task={**task, "fold_paths": paths, "n_folds": len(paths)}, **common))
                    for m_index, m_spec in enumerate(cfg.metrics if layer in listed else ()):
                        m_dump = m_spec.model_dump(exclude={"label"})
                        ckey = digest(CELL_CODE_VERSION, ds_fp, subject, metric_prep, key, layer, "metric", m_dump, stats)
                        task = {"response_path": responses[subject], "feature_path": fpath, "prep": metric_prep,
                                "metric": m_dump, **stats}
                        cells.append(Cell(key=f"{safe_name(subject)}-m{ckey}", head=m_spec.name,
                                          analysis=metric_names[m_index], kind="metric",
                                          task=task, **common))
        if cfg.reconstruction is not None:
            cells.extend(self._reconstruction_cells(subjects, responses, prep, ds_fp, extractions))
        if cfg.generation is not None:
            cells.extend(self._generation_cells(cells))
        return Plan(cfg, cells, extractions, subjects, responses)

    def _check_scheme(self) -> None:
        """Refuse analyses the cross-validation scheme (or a dataset of RDMs) cannot serve, in one sentence."""
        cfg = self.config
        scheme = cfg.cv_spec()["scheme"]
        directions = {self.head_direction(i) for i in range(len(cfg.heads))} if cfg.encoders else set()
        if self.provides == "rdms":
            if "heads" in cfg.model_fields_set and cfg.heads:
                raise WorkbenchError(f"dataset {cfg.dataset.name!r} provides brain RDMs, not responses: heads cannot be "
                                     "fitted to it; remove heads and compare with metrics (rsa)")
            if cfg.reconstruction is not None or cfg.generation is not None:
                raise WorkbenchError(f"dataset {cfg.dataset.name!r} provides brain RDMs, not responses: it cannot be "
                                     "reconstructed from; remove the reconstruction section")
            if not cfg.metrics:
                raise WorkbenchError(f"dataset {cfg.dataset.name!r} provides brain RDMs: add metrics (rsa) to compare "
                                     "the encoders with them")
            return
        if scheme == "all" and "encode" in directions:
            raise WorkbenchError("cv.scheme 'all' tests on every stimulus and trains on none: encoding heads need "
                                 "split, kfold or group (or remove the heads for a metric-only sweep)")
        if scheme != "split" and ("decode" in directions or cfg.reconstruction is not None):
            raise WorkbenchError(f"cv.scheme {scheme!r} is supported for encoding and metric cells only; decoding and "
                                 "reconstruction cells use test_split: remove cv or run them in a sweep of their own")

    def _plan_rdms(self) -> Plan:
        """Metric cells on the brain RDMs a dataset provides: one per subject × encoder × layer × metric, each
        comparing the layer's model RDM with every RDM (ROI × session) of the subject."""
        cfg = self.config
        subjects = self.subjects()
        ds_fp = self.dataset.fingerprint()
        paths = {s: self.recording_key(s) for s in subjects}
        stats = {"seed": cfg.seed, "permutations": cfg.permutations, "bootstrap": cfg.bootstrap}
        names = analysis_names(cfg.metrics)
        cells, extractions = [], []
        for e_index, e_spec in enumerate(cfg.encoders):
            enc, label = self.encoder(e_index), self.encoder_label(e_index)
            stimuli = self.stimuli_for(e_index)
            available = enc.layers()
            layers = resolve_layers(available, e_spec.layers)
            depth = {layer.name: layer.depth for layer in available}
            key = encoder_key(enc, stimuli)
            extractions.append({"index": e_index, "layers": layers, "key": key})
            for subject in subjects:
                for layer in layers:
                    fpath = feature_path(key, layer)
                    for m_index, m_spec in enumerate(cfg.metrics):
                        m_dump = m_spec.model_dump(exclude={"label"})
                        ckey = digest(CELL_CODE_VERSION, ds_fp, subject, "rdms", cfg.rois, key, layer, m_dump, stats)
                        task = {"rdm_path": paths[subject], "feature_path": fpath, "metric": m_dump,
                                "rois": cfg.rois, **stats}
                        cells.append(Cell(key=f"{safe_name(subject)}-m{ckey}", subject=subject, encoder=label,
                                          encoder_name=e_spec.name, layer=layer, depth=float(depth[layer]),
                                          head=m_spec.name, analysis=names[m_index], kind="metric",
                                          feature_path=fpath, response_path=paths[subject], task=task))
        return Plan(cfg, cells, extractions, subjects, paths)

    def _shared_layer(self, e_spec: Any, available: list[Any]) -> str | None:
        """The target layer of the ``shared:`` section, if this encoder is its target (else None)."""
        shared = self.config.shared
        if shared is None or shared.target.encoder not in (e_spec.name, e_spec.display):
            return None
        return resolve_layers(available, [shared.target.layer])[0]

    def _model_options(self, model: Any) -> dict[str, Any]:
        """A shared model's options, with ``shared.device`` where its head has a ``device`` option it leaves unset."""
        options = dict(model.options)
        device = self.config.shared.device
        if device is not None and "device" not in options and "device" in (wb.get_registry().get("head", model.name).options() or {}):
            options["device"] = device
        return options

    def _adaptation_cells(self, subjects: list[str], responses: dict[str, str], ds_fp: str, key: str, label: str,
                          encoder_name: str, layer: str, depth: float) -> list[Cell]:
        """One cell per model × new subject × k sessions of the ``shared:`` section."""
        from brain_workbench.sweep.adaptation import ADAPTATION_CODE_VERSION

        cfg, spec = self.config, self.config.shared
        models = [{"name": m.name, "options": self._model_options(m), "label": m.label or m.name}
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
            setup = {"responses": {s: responses[s] for s in [*train, new]}, "feature_path": feature_path(key, layer),
                     "new_subject": new, "train_subjects": train, "train_split": spec.train_split,
                     "align": spec.align.model_dump(), "session_group": spec.session_group, "rois": cfg.rois,
                     "time_window": None if spec.time_window is None else list(spec.time_window), "seed": cfg.seed}
            for model in models:
                for k in spec.sessions:
                    ckey = digest(ADAPTATION_CODE_VERSION, ds_fp, setup, key, model, k, spec.direction,
                                  spec.n_candidates)
                    task = {"setup": setup, "model": model, "k": k, "direction": spec.direction,
                            "n_candidates": spec.n_candidates}
                    cells.append(Cell(key=f"{safe_name(new)}-a{ckey}", subject=new, encoder=label,
                                      encoder_name=encoder_name, layer=layer, depth=depth, head=model["name"],
                                      analysis=model["label"], feature_path=setup["feature_path"],
                                      response_path=responses[new], kind="adaptation", task=task))
        return cells

    def _generation_cells(self, cells: list[Cell]) -> list[Cell]:
        """One generation cell per subject, on the decode cell (and reconstruction cell) it names."""
        spec = self.config.generation
        out = []
        for decode in [c for c in cells if c.kind == "decoding" and c.task["roi"] == spec.roi
                       and c.head == spec.head and spec.encoder in (c.encoder, c.encoder_name)]:
            enc = self.encoder(next(i for i, e in enumerate(self.config.encoders) if e.display == decode.encoder))
            if decode.layer != resolve_layers(enc.layers(), [spec.layer])[0]:
                continue
            recon = next((c for c in cells if c.kind == "reconstruction" and c.subject == decode.subject
                          and c.task["roi"] == spec.roi), None) if spec.init_from_reconstruction else None
            if spec.init_from_reconstruction and recon is None:
                raise WorkbenchError(f"generation.init_from_reconstruction needs a reconstruction cell from ROI "
                                     f"{spec.roi!r}; add it to reconstruction.rois")
            ckey = digest(CELL_CODE_VERSION, decode.key, None if recon is None else recon.key, spec.model_dump())
            task = {"decode_path": decode.result_path(self.config.name), "generation": spec.model_dump(),
                    "reconstruction_key": None if recon is None else recon.key, "seen_key": self.seen_key(),
                    "seed": spec.seed, "roi": spec.roi}
            out.append(Cell(key=f"{safe_name(decode.subject)}-g{ckey}", subject=decode.subject,
                            encoder=spec.generator.name, encoder_name=spec.generator.name, layer=decode.layer,
                            depth=decode.depth, head=decode.head, feature_path=decode.feature_path,
                            response_path=decode.response_path, kind="generation", task=task))
        if not out:
            raise WorkbenchError(f"generation names decode cells of encoder {spec.encoder!r}, layer {spec.layer!r}, "
                                 f"head {spec.head!r}, ROI {spec.roi!r}, but the sweep plans none; add that decode head")
        return out

    def seen_key(self) -> str:
        size = self.config.reconstruction.seen_size if self.config.reconstruction else 256
        return seen_images_key(self.image_stimuli().digest, size)

    def codec_encoder(self) -> CodecEncoder:
        if self._codec is None:
            spec = self.config.reconstruction.codec
            self._codec = CodecEncoder(spec.name, spec.options)
        return self._codec

    def _reconstruction_cells(self, subjects: list[str], responses: dict[str, str], prep: dict[str, Any],
                              ds_fp: str, extractions: list[dict[str, Any]]) -> list[Cell]:
        """One reconstruction cell per subject and unit set, on the codec latents of the image stimuli."""
        spec = self.config.reconstruction
        if "image" not in self.dataset.modalities:
            raise WorkbenchError(f"reconstruction needs image stimuli, but dataset {self.dataset.name!r} offers "
                                 f"{', '.join(self.dataset.modalities)}")
        enc = self.codec_encoder()
        stimuli = self.image_stimuli()
        key = encoder_key(enc, stimuli)
        extractions.append({"index": "codec", "layers": [LATENTS], "key": key})
        seen_key = self.seen_key()
        fpath = feature_path(key, LATENTS)
        label = f"{spec.codec.name} latents"
        cells = []
        for subject in subjects:
            for roi in spec.rois:
                ckey = digest(CELL_CODE_VERSION, ds_fp, subject, prep, key, "reconstruction", spec.model_dump(), roi,
                              self.config.seed)
                task = {"response_path": responses[subject], "feature_path": fpath, "prep": prep, "roi": roi,
                        "seed": self.config.seed, "reconstruction": spec.model_dump(), "seen_key": seen_key}
                cells.append(Cell(key=f"{safe_name(subject)}-r{ckey}", subject=subject, encoder=label,
                                  encoder_name=enc.name, layer=LATENTS, depth=1.0, head=spec.head.name,
                                  feature_path=fpath, response_path=responses[subject], kind="reconstruction",
                                  task=task))
        return cells

    def image_stimuli(self) -> StimulusSet:
        full = self.dataset.stimuli("image")
        used = self.used_stimulus_ids()
        if used is None or len(used) == len(full):
            return full
        return full.subset([s for s in full.ids if s in used])

    def write_seen_images(self, plan: Plan) -> None:
        """The seen test images every reconstruction cell is scored against (and that the retrieval figure
        shows as candidates), written once by the coordinator."""
        cells = [c for c in plan.cells if c.kind in ("reconstruction", "generation") or "seen_key" in c.task]
        if not cells:
            return
        from brain_workbench.store.images import images_path, write_images

        split = f"split_{safe_name(self.config.test_split)}"
        ids: list[str] = []
        for path in plan.response_paths.values():
            entry = self.store.open(path)
            if split not in entry.names():
                raise WorkbenchError(f"{path} has no split {self.config.test_split!r} to reconstruct")
            ids.extend(s for s in entry[split].tolist() if s not in ids)
        images = self.image_stimuli()
        size = self.config.reconstruction.seen_size if self.config.reconstruction else 256
        key = cells[0].task["seen_key"]
        with self._hold(images_path(key), "the seen test images"):
            write_images(self.store, key, ids, lambda block: load_seen_images(images, block, size),
                         attrs={"what": "seen test images", "size": size})


    def fold_count(self, cv: dict[str, Any], response_path: str) -> int:
        """Folds of the scheme for one subject; leave-one-group-out reads the cached recording's group
        labels, so before the recording is cached it plans none (the run re-plans after caching)."""
        if cv["scheme"] != "group":
            return fold_count(cv)
        if not self.store.is_complete(response_path):
            return 0
        reader = self.store.open(response_path)
        names = reader.attrs["recording"].get("trial_groups", {})
        key = next((k for k, name in names.items() if name == cv["group"]), None)
        if key is None:
            raise WorkbenchError(f"cv.group {cv['group']!r} is not a trial grouping of dataset "
                                 f"{self.config.dataset.name!r}; its groupings are {', '.join(names.values()) or 'none'}")
        return fold_count(cv, group_labels=reader[f"group_{key}"])

    def recording_key(self, subject: str) -> str:
        """Where the subject's recording (or, for a dataset that provides RDMs, its RDMs) is cached (one key
        per dataset files, options and non-finite policy)."""
        if self.provides == "rdms":
            return rdms_key(self.config.dataset.name, subject, self.dataset.fingerprint())
        if self.config.non_finite == "error":
            return recording_key_for(self.dataset, subject)
        return recording_key(self.config.dataset.name, subject, self.dataset.fingerprint(),
                             non_finite=self.config.non_finite)

    @staticmethod
    def _head_layers(h_spec: Any, e_spec: Any, listed: list[str], available: list[Any]) -> list[str]:
        """The layers of an encoder a head is fitted on: its own ``layers`` (extracted too), else the encoder's."""
        if h_spec.encoders is not None and not ({e_spec.name, e_spec.display} & set(h_spec.encoders)):
            return []
        return listed if h_spec.layers is None else resolve_layers(available, h_spec.layers)

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
        if cfg.generation is not None:
            spec["keep_predictions"] = True
        cells = []
        for roi in cfg.decoding.rois:
            for window in cfg.decoding.time_windows or [None]:
                unit_set = {"roi": roi, "time_window": None if window is None else list(window)}
                ckey = digest(CELL_CODE_VERSION, ds_fp, subject, prep, key, layer, "decode", h_spec.model_dump(exclude={"label"}),
                              unit_set, spec, cfg.seed, cfg.permutations)
                task = {"response_path": response, "feature_path": fpath, "head": h_spec.model_dump(exclude={"label"}), "prep": prep,
                        "seed": cfg.seed, "permutations": cfg.permutations, "decoding": spec, **unit_set}
                if spec["keep_predictions"] and "image" in self.dataset.modalities:
                    task["seen_key"] = self.seen_key()  # candidates of the retrieval figure
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
                with self._hold(path, f"the recording of subject {subject}"):
                    if self.store.is_complete(path):
                        pass  # the other sweep holding the claim cached it meanwhile
                    elif self.provides == "rdms":
                        save_rdms(self.store, path, self.dataset.rdms(subject),
                                  attrs={"dataset_fingerprint": self.dataset.fingerprint()})
                    else:
                        cached_recording(self.store, path, lambda s=subject: self.dataset.recording(s),
                                         attrs={"dataset_fingerprint": self.dataset.fingerprint()},
                                         non_finite=self.config.non_finite)
            if on_subject:
                on_subject(subject)

    def extract(self, plan: Plan, reporter: "Reporter | None" = None) -> None:
        """Extract every pending feature matrix; cached encoders are reported, not re-encoded."""
        reporter = reporter or Reporter()
        for job in plan.extractions:
            if job["index"] == "codec":
                label, enc, stimuli = f"{self.config.reconstruction.codec.name} latents", self.codec_encoder(), \
                    self.image_stimuli()
                batch_size = self.config.reconstruction.batch_size
            else:
                spec = self.config.encoders[job["index"]]
                label, enc, stimuli, batch_size = spec.display, None, None, spec.batch_size
            paths = [feature_path(job["key"], layer) for layer in job["layers"]]
            if all(self.store.is_complete(p) for p in paths):
                reporter.message(f"features {label}: {len(paths)} layer(s) already in the store")
                continue
            with self._hold(features_prefix(job["key"]), f"features {label}"):
                if all(self.store.is_complete(p) for p in paths):
                    continue
                enc = enc or self.encoder(job["index"])
                stimuli = stimuli or self.stimuli_for(job["index"])
                progress = reporter.progress(f"features {label}", len(stimuli))
                extract_features(self.store, enc, stimuli, job["layers"], batch_size=batch_size, progress=progress)

    def pending_cells(self, plan: Plan) -> list[Cell]:
        return [c for c in plan.cells if not self.store.is_complete(c.result_path(self.config.name))]

    def write_cell(self, cell: Cell, result: dict[str, Any]) -> None:
        """Write a finished cell as one complete entry (its images first, as their own entry)."""
        if "images" in result:
            from brain_workbench.store.images import write_images

            write_images(self.store, cell.key, result.pop("test_ids"), result.pop("images"),
                         attrs={"cell": cell.key, "sweep": self.config.name})
        arrays = {k: v for k, v in result.items() if isinstance(v, np.ndarray)}
        specs = {k: ArraySpec(v.shape, "str" if v.dtype.kind in "OUT" else str(v.dtype), blocked=False)
                 for k, v in arrays.items()}
        attrs = {"cell": {k: v for k, v in asdict(cell).items() if k != "task"}, "task": cell.task,
                 "sweep": self.config.name, "dataset": self.config.dataset.name,
                 "rois": result["rois"], "n_test": result["n_test"], "timing_s": result["timing_s"],
                 **{k: result[k] for k in ("fit_s", "peak_memory_mb", "peak_memory_source") if k in result}}
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
        """Check everything a typo can break before any work: executor, heads, metrics and their options."""
        get_executor(executor, workers=workers)
        if workers is not None and workers < 1:
            raise WorkbenchError(f"-j/--workers must be at least 1, got {workers}")
        for index, spec in enumerate(self.config.heads):
            cv = spec.options.get("cv")
            if isinstance(cv, int) and not isinstance(cv, bool) and cv < 2:
                raise WorkbenchError(f"head {spec.name!r}: cv={cv} needs at least 2 folds to choose alphas")
            self.head_direction(index)
        for spec in self.config.metrics:
            if self.provides == "rdms":
                rdm_metric(spec.model_dump())
            else:
                wb.metric(spec.name, **spec.options)
        if self.config.shared is not None:
            device = self.config.shared.device or ""
            if device.startswith("cuda"):
                import torch

                if not torch.cuda.is_available():
                    raise WorkbenchError(f"shared.device is {device!r} but CUDA is not available here; "
                                         "use --set shared.device=cpu")
            for spec in self.config.shared.models:
                direction = getattr(wb.head(spec.name, **self._model_options(spec)), "direction", "encode")
                if direction != self.config.shared.direction:
                    raise WorkbenchError(f"shared model {spec.label or spec.name!r} ({spec.name}) is a {direction} "
                                         f"head, but shared.direction is {self.config.shared.direction}")
        if self.config.reconstruction is not None:
            check_reconstruction_metrics([m.model_dump() for m in self.config.reconstruction.metrics])
            self.codec_encoder()

    def check_recordings(self, plan: Plan) -> None:
        """Once recordings are cached and before features are computed: the split and every ROI named exist."""
        cfg = self.config
        wanted = {*(cfg.rois or []), *(r for r in cfg.decoding.rois if r != "all"),
                  *((r for r in cfg.reconstruction.rois if r != "all") if cfg.reconstruction else ())}
        for subject, path in plan.response_paths.items():
            if self.provides == "rdms":
                rois = sorted({m["roi"] for m in self.store.open(path).attrs["rdms"]})
                missing = sorted(set(cfg.rois or []) - set(rois))
                if missing:
                    raise WorkbenchError(f"{cfg.dataset.name}/{subject} has no RDM of ROI {missing[0]!r}; its RDMs "
                                         f"are of {', '.join(rois)}")
                continue
            meta = self.store.open(path).attrs.get("recording", {})
            splits, rois = list(meta.get("splits", {}).values()), list(meta.get("rois", {}).values())
            if cfg.cv_spec()["scheme"] == "split" and cfg.test_split not in splits:
                raise WorkbenchError(f"{cfg.dataset.name}/{subject} has no split {cfg.test_split!r}; its splits are "
                                     f"{', '.join(splits) or 'none'} (set test_split)")
            missing = sorted(wanted - set(rois))
            if missing:
                raise WorkbenchError(f"{cfg.dataset.name}/{subject} has no ROI {missing[0]!r}; its ROIs are "
                                     f"{', '.join(rois) or 'none'} (or use 'all')")
            if cfg.shared is not None:
                for field, split in (("shared.train_split", cfg.shared.train_split),
                                     ("shared.align.split", cfg.shared.align.split)):
                    if split not in splits:
                        raise WorkbenchError(f"{cfg.dataset.name}/{subject} has no split {split!r} ({field}); its "
                                             f"splits are {', '.join(splits) or 'none'}")
                groups = list(meta.get("trial_groups", {}).values())
                if cfg.shared.session_group not in groups:
                    raise WorkbenchError(f"{cfg.dataset.name}/{subject} labels no trial {cfg.shared.session_group!r} "
                                         f"(shared.session_group); its trial groupings are "
                                         f"{', '.join(groups) or 'none'}, and adaptation needs each trial's session")

    def run(self, executor: str = "inline", workers: int | None = None, reporter: "Reporter | None" = None,
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

    def _run(self, executor: str, workers: int | None, reporter: "Reporter", address: str | None,
             started: float) -> dict[str, Any]:
        plan = self.plan()
        reporter.message(f"sweep {self.config.name}: {len(plan.cells)} cells, {len(plan.subjects)} subject(s), "
                         f"{len(plan.extractions)} encoder(s), store {self.store.url}")
        for index, spec in enumerate(self.config.encoders):
            if getattr(self.encoder(index), "random_weights", False):
                reporter.warning(f"encoder {spec.display!r} ({spec.name}) has random weights, no pretrained "
                                 f"checkpoint; its scores are an untrained-architecture baseline")
        self.cache_recordings(plan)
        self.check_recordings(plan)
        plan = self.plan()  # feature keys follow the stimuli the cached recordings use
        self.extract(plan, reporter)
        self.write_seen_images(plan)
        pending = self.pending_cells(plan)
        computed = 0
        fitted = [c for c in pending if c.kind != "generation"]
        if fitted:
            advance = reporter.progress("fitting cells", len(fitted))
            run_cells = get_executor(executor, workers=workers, address=address)
            # fold-averaged cells read their finished folds, so they run after every other cell
            for phase in ([c for c in fitted if c.fold != "mean"], [c for c in fitted if c.fold == "mean"]):
                computed += self._run_claimed(phase, lambda cells: run_cells(self.store.url, cells), advance)
        generated = [c for c in pending if c.kind == "generation"]
        if generated:  # after the decode cells they read; in this process, where the GPU is
            advance = reporter.progress("generating images", len(generated))
            computed += self._run_claimed(
                generated, lambda cells: ((c, compute_cell(self.store.url, c)) for c in cells), advance)
        with self._hold(manifest_path(self.config.name), "the manifest"):
            self.write_manifest(plan, started)
            table_path = export_table(self.store, self.config.name)
        record_sweep(self.config.name, self.store.url)
        return {"cells": len(plan.cells), "computed": computed, "skipped": len(plan.cells) - computed,
                "wall_time_s": round(time.time() - started, 2), "table": table_path, "store": self.store.url}

    def _run_claimed(self, cells: list[Cell], compute: Callable[[list[Cell]], Iterable[tuple[Cell, dict[str, Any]]]],
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
                    mine.append(cell)
                else:
                    others.append(cell)
            if mine:
                try:
                    for cell, result in compute(mine):
                        self.write_cell(cell, result)
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
