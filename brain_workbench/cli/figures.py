"""Figure commands and the HTML report: thin wrappers over :mod:`brain_workbench.figures` and :mod:`brain_workbench.report`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from brain_workbench.cli.common import StoreOption, console, default_store
from brain_workbench.figures import plot_layer_profiles
from brain_workbench.figures.adaptation import draw_sweep_adaptation
from brain_workbench.figures.reconstructions import draw_sweep_reconstructions, draw_sweep_retrieval
from brain_workbench.figures.sweep import draw_brainmap, draw_rois, sweep_roi_order
from brain_workbench.report import write_report
from brain_workbench.store import open_store
from brain_workbench.sweep import results_table
from brain_workbench.types import WorkbenchError

ROI_FILE_HELP = ("ROI labels from a file (repeatable): lh./rh. .mgz/.gii/.annot per-vertex labels (e.g. NSD's "
                 "lh.prf-visualrois.mgz), .npy labels per unit, or .npz masks per unit.")
ROI_NAMES_HELP = "Names of integer labels: 1=V1v,2=V1d or a colour table file (NSD's .mgz.ctab)."

figure_app = typer.Typer(help="Brain maps, layer profiles, reconstructions and adaptation curves as PNG files.",
                         no_args_is_help=True)


@figure_app.command("brainmap")
def figure_brainmap(
    sweep: str = typer.Argument(..., help="Sweep name."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    encoder: str | None = typer.Option(None, "--encoder", help="Encoder (label) to show; default: the first."),
    layer: str | None = typer.Option(None, "--layer", help="Layer to show; default: the best layer overall."),
    subject: str | None = typer.Option(None, "--subject", help="Subject; default: the first."),
    roi: str | None = typer.Option(None, "--roi", help="Only colour vertices of this ROI."),
    value: str = typer.Option("score", "--value", help="score, score_normalized, r2, alpha, or best-layer."),
    cmap: str = typer.Option("inferno", "--cmap", help="matplotlib colour map."),
    vmin: float | None = typer.Option(None, "--vmin", help="Bottom of the colour scale (default: 0, or the data's minimum)."),
    vmax: float | None = typer.Option(None, "--vmax", help="Top of the colour scale (default: 99th percentile)."),
    threshold: float | None = typer.Option(None, "--threshold",
                                           help="Hide units below this value (scores: default the r for p < 0.001)."),
    view: list[str] = typer.Option([], "--view", help="lateral, medial, dorsal, ventral, anterior, posterior (repeatable)."),
    hemi: list[str] = typer.Option([], "--hemi", help="left or right (repeatable); default both."),
    log: bool | None = typer.Option(None, "--log/--linear", help="Log colour scale (default: on for alpha)."),
    outline: list[str] = typer.Option([], "--outline", help="Outline this ROI over the map (repeatable)."),
    outlines: bool = typer.Option(False, "--outlines", help="Outline every ROI of the dataset (or of --roi-file)."),
    roi_file: list[Path] = typer.Option([], "--roi-file", help=ROI_FILE_HELP),
    roi_names: str | None = typer.Option(None, "--roi-names", help=ROI_NAMES_HELP),
    store: str | None = StoreOption,
) -> None:
    """Draw per-vertex scores (or the best layer per vertex) on the inflated surface of the data's mesh."""
    surface = {k: v for k, v in {"cmap": cmap, "vmin": vmin, "vmax": vmax, "threshold": threshold, "views": view or None,
                                  "hemispheres": hemi or None, "log": log}.items() if v is not None}
    if value == "best-layer":
        surface = {k: v for k, v in surface.items() if k in ("views", "hemispheres")}
    chosen = [] if outlines else (outline or None)
    path = draw_brainmap(open_store(store or default_store(sweep), mode="r"), sweep, out, encoder, layer, subject, value, roi,
                         outlines=chosen, roi_files=roi_file, roi_names=roi_names, **surface)
    console.print(f"wrote {path}")


