"""Plan and run an alignment sweep: cache responses and features, fit a head per cell, store scores.

A *cell* is dataset × subject × encoder × layer × head. Its key hashes everything that changes its
numbers (dataset fingerprint, subject, preprocessing, encoder fingerprint and stimuli, layer, head
and options, seed), so a rerun of the same config skips every finished cell and an edited config
recomputes only the cells it changed. Workers only compute; the coordinating process writes.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

import workbench as wb
from workbench.features import encoder_key, extract_features, load_features
from workbench.scoring import normalize_by_ceiling, pearson_per_unit, r2_per_unit
from workbench.store import ArraySpec, Store, open_store, safe_name
from workbench.sweep.config import SweepConfig
from workbench.types import Recording, StimulusSet, WorkbenchError, digest, resolve_layers

MANIFEST = "manifest"
CELL_CODE_VERSION = "cell-v1"


@dataclass(frozen=True)
class Cell:
    """One unit of work; ``task`` is everything a worker needs (plain data, picklable)."""

    key: str
    subject: str
    encoder: str
    encoder_name: str
    layer: str
    depth: float
    head: str
    feature_path: str
    response_path: str
    kind: str = "encoding"  # encoding (a fitted head) | metric (a comparison without fitting)
    task: dict[str, Any] = field(hash=False, compare=False, default_factory=dict)

    def result_path(self, sweep: str) -> str:
        return f"results/{sweep}/{self.key}"


@dataclass
class Plan:
    config: SweepConfig
    cells: list[Cell]
    extractions: list[dict[str, Any]]
    subjects: list[str]
    response_paths: dict[str, str]


def response_path(dataset_name: str, dataset_fingerprint: str, subject: str) -> str:
    return f"responses/{safe_name(dataset_name)}/{safe_name(subject)}-{digest(dataset_fingerprint, subject)}"


class Sweep:
    """Runs a :class:`SweepConfig` against a store with a chosen executor."""

    def __init__(self, config: SweepConfig, store: Store | str | None = None) -> None:
        self.config = config
        self.store = store if isinstance(store, Store) else open_store(store or config.store)
        self.dataset = wb.dataset(config.dataset.name, **config.dataset.options)
        self._encoders: dict[int, Any] = {}

    # ---- planning --------------------------------------------------------------------------
    def encoder(self, index: int) -> Any:
        if index not in self._encoders:
            spec = self.config.encoders[index]
            self._encoders[index] = wb.encoder(spec.name, **spec.options)
        return self._encoders[index]

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
        paths = [response_path(self.config.dataset.name, self.dataset.fingerprint(), s) for s in self.subjects()]
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
        responses = {s: response_path(cfg.dataset.name, ds_fp, s) for s in subjects}
        prep = {"average_repetitions": cfg.average_repetitions, "test_split": cfg.test_split, "rois": cfg.rois,
                "standardize_features": True}
        cells: list[Cell] = []
        extractions = []
        for e_index, e_spec in enumerate(cfg.encoders):
            enc = self.encoder(e_index)
            stimuli = self.stimuli_for(e_index)
            available = enc.layers()
            layers = resolve_layers(available, e_spec.layers)
            depth = {layer.name: layer.depth for layer in available}
            key = encoder_key(enc, stimuli)
            extractions.append({"index": e_index, "layers": layers, "key": key})
            for subject in subjects:
                for layer in layers:
                    fpath = f"features/{key}/{safe_name(layer)}"
                    for h_index, h_spec in enumerate(cfg.heads):
                        ckey = digest(CELL_CODE_VERSION, ds_fp, subject, prep, key, layer, h_spec.model_dump(),
                                      cfg.seed, cfg.permutations)
                        task = {"response_path": responses[subject], "feature_path": fpath, "head": h_spec.model_dump(),
                                "prep": prep, "seed": cfg.seed, "permutations": cfg.permutations}
                        cells.append(Cell(key=f"{safe_name(subject)}-{ckey}", subject=subject, encoder=e_spec.display,
                                          encoder_name=e_spec.name, layer=layer, depth=float(depth[layer]),
                                          head=h_spec.name, feature_path=fpath, response_path=responses[subject],
                                          task=task))
                    for m_spec in cfg.metrics:
                        ckey = digest(CELL_CODE_VERSION, ds_fp, subject, prep, key, layer, "metric", m_spec.model_dump())
                        task = {"response_path": responses[subject], "feature_path": fpath, "prep": prep,
                                "metric": m_spec.model_dump(), "seed": cfg.seed}
                        cells.append(Cell(key=f"{safe_name(subject)}-m{ckey}", subject=subject, encoder=e_spec.display,
                                          encoder_name=e_spec.name, layer=layer, depth=float(depth[layer]),
                                          head=m_spec.name, feature_path=fpath, response_path=responses[subject],
                                          kind="metric", task=task))
        return Plan(cfg, cells, extractions, subjects, responses)

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
                rec = self.dataset.recording(subject)
                self.store.save_recording(path, rec, attrs={"dataset_fingerprint": self.dataset.fingerprint()})
            if on_subject:
                on_subject(subject)

    def extract(self, plan: Plan, reporter: "Reporter | None" = None) -> None:
        """Extract every pending feature matrix; cached encoders are reported, not re-encoded."""
        reporter = reporter or Reporter()
        for job in plan.extractions:
            spec = self.config.encoders[job["index"]]
            paths = [f"features/{job['key']}/{safe_name(layer)}" for layer in job["layers"]]
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
        path = f"results/{self.config.name}/{MANIFEST}"
        self.store.delete(path)
        keys = np.asarray([c.key for c in plan.cells], dtype=str)
        with self.store.writer(path, {"cells": ArraySpec(keys.shape, "str", blocked=False)}, kind="manifest",
                               attrs={"config": self.config.model_dump(), "sweep": self.config.name}) as w:
            w.put("cells", keys)
            w.finish(config=self.config.model_dump(), seed=self.config.seed, sweep_started=started)

    def run(self, executor: str = "inline", workers: int | None = None, reporter: "Reporter | None" = None,
            address: str | None = None) -> dict[str, Any]:
        """Run every pending piece of the sweep; returns counts and timing."""
        from workbench.sweep.executors import get_executor

        started = time.time()
        reporter = reporter or Reporter()
        plan = self.plan()
        reporter.message(f"sweep {self.config.name}: {len(plan.cells)} cells, {len(plan.subjects)} subject(s), "
                         f"{len(plan.extractions)} encoder(s), store {self.store.url}")
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
        return {"cells": len(plan.cells), "computed": len(pending), "skipped": len(plan.cells) - len(pending),
                "wall_time_s": round(time.time() - started, 2), "table": table_path}


class Reporter:
    """Progress sink; the CLI replaces it with a Rich progress display."""

    def message(self, text: str) -> None:  # noqa: D401 - a sink
        pass

    def progress(self, label: str, total: int) -> Callable[[int], None]:
        return lambda n: None


# ---- the per-cell computation (runs in workers) ---------------------------------------------
@functools.lru_cache(maxsize=4)
def _prepared_recording(store_url: str, path: str, prep_key: str, average: bool, test_split: str,
                        rois: tuple[str, ...] | None) -> dict[str, Any]:
    rec = Store(store_url).load_recording(path)
    return prepare_recording(rec, average, test_split, list(rois) if rois else None)


def prepare_recording(rec: Recording, average: bool, test_split: str, rois: list[str] | None) -> dict[str, Any]:
    """Train/test response matrices in the order of their stimulus ids, plus unit metadata."""
    if rois:
        unknown = [r for r in rois if r not in rec.units.rois]
        if unknown:
            raise WorkbenchError(f"ROI {unknown[0]!r} is not defined for {rec.dataset}/{rec.subject}; "
                                 f"known ROIs: {', '.join(rec.units.rois)}")
        rec = rec.select_units(np.any([rec.units.rois[r] for r in rois], axis=0))
    if test_split not in rec.splits:
        raise WorkbenchError(f"{rec.dataset}/{rec.subject} has no split {test_split!r}; "
                             f"its splits are {', '.join(rec.splits) or 'none'}")
    if average:
        rec = rec.average_repetitions()
    test_ids = set(rec.splits[test_split])
    is_test = np.array([s in test_ids for s in rec.trial_stimulus_ids])
    if is_test.all() or not is_test.any():
        raise WorkbenchError(f"split {test_split!r} of {rec.dataset}/{rec.subject} leaves no training or no test trials")
    responses = rec.responses
    n_times = responses.shape[2] if responses.ndim == 3 else 1
    rois = dict(rec.units.rois)
    noise_ceiling = rec.noise_ceiling
    if responses.ndim == 3:
        # Time-resolved data: every (unit, time) pair becomes a column, unit-major, so one head fit is
        # a per-time-point encoding model; results are reshaped back to units × times.
        responses = responses.reshape(responses.shape[0], -1)
        rois = {k: np.repeat(v, n_times) for k, v in rois.items()}
        noise_ceiling = None if noise_ceiling is None else np.repeat(noise_ceiling, n_times)
    return {
        "train_ids": rec.trial_stimulus_ids[~is_test], "test_ids": rec.trial_stimulus_ids[is_test],
        "Y_train": responses[~is_test].astype(np.float32), "Y_test": responses[is_test].astype(np.float32),
        "noise_ceiling": noise_ceiling, "rois": rois, "n_units": rec.n_units, "n_times": n_times,
        "times": rec.times,
    }


def permutation_null(Y: np.ndarray, pred: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Mean Pearson r over units when test rows of the prediction are shuffled (n × 1 values)."""
    rng = np.random.default_rng(seed)
    return np.array([pearson_per_unit(Y, pred[rng.permutation(len(pred))]).mean() for _ in range(n)])


