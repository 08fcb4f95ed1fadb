"""Score per layer, one line per ROI, one panel per encoder: where in a model each area is best explained."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brain_workbench.figures.colours import roi_colours
from brain_workbench.figures.output import given_axes, new_figure, panel_titles, save_or_return
from brain_workbench.types import WorkbenchError


def depth_profile(rows: Any, value: str) -> Any:
    """Per depth: the mean over subjects of each subject's ``value``, its SEM (scipy) and the subject count."""
    from scipy.stats import sem

    per_subject = rows.groupby(["depth", "subject"], as_index=False)[value].mean()
    grouped = per_subject.groupby("depth")[value]
    out = grouped.mean().to_frame(value)
    out["sem"] = grouped.agg(lambda x: sem(x, nan_policy="omit") if x.notna().sum() > 1 else np.nan)
    out["n_subjects"] = grouped.count()
    return out.reset_index().sort_values("depth")


def plot_layer_profiles(table: Any, value: str = "mean_r", *, rois: Sequence[str] | None = None,
                        encoders: Sequence[str] | None = None, title: str = "", sem: bool = True,
                        roi_order: Sequence[str] | None = None, figure: Any = None, axes: Any = None,
                        output_file: str | Path | None = None) -> Any:
    """Plot ``value`` against relative layer depth from a results table (averaged over subjects), a panel per encoder.

    Dots mark each ROI's best layer; the shaded band around a line is the SEM across subjects (with
    two or more subjects); the grey band is the mean 95th percentile of the permutation null. Each ROI's
    colour is its colour in every figure (:func:`~brain_workbench.figures.colours.roi_colours` by
    ``roi_order``, the dataset's ROI order; default: the table's, before ``rois`` picks some).
    """
    if table.empty:
        raise WorkbenchError("the results table is empty: run the sweep first")
    if value not in table.columns:
        raise WorkbenchError(f"results have no column {value!r}; columns: {', '.join(table.columns)}")
    frame = table[table["roi"] != "all"]
    order = list(roi_order) if roi_order is not None else list(dict.fromkeys(frame["roi"]))
    if rois:
        frame = frame[frame["roi"].isin(rois)]
    names = list(encoders) if encoders else list(dict.fromkeys(frame["encoder"]))
    roi_order = list(dict.fromkeys(frame["roi"]))
    if frame.empty or not names:
        raise WorkbenchError("no rows left to plot after filtering by ROI/encoder")
    palette = roi_colours(roi_order, order).values()
    if axes is None:
        fig = new_figure(figure, (4.6 * len(names) + 1.5, 4.2))
        panels = list(fig.subplots(1, len(names), squeeze=False, sharey=True)[0])
    else:
        panels = given_axes(axes, len(names), "panels (one per encoder)")
        fig = panels[0].figure
    for ax, encoder in zip(panels, names):
        sub = frame[frame["encoder"] == encoder]
        for colour, roi in zip(palette, roi_order):
            rows = depth_profile(sub[sub["roi"] == roi], value)
            if rows.empty:
                continue
            ax.plot(rows["depth"], rows[value], "-", color=colour, lw=2, label=roi)
            if sem and (rows["n_subjects"] > 1).any():
                ax.fill_between(rows["depth"], rows[value] - rows["sem"], rows[value] + rows["sem"], color=colour,
                                alpha=0.18, lw=0, gid=f"sem-{roi}")
            best = rows.loc[rows[value].idxmax()]
            ax.plot([best["depth"]], [best[value]], "o", color=colour, ms=7, mec="black")
        if "null_mean_r_95" in sub.columns and value == "mean_r":
            null = sub.groupby("depth")["null_mean_r_95"].mean().sort_index()
            ax.fill_between(null.index, 0, null.values, color="0.6", alpha=0.35, lw=0, label="null 95%")
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xlabel("relative layer depth (0 = input, 1 = output)")
        ax.set_xlim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    metric_names = value
    if value == "value" and "head" in frame.columns:
        kinds = ", ".join(str(k) for k in dict.fromkeys(frame.get("metric_kind", [])) if isinstance(k, str))
        metric_names = ", ".join(dict.fromkeys(frame["head"])) + (f" ({kinds}, test stimuli)" if kinds else "")
    panels[0].set_ylabel({"mean_r": "mean Pearson r (test split)",
                          "mean_r_normalized": "mean r / noise ceiling"}.get(value, metric_names))
    handles, labels = panels[0].get_legend_handles_labels()
    if axes is None:
        panel_titles(panels, names, "", fontsize=12)
        fig.legend(handles, labels, loc="center right", title="ROI", frameon=False)
        fig.suptitle(title or "score per layer, averaged over subjects", fontsize=13)
        fig.tight_layout(rect=(0, 0, 1 - 1.3 / fig.get_figwidth(), 0.95))
    else:
        panel_titles(panels, names, title, fontsize=12)
        panels[-1].legend(handles, labels, title="ROI", frameon=False, fontsize="small")
    return save_or_return(fig, output_file, close=figure is None and axes is None)


