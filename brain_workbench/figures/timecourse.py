"""Time-resolved decoding: a score over sliding time windows with its chance level, the permutation null's 95th
percentile as a band above chance, and the time of peak decodability."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from brain_workbench.analysis.timecourse import timecourse_score
from brain_workbench.figures.output import new_figure, save_or_return
from brain_workbench.types import WorkbenchError


def plot_decoding_timecourse(frame: Any, score: str | None = None, *, title: str = "", figure: Any = None,
                             output_file: str | Path | None = None) -> Any:
    """One line per analysis × encoder × layer × ROI (mean over subjects, shaded ±1 SEM when several), chance as a
    dashed line, the permutation null's 95th percentile as a grey band above it, the peak marked."""
    if frame.empty or "window_centre_s" not in frame.columns or frame["window_centre_s"].nunique() < 2:
        raise WorkbenchError("a decoding time course needs results of at least two time windows")
    score = score or timecourse_score(frame)
    if score is None or score not in frame.columns:
        raise WorkbenchError("the time-resolved results have no retrieval score to plot")
    fig = new_figure(figure, (8.0, 4.8))
    ax = fig.subplots()
    null = f"null95_{score}"
    for (analysis, encoder, layer, roi), rows in frame.groupby(["analysis", "encoder", "layer", "roi"], sort=False):
        per = rows.groupby("window_centre_s")
        mean = per[score].mean().sort_index()
        t = mean.index.to_numpy(dtype=float)
        line, = ax.plot(t, mean.to_numpy(), marker="o", ms=3, label=f"{analysis} · {encoder} {layer} · {roi}")
        if rows["subject"].nunique() > 1:
            sem = per[score].sem().reindex(mean.index).to_numpy()
            ax.fill_between(t, mean.to_numpy() - sem, mean.to_numpy() + sem, color=line.get_color(), alpha=0.2)
        chance = per[f"chance_{score}"].mean().reindex(mean.index).to_numpy()
        if null in rows.columns and rows[null].notna().any():
            ax.fill_between(t, chance, per[null].mean().reindex(mean.index).to_numpy(), color="grey", alpha=0.25,
                            lw=0, label="permutation null (chance – 95th percentile)")
        ax.plot(t, chance, "--", color="black", lw=1, label="chance")
        peak = float(t[int(np.argmax(mean.to_numpy()))])
        ax.axvline(peak, color=line.get_color(), lw=1, ls=":")
        ax.annotate(f"peak {peak:.3f} s", (peak, float(mean.max())), textcoords="offset points", xytext=(4, 4),
                    fontsize=8, color=line.get_color())
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), frameon=False, fontsize=8)
    ax.axvline(0.0, color="black", lw=0.5)
    ax.set_xlabel("window centre (s from image onset)")
    ax.set_ylabel(score.replace("_brain_to_image", " brain→image").replace("_", " "))
    ax.grid(alpha=0.3)
    ax.set_title(title or "time-resolved decoding", fontsize=12)
    fig.tight_layout()
    return save_or_return(fig, output_file, close=figure is None)