def _cell_data(store_url: str, task: dict[str, Any]) -> dict[str, Any]:
    prep = task["prep"]
    return _prepared_recording(store_url, task["response_path"], digest(prep), prep["average_repetitions"],
                               prep["test_split"], tuple(prep["rois"]) if prep["rois"] else None)


def compute_metric_cell(store_url: str, cell: Cell) -> dict[str, Any]:
    """Compare the layer's features with each ROI's responses on the test stimuli (no fitting).

    Time-resolved responses are compared per time point; the row keeps the mean over time and the peak.
    """
    started = time.time()
    data = _cell_data(store_url, cell.task)
    spec = cell.task["metric"]
    metric = wb.metric(spec["name"], **spec["options"])
    X = load_features(Store(store_url), cell.task["feature_path"], data["test_ids"]).astype(np.float64)
    n_units, n_times = data["n_units"], data["n_times"]
    Y = data["Y_test"].reshape(len(X), n_units, n_times)
    rois = {"all": np.ones(n_units * n_times, dtype=bool), **data["rois"]}
    summary = []
    for name, mask in rois.items():
        units = mask.reshape(n_units, n_times)[:, 0]
        if not units.any():
            continue
        course = np.array([float(metric.compare(X, Y[:, units, t])) for t in range(n_times)])
        row = {"roi": name, "n_units": int(units.sum()), "value": float(course.mean()), "metric_kind": metric.kind}
        if n_times > 1:
            row["peak_time"] = float(data["times"][int(np.argmax(course))])
            row["peak_value"] = float(course.max())
        summary.append(row)
    return {"rois": summary, "n_test": int(len(X)), "timing_s": round(time.time() - started, 3)}


