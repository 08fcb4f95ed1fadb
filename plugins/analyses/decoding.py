"""Decoding cells: a decode head fitted responses → layer features on the training split, scored by retrieval
and identification on the test split, one cell per unit set (all units or an ROI) and time window."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from brain_workbench.sdk.analysis import (
    CV,
    Analysis,
    Cell,
    CellResult,
    FeatureJob,
    ImageJob,
    PlanContext,
    Preparation,
    Store,
    TextTable,
    WorkbenchError,
    build,
    check_k_way,
    decoding_scores,
    head_direction,
    load_features,
    pearson_per_unit,
    prepared_recording,
    similarity_matrix,
    table_labels,
)
from brain_workbench_plugins.analyses import common, sections
from brain_workbench_plugins.analyses.encoding import EncodingAnalysis


@dataclass(frozen=True)
class DecodingTask:
    prep: Preparation
    feature_path: str
    head: Mapping[str, Any]
    decoding: Mapping[str, Any]
    roi: str
    time_window: tuple[float, float] | None
    seed: int
    permutations: int
    seen_key: str | None = None
    fold_paths: tuple[str, ...] = ()


CROSS_VALIDATED = ("split", "kfold", "group")


def check_split_scheme(config: Any, what: str, allowed: Sequence[str] = ("split",)) -> None:
    """Reconstruction cells test on ``test_split``; decoding cells also take k-fold and leave-one-group-out
    (e.g. leave-one-run-out) schemes. Any other scheme is refused."""
    cv = config.cv_spec()
    if cv["scheme"] not in allowed:
        raise WorkbenchError(f"cv.scheme {cv['scheme']!r} is supported for encoding and metric cells only; {what} "
                             "cells use test_split: remove cv or run them in a sweep of their own")
    if cv["inner_group"]:
        raise WorkbenchError(f"cv.inner_group is applied to encoding cells only; {what} cells choose their alphas "
                             "by the head's own k-fold cv: remove cv.inner_group or run them in a sweep of their own")


class DecodingAnalysis(Analysis):
    """Decode heads (``heads:`` whose class declares ``direction = "decode"``), configured by ``decoding:``."""

    name = "decoding"
    version = "1"
    sections = ("decoding",)
    summary_value = "mean_r"
    summary_what = "mean Pearson r of decoded and true features"
    code_modules = ("brain_workbench_plugins.analyses.decoding", "brain_workbench_plugins.analyses.common")

    def validate(self, config: Any, dataset: Any, registry: Any) -> None:
        if common.refuse_heads_on_rdms(config, dataset):
            return
        for head in config.heads:
            common.check_head_options(registry, head)
        if any(head_direction(registry, h.name) == "decode" for h in config.heads):
            check_split_scheme(config, "decoding", CROSS_VALIDATED)
            check_cross_validated_decoding(config)

    def plan(self, context: PlanContext) -> list[Cell]:
        if common.refuse_heads_on_rdms(context.config, context.dataset):
            return []
        cfg = context.config
        heads = common.heads_of(context, "decode")
        if not heads:
            return []
        check_split_scheme(cfg, "decoding", CROSS_VALIDATED)
        check_cross_validated_decoding(cfg)
        common.check_rois(context, sections.decoding(cfg).rois)
        spec = sections.decoding(cfg).model_dump()
        if sections.generation(cfg) is not None:
            spec["keep_predictions"] = True
        seen = common.seen_key(context) if spec["keep_predictions"] and "image" in context.dataset.modalities else None
        cv = cfg.cv_spec()
        prep = {"average_repetitions": cfg.average_repetitions, "test_split": cv["split"],
                "rois": cfg.rois, "standardize_features": True}
        if cv["scheme"] != "split":
            prep["cv"] = cv
        rois = tuple(cfg.rois) if cfg.rois else None
        labels = table_labels(cfg.heads)
        cells: list[Cell] = []
        for encoder in context.encoders:
            for subject in context.subjects:
                path = context.response_path(subject)
                preparation = Preparation(path, cfg.average_repetitions, prep["test_split"], rois)
                n_folds = 0 if cv["scheme"] == "split" else EncodingAnalysis.folds(context, cv,
                                                                                  context.recordings[subject])
                for layer in [info.name for info in encoder.layers]:
                    fpath = encoder.feature_path(layer)
                    for index, head in heads:
                        if layer not in common.head_layers(head, encoder):
                            continue
                        dump = common.spec(head)
                        for roi in sections.decoding(cfg).rois:
                            for window in sections.decoding(cfg).windows() or [None]:
                                unit_set = {"roi": roi, "time_window": None if window is None else list(window)}
                                key = self.cell_key(subject, "d", context.dataset.fingerprint, subject, prep,
                                                    encoder.key, layer, "decode", dump, unit_set, spec, cfg.seed,
                                                    cfg.permutations)
                                task = DecodingTask(preparation, fpath, dump, spec, roi,
                                                    None if window is None else tuple(window), cfg.seed,
                                                    cfg.permutations, seen)
                                fields = dict(analysis=self.name, subject=subject, model=encoder.label,
                                              model_name=encoder.name, layer=layer, depth=encoder.depth(layer),
                                              label=labels[index], head=head.name, feature_path=fpath,
                                              response_path=path, reads=(path, fpath))
                                if cv["scheme"] == "split":
                                    cells.append(Cell(key=key, task=task, **fields))
                                    continue
                                folds = [Cell(key=self.cell_key(subject, f"d{i}-", key), fold=str(i), task=replace(
                                    task, prep=replace(preparation, cv=CV.from_dict(cv), fold=i)), **fields)
                                    for i in range(n_folds)]
                                if not folds:
                                    continue
                                paths = tuple(c.result_path(context.sweep) for c in folds)
                                cells += [*folds, Cell(key=self.cell_key(subject, "dm-", key, len(paths)),
                                                       fold="mean", phase=1, task=replace(task, fold_paths=paths),
                                                       **{**fields, "reads": paths})]
        return cells

    def requirements(self, context: PlanContext, cells: Sequence[Cell]) -> list[FeatureJob | ImageJob]:
        return [common.seen_images_job(context)] if any(c.task.seen_key for c in cells) else []

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        return fold_mean(store_url, cell) if cell.task.fold_paths else decode(store_url, cell)

    def scores(self, rows: Any) -> list[str]:
        retrieval = [c for c in rows.columns if c.startswith(("top", "two_way", "chance_", "p_top", "p_two_way",
                                                              "q_top", "q_two_way"))]
        return [c for c in ("mean_r", "median_r", *retrieval) if c in rows.columns and rows[c].notna().any()]

    def table(self, rows: Any, sweep: str, value: str) -> list[TextTable]:
        out = []
        for head, part in rows.groupby("head", sort=False):
            scores = [c for c in part.columns if (c.startswith("top") or c == "two_way")
                      and "image_to_brain" not in c and part[c].notna().any()]
            keys, values = [], []
            for (encoder, _, layer, roi), group in part.groupby(["encoder", "depth", "layer", "roi"], sort=False):
                keys.append((str(encoder), str(layer), str(roi)))
                values.append((common.fmt(group["mean_r"].mean()),
                               *[f"{group[c].mean():.3f} [{group['chance_' + c].mean():.3f}]" for c in scores]))
            names = ("mean r", *[c.replace("_brain_to_image", " b→i").replace("_", " ") for c in scores])
            over = " and time windows" if _time_resolved(part) is not None else ""
            out.append(TextTable(f"{sweep}: decoding with {head} (mean over subjects{over}; chance in brackets)",
                                 ("encoder", "layer", "units"), names, tuple(keys), tuple(values)))
        timed = _time_resolved(rows)
        if timed is not None:
            from brain_workbench.sdk.analysis import timecourse_score, timecourse_table

            score = timecourse_score(timed)
            if score is not None:
                peaks = timecourse_table(timed, score)
                out.append(TextTable(
                    f"{sweep}: time-resolved decoding, {score} over {timed['window_centre_s'].nunique()} windows "
                    "(peak window centre; mean over subjects)", ("head", "encoder", "layer", "units"),
                    ("peak s", "peak", "chance", "null 95%"),
                    tuple((p["analysis"], str(p["encoder"]), str(p["layer"]), str(p["roi"])) for p in peaks),
                    tuple((f"{p['peak_s']:.3f}", f"{p['peak']:.3f}", f"{p['chance']:.3f}",
                           f"{p['null95_at_peak']:.3f}") for p in peaks)))
        return out

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        paths = []
        subjects, _ = common.over_subjects(rows)
        if kit.retrieval_columns(rows):
            paths.append(kit.draw("decoding.png", kit.keys_of(self.name), lambda p: kit.plot_retrieval_scores(
                rows, title=f"{kit.sweep}: decoding, retrieval and identification per ROI", output_file=p),
                "Decoding: retrieval and identification from brain responses decoded into each layer's features, "
                f"per ROI (fraction of held-out test stimuli picked correctly; bars: mean over {subjects}"
                + (", whiskers ±1 SEM" if rows["subject"].nunique() > 1 else "") + "; black ticks: chance)."))
        timed = _time_resolved(rows)
        if timed is not None and kit.timecourse_score(timed) is not None:
            score = kit.timecourse_score(timed)
            paths.append(kit.draw("decoding_timecourse.png", kit.keys_of(self.name), lambda p: kit.plot_decoding_timecourse(
                timed, score, title=f"{kit.sweep}: time-resolved decoding", output_file=p),
                f"Time-resolved decoding: {score} in sliding windows (x: window centre; mean over {subjects}), "
                "chance dashed, grey band from chance to the permutation null's 95th percentile, dotted line at "
                "the time of peak decodability."))
        kept = [key for key in kit.keys_of(self.name) if kit.task(key).get("seen_key")]
        if kept:
            paths.append(kit.draw("retrieval.png", kept, kit.retrieval,
                                  "Retrieval: for a seeded random draw of held-out test stimuli, the test images whose "
                                  "true features are most similar to the features decoded from the brain response "
                                  "(seen image outlined in green; similarity above each; one subject and unit set)."))
        return paths

    def report_section(self, rows: Any, kit: Any) -> list[Any]:
        def retrieval(part: Any) -> str:
            if not kit.retrieval_columns(part):
                return ""
            return ("<p class='note'>Retrieval and identification (fraction correct, test split; mean ± SEM "
                    f"across subjects; chance in brackets):</p>{kit.html_table(kit.retrieval_table(part), 3)}")

        return kit.default_sections(self.name, rows, self, extra=retrieval)


def _time_resolved(rows: Any) -> Any:
    """The rows of sliding or listed time windows, when there are at least two windows; else None."""
    if "window_centre_s" not in rows.columns:
        return None
    timed = rows[rows["window_centre_s"].notna()]
    return timed if timed["window_centre_s"].nunique() > 1 else None


def check_cross_validated_decoding(config: Any) -> None:
    """What cross-validated decoding cells cannot do, refused before any work: kept predictions (and the
    retrieval figure and generation that read them) belong to one test split."""
    if config.cv_spec()["scheme"] == "split":
        return
    spec = sections.decoding(config)
    if spec.keep_predictions or sections.generation(config) is not None:
        raise WorkbenchError("decoding.keep_predictions (and generation, which reads the kept predictions) needs "
                             "cv.scheme split; cross-validated decoding cells keep per-fold scores only")


FOLD_MEAN_SKIPS = ("p_", "null95_", "null_")


def fold_mean(store_url: str, cell: Cell) -> CellResult:
    """The fold-mean decoding cell: each score averaged over the fold cells' rows (chance levels are the same
    in every fold), ``sem_folds`` for ``mean_r``; per-fold p-values stay in the fold cells (the mean row has
    none, since p-values of folds do not average into one)."""
    started = time.time()
    store = Store(store_url, mode="r")
    readers = [store.open(path) for path in cell.task.fold_paths]
    rows = [reader.attrs["rois"][0] for reader in readers]
    row: dict[str, Any] = {"roi": rows[0]["roi"], "n_units": rows[0]["n_units"], "n_folds": len(rows)}
    for column in rows[0]:
        values = [r.get(column) for r in rows]
        if column in row or column.startswith(FOLD_MEAN_SKIPS):
            continue
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            row[column] = float(np.mean(values))
        elif all(v == values[0] for v in values):
            row[column] = values[0]
    means = np.array([r["mean_r"] for r in rows], dtype=float)
    row["sem_folds"] = float(means.std(ddof=1) / np.sqrt(len(means))) if len(means) > 1 else None
    with np.errstate(all="ignore"):
        score = np.nanmean(np.stack([reader["score"] for reader in readers]), axis=0).astype(np.float32)
    return CellResult((row,), int(sum(r.attrs["n_test"] for r in readers)), round(time.time() - started, 3),
                      {"score": score}, info={"fit_s": float(sum(r.attrs.get("fit_s", 0.0) for r in readers))})


def decode(store_url: str, cell: Cell) -> CellResult:
    """Fit a decode head brain → layer features on the training split; score retrieval on the test split."""
    started = time.time()
    task: DecodingTask = cell.task
    spec = task.decoding
    data = prepared_recording(store_url, task.prep)
    store = Store(store_url)
    B_train, B_test, n_units = common.decoding_inputs(data, task.roi, task.time_window)
    B_train, B_test = common.standardized(B_train, B_test)
    check_k_way(spec.get("k_way", ()), spec.get("k_way_top", (1, 5)), len(B_test))
    F_train = load_features(store, task.feature_path, data["train_ids"]).astype(np.float32)
    F_test = load_features(store, task.feature_path, data["test_ids"]).astype(np.float32)
    f_mean, f_sd = np.zeros(F_train.shape[1], np.float32), np.ones(F_train.shape[1], np.float32)
    if spec["standardize_targets"]:
        f_mean, f_sd = F_train.mean(axis=0), F_train.std(axis=0)
        f_sd = np.where(f_sd > 1e-8, f_sd, 1.0)
        F_train, F_test = (F_train - f_mean) / f_sd, (F_test - f_mean) / f_sd
    head = build("head", task.head["name"], **task.head["options"])
    fit_options = common.eeg_fit_options(head, data, n_units, task.time_window)
    head.fit(B_train, F_train, **fit_options)
    pred = np.asarray(head.predict(B_test), dtype=np.float32).reshape(len(F_test), -1)
    score = pearson_per_unit(F_test, pred).astype(np.float32)
    constant = common.constant_columns(F_test)
    score[constant] = np.nan
    scores = decoding_scores(pred, F_test, spec["top_k"], spec["n_way"], spec["n_subsets"], task.permutations,
                             task.seed, spec["similarity"], k_way=spec.get("k_way", ()),
                             k_way_top=spec.get("k_way_top", (1, 5)), k_way_draws=spec.get("k_way_draws", 10))
    row: dict[str, Any] = {"roi": task.roi, "n_units": n_units, "mean_r": float(np.nanmean(score)),
                           "median_r": float(np.nanmedian(score))}
    warned: tuple[str, ...] = ()
    if constant.any():
        row["n_constant"] = int(constant.sum())
        warned = (f"{int(constant.sum())} of {len(constant)} target dimensions are constant over the test stimuli: "
                  "their r is undefined (NaN) and they are left out of mean_r",)
    if task.time_window is not None:
        row["time_window"] = f"{task.time_window[0]:g}–{task.time_window[1]:g} s"
        row["window_centre_s"] = round(0.5 * (task.time_window[0] + task.time_window[1]), 6)
    preset = common.preprocessing_preset(data, task.prep.average, task.roi, task.time_window,
                                         bool(spec["standardize_targets"]))
    if preset is not None:
        row["preset"] = preset["summary"]
    for name, values in scores.items():
        row[name] = values["value"]
        row[f"chance_{name}"] = values["chance"]
        if "p_permutation" in values:
            row[f"p_{name}"] = values["p_permutation"]
            if name.startswith("top") and "_of" in name:
                row[f"null95_{name}"] = values["null_95"]
    arrays: dict[str, np.ndarray] = {"score": score}
    if spec["keep_predictions"]:
        arrays["prediction"] = (pred * f_sd + f_mean).astype(np.float32)  # in the features' own units
        arrays["test_ids"] = np.asarray(data["test_ids"], dtype=str)
        arrays["similarity"] = similarity_matrix(pred, F_test, spec["similarity"]).astype(np.float32)
    info = {"preprocessing_preset": json.dumps(preset)} if preset is not None else {}
    for name in ("best_epoch_", "stopped_epoch_", "n_val_concepts_"):
        if hasattr(head, name):
            info[name.rstrip("_")] = int(getattr(head, name))
    return CellResult((row,), int(len(F_test)), round(time.time() - started, 3), arrays, info=info, warnings=warned)
