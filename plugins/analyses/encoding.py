"""Encoding cells: an encode head fitted features → responses on the training rows, Pearson r per unit on the
test rows; cross-validated sweeps add one cell per fold and a fold-averaged cell that reads them."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
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
    best_layer_table,
    bootstrap_ci,
    build,
    fold_count,
    head_direction,
    load_features,
    normalize_by_ceiling,
    pearson_per_unit,
    permutation_pvalue,
    prepared_recording,
    r2_per_unit,
    table_labels,
)
from brain_workbench_plugins.analyses import common

SCHEME_ALL = ("cv.scheme 'all' tests on every stimulus and trains on none: encoding heads need split, kfold or "
              "group (or remove the heads for a metric-only sweep)")


@dataclass(frozen=True)
class EncodingTask:
    """One fold (or the split) of one head on one layer; ``fold_paths`` only for the fold-averaged cell."""

    prep: Preparation
    feature_path: str
    head: Mapping[str, Any]
    seed: int
    permutations: int
    bootstrap: int = 0
    standardize_features: bool = True
    keep_predictions: bool = False
    fold_paths: tuple[str, ...] = ()


def permutation_null(Y: np.ndarray, pred: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Mean Pearson r over units when test rows of the prediction are shuffled (n × 1 values)."""
    rng = np.random.default_rng(seed)
    return np.array([pearson_per_unit(Y, pred[rng.permutation(len(pred))]).mean() for _ in range(n)])