def retrieval_columns(frame: Any) -> list[str]:
    """The retrieval / identification scores of decoding rows: every score that has a ``chance_`` column."""
    return [c[len("chance_"):] for c in frame.columns if c.startswith("chance_") and c[len("chance_"):] in frame.columns
            and frame[c[len("chance_"):]].notna().any()]


def plot_retrieval_scores(frame: Any, *, title: str = "", figure: Any = None, axes: Any = None,
                          output_file: str | Path | None = None) -> Any:
    """Decoding: each retrieval / identification score per ROI (bars: mean over subjects, whiskers: SEM across
    subjects), one panel per encoder × layer, with each score's chance level as a black tick."""
    import matplotlib

    scores = retrieval_columns(frame)
    if frame.empty or not scores:
        raise WorkbenchError("the results have no decoding retrieval scores to plot")
    groups = list(frame.groupby(["encoder", "layer"], sort=False))
    groups.sort(key=lambda g: float(g[1]["depth"].iloc[0]))
    rois = list(dict.fromkeys(frame["roi"]))
    palette = matplotlib.colormaps["tab10"](np.arange(len(scores)) % 10)
    if axes is None:
        fig = new_figure(figure, (max(7.5, 1.0 + 0.3 * len(rois) * len(scores)) * len(groups), 5.4))
        panels = list(fig.subplots(1, len(groups), squeeze=False, sharey=True)[0])
    else:
        panels = given_axes(axes, len(groups), "panels (one per encoder × layer)")
        fig = panels[0].figure
    width = 0.8 / len(scores)
    for ax, (_, rows) in zip(panels, groups):
        for j, (score, colour) in enumerate(zip(scores, palette)):
            per = rows.groupby("roi", sort=False)[score]
            means = per.mean().reindex(rois)
            sems = per.sem().reindex(rois) if rows["subject"].nunique() > 1 else None
            chance = rows.groupby("roi", sort=False)[f"chance_{score}"].mean().reindex(rois)
            x = np.arange(len(rois)) + (j - (len(scores) - 1) / 2) * width
            ax.bar(x, means.to_numpy(), width * 0.95, yerr=None if sems is None else sems.to_numpy(), color=colour,
                   label=score.replace("_", " "), capsize=2)
            ax.plot(x, chance.to_numpy(), "_", color="black", ms=12, mew=2, label="chance" if j == 0 else None)
        ax.set_xticks(np.arange(len(rois)), rois, rotation=30)
        ax.set_ylim(0, 1.02)
        ax.grid(axis="y", alpha=0.3)
    panels[0].set_ylabel("fraction correct (test split)")
    handles, labels = panels[0].get_legend_handles_labels()
    names = [f"{encoder} · {layer}" for (encoder, layer), _ in groups]
    if axes is None:
        panel_titles(panels, names, "", fontsize=11)
        fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, fontsize=9)
        fig.suptitle(title or "decoding: retrieval and identification per ROI", fontsize=13)
        fig.tight_layout(rect=(0, 0.04 + 0.04 * ((len(labels) + 2) // 3), 1, 0.93))
    else:
        panel_titles(panels, names, title, fontsize=11)
        panels[-1].legend(handles, labels, frameon=False, fontsize="small")
    return save_or_return(fig, output_file, close=figure is None and axes is None)
