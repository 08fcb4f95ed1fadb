"""Metric cells: each listed layer compared with each ROI without fitting (RSA, CKA, ...), on the test stimuli
of the responses, or with the brain RDMs a dataset gives instead of responses."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from brain_workbench.sdk.analysis import (
    CV,
    Analysis,
    Cell,
    CellResult,
    PlanContext,
    Preparation,
    Store,
    TextTable,
    WorkbenchError,
    bootstrap_rdm_ci,
    bootstrap_stimuli,
    build,
    load_features,
    load_rdms,
    permutation_pvalue,
    permutation_test,
    permutation_test_pairwise,
    prepared_recording,
    table_labels,
)
from brain_workbench_plugins.analyses import common


@dataclass(frozen=True)
class MetricTask:
    """A metric on the test side of a recording."""

    prep: Preparation
    feature_path: str
    metric: Mapping[str, Any]
    seed: int
    permutations: int
    bootstrap: int


@dataclass(frozen=True)
class RDMMetricTask:
    """A metric between the layer's model RDM and each brain RDM (ROI × session) the dataset gave."""

    rdm_path: str
    feature_path: str
    metric: Mapping[str, Any]
    rois: tuple[str, ...] | None
    seed: int
    permutations: int
    bootstrap: int


def rdm_metric(spec: Mapping[str, Any]) -> Any:
    """The metric of a cell on given RDMs; only metrics that compare with RDMs (``compare_to_rdm``) can."""
    metric = build("metric", spec["name"], **spec["options"])
    if not callable(getattr(metric, "compare_to_rdm", None)):
        raise WorkbenchError(f"metric {spec['name']!r} cannot compare a model with given brain RDMs (it has no "
                             "compare_to_rdm); use rsa on a dataset that provides RDMs")
    return metric


class MetricAnalysis(Analysis):
    """``metrics:`` on every listed layer of every encoder."""

    name = "metric"
    version = "1"
    summary_value = "value"
    code_modules = ("brain_workbench_plugins.analyses.metric", "brain_workbench_plugins.analyses.common")
    id_columns = ("session", "n_stimuli", "brain_distance")
    score_columns = ("null_value_95", "p_permutation", "q_fdr", "ci_low", "ci_high", "peak_time", "peak_value")

    def validate(self, config: Any, dataset: Any, registry: Any) -> None:
        if dataset.provides == "rdms" and not config.metrics:
            raise WorkbenchError(f"dataset {config.dataset.name!r} provides brain RDMs: add metrics (rsa) to compare "
                                 "the encoders with them")
        for spec in config.metrics:
            if dataset.provides == "rdms":
                rdm_metric(spec.model_dump())
            else:
                registry.create("metric", spec.name, **spec.options)

    def plan(self, context: PlanContext) -> list[Cell]:
        cfg = context.config
        rdms = context.dataset.provides == "rdms"
        if rdms and not cfg.metrics:
            raise WorkbenchError(f"dataset {cfg.dataset.name!r} provides brain RDMs: add metrics (rsa) to compare "
                                 "the encoders with them")
        cv = cfg.cv_spec()
        prep = {"average_repetitions": cfg.average_repetitions, "test_split": cv["split"], "rois": cfg.rois,
                "standardize_features": True}
        keyed = prep if cv["scheme"] == "split" else {**prep, "cv": {"scheme": "all"}}
        scheme = None if cv["scheme"] == "split" else CV(scheme="all")
        stats = {"seed": cfg.seed, "permutations": cfg.permutations, "bootstrap": cfg.bootstrap}
        rois = tuple(cfg.rois) if cfg.rois else None
        labels = table_labels(cfg.metrics)
        cells = []
        for encoder in context.encoders:
            for subject in context.subjects:
                path = context.response_path(subject)
                for layer in encoder.listed:
                    fpath = encoder.feature_path(layer)
                    for index, spec in enumerate(cfg.metrics):
                        dump = common.spec(spec)
                        if rdms:
                            key = self.cell_key(subject, "m", context.dataset.fingerprint, subject, "rdms", cfg.rois,
                                                encoder.key, layer, dump, stats)
                            task: Any = RDMMetricTask(path, fpath, dump, rois, cfg.seed, cfg.permutations,
                                                      cfg.bootstrap or 0)
                        else:
                            key = self.cell_key(subject, "m", context.dataset.fingerprint, subject, keyed, encoder.key,
                                                layer, dump, stats)
                            task = MetricTask(Preparation(path, cfg.average_repetitions, cv["split"], rois, scheme,
                                                          None), fpath, dump, cfg.seed, cfg.permutations,
                                              cfg.bootstrap or 0)
                        cells.append(Cell(key=key, analysis=self.name, subject=subject, model=encoder.label,
                                          model_name=encoder.name, layer=layer, depth=encoder.depth(layer),
                                          label=labels[index], head=spec.name, feature_path=fpath,
                                          response_path=path, reads=(path, fpath), task=task))
        return cells

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        if isinstance(cell.task, RDMMetricTask):
            return compare_with_rdms(store_url, cell)
        return compare_with_responses(store_url, cell)

    def scores(self, rows: Any) -> list[str]:
        names = rows["score_name"].fillna(rows["analysis"]) if "score_name" in rows.columns else rows["analysis"]
        named = [str(n) for n in dict.fromkeys(names) if n in rows.columns and rows[n].notna().any()]
        return named + super().scores(rows)

    def table(self, rows: Any, sweep: str, value: str) -> list[TextTable]:
        sessions = "session" in rows and rows["session"].notna().any()
        out = []
        for facet, part in rows.groupby(["analysis", "session"] if sessions else ["analysis"], sort=False,
                                        dropna=False):
            facet = facet if isinstance(facet, tuple) else (facet,)
            what = f"{facet[0]}, session {facet[1]}" if sessions and facet[1] == facet[1] else facet[0]
            out.append(common.pivot(part, "value", f"{sweep}: {what} (mean over subjects, no fitting)"))
        return out

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        facets = ["analysis", "session"] if "session" in rows and rows["session"].notna().any() else ["analysis"]
        paths = []
        subjects, sem = common.over_subjects(rows)
        for facet, part in rows.groupby(facets, sort=False, dropna=False):
            facet = facet if isinstance(facet, tuple) else (facet,)
            label, session = facet[0], facet[1] if len(facets) > 1 else None
            name = label if session is None or session != session else f"{label}_{session}"
            what = label if name == label else f"{label}, session {session}"
            paths.append(kit.draw(f"layers_{kit.file_label(name)}.png", sorted(part["cell"].unique().tolist()),
                                  lambda p, part=part, what=what: kit.plot_layer_profiles(
                                      part, "value", title=f"{kit.sweep}: {what} per layer (no fitting)",
                                      output_file=p),
                                  f"{what} between each layer's representation of the test stimuli and each ROI's "
                                  f"responses, computed without fitting, against relative layer depth, averaged over "
                                  f"{subjects}{sem}."))
        return paths


