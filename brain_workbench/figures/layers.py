"""Score per layer, one line per ROI, one panel per encoder: where in a model each area is best explained."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


NULL_COLUMNS = {"mean_r": "null_mean_r_95", "value": "null_value_95"}


def _lower_is_better(frame: Any) -> bool:
    kinds = set(frame["metric_kind"].dropna()) if "metric_kind" in frame.columns else set()
    return kinds == {"distance"}


def _labelled(ax: Any, prefix: str) -> bool:
    return any(str(h.get_label()).startswith(prefix) for h in [*ax.lines, *ax.collections, *ax.patches])


def _interval(ax: Any, rows: Any, profile: Any, value: str, roi: str, colour: Any, sem: bool) -> None:
    """The band around one ROI's line: SEM across subjects, else the bootstrap CI, else SEM across folds."""
    several = (profile["n_subjects"] > 1).any()
    if several:
        if sem:
            ax.fill_between(profile["depth"], profile[value] - profile["sem"], profile[value] + profile["sem"],
                            color=colour, alpha=0.18, lw=0, gid=f"sem-{roi}")
        return
    by_depth = rows.groupby("depth")
    if {"ci_low", "ci_high"} <= set(rows.columns) and rows["ci_low"].notna().any():
        low, high = by_depth["ci_low"].mean().sort_index(), by_depth["ci_high"].mean().sort_index()
        ax.fill_between(low.index, low.values, high.values, color=colour, alpha=0.18, lw=0, gid=f"ci-{roi}")
    elif "sem_folds" in rows.columns and value == "mean_r" and rows["sem_folds"].notna().any():
        spread = by_depth["sem_folds"].mean().reindex(profile["depth"]).to_numpy(dtype=float)
        ax.fill_between(profile["depth"], profile[value] - spread, profile[value] + spread, color=colour,
                        alpha=0.18, lw=0, gid=f"sem_folds-{roi}")


def _null_band(ax: Any, rows: Any, value: str, lower_is_better: bool) -> None:
    """Grey where a value does not beat the permutation null (its mean 95th percentile over ROIs and subjects)."""
    column = NULL_COLUMNS.get(value)
    if column is None or column not in rows.columns or not rows[column].notna().any():
        return
    null = rows.groupby("depth")[column].mean().sort_index().dropna()
    if lower_is_better:
        top = max(ax.get_ylim()[1], float(null.max()))
        ax.fill_between(null.index, null.values, top, color="0.6", alpha=0.35, lw=0, gid="null",
                        label="not below the permutation null (5%)")
    else:
        ax.fill_between(null.index, np.minimum(0, null.values), null.values, color="0.6", alpha=0.35, lw=0,
                        gid="null", label="within the permutation null (95%)")


def profile_ylabel(frame: Any, value: str) -> str:
    """What the y axis shows: the score, what it was compared with and on which stimuli (split or folds)."""
    folds = frame["n_folds"].dropna() if "n_folds" in frame.columns else []
    where = f"held-out folds, k = {int(max(folds))}" if len(folds) else "test split"
    if value == "mean_r":
        return f"mean Pearson r ({where})"
    if value == "mean_r_normalized":
        return f"mean r / noise ceiling ({where})"
    if value != "value":
        return value
    names = list(dict.fromkeys(frame["score_name"].dropna())) if "score_name" in frame.columns else []
    names = names or (list(dict.fromkeys(frame["head"])) if "head" in frame.columns else ["value"])
    distances = list(dict.fromkeys(frame["brain_distance"].dropna())) if "brain_distance" in frame.columns else []
    compared = f"\nagainst brain RDMs of {', '.join(map(str, distances))} distance" if distances else ""
    return f"{', '.join(map(str, names))} (test stimuli){compared}"


