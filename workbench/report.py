"""A static HTML report of a finished sweep: its results tables and standard figures."""

from __future__ import annotations

import html
from pathlib import Path

from workbench.figures.sweep import write_figures
from workbench.store import Store
from workbench.sweep import results_table


def write_report(s: Store, sweep: str, out: Path) -> Path:
    """Write ``out/index.html`` with the sweep's tables and every standard figure; returns its path."""
    figures = write_figures(s, sweep, out)
    frame = results_table(s, sweep)
    fmt = {"float_format": lambda x: f"{x:.3f}"}
    tables = []
    analysis = frame["analysis"] if "analysis" in frame else frame["head"]
    for name, rows in frame[frame["kind"] == "encoding"].groupby(analysis, sort=False):
        pivot = rows.pivot_table(index=["encoder", "layer"], columns="roi", values="mean_r", aggfunc="mean")
        tables.append(f"<h2>{html.escape(str(name))}: mean Pearson r per ROI (mean over subjects)</h2>"
                      f"{pivot.to_html(**fmt)}")
    metrics = frame[frame["kind"] == "metric"]
    sessions = "session" in metrics and metrics["session"].notna().any()
    for facet, rows in metrics.groupby([analysis[metrics.index], *([metrics["session"]] if sessions else [])],
                                       sort=False, dropna=False):
        what = f"{facet[0]}, session {facet[1]}" if sessions and facet[1] == facet[1] else facet[0]
        pivot = rows.pivot_table(index=["encoder", "layer"], columns="roi", values="value", aggfunc="mean")
        tables.append(f"<h2>{html.escape(str(what))} per ROI (mean over subjects, no fitting)</h2>"
                      f"{pivot.to_html(**fmt)}")
    body = "".join(f'<figure><img src="{html.escape(p.name)}" style="max-width:100%"><figcaption>{html.escape(p.stem)}'
                   f"</figcaption></figure>" for p in figures)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(sweep)}</title>"
            "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse} td,th{padding:2px 8px;"
            "border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
            f"<h1>Sweep {html.escape(sweep)}</h1><p>store: {html.escape(s.url)}</p>{''.join(tables)}"
            f"<h2>Figures</h2>{body}</body></html>")
    (out / "index.html").write_text(page)
    return out / "index.html"
