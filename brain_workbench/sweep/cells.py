"""Sweep cells: what one unit of work is, and its computation (runs in workers, returns plain data).

A *cell* is dataset × subject × encoder × layer × head (or metric). Workers only compute; the
coordinating process writes results (see :mod:`brain_workbench.sweep.runner`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
import tracemalloc
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import brain_workbench as wb
from brain_workbench.store.features import load_features
from brain_workbench.numerics.scoring import normalize_by_ceiling, pearson_per_unit, r2_per_unit, similarity_matrix
from brain_workbench.numerics.stats import (
    bootstrap_ci, bootstrap_rdm_ci, bootstrap_stimuli, permutation_pvalue, permutation_test,
    permutation_test_pairwise,
)
from brain_workbench.store import Store, load_rdms, load_recording
from brain_workbench.sweep.folds import inner_labels, test_mask
from brain_workbench.store.paths import result_path
from brain_workbench.types import Recording, WorkbenchError

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
    analysis: str = ""  # the head or metric as tables name it (its label, or its name numbered when repeated)
    fold: str = ""  # cross-validated encoding: the fold index, or "mean" for the fold-averaged cell
    task: dict[str, Any] = field(hash=False, compare=False, default_factory=dict)

    def result_path(self, sweep: str) -> str:
        return result_path(sweep, self.key)


@functools.lru_cache(maxsize=4)
def _prepared_recording(store_url: str, path: str, prep_json: str, fold: int) -> dict[str, Any]:
    prep = json.loads(prep_json)
    rec = load_recording(Store(store_url, mode="r"), path)
    cv = prep.get("cv")
    if cv is None or (cv["scheme"] == "split" and not cv.get("inner_group")):
        return prepare_recording(rec, prep["average_repetitions"], prep["test_split"], prep["rois"],
                                 need_training=fold >= 0)
    return prepare_fold(rec, prep["average_repetitions"], prep["rois"], cv, fold)


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
        "times": test.times,
    }


def permutation_null(Y: np.ndarray, pred: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Mean Pearson r over units when test rows of the prediction are shuffled (n × 1 values)."""
    rng = np.random.default_rng(seed)
    return np.array([pearson_per_unit(Y, pred[rng.permutation(len(pred))]).mean() for _ in range(n)])


def cell_data(store_url: str, task: dict[str, Any], test_only: bool = False) -> dict[str, Any]:
    """The cell's prepared responses (``test_only``: metric cells, which need no training side; fold -1)."""
    return _prepared_recording(store_url, task["response_path"], json.dumps(task["prep"], sort_keys=True),
                               -1 if test_only else int(task.get("fold") or 0))


def _pairwise_form(metric: Any, X: np.ndarray) -> np.ndarray | None:
    """The metric's stimulus × stimulus form of X, when it offers one (see :meth:`RSA.pairwise_form`)."""
    form = getattr(metric, "pairwise_form", None)
    return None if form is None or not hasattr(metric, "compare_pairwise") else form(X)


def _metric_permutations(metric: Any, statistic: Callable[[np.ndarray, np.ndarray], float], X_form: np.ndarray | None,
                         X: np.ndarray, Y: np.ndarray, n: int, seed: int, alternative: str) -> Any:
    """Stimulus-permutation null of a metric cell: from pairwise forms when the metric has them (each
    permutation a gather, not a recomputation), else by recomputing ``statistic`` per permutation."""
    if X_form is not None:
        Y_forms = [metric.pairwise_form(Y[:, :, t]) for t in range(Y.shape[2])]
        if all(f is not None for f in Y_forms):
            return permutation_test_pairwise(metric.compare_pairwise, X_form, Y_forms, n_permutations=n, seed=seed,
                                             alternative=alternative)
    return permutation_test(statistic, X, Y, n_permutations=n, seed=seed, alternative=alternative)