def compute_cell(store_url: str, cell: Cell) -> dict[str, Any]:
    """Fit the head of one cell on the training split and score it on the test split."""
    if cell.kind == "metric":
        return compute_metric_cell(store_url, cell)
    started = time.time()
    task = cell.task
    prep = task["prep"]
    data = _cell_data(store_url, task)
    store = Store(store_url)
    X_train = load_features(store, task["feature_path"], data["train_ids"]).astype(np.float32)
    X_test = load_features(store, task["feature_path"], data["test_ids"]).astype(np.float32)
    if prep.get("standardize_features", True):
        mean = X_train.mean(axis=0)
        sd = X_train.std(axis=0)
        sd = np.where(sd > 1e-8, sd, 1.0)
        X_train = (X_train - mean) / sd
        X_test = (X_test - mean) / sd
    head = wb.head(task["head"]["name"], **task["head"]["options"])
    head.fit(X_train, data["Y_train"])
    pred = np.asarray(head.predict(X_test), dtype=np.float32)
    Y_test = data["Y_test"]
    score = pearson_per_unit(Y_test, pred).astype(np.float32)
    result: dict[str, Any] = {"score": score, "r2": r2_per_unit(Y_test, pred).astype(np.float32)}
    if data["noise_ceiling"] is not None and len(data["noise_ceiling"]) == len(score):
        result["score_normalized"] = normalize_by_ceiling(score, data["noise_ceiling"]).astype(np.float32)
    alphas = getattr(head, "best_alphas_", None)
    if alphas is not None and np.size(alphas) == len(score):
        result["alpha"] = np.asarray(alphas, dtype=np.float32).reshape(-1)
    rois = {"all": np.ones(len(score), dtype=bool), **data["rois"]}
    summary = []
    for i, (name, mask) in enumerate(rois.items()):
        if not mask.any():
            continue
        observed = float(score[mask].mean())
        row = {"roi": name, "n_units": int(mask.sum()), "mean_r": observed, "median_r": float(np.median(score[mask]))}
        if "score_normalized" in result:
            normalized = result["score_normalized"][mask]
            row["mean_r_normalized"] = float(np.nanmean(normalized)) if np.isfinite(normalized).any() else None
        if task["permutations"] and name != "all":
            null = permutation_null(Y_test[:, mask], pred[:, mask], task["permutations"], task["seed"] + i)
            row["null_mean_r_95"] = float(np.quantile(null, 0.95))
            row["p_permutation"] = float((1 + np.sum(null >= observed)) / (1 + len(null)))
        summary.append(row)
    if data["n_times"] > 1:
        n_units, n_times = data["n_units"], data["n_times"]
        for name in [k for k, v in result.items() if isinstance(v, np.ndarray) and v.shape == (n_units * n_times,)]:
            result[name] = result[name].reshape(n_units, n_times)
        for row in summary:
            mask = rois[row["roi"]].reshape(n_units, n_times)[:, 0]
            course = result["score"][mask].mean(axis=0)
            row["peak_time"] = float(data["times"][int(np.argmax(course))])
            row["peak_mean_r"] = float(course.max())
        result["times"] = np.asarray(data["times"], dtype=np.float64)
    result["rois"] = summary
    result["n_test"] = int(len(Y_test))
    result["timing_s"] = round(time.time() - started, 3)
    return result