class EncodingAnalysis(Analysis):
    """Encode heads (``heads:`` whose class declares ``direction = "encode"``) on every listed layer."""

    name = "encoding"
    version = "1"
    summary_value = "mean_r"
    code_modules = ("brain_workbench_plugins.analyses.encoding", "brain_workbench_plugins.analyses.common")
    score_columns = ("mean_r", "median_r", "mean_r_normalized", "null_mean_r_95", "p_permutation", "q_fdr",
                     "ci_low", "ci_high", "peak_time", "peak_mean_r", "sem_folds", "pooled_r", "p_pooled")

    def validate(self, config: Any, dataset: Any, registry: Any) -> None:
        if common.refuse_heads_on_rdms(config, dataset):
            return
        for head in config.heads:
            common.check_head_options(registry, head)
        if config.cv_spec()["scheme"] == "all" and any(head_direction(registry, h.name) == "encode"
                                                      for h in config.heads):
            raise WorkbenchError(SCHEME_ALL)

    def plan(self, context: PlanContext) -> list[Cell]:
        if common.refuse_heads_on_rdms(context.config, context.dataset):
            return []
        cfg = context.config
        heads = common.heads_of(context, "encode")
        cv = cfg.cv_spec()
        if heads and cv["scheme"] == "all":
            raise WorkbenchError(SCHEME_ALL)
        prep = {"average_repetitions": cfg.average_repetitions, "test_split": cv["split"], "rois": cfg.rois,
                "standardize_features": True}
        legacy = cv["scheme"] == "split" and not cv["inner_group"] and not cv["keep_predictions"]
        keyed_prep = prep if legacy else {**prep, "cv": cv}
        labels = table_labels(cfg.heads)
        cells: list[Cell] = []
        for encoder in context.encoders:
            for subject in context.subjects:
                recording = context.recordings[subject]
                folds = self.folds(context, cv, recording)
                for layer in [info.name for info in encoder.layers]:
                    for index, head in heads:
                        if layer not in common.head_layers(head, encoder):
                            continue
                        cells.extend(self._head_cells(context, encoder, subject, layer, head, labels[index], cv,
                                                      keyed_prep, None if legacy else CV.from_dict(cv), folds))
        return cells

    @staticmethod
    def folds(context: PlanContext, cv: dict[str, Any], recording: Any) -> int:
        """Folds of the scheme for one subject; leave-one-group-out counts the cached recording's groups
        (none before the recording is cached)."""
        if cv["scheme"] != "group":
            return fold_count(cv)
        if not recording.cached:
            return 0
        if cv["group"] not in recording.groups:
            raise WorkbenchError(f"cv.group {cv['group']!r} is not a trial grouping of dataset "
                                 f"{context.dataset.name!r}; its groupings are "
                                 f"{', '.join(recording.groups) or 'none'}")
        return int(recording.groups[cv["group"]])

    def _head_cells(self, context: PlanContext, encoder: Any, subject: str, layer: str, head: Any, label: str,
                    cv: dict[str, Any], keyed_prep: dict[str, Any], scheme: CV | None, folds: int) -> list[Cell]:
        cfg = context.config
        head_dump = common.spec(head)
        base = [context.dataset.fingerprint, subject, keyed_prep, encoder.key, layer, head_dump, cfg.seed,
                cfg.permutations, cfg.bootstrap]
        path = context.response_path(subject)
        fpath = encoder.feature_path(layer)
        rois = tuple(cfg.rois) if cfg.rois else None

        def task(fold: int, **extra: Any) -> EncodingTask:
            return EncodingTask(Preparation(path, cfg.average_repetitions, cv["split"], rois, scheme, fold), fpath,
                                head_dump, cfg.seed, cfg.permutations, cfg.bootstrap or 0,
                                keep_predictions=bool(cv["keep_predictions"]), **extra)

        common_fields = dict(analysis=self.name, subject=subject, model=encoder.label, model_name=encoder.name,
                             layer=layer, depth=encoder.depth(layer), label=label, head=head.name, feature_path=fpath,
                             response_path=path, reads=(path, fpath))
        if cv["scheme"] == "split":
            return [Cell(key=self.cell_key(subject, "", *base), task=task(0), **common_fields)]
        fold_cells = [Cell(key=self.cell_key(subject, f"f{i}-", *base, i), fold=str(i), task=task(i), **common_fields)
                      for i in range(folds)]
        if not fold_cells:
            return []
        paths = tuple(c.result_path(context.sweep) for c in fold_cells)
        mean = Cell(key=self.cell_key(subject, "cv-", *base, "mean", len(paths)), fold="mean", phase=1,
                    task=task(0, fold_paths=paths), **{**common_fields, "reads": paths})
        return [*fold_cells, mean]

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        if cell.task.fold_paths:
            return fold_mean(store_url, cell)
        return fit_and_score(store_url, cell)

    def table(self, rows: Any, sweep: str, value: str) -> list[TextTable]:
        if value not in rows.columns:
            raise WorkbenchError(f"no column {value!r}; choose one of {', '.join(rows.columns)}")
        out = []
        for label, part in rows.groupby("analysis", sort=False):
            out.append(common.pivot(part, value, f"{sweep}: {label} {value} (mean over subjects)"))
            out.append(best_layer_table(part, value, f"{sweep}: {label}, best layer per ROI ({value}: mean over "
                                                     "subjects, SEM across subjects, q: largest FDR q over subjects)"))
        return out

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        sweep, keys = kit.sweep, kit.keys_of(self.name)
        subjects, sem = common.over_subjects(rows)
        folds = rows["n_folds"].dropna() if "n_folds" in rows.columns else []
        where = f"held-out Pearson r over {int(max(folds))} folds" if len(folds) else "test-split Pearson r"
        if len(folds) and not sem:
            sem = "; shaded bands are ±1 SEM across folds"
        paths = [kit.draw("layers.png", keys, lambda p: kit.plot_layer_profiles(
            rows, "mean_r", title=f"{sweep}: {where} per layer", output_file=p),
            f"Encoding: mean {where} between predicted and measured responses in each ROI against "
            f"relative layer depth (0 = input, 1 = output), averaged over {subjects}{sem}. Dots mark each ROI's "
            "best layer; the grey band is the mean 95th percentile of the permutation null.")]
        if "mean_r_normalized" in rows.columns and rows["mean_r_normalized"].notna().any():
            paths.append(kit.draw("layers_normalized.png", keys, lambda p: kit.plot_layer_profiles(
                rows, "mean_r_normalized", title=f"{sweep}: r / noise ceiling per layer", output_file=p),
                "As above, with r divided by the square root of each unit's noise ceiling (1 = as good as the "
                f"data allow), averaged over {subjects}{sem}."))
        subject = str(rows["subject"].iloc[0])
        for encoder in dict.fromkeys(rows["encoder"]):
            safe, inputs = kit.file_label(encoder), (kit.keys_of(self.name, encoder=encoder), subject)
            maps = kit.draw_surface(f"brainmap_{safe}.png", inputs, lambda p, e=encoder: kit.brainmap(
                p, encoder=e, subject=subject),
                f"Per-vertex test-split Pearson r of {encoder}'s best layer (the layer with the highest mean r) for "
                f"subject {subject} on the inflated fsaverage5 surface; vertices whose r is below the critical r for "
                "p < 0.001 are not coloured.")
            if not maps:
                continue
            paths += maps + [kit.draw(f"best_layer_{safe}.png", inputs, lambda p, e=encoder: kit.brainmap(
                p, encoder=e, subject=subject, value="best-layer"),
                f"For each vertex of subject {subject}, the {encoder} layer that predicts it best (legend: layer "
                "names, shallow to deep); vertices that no layer predicts above the critical r for uncorrected "
                "p < 0.001, and vertices whose best layer does not beat the runner-up in both random halves of the "
                "test stimuli, are not coloured.")]
            if kit.interactive:
                paths.append(kit.draw(f"surface_{safe}.html", inputs, lambda p, e=encoder: kit.surface_view(
                    p, encoder=e, subject=subject),
                    f"Interactive 3-D view of {encoder}'s best-layer map for subject {subject} (drag to rotate; runs "
                    "offline). Vertices below the p < 0.001 critical r are not coloured."))
        return paths + kit.draw_surface("rois.png", (keys, subject), lambda p: kit.rois(p, subject=subject),
                                        f"The dataset's ROIs of subject {subject} on the inflated fsaverage5 surface; "
                                        "each colour is the legend's, and a vertex in several ROIs takes the first "
                                        "listed.")


