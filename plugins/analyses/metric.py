"""Metric cells: each listed layer compared with each ROI without fitting (RSA, CKA, ...), on the test stimuli
of the responses, or with the brain RDMs a dataset gives instead of responses."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from brain_workbench.sdk.analysis import (
    CONSTANT_RTOL,
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
    bootstrap_rdm_ci_fast,
    bootstrap_stimuli,
    build,
    digest,
    given_rdm_noise_ceilings,
    load_features,
    load_rdms,
    permutation_pvalue,
    permutation_test,
    permutation_test_pairwise,
    permutation_test_rdms,
    prepared_recording,
    relative_spread,
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
    categories: tuple[tuple[str, str], ...] | None = None


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
    ceiling_paths: tuple[str, ...] = ()


CEILING_METHODS = {"spearman": "spearman", "pearson": "corr", "cosine": "cosine"}
"""RSA comparisons whose RDM noise ceiling is defined (rsatoolbox's boot_noise_ceiling methods)."""
GROUP_SUBJECTS = ("group",)
"""Subject ids that hold a group RDM rather than a subject's: never part of a noise ceiling over subjects."""


@functools.lru_cache(maxsize=8)
def rdm_ceilings(store_url: str, paths: tuple[str, ...], method: str) -> dict[tuple[str, str | None], tuple[float, float]]:
    """Noise ceiling (lower, upper) of each ROI × session over the subjects' given RDMs (cached per worker)."""
    store = Store(store_url, mode="r")
    return given_rdm_noise_ceilings([r for path in paths for r in load_rdms(store, path)], method)


def ceiling_method(metric: Any) -> str | None:
    """The noise-ceiling method matching an RSA metric's comparison; None where no ceiling is defined for it (another
    comparison, or an rdm_transform the subjects' RDMs would need first)."""
    if getattr(metric, "rdm_transform", "none") != "none":
        return None
    return CEILING_METHODS.get(str(getattr(metric, "comparison", "")))


def rdm_metric(spec: Mapping[str, Any]) -> Any:
    """The metric of a cell on given RDMs; only metrics that compare with RDMs (``compare_to_rdm``) can."""
    metric = build("metric", spec["name"], **spec["options"])
    if not callable(getattr(metric, "compare_to_rdm", None)):
        raise WorkbenchError(f"metric {spec['name']!r} cannot compare a model with given brain RDMs (it has no "
                             "compare_to_rdm); use rsa on a dataset that provides RDMs")
    return metric


PROPERTY_EXTRAS = ("radius", "dimension", "center_correlation", "participation_ratio", "cross_validated")


def needs_categories(registry: Any, name: str) -> bool:
    """Whether a registered metric's class declares ``needs_categories`` (read from the class, never built)."""
    return bool(getattr(registry.get("metric", name).load(), "needs_categories", False))


def category_pairs(context: PlanContext, modality: str) -> tuple[tuple[str, str], ...]:
    """(stimulus id, category) of the stimuli of a modality, refused when the dataset gives no categories."""
    stimuli = context.stimuli(modality)
    if stimuli.categories is None:
        raise WorkbenchError(f"dataset {context.dataset.name!r} gives its {modality} stimuli no categories, which "
                             "capacity and mmcr need; use a dataset with StimulusSet.categories (demo, things-eeg2)")
    return tuple(zip(stimuli.ids, stimuli.categories))


class MetricAnalysis(Analysis):
    """``metrics:`` on every listed layer of every encoder."""

    name = "metric"
    version = "1"
    summary_value = "value"
    code_modules = ("brain_workbench_plugins.analyses.metric", "brain_workbench_plugins.analyses.common")
    id_columns = ("session", "n_stimuli", "brain_distance", "units_matching")
    score_columns = ("null_value_95", "p_permutation", "q_fdr", "ci_low", "ci_high", "noise_ceiling_lower",
                     "noise_ceiling_upper", "peak_time", "peak_value",
                     "brain_value", "n_units_matched", *(f"{side}_{q}" for q in PROPERTY_EXTRAS
                                                         for side in ("model", "brain")))

    def validate(self, config: Any, dataset: Any, registry: Any) -> None:
        if dataset.provides == "rdms" and not config.metrics:
            raise WorkbenchError(f"dataset {config.dataset.name!r} provides brain RDMs: add metrics (rsa) to compare "
                                 "the encoders with them")
        if dataset.provides == "rdms" and config.cv is not None:
            raise WorkbenchError(f"dataset {config.dataset.name!r} provides brain RDMs, which are compared whole (no "
                                 "training or test stimuli): cv is not applied to them; remove cv")
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
        ceiling_subjects = [s for s in context.subjects if s.lower() not in GROUP_SUBJECTS] if rdms else []
        ceiling_paths = tuple(context.response_path(s) for s in ceiling_subjects) if len(ceiling_subjects) > 1 else ()
        cells = []
        labelled = {}
        for encoder in context.encoders:
            if not rdms and any(needs_categories(context.registry, spec.name) for spec in cfg.metrics):
                labelled[encoder.modality] = category_pairs(context, encoder.modality)
        for encoder in context.encoders:
            for subject in context.subjects:
                path = context.response_path(subject)
                for layer in encoder.listed:
                    fpath = encoder.feature_path(layer)
                    for index, spec in enumerate(cfg.metrics):
                        dump = common.spec(spec)
                        if rdms:
                            key = self.cell_key(subject, "m", context.dataset.fingerprint, subject, "rdms", cfg.rois,
                                                encoder.key, layer, dump, stats, ceiling_paths)
                            task: Any = RDMMetricTask(path, fpath, dump, rois, cfg.seed, cfg.permutations,
                                                      cfg.bootstrap or 0, ceiling_paths)
                        else:
                            cats = labelled.get(encoder.modality) if needs_categories(context.registry,
                                                                                      spec.name) else None
                            extra = () if cats is None else (digest(cats),)
                            key = self.cell_key(subject, "m", context.dataset.fingerprint, subject, keyed, encoder.key,
                                                layer, dump, stats, *extra)
                            task = MetricTask(Preparation(path, cfg.average_repetitions, cv["split"], rois, scheme,
                                                          None), fpath, dump, cfg.seed, cfg.permutations,
                                              cfg.bootstrap or 0, cats)
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
        """One table per metric (and session; a group RDM apart); ``value`` picks another column of the rows
        (``p_permutation``, ``ci_low``...) instead of the metric's value."""
        column = value if value in rows.columns and value != "value" and rows[value].notna().any() else "value"
        out = []
        for _, what, part, over in metric_facets(rows):
            if column != "value":
                out.append(common.pivot(part, column, f"{sweep}: {what}, {column} ({over})"))
                continue
            if "brain_value" in part and part["brain_value"].notna().any():
                out.append(common.pivot(side_by_side(part), "value", f"{sweep}: {what}, a property of each "
                                        f"representation: the layer's value and the ROI's side by side"
                                        f"{matched_note(part)} ({over})"))
                continue
            out.append(common.pivot(part, "value", f"{sweep}: {what} ({over}, no fitting)"))
        return out

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        paths = []
        for name, what, part, _ in metric_facets(rows):
            subjects, sem = common.over_subjects(part)
            if "brain_value" in part and part["brain_value"].notna().any():
                paths.append(_draw_property(kit, name, what, part, subjects, sem))
                continue
            paths.append(kit.draw(f"layers_{kit.file_label(name)}.png", sorted(part["cell"].unique().tolist()),
                                  lambda p, part=part, what=what: kit.plot_layer_profiles(
                                      part, "value", title=f"{kit.sweep}: {what} per layer (no fitting)",
                                      output_file=p),
                                  f"{what} between each layer's representation of the test stimuli and each ROI's "
                                  f"responses, computed without fitting, against relative layer depth, averaged over "
                                  f"{subjects}{sem}{statistics_note(part)}.{ceiling_note(part)}"))
        return paths


def metric_facets(rows: Any) -> list[tuple[str, str, Any, str]]:
    """(file name part, title part, rows, what they average over) per metric and RDM session, with a group RDM
    (subject ``group``) apart from the subjects: a session, the sessions' mean and a group RDM never share a
    line or a table."""
    sessions = "session" in rows and rows["session"].notna().any()
    group = rows["subject"].astype(str).str.lower().isin(GROUP_SUBJECTS).to_numpy()
    out = []
    for facet, part in rows.assign(_group=group).groupby(["analysis", "session", "_group"] if sessions else
                                                         ["analysis", "_group"], sort=False, dropna=False):
        label, is_group = facet[0], bool(facet[-1])
        session = facet[1] if sessions and facet[1] == facet[1] else None
        name = label + (f"_{session}" if session is not None else "") + ("_group" if is_group else "")
        what = label + (f", session {session}" if session is not None else "") + (", group RDM" if is_group else "")
        out.append((name, what, part.drop(columns="_group"), "the group RDM" if is_group else "mean over subjects"))
    return out


def ceiling_note(rows: Any) -> str:
    """A caption's sentence on the noise-ceiling bands, where the rows carry ceilings."""
    if "noise_ceiling_lower" not in rows or not rows["noise_ceiling_lower"].notna().any():
        return ""
    return (" The band in each ROI's colour is the RDM noise ceiling over subjects (lower bound: each subject's RDM "
            "against the others' mean; upper, dotted: against all subjects' mean).")


def statistics_note(part: Any) -> str:
    """What a metric profile's bands show, for its caption."""
    notes = []
    if "null_value_95" in part and part["null_value_95"].notna().any():
        notes.append("the grey band is where a value does not beat the stimulus-permutation null (its 95th "
                     "percentile; 5th for distances)")
    if part["subject"].nunique() == 1 and "ci_low" in part and part["ci_low"].notna().any():
        notes.append("coloured bands are bootstrap 95% confidence intervals")
    return "; " + "; ".join(notes) if notes else ""


def _draw_property(kit: Any, name: str, what: str, part: Any, subjects: str, sem: str) -> Any:
    """A property metric per layer: the layer's value and each ROI's (a flat line across layers) in one panel."""
    pairs = side_by_side(part[part["roi"].astype(str) != "all"])
    model = pairs["roi"].str.endswith(" model")
    if pairs[model].groupby(["encoder", "layer", "subject"])["value"].nunique().max() == 1:
        pairs = pairs[~model | ~pairs[model].duplicated(["encoder", "layer", "subject"])]
        pairs.loc[pairs["roi"].str.endswith(" model"), "roi"] = "model"
    return kit.draw(f"layers_{kit.file_label(name)}.png", sorted(part["cell"].unique().tolist()),
                    lambda p: kit.plot_layer_profiles(pairs, "value", title=f"{kit.sweep}: {what}, layer and ROI "
                                                      "values", output_file=p),
                    f"{what}, a property of each representation, of each layer (\"model\", or \"ROI model\" where "
                    f"the layer is measured at that ROI's matched N{matched_note(part)}) and of each ROI's responses "
                    f"(\"ROI brain\"), "
                    f"against relative layer depth, averaged over {subjects}{sem}.")


def side_by_side(rows: Any) -> Any:
    """Rows of a property metric as two columns per ROI: ``ROI model`` (the layer's value) and ``ROI brain``."""
    import pandas as pd

    last = 2 * len(rows) * (rows["roi"].astype(str) == "all").to_numpy()
    model = rows.assign(roi=rows["roi"].astype(str) + " model", order=2 * np.arange(len(rows)) + last)
    brain = rows.assign(roi=rows["roi"].astype(str) + " brain", value=rows["brain_value"],
                        order=2 * np.arange(len(rows)) + 1 + last)
    return pd.concat([model, brain]).sort_values("order", kind="stable").drop(columns="order")


def matched_note(rows: Any) -> str:
    """How the units were matched, for a property table's title."""
    if "n_units_matched" not in rows or not rows["n_units_matched"].notna().any():
        return ""
    n = sorted({int(v) for v in rows["n_units_matched"].dropna()})
    shown = str(n[0]) if len(n) == 1 else f"{n[0]}–{n[-1]}"
    how = rows["units_matching"].dropna().iloc[0] if "units_matching" in rows else "projection"
    return f", both at N = {shown} units ({how})"


def _bind(metric: Any, task: MetricTask, ids: Any) -> Any:
    """The metric with the rows' stimulus ids and, when the task carries them, their categories."""
    if not callable(getattr(metric, "bind", None)):
        return metric
    categories = None
    if task.categories is not None:
        by_id = dict(task.categories)
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise WorkbenchError(f"{len(missing)} compared stimuli have no category (first: {missing[0]!r})")
        categories = [by_id[i] for i in ids]
    return metric.bind(stimulus_ids=list(ids), categories=categories)


def measure_with_responses(store_url: str, cell: Cell, metric: Any) -> CellResult:
    """A property metric (capacity, MMCR, eigenspectrum) of the layer and of each ROI on the test stimuli, side by
    side; capacity and MMCR at equal numbers of units (the metric's ``units`` or the smaller side's). The
    eigenspectrum of an ROI is cross-validated over two halves of its repetitions (even and odd); a layer has
    one repeat (plain PCA). With ``bootstrap`` the stimuli are resampled for a 95% interval of model − brain;
    a stimulus permutation has no meaning for a property of one representation, so none is drawn."""
    started = time.time()
    task: MetricTask = cell.task
    data = prepared_recording(store_url, task.prep)
    ids = list(data["test_ids"])
    X = load_features(Store(store_url), task.feature_path, ids).astype(np.float64)
    metric = _bind(metric, task, ids)
    n_units, n_times = data["n_units"], data["n_times"]
    Y = data["Y_test"].reshape(len(X), n_units, n_times)
    halves = _repeat_halves(store_url, task, ids) if getattr(metric, "uses_repeats", False) else None
    rois = {"all": np.ones(n_units * n_times, dtype=bool), **data["rois"]}
    matched = getattr(metric, "matches_units", False)
    summary = []
    for i, (name, mask) in enumerate(rois.items()):
        units = mask.reshape(n_units, n_times)[:, 0]
        if not units.any():
            continue
        Y_roi = Y[:, units].reshape(len(X), -1)
        n = (metric.units or min(X.shape[1], Y_roi.shape[1])) if matched else None
        if matched:
            model, brain = metric.measure(X, n), metric.measure(Y_roi, n)
        elif halves is not None:
            A, B = (h[:, units].reshape(len(X), -1) for h in halves)
            model, brain = metric.measure(X), metric.measure(A, B)
        else:
            model, brain = metric.measure(X), metric.measure(Y_roi)
        row: dict[str, Any] = {"roi": name, "n_units": int(units.sum()), "value": float(model[metric.primary]),
                               "brain_value": float(brain[metric.primary]), "metric_kind": "property",
                               "score_name": str(getattr(metric, "score_name", task.metric["name"]))}
        if matched:
            row["n_units_matched"], row["units_matching"] = int(n or 0), str(metric.match)
        for q in PROPERTY_EXTRAS:
            if q in model:
                row[f"model_{q}"], row[f"brain_{q}"] = float(model[q]), float(brain[q])
        if task.bootstrap:
            brain_side = Y_roi if halves is None or matched else np.hstack([A, B])
            ci = _bootstrap_difference(metric, X, brain_side, n, halves is not None and not matched, task.bootstrap,
                                       task.seed + i)
            row["ci_low"], row["ci_high"] = float(ci.low), float(ci.high)
        summary.append(row)
    return CellResult(tuple(summary), int(len(X)), round(time.time() - started, 3))


def _bootstrap_difference(metric: Any, X: np.ndarray, brain: np.ndarray, n: int | None, split_halves: bool,
                          n_boot: int, seed: int) -> Any:
    """Percentile interval of the model's minus the brain's primary value over resampled stimuli; each resample
    carries its rows' categories (a row-index column rides along with X) and, for cvPCA, both repetition halves."""
    categories = list(metric.categories) if getattr(metric, "needs_categories", False) else None
    args = () if n is None else (n,)

    def difference(A: np.ndarray, B: np.ndarray) -> float:
        rows = A[:, -1].astype(int)
        if categories is not None:
            metric.bind(categories=[categories[k] for k in rows])
        brain_value = metric.measure(*np.hsplit(B, 2)) if split_halves else metric.measure(B, *args)
        return float(metric.measure(A[:, :-1], *args)[metric.primary] - brain_value[metric.primary])

    try:
        return bootstrap_stimuli(difference, np.hstack([X, np.arange(len(X))[:, None]]), brain, n_boot=n_boot,
                                 seed=seed)
    finally:
        if categories is not None:
            metric.bind(categories=categories)


def _repeat_halves(store_url: str, task: MetricTask, ids: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Each test stimulus's responses averaged over its even and over its odd repetitions (None without repeats)."""
    import dataclasses

    raw = prepared_recording(store_url, dataclasses.replace(task.prep, average=False))
    trial_ids = np.asarray(raw["test_ids"])
    Y = raw["Y_test"]
    position = {s: k for k, s in enumerate(ids)}
    sums = np.zeros((2, len(ids), Y.shape[1]))
    counts = np.zeros((2, len(ids)))
    seen: dict[str, int] = {}
    for row, s in enumerate(trial_ids):
        if s not in position:
            continue
        half = seen.get(s, 0) % 2
        seen[s] = seen.get(s, 0) + 1
        sums[half, position[s]] += Y[row]
        counts[half, position[s]] += 1
    if counts.min() == 0:
        return None
    A, B = sums / counts[..., None]
    return A, B


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
    if getattr(metric, "scope", "comparison") == "property":
        return measure_with_responses(store_url, cell, metric)
    X = load_features(Store(store_url), task.feature_path, data["test_ids"]).astype(np.float64)
    metric = _bind(metric, task, list(data["test_ids"]))
    n_units, n_times = data["n_units"], data["n_times"]
    Y = data["Y_test"].reshape(len(X), n_units, n_times)
    rois = {"all": np.ones(n_units * n_times, dtype=bool), **data["rois"]}
    score_name = str(getattr(metric, "score_name", spec["name"]))
    left_out = constant_layer(cell, X, [{"roi": name, "n_units": int(mask.reshape(n_units, n_times)[:, 0].sum()),
                                         "metric_kind": metric.kind, "score_name": score_name}
                                        for name, mask in rois.items() if mask.any()], started)
    if left_out is not None:
        return left_out
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


def constant_layer(cell: Cell, X: np.ndarray, rows: list[dict[str, Any]], started: float) -> CellResult | None:
    """A cell whose layer is constant over its stimuli up to rounding: its rows without a value (NaN) and a warning
    saying how many are left out, instead of a value drawn from rounding noise; None for a layer that varies."""
    spread = relative_spread(X)
    if spread > CONSTANT_RTOL:
        return None
    warning = (f"layer {cell.layer!r} is constant over the {len(X)} stimuli (relative spread {spread:.1e} ≤ "
               f"{CONSTANT_RTOL:g}: its differences are rounding noise), so {cell.label} is undefined; its "
               f"{len(rows)} ROI row(s) are left out (value NaN)")
    return CellResult(tuple({**row, "value": float("nan"), "left_out": "constant layer"} for row in rows), len(X),
                      round(time.time() - started, 3), info={"left_out": "constant layer"}, warnings=(warning,))


FAST_NULL = {"spearman": "spearman", "pearson": "pearson"}
"""Comparisons whose permutation null is a gathered inner product of the transformed RDMs (ranks, means and
norms do not change when stimuli are permuted), drawn by ``permutation_test_rdms``."""


def rdm_permutation_null(metric: Any, model: np.ndarray, given: Any, n: int, seed: int) -> np.ndarray:
    """The Mantel null of a model RDM against a given brain RDM: the metric with the brain RDM's stimuli permuted
    (rows and columns together), ``n`` times from ``seed``. Spearman and Pearson comparisons take the fast
    routine (the same permutations, so the same null to rounding: the RDM transforms commute with relabelling
    stimuli); other comparisons, and RDMs with unmeasured pairs, loop over ``compare_given``."""
    fast = FAST_NULL.get(str(getattr(metric, "comparison", "")))
    if fast is not None:
        brain, layer = metric.transformed(given.rdm), metric.transformed(model)
        if np.isfinite(brain).all() and np.isfinite(layer).all():
            return permutation_test_rdms(brain, layer, fast, n_permutations=n, seed=seed, dtype="float64").null
    rng = np.random.default_rng(seed)
    square = given.square()
    null = np.empty(n)
    for k in range(n):
        perm = rng.permutation(given.n_stimuli)
        null[k] = metric.compare_given(model, square[np.ix_(perm, perm)])
    return null


def rdm_bootstrap(metric: Any, model: np.ndarray, given: Any, n: int, seed: int) -> Any:
    """The stimulus bootstrap of a model RDM against a given one (``bootstrap_rdm_ci``); Spearman and Pearson
    comparisons of complete RDMs take the weighted routine that draws the same resamples without building them."""
    a, b = metric.transformed(model), metric.transformed(given.rdm)
    fast = FAST_NULL.get(str(getattr(metric, "comparison", "")))
    if fast is not None and np.isfinite(a).all() and np.isfinite(b).all():
        return bootstrap_rdm_ci_fast(a, b, fast, n_boot=n, seed=seed)
    return bootstrap_rdm_ci(a, b, metric.compare_dissimilarities, n_boot=n, seed=seed)


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
    rdms = [(i, given) for i, given in enumerate(load_rdms(store, task.rdm_path))
            if not task.rois or given.roi in task.rois]
    if rdms:
        ids = list(dict.fromkeys(s for _, given in rdms for s in given.stimulus_ids.tolist()))
        left_out = constant_layer(cell, load_features(store, task.feature_path, ids).astype(np.float64), [
            {"roi": given.roi, "n_units": None, "metric_kind": metric.kind, "n_stimuli": given.n_stimuli,
             "score_name": str(getattr(metric, "score_name", task.metric["name"])), "brain_distance": given.distance,
             **({} if given.session is None else {"session": given.session})} for _, given in rdms], started)
        if left_out is not None:
            return left_out
    method = ceiling_method(metric) if task.ceiling_paths else None
    ceilings = rdm_ceilings(store_url, task.ceiling_paths, method) if method else {}
    for i, given in rdms:
        X = load_features(store, task.feature_path, given.stimulus_ids).astype(np.float64)
        model = metric.model_rdm(X)
        value = float(metric.compare_given(model, given.rdm))
        row: dict[str, Any] = {"roi": given.roi, "n_units": None, "value": value, "metric_kind": metric.kind,
                               "score_name": str(getattr(metric, "score_name", task.metric["name"])),
                               "n_stimuli": given.n_stimuli, "brain_distance": given.distance}
        if given.session is not None:
            row["session"] = given.session
        if (given.roi, given.session) in ceilings:
            row["noise_ceiling_lower"], row["noise_ceiling_upper"] = ceilings[(given.roi, given.session)]
        alternative = "less" if metric.kind == "distance" else "greater"
        if task.permutations:
            null = rdm_permutation_null(metric, model, given, task.permutations, task.seed + i)
            row["null_value_95"] = float(np.quantile(null, 0.05 if alternative == "less" else 0.95))
            row["p_permutation"] = permutation_pvalue(value, null, alternative)
        if task.bootstrap:
            ci = rdm_bootstrap(metric, model, given, task.bootstrap, task.seed + i)
            row["ci_low"], row["ci_high"] = float(ci.low), float(ci.high)
        summary.append(row)
        n_test = max(n_test, given.n_stimuli)
    if not summary:
        raise WorkbenchError(f"no brain RDM of {cell.subject} is in ROIs {', '.join(task.rois or [])}")
    return CellResult(tuple(summary), n_test, round(time.time() - started, 3))
