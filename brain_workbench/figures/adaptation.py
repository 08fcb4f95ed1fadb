"""Score against the amount of a new subject's data, one line per model: what sharing across subjects buys."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brain_workbench.figures.output import given_axes, new_figure, panel_titles, save_or_return
from brain_workbench.types import WorkbenchError

METRIC_LABELS = {"top1": "retrieval top-1", "two_way": "two-way identification", "mean_r": "mean Pearson r",
                 "median_r": "median Pearson r"}


def plot_adaptation_curve(table: Any, metrics: Sequence[str] | None = None, *, x: str = "k_sessions",
                          title: str = "", figure: Any = None, axes: Any = None,
                          output_file: str | Path | None = None) -> Any:
    """Plot an ``adaptation_curve`` table: one panel per metric, one line per model, x = sessions (or stimuli).

    Shared models are solid, per-subject ones dashed; a dotted grey line marks chance.
    """
    import matplotlib

    if table is None or len(table) == 0:
        raise WorkbenchError("the adaptation table is empty: run adaptation_curve first")
    needed = {"model", "kind", "metric", "value", x}
    if missing := needed - set(table.columns):
        raise WorkbenchError(f"the adaptation table lacks columns {sorted(missing)}; pass adaptation_curve's output")
    names = list(metrics) if metrics else list(dict.fromkeys(table["metric"]))
    unknown = [m for m in names if m not in set(table["metric"])]
    if unknown:
        raise WorkbenchError(f"the table has no metric {unknown[0]!r}; it has {', '.join(dict.fromkeys(table['metric']))}")
    models = list(dict.fromkeys(table["model"]))
    colours = matplotlib.colormaps["tab10"](np.arange(len(models)) % 10)
    if axes is None:
        fig = new_figure(figure, (4.4 * len(names) + 1.8, 3.9))
        panels = list(fig.subplots(1, len(names), squeeze=False)[0])
    else:
        panels = given_axes(axes, len(names), "panels (one per metric)")
        fig = panels[0].figure
    for ax, metric in zip(panels, names):
        rows = table[table["metric"] == metric]
        for colour, model in zip(colours, models):
            sub = rows[rows["model"] == model].groupby(x, as_index=False)["value"].mean().sort_values(x)
            if sub.empty:
                continue
            shared = (table.loc[table["model"] == model, "kind"] == "shared").any()
            ax.plot(sub[x], sub["value"], marker="o", lw=2, ls="-" if shared else "--", color=colour, label=model)
        if "chance" in rows.columns and rows["chance"].notna().any():
            ax.axhline(float(rows["chance"].mean()), color="0.6", ls=":", lw=1.2, label="chance")
        ticks = np.sort(rows[x].unique())
        ax.set_xscale("log")
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(int(t)) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("sessions of the new subject" if x == "k_sessions" else x.replace("_", " "))
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    handles, labels = panels[0].get_legend_handles_labels()
    if axes is None:
        subject = ", ".join(dict.fromkeys(table["subject"].astype(str))) if "subject" in table.columns else ""
        fig.legend(handles, labels, loc="center right", frameon=False)
        fig.suptitle(title or f"New-subject adaptation (subject {subject})", fontsize=12)
        fig.tight_layout(rect=(0, 0, 0.8, 0.95))
    else:
        panel_titles(panels, [""] * len(panels), title, fontsize=12)
        panels[-1].legend(handles, labels, frameon=False, fontsize="small")
    return save_or_return(fig, output_file, close=figure is None and axes is None)


ADAPTATION_SCORES = ("top1", "two_way", "mean_r", "median_r")


def adaptation_table(tidy: Any) -> Any:
    """The adaptation rows of a sweep's tidy results table in :func:`plot_adaptation_curve`'s columns."""
    rows = tidy[tidy["kind"] == "adaptation"] if "kind" in tidy.columns else tidy.iloc[:0]
    if rows.empty:
        return rows
    scores = rows[rows["score"].isin(ADAPTATION_SCORES)]
    chance = rows[rows["score"].str.startswith("chance_")].assign(score=lambda f: f["score"].str[len("chance_"):])
    chance = chance.set_index(["cell", "score"])["value"]
    out = scores.rename(columns={"analysis": "model", "score": "metric"}).assign(
        kind=scores["model_kind"].to_numpy(), k_sessions=scores["k_sessions"].astype(int).to_numpy())
    out["chance"] = [chance.get((c, m), np.nan) for c, m in zip(out["cell"], out["metric"])]
    return out.reset_index(drop=True)


def draw_sweep_adaptation(store_obj: Any, sweep: str, out: str | Path, metrics: Sequence[str] | None = None,
                          subject: str | None = None) -> Any:
    """The adaptation figure of a sweep with a ``shared:`` section, drawn from its results table."""
    from brain_workbench.sweep.tables import tidy_table

    table = adaptation_table(tidy_table(store_obj, sweep))
    if table.empty:
        raise WorkbenchError(f"sweep {sweep!r} has no adaptation cells; add a shared: section to its config")
    if subject is not None:
        known = list(dict.fromkeys(table["subject"].astype(str)))
        if str(subject) not in known:
            raise WorkbenchError(f"sweep {sweep!r} has no adaptation cells for subject {subject!r}; it has: "
                                 f"{', '.join(known)}")
        table = table[table["subject"].astype(str) == str(subject)]
    return plot_adaptation_curve(table, metrics=metrics, title=f"{sweep}: score against the new subject's sessions",
                                 output_file=out)