def fit_head(store_url: str, task: EncodingTask, rows: np.ndarray | None = None
             ) -> tuple[Any, dict[str, Any], np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The head of one encoding task fitted on its training rows (or the subset ``rows`` of them, indices):
    (head, prepared data, test features, and the training features' (mean, SD) the features were standardised
    with (0 and 1 without standardisation))."""
    data = prepared_recording(store_url, task.prep)
    if rows is not None:
        keep = np.asarray(rows, dtype=np.int64)
        data = {**data, "train_ids": [data["train_ids"][i] for i in keep], "Y_train": data["Y_train"][keep]}
        if "inner_groups" in data:
            data["inner_groups"] = np.asarray(data["inner_groups"])[keep]
    store = Store(store_url)
    X_train = load_features(store, task.feature_path, data["train_ids"]).astype(np.float32)
    X_test = load_features(store, task.feature_path, data["test_ids"]).astype(np.float32)
    mean, sd = np.zeros(X_train.shape[1], np.float32), np.ones(X_train.shape[1], np.float32)
    if task.standardize_features:
        mean, sd = common.standardization(X_train)
        X_train, X_test = (X_train - mean) / sd, (X_test - mean) / sd
    options = dict(task.head["options"])
    if "inner_groups" in data:
        options["cv"] = data["inner_groups"]
    head = build("head", task.head["name"], **options)
    head.fit(X_train, data["Y_train"])
    return head, data, X_test, (mean, sd)


def fit_and_score(store_url: str, cell: Cell) -> CellResult:
    """Fit the head of one cell (one fold) on its training rows and score it on its test rows."""
    started = time.time()
    task: EncodingTask = cell.task
    head, data, X_test, _ = fit_head(store_url, task)
    fit_s = time.time() - started
    pred = np.asarray(head.predict(X_test), dtype=np.float32)
    Y_test = data["Y_test"]
    constant = common.constant_columns(Y_test)
    score = pearson_per_unit(Y_test, pred).astype(np.float32)
    score[constant] = np.nan
    r2 = r2_per_unit(Y_test, pred).astype(np.float32)
    r2[constant] = np.nan
    result: dict[str, Any] = {"score": score, "r2": r2, **split_half_scores(Y_test, pred, task.seed)}
    if data["noise_ceiling"] is not None and len(data["noise_ceiling"]) == len(score):
        result["score_normalized"] = normalize_by_ceiling(score, data["noise_ceiling"]).astype(np.float32)
    alphas = getattr(head, "best_alphas_", None)
    if alphas is not None and np.size(alphas) == len(score):
        result["alpha"] = np.asarray(alphas, dtype=np.float32).reshape(-1)
    if task.keep_predictions:
        result["prediction"] = pred
        result["test_ids"] = np.asarray(data["test_ids"], dtype=str)
    rois = {"all": np.ones(len(score), dtype=bool), **data["rois"]}
    summary = []
    for i, (name, all_units) in enumerate(rois.items()):
        mask = all_units & ~constant
        if not mask.any():
            continue
        observed = float(score[mask].mean())
        row = {"roi": name, "n_units": int(mask.sum()), "mean_r": observed, "median_r": float(np.median(score[mask]))}
        if (all_units & constant).any():
            row["n_constant"] = int((all_units & constant).sum())
        if "score_normalized" in result:
            normalized = result["score_normalized"][mask]
            row["mean_r_normalized"] = float(np.nanmean(normalized)) if np.isfinite(normalized).any() else None
        if task.permutations and name != "all":
            null = permutation_null(Y_test[:, mask], pred[:, mask], task.permutations, task.seed + i)
            row["null_mean_r_95"] = float(np.quantile(null, 0.95))
            row["p_permutation"] = permutation_pvalue(observed, null)
        if task.bootstrap:
            ci = bootstrap_ci(lambda a, b: float(pearson_per_unit(a, b).mean()), Y_test[:, mask], pred[:, mask],
                              n_boot=task.bootstrap, seed=task.seed + i)
            row["ci_low"], row["ci_high"] = float(ci.low), float(ci.high)
        summary.append(row)
    if data["n_times"] > 1:
        n_units, n_times = data["n_units"], data["n_times"]
        for name in [k for k, v in result.items() if isinstance(v, np.ndarray) and v.shape == (n_units * n_times,)]:
            result[name] = result[name].reshape(n_units, n_times)
        for row in summary:
            mask = rois[row["roi"]].reshape(n_units, n_times)[:, 0]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a time point where every unit is constant
                course = np.nanmean(result["score"][mask], axis=0)
            if np.isfinite(course).any():
                row["peak_time"] = float(data["times"][int(np.nanargmax(course))])
                row["peak_mean_r"] = float(np.nanmax(course))
        result["times"] = np.asarray(data["times"], dtype=np.float64)
    arrays = {k: v for k, v in result.items() if isinstance(v, np.ndarray)}
    warned = (f"{int(constant.sum())} of {len(constant)} units have constant test responses: their r is undefined "
              "(NaN) and they are left out of every ROI's mean",) if constant.any() else ()
    return CellResult(tuple(summary), int(len(Y_test)), round(time.time() - started, 3), arrays,
                      info={"fit_s": round(fit_s, 3)}, warnings=warned)


def pooled_scores(store_url: str, task: EncodingTask, readers: list[Any], summary: list[dict[str, Any]]) -> np.ndarray:
    """Out-of-fold statistics of a cross-validated cell from its folds' kept predictions: each ROI row gets
    ``pooled_r`` (per-unit r over every fold's test rows pooled, averaged over the ROI's units) and, with
    ``permutations``, p-values of the fold mean (``p_permutation``, ``null_mean_r_95``) and of the pooled r
    (``p_pooled``) from one null that shuffles test rows within each fold. Returns the per-unit pooled r."""
    Ys, preds = [], []
    for i, reader in enumerate(readers):
        data = prepared_recording(store_url, replace(task.prep, fold=i))
        if list(data["test_ids"]) != reader["test_ids"].astype(str).tolist():
            raise WorkbenchError(f"fold {i} of {task.feature_path}: its kept predictions are not of the fold's test "
                                 "rows; rerun the sweep")
        Ys.append(np.asarray(data["Y_test"], dtype=np.float64))
        preds.append(np.asarray(reader["prediction"], dtype=np.float64))
    rois = {"all": np.ones(Ys[0].shape[1], dtype=bool), **data["rois"]}
    Y, pred = np.concatenate(Ys), np.concatenate(preds)
    keep = ~common.constant_columns(Y)
    pooled = np.full(Y.shape[1], np.nan)
    pooled[keep] = pearson_per_unit(Y[:, keep], pred[:, keep])

    def fold_mean_r(parts: list[np.ndarray], mask: np.ndarray) -> float:
        means = []
        for Y_f, P_f in zip(Ys, parts):
            units = mask & ~common.constant_columns(Y_f)
            means.append(float(pearson_per_unit(Y_f[:, units], P_f[:, units]).mean()))
        return float(np.mean(means))

    for i, row in enumerate(summary):
        mask = rois[row["roi"]] & keep
        if not mask.any():
            continue
        row["pooled_r"] = float(pooled[mask].mean())
        if not task.permutations or row["roi"] == "all":
            continue
        rng = np.random.default_rng(task.seed + i)
        null_mean, null_pooled = np.empty(task.permutations), np.empty(task.permutations)
        for k in range(task.permutations):
            shuffled = [P_f[rng.permutation(len(P_f))] for P_f in preds]
            null_mean[k] = fold_mean_r(shuffled, rois[row["roi"]])
            null_pooled[k] = float(pearson_per_unit(Y[:, mask], np.concatenate(shuffled)[:, mask]).mean())
        row["null_mean_r_95"] = float(np.quantile(null_mean, 0.95))
        row["p_permutation"] = permutation_pvalue(fold_mean_r(preds, rois[row["roi"]]), null_mean)
        row["p_pooled"] = permutation_pvalue(row["pooled_r"], null_pooled)
    return pooled.astype(np.float32)


def split_half_scores(Y_test: np.ndarray, pred: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Per-unit r on two disjoint random halves of the test rows (``score_half_a``, ``score_half_b``): whether a
    unit's best layer beats the runner-up in both halves is what makes a best-layer map reliable."""
    n = len(Y_test)
    if n < 8:
        return {}
    order = np.random.default_rng(seed).permutation(n)
    halves = np.sort(order[: n // 2]), np.sort(order[n // 2:])
    return {f"score_half_{name}": pearson_per_unit(Y_test[rows], pred[rows]).astype(np.float32)
            for name, rows in zip("ab", halves)}


FOLD_AVERAGED = ("score", "r2", "score_normalized", "score_half_a", "score_half_b")


def fold_mean(store_url: str, cell: Cell) -> CellResult:
    """Fold-averaged per-unit scores of a cross-validated cell, read from its finished fold cells.

    Each ROI row averages the folds' rows (``sem_folds`` is their standard error); with
    ``keep_predictions`` the folds' test predictions are gathered as out-of-fold predictions.
    """
    started = time.time()
    store = Store(store_url, mode="r")
    readers = [store.open(path) for path in cell.task.fold_paths]
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
    if "prediction" in result and (not readers or "times" not in readers[0].names()):
        result["score_pooled"] = pooled_scores(store_url, cell.task, readers, summary)
    return CellResult(tuple(summary), int(sum(r.attrs["n_test"] for r in readers)), round(time.time() - started, 3),
                      result, info={"fit_s": float(sum(r.attrs.get("fit_s", 0.0) for r in readers))})