def plot_layer_profiles(table: Any, value: str = "mean_r", *, rois: Sequence[str] | None = None,
                        encoders: Sequence[str] | None = None, title: str = "", sem: bool = True,
                        roi_order: Sequence[str] | None = None,
                        ceilings: Mapping[str, tuple[float, float]] | None = None, figure: Any = None,
                        axes: Any = None, output_file: str | Path | None = None) -> Any:
    """Plot ``value`` against relative layer depth from a results table (averaged over subjects), a panel per encoder.

    Dots mark each ROI's best layer. The shaded band around a line is the SEM across subjects (two or
    more subjects), else the bootstrap 95% CI (``ci_low``, ``ci_high``), else ±1 SEM across folds
    (``sem_folds``); the grey band is where values do not beat the permutation null (its mean 95th
    percentile, ``null_mean_r_95`` / ``null_value_95``); ``ceilings`` (ROI → lower, upper) draws each
    ROI's noise ceiling as a band in its colour (upper bound dotted; by default read from rows on given RDMs that
    carry ``noise_ceiling_lower``/``_upper``). Each ROI's
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
    lower_is_better = _lower_is_better(frame)
    if ceilings is None and value == "value":  # rows on given brain RDMs carry their noise ceiling
        ceilings = {roi: bounds for roi in roi_order
                    if (bounds := ceiling_of(frame[frame["roi"] == roi])) is not None} or None
    for ax, encoder in zip(panels, names):
        sub = frame[frame["encoder"] == encoder]
        for colour, roi in zip(palette, roi_order):
            mine = sub[sub["roi"] == roi]
            rows = depth_profile(mine, value)
            if rows.empty:
                continue
            ax.plot(rows["depth"], rows[value], "-", color=colour, lw=2, label=roi)
            _interval(ax, mine, rows, value, roi, colour, sem)
            best = rows.loc[rows[value].idxmin() if lower_is_better else rows[value].idxmax()]
            ax.plot([best["depth"]], [best[value]], "o", color=colour, ms=7, mec="black")
            if ceilings and roi in ceilings:
                low, high = ceilings[roi]
                ax.axhspan(low, high, color=colour, alpha=0.12, lw=0, gid=f"ceiling-{roi}")
                ax.axhline(high, color=colour, lw=1, ls=":", gid=f"ceiling-upper-{roi}")
                if not _labelled(ax, "noise ceiling"):
                    ax.fill_between([], [], [], color="0.5", alpha=0.25, lw=0, label="noise ceiling (ROI's colour)")
        ax.axhline(0, color="0.3", lw=0.8)
        _null_band(ax, sub, value, lower_is_better)
        ax.set_xlabel("relative layer depth (0 = input, 1 = output)")
        ax.set_xlim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    panels[0].set_ylabel(profile_ylabel(frame, value))
    handles, labels = panels[0].get_legend_handles_labels()
    ranked = sorted(range(len(labels)), key=lambda i: labels[i] not in roi_order)  # ROIs first, then the bands
    handles, labels = [handles[i] for i in ranked], [labels[i] for i in ranked]
    if axes is None:
        panel_titles(panels, shown_names(frame, names), "", fontsize=12)
        fig.legend(handles, labels, loc="center right", title="ROI", frameon=False)
        fig.suptitle(title or "score per layer, averaged over subjects", fontsize=13)
        legend_inches = 0.5 + 0.075 * max(len(str(label)) for label in labels)
        if figure is None:
            fig.set_size_inches(4.6 * len(names) + legend_inches, fig.get_figheight())
        fig.tight_layout(rect=(0, 0, 1 - legend_inches / fig.get_figwidth(), 0.95))
    else:
        panel_titles(panels, shown_names(frame, names), title, fontsize=12)
        panels[-1].legend(handles, labels, title="ROI", frameon=False, fontsize="small")
    return save_or_return(fig, output_file, close=figure is None and axes is None)


def ceiling_of(rows: Any) -> tuple[float, float] | None:
    """The mean noise ceiling (lower, upper) of an ROI's rows, where they carry one (RDM datasets)."""
    if "noise_ceiling_lower" not in rows.columns or not rows["noise_ceiling_lower"].notna().any():
        return None
    return float(rows["noise_ceiling_lower"].mean()), float(rows["noise_ceiling_upper"].mean())


def shown_names(frame: Any, encoders: Sequence[str]) -> list[str]:
    """Encoder labels as panel titles, each saying "(random weights)" where the rows mark it so."""
    if "random_weights" not in frame.columns:
        return list(encoders)
    random = set(frame.loc[frame["random_weights"].fillna(False).astype(bool), "encoder"])
    return [f"{e} (random weights)" if e in random else str(e) for e in encoders]


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
            ax.plot(x, chance.to_numpy(), "_", color="black", ms=12, mew=2, label="chance" if j == 0 else None,
                    zorder=5, clip_on=False, gid=f"chance-{score}")
        ax.set_xticks(np.arange(len(rois)), rois, rotation=30)
        ax.set_ylim(-0.04, 1.02)  # below 0, so a chance level of 1/120 shows above the axis, not on it
        ax.axhline(0, color="0.3", lw=0.8)
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