@figure_app.command("rois")
def figure_rois(
    sweep: str = typer.Argument(..., help="Sweep name."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    subject: str | None = typer.Option(None, "--subject", help="Subject; default: the first."),
    roi: list[str] = typer.Option([], "--roi", help="ROIs to draw (repeatable); default all, in dataset order."),
    view: list[str] = typer.Option([], "--view", help="lateral, medial, dorsal, ventral, anterior, posterior (repeatable)."),
    hemi: list[str] = typer.Option([], "--hemi", help="left or right (repeatable); default both."),
    roi_file: list[Path] = typer.Option([], "--roi-file", help=ROI_FILE_HELP),
    roi_names: str | None = typer.Option(None, "--roi-names", help=ROI_NAMES_HELP),
    store: str | None = StoreOption,
) -> None:
    """Draw the dataset's ROIs (or those of --roi-file) on the inflated surface as a label map with a legend."""
    path = draw_rois(open_store(store or default_store(sweep), mode="r"), sweep, out, subject, roi or None,
                     view or None, hemi or None, roi_files=roi_file, roi_names=roi_names)
    console.print(f"wrote {path}")


@figure_app.command("layers")
def figure_layers(
    sweep: str = typer.Argument(..., help="Sweep name."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    value: str = typer.Option("mean_r", "--value", help="mean_r, mean_r_normalized, or value (metric cells)."),
    metric: str | None = typer.Option(None, "--metric", help="Plot this metric's values (implies --value value)."),
    analysis: str | None = typer.Option(None, "--analysis", help="The head or metric (its table name) to plot; "
                                                                 "needed when several share the value."),
    roi: list[str] = typer.Option([], "--roi", help="ROIs to include (repeatable); default all."),
    session: str | None = typer.Option(None, "--session", help="The RDM session to plot ('none' for RDMs without "
                                                               "one); needed when the rows hold several."),
    subject: list[str] = typer.Option([], "--subject", help="Only these subjects (repeatable), e.g. 'group' for "
                                                            "a group RDM."),
    store: str | None = StoreOption,
) -> None:
    """Plot score per layer depth, one line per ROI, one panel per encoder (one analysis at a time)."""
    if metric:
        value = "value"
    store_obj = open_store(store or default_store(sweep), mode="r")
    frame = results_table(store_obj, sweep)
    check_choice("ROI", roi, [r for r in dict.fromkeys(frame["roi"]) if r != "all"], sweep)
    if metric:
        metrics = frame[frame["kind"] == "metric"]
        names = list(dict.fromkeys(metrics["analysis"]))
        by_head = {h: list(dict.fromkeys(rows["analysis"])) for h, rows in metrics.groupby("head", sort=False)}
        if metric not in names and len(by_head.get(metric, [])) == 1:
            metric = by_head[metric][0]
        check_choice("metric", [metric], names, sweep)
        analysis = metric
    elif value not in frame.columns:
        plottable = [c for c in ("mean_r", "mean_r_normalized", "median_r", "value") if c in frame.columns]
        raise WorkbenchError(f"the results of sweep {sweep!r} have no column {value!r}; plottable: {', '.join(plottable)}")
    if value in frame.columns:
        frame = frame[frame[value].notna()]
    if analysis:
        check_choice("analysis", [analysis], list(dict.fromkeys(frame["analysis"])), sweep)
        frame = frame[frame["analysis"] == analysis]
    several = list(dict.fromkeys(frame["analysis"]))
    if len(several) > 1:
        raise WorkbenchError(f"{value} of sweep {sweep!r} comes from {len(several)} analyses ({', '.join(several)}), "
                             "which one line cannot average; choose one with --analysis")
    frame = one_session_and_subjects(frame, sweep, session, subject)
    path = plot_layer_profiles(frame, value=value, rois=roi or None, roi_order=sweep_roi_order(store_obj, sweep) or None,
                               title=f"{sweep}: {analysis or metric or value} per layer", output_file=out)
    console.print(f"wrote {path}")


@figure_app.command("reconstructions")
def figure_reconstructions(
    sweep: str = typer.Argument(..., help="Sweep name."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    metric: str | None = typer.Option(None, "--metric", help="Per-image score that picks the examples "
                                                             "(default: the first configured, e.g. pixcorr)."),
    store: str | None = StoreOption,
) -> None:
    """Draw test images beside their reconstructions: best, median, worst and random per subject."""
    path = draw_sweep_reconstructions(open_store(store or default_store(sweep), mode="r"), sweep, out, metric)
    console.print(f"wrote {path}")


@figure_app.command("retrieval")
def figure_retrieval(
    sweep: str = typer.Argument(..., help="Sweep name."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    subject: str | None = typer.Option(None, "--subject", help="Subject (default: the first)."),
    roi: str | None = typer.Option(None, "--roi", help="Unit set the decoder read (default: the first)."),
    queries: int = typer.Option(6, "--queries", min=1, help="Brain patterns shown (a seeded random draw)."),
    k: int = typer.Option(5, "-k", min=1, help="Retrieved images per pattern."),
    store: str | None = StoreOption,
) -> None:
    """Draw each brain pattern's top-k retrieved test images (needs decoding.keep_predictions: true)."""
    path = draw_sweep_retrieval(open_store(store or default_store(sweep), mode="r"), sweep, out, subject, roi,
                                n_queries=queries, k=k)
    console.print(f"wrote {path}")


@figure_app.command("adaptation")
def figure_adaptation(
    sweep: str = typer.Argument(..., help="Sweep name (a sweep with a shared: section)."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    metric: list[str] = typer.Option([], "--metric", help="top1, two_way, mean_r or median_r (repeatable); "
                                                           "default every score the cells have."),
    subject: str | None = typer.Option(None, "--subject", help="Only this new subject (default: mean over all)."),
    store: str | None = StoreOption,
) -> None:
    """Plot score against the number of the new subject's sessions, one line per model."""
    path = draw_sweep_adaptation(open_store(store or default_store(sweep), mode="r"), sweep, out, metric or None,
                                 subject)
    console.print(f"wrote {path}")


GROUP_SUBJECTS = ("group",)


def one_session_and_subjects(frame: Any, sweep: str, session: str | None, subjects: list[str]) -> Any:
    """The rows of one session and of real subjects: session RDMs, their mean (no session) and a group RDM
    (subject ``group``, left out of an average over subjects, said aloud) are never averaged into one line."""
    if subjects:
        check_choice("subject", subjects, [str(s) for s in dict.fromkeys(frame["subject"])], sweep)
        frame = frame[frame["subject"].astype(str).isin(subjects)]
    if "session" in frame.columns and frame["session"].notna().any():
        labels = frame["session"].astype(object).where(frame["session"].notna(), "none").astype(str)
        known = list(dict.fromkeys(labels))
        if session is None and len(known) > 1:
            raise WorkbenchError(f"sweep {sweep!r} has RDMs of {len(known)} sessions ({', '.join(known)}), which one "
                                 "line cannot average; choose one with --session")
        if session is not None:
            check_choice("session", [session], known, sweep)
            frame = frame[labels == session]
    elif session not in (None, "none"):
        raise WorkbenchError(f"sweep {sweep!r} has no sessions; leave out --session")
    names = [str(s) for s in dict.fromkeys(frame["subject"])]
    groups = [s for s in names if s.lower() in GROUP_SUBJECTS]
    if groups and len(names) > 1:
        if subjects:
            raise WorkbenchError(f"subject {groups[0]!r} is a group RDM, which an average over subjects must not "
                                 f"include; draw it alone with --subject {groups[0]}")
        console.print(f"the group RDM (subject {groups[0]!r}) is left out of the average over subjects "
                      f"{', '.join(s for s in names if s not in groups)}; draw it with --subject {groups[0]}")
        frame = frame[~frame["subject"].astype(str).isin(groups)]
    return frame


def check_choice(what: str, given: list[str], known: list[str], sweep: str) -> None:
    """Refuse a value the sweep does not have, in one sentence listing the ones it has."""
    unknown = [g for g in given if g not in known]
    if unknown:
        has = ", ".join(known) if known else "none"
        raise WorkbenchError(f"sweep {sweep!r} has no {what} {unknown[0]!r} cells; it has: {has}")


def report(sweep: str = typer.Argument(..., help="Sweep name."),
           out: Path = typer.Option(..., "--out", help="Folder for index.html and its figures."),
           store: str | None = StoreOption) -> None:
    """Write one HTML page: contents, config, versions, statistics tables, captioned figures and a 3-D surface view."""
    path = write_report(open_store(store or default_store(sweep), mode="r"), sweep, out,
                        say=lambda line: console.print(line, highlight=False))
    console.print(f"wrote {path}")
