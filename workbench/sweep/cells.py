"""Sweep cells: what one unit of work is, and its computation (runs in workers, returns plain data).

A *cell* is dataset × subject × encoder × layer × head (or metric). Workers only compute; the
coordinating process writes results (see :mod:`workbench.sweep.runner`).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import workbench as wb
from workbench.features import load_features
from workbench.scoring import normalize_by_ceiling, pearson_per_unit, r2_per_unit
from workbench.stats import permutation_pvalue
from workbench.store import Store, load_recording
from workbench.paths import result_path
from workbench.types import Recording, WorkbenchError, digest

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
    kind: str = "encoding"  # encoding (features → units) | decoding (units → features) | metric (no fitting)
    task: dict[str, Any] = field(hash=False, compare=False, default_factory=dict)

    def result_path(self, sweep: str) -> str:
        return result_path(sweep, self.key)


@functools.lru_cache(maxsize=4)
def _prepared_recording(store_url: str, path: str, prep_key: str, average: bool, test_split: str,
                        rois: tuple[str, ...] | None) -> dict[str, Any]:
    rec = load_recording(Store(store_url, mode="r"), path)
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


def decoding_inputs(data: dict[str, Any], roi: str, time_window: list[float] | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Train and test brain patterns of one unit set (all units or an ROI; one time window or all times)."""
    n_units, n_times = data["n_units"], data["n_times"]
    if roi == "all":
        units = np.ones(n_units, dtype=bool)
    elif roi in data["rois"]:
        units = data["rois"][roi].reshape(n_units, n_times)[:, 0]
    else:
        raise WorkbenchError(f"cannot decode from ROI {roi!r}: the recording's ROIs are "
                             f"{', '.join(data['rois']) or 'none'} (or use 'all')")
    parts = []
    for Y in (data["Y_train"], data["Y_test"]):
        Y = Y.reshape(len(Y), n_units, n_times)[:, units]
        if time_window is not None:
            if n_times == 1:
                raise WorkbenchError("decoding.time_windows needs time-resolved responses (M/EEG)")
            t = np.asarray(data["times"])
            pick = (t >= time_window[0]) & (t <= time_window[1])
            if not pick.any():
                raise WorkbenchError(f"time window {time_window} holds no sample; the recording spans "
                                     f"{t.min():.3f}–{t.max():.3f} s")
            Y = Y[:, :, pick].mean(axis=2)
        parts.append(Y.reshape(len(Y), -1))
    return parts[0], parts[1], int(units.sum())


def compute_decode_cell(store_url: str, cell: Cell) -> dict[str, Any]:
    """Fit a decode head brain → layer features on the training split; score retrieval on the test split."""
    from workbench.decoding import decoding_scores

    started = time.time()
    task = cell.task
    spec = task["decoding"]
    data = _cell_data(store_url, task)
    store = Store(store_url)
    B_train, B_test, n_units = decoding_inputs(data, task["roi"], task["time_window"])
    mean, sd = B_train.mean(axis=0), B_train.std(axis=0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    B_train, B_test = (B_train - mean) / sd, (B_test - mean) / sd
    F_train = load_features(store, task["feature_path"], data["train_ids"]).astype(np.float32)
    F_test = load_features(store, task["feature_path"], data["test_ids"]).astype(np.float32)
    f_mean, f_sd = np.zeros(F_train.shape[1], np.float32), np.ones(F_train.shape[1], np.float32)
    if spec["standardize_targets"]:
        f_mean, f_sd = F_train.mean(axis=0), F_train.std(axis=0)
        f_sd = np.where(f_sd > 1e-8, f_sd, 1.0)
        F_train, F_test = (F_train - f_mean) / f_sd, (F_test - f_mean) / f_sd
    head = wb.head(task["head"]["name"], **task["head"]["options"])
    head.fit(B_train, F_train)
    pred = np.asarray(head.predict(B_test), dtype=np.float32).reshape(len(F_test), -1)
    score = pearson_per_unit(F_test, pred).astype(np.float32)
    scores = decoding_scores(pred, F_test, spec["top_k"], spec["n_way"], spec["n_subsets"], task["permutations"],
                             task["seed"], spec["similarity"])
    row: dict[str, Any] = {"roi": task["roi"], "n_units": n_units, "mean_r": float(np.nanmean(score)),
                           "median_r": float(np.nanmedian(score))}
    if task["time_window"] is not None:
        row["time_window"] = f"{task['time_window'][0]:g}–{task['time_window'][1]:g} s"
    for name, values in scores.items():
        row[name] = values["value"]
        row[f"chance_{name}"] = values["chance"]
        if "p_permutation" in values:
            row[f"p_{name}"] = values["p_permutation"]
    result: dict[str, Any] = {"score": score}
    if spec["keep_predictions"]:
        result["prediction"] = (pred * f_sd + f_mean).astype(np.float32)  # in the features' own units
        result["test_ids"] = np.asarray(data["test_ids"], dtype=str)
    result.update(rois=[row], n_test=int(len(F_test)), timing_s=round(time.time() - started, 3))
    return result


def compute_encoding_cell(store_url: str, cell: Cell) -> dict[str, Any]:
    """Fit the encoding head of one cell on the training split and score it per unit on the test split."""
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
            row["p_permutation"] = permutation_pvalue(observed, null)
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