def _pairwise_form(metric: Any, X: np.ndarray) -> np.ndarray | None:
    """The metric's stimulus × stimulus form of X, when it offers one (see ``RSA.pairwise_form``)."""
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


def compare_with_responses(store_url: str, cell: Cell) -> CellResult:
    """Compare the layer's features with each ROI's responses on the test stimuli (no fitting).

    Time-resolved responses are compared per time point; the row keeps the mean over time and the peak.
    With ``permutations`` the stimulus labels of the model side are shuffled for a null (p-value one-sided
    towards more similar: greater for similarities, smaller for distances); with ``bootstrap`` the
    stimuli are resampled for a 95% percentile interval.
    """
    started = time.time()
    task: MetricTask = cell.task
    data = prepared_recording(store_url, task.prep)
    spec = task.metric
    metric = build("metric", spec["name"], **spec["options"])
    X = load_features(Store(store_url), task.feature_path, data["test_ids"]).astype(np.float64)
    n_units, n_times = data["n_units"], data["n_times"]
    Y = data["Y_test"].reshape(len(X), n_units, n_times)
    rois = {"all": np.ones(n_units * n_times, dtype=bool), **data["rois"]}
    alternative = "less" if metric.kind == "distance" else "greater"
    X_form = _pairwise_form(metric, X) if task.permutations else None
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
        if task.permutations:
            result = _metric_permutations(metric, statistic, X_form, X, Y_roi, task.permutations, task.seed + i,
                                          alternative)
            row["null_value_95"] = float(np.quantile(result.null, 0.05 if alternative == "less" else 0.95))
            row["p_permutation"] = float(result.pvalue)
        if task.bootstrap:
            ci = bootstrap_stimuli(statistic, X, Y_roi, n_boot=task.bootstrap, seed=task.seed + i)
            row["ci_low"], row["ci_high"] = float(ci.low), float(ci.high)
        if n_times > 1:
            row["peak_time"] = float(data["times"][int(np.argmax(course))])
            row["peak_value"] = float(course.max())
        summary.append(row)
    return CellResult(tuple(summary), int(len(X)), round(time.time() - started, 3))


def compare_with_rdms(store_url: str, cell: Cell) -> CellResult:
    """Compare the layer's model RDM with each brain RDM the dataset gave for the subject (ROI × session).

    With ``permutations`` the stimulus labels of the brain RDM are permuted (rows and columns together,
    a Mantel test; p one-sided towards more similar); with ``bootstrap`` stimuli are resampled, pairs of
    a stimulus with its own copy dropped, for a 95% percentile interval.
    """
    started = time.time()
    task: RDMMetricTask = cell.task
    store = Store(store_url, mode="r")
    metric = rdm_metric(task.metric)
    summary = []
    n_test = 0
    for i, given in enumerate(load_rdms(store, task.rdm_path)):
        if task.rois and given.roi not in task.rois:
            continue
        X = load_features(store, task.feature_path, given.stimulus_ids).astype(np.float64)
        model = metric.model_rdm(X)
        value = float(metric.compare_given(model, given.rdm))
        row: dict[str, Any] = {"roi": given.roi, "n_units": None, "value": value, "metric_kind": metric.kind,
                               "score_name": str(getattr(metric, "score_name", task.metric["name"])),
                               "n_stimuli": given.n_stimuli, "brain_distance": given.distance}
        if given.session is not None:
            row["session"] = given.session
        alternative = "less" if metric.kind == "distance" else "greater"
        if task.permutations:
            rng = np.random.default_rng(task.seed + i)
            square = given.square()
            null = np.empty(task.permutations)
            for k in range(len(null)):
                perm = rng.permutation(given.n_stimuli)
                null[k] = metric.compare_given(model, square[np.ix_(perm, perm)])
            row["null_value_95"] = float(np.quantile(null, 0.05 if alternative == "less" else 0.95))
            row["p_permutation"] = permutation_pvalue(value, null, alternative)
        if task.bootstrap:
            ci = bootstrap_rdm_ci(metric.transformed(model), metric.transformed(given.rdm),
                                  metric.compare_dissimilarities, n_boot=task.bootstrap, seed=task.seed + i)
            row["ci_low"], row["ci_high"] = float(ci.low), float(ci.high)
        summary.append(row)
        n_test = max(n_test, given.n_stimuli)
    if not summary:
        raise WorkbenchError(f"no brain RDM of {cell.subject} is in ROIs {', '.join(task.rois or [])}")
    return CellResult(tuple(summary), n_test, round(time.time() - started, 3))
