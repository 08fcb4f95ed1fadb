"""Figure commands and the HTML report: thin wrappers over :mod:`workbench.figures` and :mod:`workbench.report`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from workbench.cli.common import StoreOption, console, default_store
from workbench.figures import plot_layer_profiles
from workbench.figures.reconstructions import draw_sweep_reconstructions
from workbench.figures.sweep import draw_brainmap
from workbench.report import write_report
from workbench.store import open_store
from workbench.sweep import results_table

figure_app = typer.Typer(help="Brain maps and layer profiles as PNG files.", no_args_is_help=True)


@figure_app.command("brainmap")
def figure_brainmap(
    sweep: str = typer.Argument(..., help="Sweep name."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Encoder (label) to show; default: the first."),
    layer: Optional[str] = typer.Option(None, "--layer", help="Layer to show; default: the best layer overall."),
    subject: Optional[str] = typer.Option(None, "--subject", help="Subject; default: the first."),
    roi: Optional[str] = typer.Option(None, "--roi", help="Only colour vertices of this ROI."),
    value: str = typer.Option("score", "--value", help="score, score_normalized, r2, alpha, or best-layer."),
    store: Optional[str] = StoreOption,
) -> None:
    """Draw per-vertex scores (or the best layer per vertex) on the inflated fsaverage5 surface."""
    path = draw_brainmap(open_store(store or default_store(sweep), mode="r"), sweep, out, encoder, layer, subject, value, roi)
    console.print(f"wrote {path}")


@figure_app.command("layers")
def figure_layers(
    sweep: str = typer.Argument(..., help="Sweep name."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    value: str = typer.Option("mean_r", "--value", help="mean_r, mean_r_normalized, or value (metric cells)."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Plot this metric's values (implies --value value)."),
    roi: list[str] = typer.Option([], "--roi", help="ROIs to include (repeatable); default all."),
    store: Optional[str] = StoreOption,
) -> None:
    """Plot score per layer depth, one line per ROI, one panel per encoder."""
    if metric:
        value = "value"
    frame = results_table(open_store(store or default_store(sweep), mode="r"), sweep)
    if value in frame.columns:
        frame = frame[frame[value].notna()]
    if metric:
        frame = frame[frame["head"] == metric]
    path = plot_layer_profiles(frame, value=value, rois=roi or None, title=f"{sweep}: {metric or value} per layer",
                               output_file=out)
    console.print(f"wrote {path}")


@figure_app.command("reconstructions")
def figure_reconstructions(
    sweep: str = typer.Argument(..., help="Sweep name."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Per-image score that picks the examples "
                                                               "(default: the first configured, e.g. pixcorr)."),
    store: Optional[str] = StoreOption,
) -> None:
    """Draw test images beside their reconstructions: best, median, worst and random per subject."""
    path = draw_sweep_reconstructions(open_store(store or default_store(sweep), mode="r"), sweep, out, metric)
    console.print(f"wrote {path}")


def report(sweep: str = typer.Argument(..., help="Sweep name."),
           out: Path = typer.Option(..., "--out", help="Folder for index.html and its figures."),
           store: Optional[str] = StoreOption) -> None:
    """Write a static HTML report: the results table and every standard figure."""
    path = write_report(open_store(store or default_store(sweep), mode="r"), sweep, out)
    console.print(f"wrote {path}")
