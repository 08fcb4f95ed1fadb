"""The one-line-per-ROI answer a sweep gives: each encoder's best layer per ROI, with its score, SEM and q.

Shared by ``results show`` (the encoding analysis's tables) and the report's opening summary.
"""

from __future__ import annotations

from typing import Any

from brain_workbench.analysis.contract import TextTable

SUMMARY_COLUMNS = ("mean_r", "mean_r_normalized")


def best_layers(rows: Any, value: str = "mean_r") -> Any:
    """Per encoder (config order) × ROI (dataset order, ``all`` left out): the layer whose mean over subjects of
    ``value`` is highest, with that mean, its SEM across subjects, the normalised score and the largest FDR q
    over subjects (NaN where a column is absent). A pandas frame."""
    import numpy as np
    import pandas as pd

    frame = rows[rows["roi"] != "all"]
    out = []
    for encoder in dict.fromkeys(frame["encoder"]):
        mine = frame[frame["encoder"] == encoder]
        for roi in dict.fromkeys(mine["roi"]):
            part = mine[mine["roi"] == roi]
            means = part.groupby(["layer", "depth"], sort=False)[value].mean().dropna()
            if means.empty:
                continue
            layer, depth = means.idxmax()
            best = part[part["layer"] == layer]
            per_subject = best.groupby("subject")[value].mean()
            row = {"encoder": encoder, "roi": roi, "layer": layer, "depth": float(depth),
                   value: float(means.max()),
                   "sem": float(per_subject.sem()) if len(per_subject) > 1 else np.nan,
                   "n_subjects": int(len(per_subject))}
            for column in ("mean_r_normalized", "q_fdr"):
                if column != value and column in best.columns and best[column].notna().any():
                    row[column] = float(best[column].max() if column == "q_fdr" else best[column].mean())
            out.append(row)
    return pd.DataFrame(out)


def best_layer_table(rows: Any, value: str, title: str) -> TextTable:
    """:func:`best_layers` as a ``results show`` table (values formatted, blanks where not measured)."""
    frame = best_layers(rows, value)
    extras = [c for c in ("mean_r_normalized", "q_fdr") if c in frame.columns]
    names = (value, "SEM", *extras)

    def fmt(x: Any) -> str:
        return "" if x is None or x != x else f"{x:.3g}" if abs(x) < 1e-3 and x != 0 else f"{x:.3f}"

    keys = tuple((str(r["encoder"]), str(r["roi"]), str(r["layer"]), f"{r['depth']:.2f}") for _, r in frame.iterrows())
    values = tuple(tuple(fmt(r[c]) for c in (value, "sem", *extras)) for _, r in frame.iterrows())
    return TextTable(title, ("encoder", "ROI", "best layer", "depth"), names, keys, values)