# ---- results tables ------------------------------------------------------------------------
def results_table(store: Store, sweep: str):
    """One row per cell × ROI of the sweep's latest run, as a pandas DataFrame.

    ``q_fdr`` is the Benjamini–Hochberg adjusted permutation p-value over every subject × encoder ×
    layer × ROI row of the sweep (the whole-brain ``all`` rows are not part of the family).
    """
    import pandas as pd

    manifest_path = f"results/{sweep}/{MANIFEST}"
    if not store.is_complete(manifest_path):
        known = sorted({e.path.split("/")[1] for e in store.iter_entries("results")}) if store.meta("results") is None and \
            store._group("results") is not None else []
        hint = f"; sweeps in this store: {', '.join(known)}" if known else ""
        raise WorkbenchError(f"no finished sweep {sweep!r} in store {store.url}{hint}")
    keys = store.open(manifest_path)["cells"].astype(str)
    rows = []
    for key in keys:
        path = f"results/{sweep}/{key}"
        if not store.is_complete(path):
            continue
        attrs = store.open(path).attrs
        cell = attrs["cell"]
        for roi in attrs["rois"]:
            rows.append({"sweep": sweep, "dataset": attrs["dataset"], "subject": cell["subject"],
                         "encoder": cell["encoder"], "layer": cell["layer"], "depth": cell["depth"],
                         "kind": cell.get("kind", "encoding"), "head": cell["head"], "cell": key, **roi})
    frame = pd.DataFrame(rows)
    if "p_permutation" in frame.columns:
        from workbench.stats import fdr_bh

        family = frame["roi"] != "all"
        frame["q_fdr"] = np.nan
        frame.loc[family, "q_fdr"] = fdr_bh(frame.loc[family, "p_permutation"].to_numpy(dtype=float))[1]
    return frame


def table_path(store: Store, sweep: str) -> str:
    base = store.url.rstrip("/")
    base = base[:-5] if base.endswith(".zarr") else base
    return f"{base}.tables/{sweep}.parquet"


def export_table(store: Store, sweep: str) -> str:
    """Write the results table as Parquet next to the store (pandas / DuckDB friendly)."""
    import fsspec

    frame = results_table(store, sweep)
    path = table_path(store, sweep)
    fs, target = fsspec.core.url_to_fs(path)
    fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(target, "wb") as fh:
        frame.to_parquet(fh, index=False)
    return path


def load_cell_scores(store: Store, sweep: str, subject: str | None = None, encoder: str | None = None,
                     layer: str | None = None) -> Iterable[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Per-unit arrays of the matching encoding cells of a sweep, with their cell description."""
    keys = store.open(f"results/{sweep}/{MANIFEST}")["cells"].astype(str)
    for key in keys:
        path = f"results/{sweep}/{key}"
        if not store.is_complete(path):
            continue
        reader = store.open(path)
        cell = reader.attrs["cell"]
        if cell.get("kind", "encoding") != "encoding":
            continue
        if (subject and cell["subject"] != subject) or (encoder and cell["encoder"] != encoder) or \
                (layer and cell["layer"] != layer):
            continue
        yield {**cell, "n_test": reader.attrs.get("n_test")}, {name: reader[name] for name in reader.names()}