def compute_metric_cell(store_url: str, cell: Cell) -> dict[str, Any]:
    """Compare the layer's features with each ROI's responses on the test stimuli (no fitting).

    Time-resolved responses are compared per time point; the row keeps the mean over time and the peak.
    With ``permutations`` the stimulus labels of the model side are shuffled for a null (p-value one-sided
    towards more similar: greater for similarities, smaller for distances); with ``bootstrap`` the
    stimuli are resampled for a 95% percentile interval.
    """
    started = time.time()
    task = cell.task
    data = cell_data(store_url, task, test_only=True)
    spec = task["metric"]
    metric = wb.metric(spec["name"], **spec["options"])
    X = load_features(Store(store_url), task["feature_path"], data["test_ids"]).astype(np.float64)
    n_units, n_times = data["n_units"], data["n_times"]
    Y = data["Y_test"].reshape(len(X), n_units, n_times)
    rois = {"all": np.ones(n_units * n_times, dtype=bool), **data["rois"]}
    alternative = "less" if metric.kind == "distance" else "greater"
    X_form = _pairwise_form(metric, X) if task.get("permutations") else None
    summary = []
    for i, (name, mask) in enumerate(rois.items()):
        units = mask.reshape(n_units, n_times)[:, 0]
        if not units.any():
            continue
        Y_roi = Y[:, units]
        course = np.array([float(metric.compare(X, Y_roi[:, :, t])) for t in range(n_times)])
        row = {"roi": name, "n_units": int(units.sum()), "value": float(course.mean()), "metric_kind": metric.kind,
               "score_name": str(getattr(metric, "score_name", spec["name"]))}
        statistic = lambda A, B: float(np.mean([metric.compare(A, B[:, :, t]) for t in range(n_times)]))  # noqa: E731
        if task.get("permutations"):
            result = _metric_permutations(metric, statistic, X_form, X, Y_roi, task["permutations"],
                                          task["seed"] + i, alternative)
            row["null_value_95"] = float(np.quantile(result.null, 0.05 if alternative == "less" else 0.95))
            row["p_permutation"] = float(result.pvalue)
        if task.get("bootstrap"):
            ci = bootstrap_stimuli(statistic, X, Y_roi, n_boot=task["bootstrap"], seed=task["seed"] + i)
            row["ci_low"], row["ci_high"] = float(ci.low), float(ci.high)
        if n_times > 1:
            row["peak_time"] = float(data["times"][int(np.argmax(course))])
            row["peak_value"] = float(course.max())
        summary.append(row)
    return {"rois": summary, "n_test": int(len(X)), "timing_s": round(time.time() - started, 3)}


def rdm_metric(spec: dict[str, Any]) -> Any:
    """The metric of a cell on given RDMs; only metrics that compare with RDMs (``compare_to_rdm``) can."""
    metric = wb.metric(spec["name"], **spec["options"])
    if not callable(getattr(metric, "compare_to_rdm", None)):
        raise WorkbenchError(f"metric {spec['name']!r} cannot compare a model with given brain RDMs (it has no "
                             "compare_to_rdm); use rsa on a dataset that provides RDMs")
    return metric


def compute_rdm_metric_cell(store_url: str, cell: Cell) -> dict[str, Any]:
    """Compare the layer's model RDM with each brain RDM the dataset gave for the subject (ROI × session).

    With ``permutations`` the stimulus labels of the brain RDM are permuted (rows and columns together,
    a Mantel test; p one-sided towards more similar); with ``bootstrap`` stimuli are resampled, pairs of
    a stimulus with its own copy dropped, for a 95% percentile interval.
    """
    started = time.time()
    task = cell.task
    store = Store(store_url, mode="r")
    metric = rdm_metric(task["metric"])
    wanted = task.get("rois")
    summary = []
    n_test = 0
    for i, given in enumerate(load_rdms(store, task["rdm_path"])):
        if wanted and given.roi not in wanted:
            continue
        X = load_features(store, task["feature_path"], given.stimulus_ids).astype(np.float64)
        model = metric.model_rdm(X)
        value = float(metric.compare_given(model, given.rdm))
        row: dict[str, Any] = {"roi": given.roi, "n_units": None, "value": value, "metric_kind": metric.kind,
                               "score_name": str(getattr(metric, "score_name", task["metric"]["name"])),
                               "n_stimuli": given.n_stimuli, "brain_distance": given.distance}
        if given.session is not None:
            row["session"] = given.session
        alternative = "less" if metric.kind == "distance" else "greater"
        if task.get("permutations"):
            rng = np.random.default_rng(task["seed"] + i)
            square = given.square()
            null = np.empty(task["permutations"])
            for k in range(len(null)):
                perm = rng.permutation(given.n_stimuli)
                null[k] = metric.compare_given(model, square[np.ix_(perm, perm)])
            row["null_value_95"] = float(np.quantile(null, 0.05 if alternative == "less" else 0.95))
            row["p_permutation"] = permutation_pvalue(value, null, alternative)
        if task.get("bootstrap"):
            ci = bootstrap_rdm_ci(model, given.rdm, metric.compare_dissimilarities, n_boot=task["bootstrap"],
                                  seed=task["seed"] + i)
            row["ci_low"], row["ci_high"] = float(ci.low), float(ci.high)
        summary.append(row)
        n_test = max(n_test, given.n_stimuli)
    if not summary:
        raise WorkbenchError(f"no brain RDM of {cell.subject} is in ROIs {', '.join(wanted or [])}")
    return {"rois": summary, "n_test": n_test, "timing_s": round(time.time() - started, 3)}


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
    from brain_workbench.numerics.decoding import decoding_scores

    started = time.time()
    task = cell.task
    spec = task["decoding"]
    data = cell_data(store_url, task)
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
        result["similarity"] = similarity_matrix(pred, F_test, spec["similarity"]).astype(np.float32)
    result.update(rois=[row], n_test=int(len(F_test)), timing_s=round(time.time() - started, 3))
    return result


def _proc_memory_kib() -> dict[str, int] | None:
    """Linux: the process's resident set and its peak since the last reset (``/proc/self/status``)."""
    try:
        with open("/proc/self/status") as fh:
            values = {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in fh)
                      if k in ("VmHWM", "VmRSS")}
    except OSError:
        return None
    return values if len(values) == 2 else None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ≥ 4.0: ``5`` into ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return _proc_memory_kib() is not None


def measured(compute: Callable[[str, Cell], dict[str, Any]], store_url: str, cell: Cell) -> dict[str, Any]:
    """``compute(store_url, cell)``, its result carrying the cell's own peak memory.

    On Linux the peak is the rise of the process's peak RSS over the cell (the mark is reset first:
    no overhead); elsewhere it is tracemalloc's peak of traced allocations (about 15% slower cells).
    ``peak_memory_source`` says which.
    """
    if _reset_peak_rss():
        before = _proc_memory_kib()["VmRSS"]
        result = compute(store_url, cell)
        result["peak_memory_mb"] = round(max(_proc_memory_kib()["VmHWM"] - before, 0) / 1024, 3)
        result["peak_memory_source"] = "rss"
        return result
    tracing = not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    try:
        result = compute(store_url, cell)
        result["peak_memory_mb"] = round((tracemalloc.get_traced_memory()[1] - start) / 2**20, 3)
        result["peak_memory_source"] = "tracemalloc"
    finally:
        if tracing:
            tracemalloc.stop()
    return result


def compute_encoding_cell(store_url: str, cell: Cell) -> dict[str, Any]:
    """Fit the head of one cell (one fold) on its training rows and score it on its test rows."""
    started = time.time()
    task = cell.task
    prep = task["prep"]
    data = cell_data(store_url, task)
    store = Store(store_url)
    X_train = load_features(store, task["feature_path"], data["train_ids"]).astype(np.float32)
    X_test = load_features(store, task["feature_path"], data["test_ids"]).astype(np.float32)
    if prep.get("standardize_features", True):
        mean = X_train.mean(axis=0)
        sd = X_train.std(axis=0)
        sd = np.where(sd > 1e-8, sd, 1.0)
        X_train = (X_train - mean) / sd
        X_test = (X_test - mean) / sd
    options = dict(task["head"]["options"])
    if "inner_groups" in data:
        options["cv"] = data["inner_groups"]
    head = wb.head(task["head"]["name"], **options)
    head.fit(X_train, data["Y_train"])
    fit_s = time.time() - started
    pred = np.asarray(head.predict(X_test), dtype=np.float32)
    Y_test = data["Y_test"]
    score = pearson_per_unit(Y_test, pred).astype(np.float32)
    result: dict[str, Any] = {"score": score, "r2": r2_per_unit(Y_test, pred).astype(np.float32)}
    if data["noise_ceiling"] is not None and len(data["noise_ceiling"]) == len(score):
        result["score_normalized"] = normalize_by_ceiling(score, data["noise_ceiling"]).astype(np.float32)
    alphas = getattr(head, "best_alphas_", None)
    if alphas is not None and np.size(alphas) == len(score):
        result["alpha"] = np.asarray(alphas, dtype=np.float32).reshape(-1)
    if (prep.get("cv") or {}).get("keep_predictions"):
        result["prediction"] = pred
        result["test_ids"] = np.asarray(data["test_ids"], dtype=str)
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
        if task.get("bootstrap"):
            ci = bootstrap_ci(lambda a, b: float(pearson_per_unit(a, b).mean()), Y_test[:, mask], pred[:, mask],
                              n_boot=task["bootstrap"], seed=task["seed"] + i)
            row["ci_low"], row["ci_high"] = float(ci.low), float(ci.high)
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
    result["fit_s"] = round(fit_s, 3)
    result["timing_s"] = round(time.time() - started, 3)
    return result


FOLD_AVERAGED = ("score", "r2", "score_normalized")


def compute_fold_mean_cell(store_url: str, cell: Cell) -> dict[str, Any]:
    """Fold-averaged per-unit scores of a cross-validated cell, read from its finished fold cells.

    Each ROI row averages the folds' rows (``sem_folds`` is their standard error); with
    ``keep_predictions`` the folds' test predictions are gathered as out-of-fold predictions.
    """
    started = time.time()
    store = Store(store_url, mode="r")
    readers = [store.open(path) for path in cell.task["fold_paths"]]
    result: dict[str, Any] = {}
    for name in FOLD_AVERAGED:
        if all(name in r.names() for r in readers):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # units NaN in every fold stay NaN
                result[name] = np.nanmean(np.stack([r[name] for r in readers]), axis=0).astype(np.float32)
    if readers and "times" in readers[0].names():
        result["times"] = readers[0]["times"]
    if all("prediction" in r.names() for r in readers):
        result["prediction"] = np.concatenate([r["prediction"] for r in readers])
        result["test_ids"] = np.concatenate([r["test_ids"] for r in readers]).astype(str)
        result["fold"] = np.concatenate([np.full(len(r["test_ids"]), i, dtype=np.int32)
                                         for i, r in enumerate(readers)])
    by_roi: dict[str, list[dict[str, Any]]] = {}
    for reader in readers:
        for row in reader.attrs["rois"]:
            by_roi.setdefault(row["roi"], []).append(row)
    summary = []
    for name, rows in by_roi.items():
        row: dict[str, Any] = {"roi": name, "n_units": rows[0]["n_units"], "n_folds": len(rows)}
        for column in ("mean_r", "median_r", "mean_r_normalized", "peak_mean_r"):
            values = np.array([r[column] for r in rows if r.get(column) is not None], dtype=float)
            if len(values):
                row[column] = float(values.mean())
        values = np.array([r["mean_r"] for r in rows], dtype=float)
        row["sem_folds"] = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
        summary.append(row)
    result["rois"] = summary
    result["n_test"] = int(sum(r.attrs["n_test"] for r in readers))
    result["fit_s"] = float(sum(r.attrs.get("fit_s", 0.0) for r in readers))
    result["timing_s"] = round(time.time() - started, 3)
    return result
