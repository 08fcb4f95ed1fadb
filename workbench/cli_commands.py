"""Commands that drive the pipeline: extract, sweep, results, figure, report, demo, plugin new."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

import workbench as wb
from workbench.cli import JsonOption, StoreOption, _parse_options, _print_json, app, console
from workbench.store import open_store
from workbench.sweep.runner import Reporter
from workbench.types import WorkbenchError

sweep_app = typer.Typer(help="Run alignment sweeps from YAML configs (see configs/).", no_args_is_help=True)
results_app = typer.Typer(help="Tables of sweep results.", no_args_is_help=True)
figure_app = typer.Typer(help="Brain maps and layer profiles as PNG files.", no_args_is_help=True)
plugin_app = typer.Typer(help="Scaffold a new plugin package.", no_args_is_help=True)
app.add_typer(sweep_app, name="sweep")
app.add_typer(results_app, name="results")
app.add_typer(figure_app, name="figure")
app.add_typer(plugin_app, name="plugin")


class RichReporter(Reporter):
    """Progress bars in the parent process (one task per extraction / fitting stage)."""

    def __init__(self, progress: Progress) -> None:
        self.bar = progress

    def message(self, text: str) -> None:
        self.bar.console.print(text)

    def progress(self, label: str, total: int) -> Callable[[int], None]:
        task = self.bar.add_task(label, total=total)
        return lambda n: self.bar.advance(task, n)


@contextmanager
def rich_reporter() -> Iterator[RichReporter]:
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as bar:
        yield RichReporter(bar)


# ---- extract -------------------------------------------------------------------------------
@app.command("extract")
def extract(
    encoder: str = typer.Argument(..., help="Encoder name, e.g. clip, hf-lm, efficientnet."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset whose stimuli to encode."),
    layers: list[str] = typer.Option([], "--layers", "-l", help="Layer names or relative depths 0–1 (repeatable); default all."),
    option: list[str] = typer.Option([], "--option", "-o", help="Encoder option KEY=VALUE (repeatable)."),
    dataset_option: list[str] = typer.Option([], "--dataset-option", help="Dataset option KEY=VALUE (repeatable)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Stimuli per forward pass."),
    store: Optional[str] = StoreOption,
) -> None:
    """Encode every stimulus of a dataset and cache the features (resumes an interrupted run)."""
    from workbench.features import extract_features

    ds = wb.dataset(dataset, **_parse_options(dataset_option))
    enc = wb.encoder(encoder, **_parse_options(option))
    stimuli = ds.stimuli(enc.modality)
    s = open_store(store)
    wanted = [float(x) if _is_number(x) else x for x in layers] or None
    started = time.time()
    with rich_reporter() as reporter:
        paths = extract_features(s, enc, stimuli, wanted, batch_size=batch_size,
                                 progress=reporter.progress(f"features {encoder}", len(stimuli)))
    console.print(f"{len(paths)} layer(s) of {len(stimuli)} stimuli in {s.url} ({time.time() - started:.1f} s)")
    for layer, path in paths.items():
        console.print(f"  {layer} → {path}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---- sweep ---------------------------------------------------------------------------------
def _load(config: Path, overrides: list[str]):
    from workbench.sweep import load_config

    return load_config(config, overrides)


@sweep_app.command("run")
def sweep_run(
    config: Path = typer.Argument(..., help="Sweep YAML, e.g. configs/demo.yaml."),
    store: Optional[str] = StoreOption,
    executor: str = typer.Option("inline", "--executor", "-e", help="inline (this process), local (process pool) or dask."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Worker processes for --executor local."),
    address: Optional[str] = typer.Option(None, "--address", help="dask scheduler address for --executor dask."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config value: key.path=value (repeatable)."),
) -> None:
    """Run a sweep: cache responses and features, fit every cell, write scores and a Parquet table.

    Finished work is never recomputed: rerunning the same config only checks the store.
    """
    from workbench.sweep import Sweep

    cfg = _load(config, overrides)
    with rich_reporter() as reporter:
        summary = Sweep(cfg, store).run(executor=executor, workers=workers, reporter=reporter, address=address)
    console.print(f"[green]done[/]: {summary['computed']} cell(s) computed, {summary['skipped']} already in the store, "
                  f"{summary['wall_time_s']} s. Table: {summary['table']}")
    console.print(f"Next: workbench results show {cfg.name} --store {store or cfg.store or 'stores/default.zarr'}")


@sweep_app.command("status")
def sweep_status(config: Path = typer.Argument(..., help="Sweep YAML."), store: Optional[str] = StoreOption,
                 overrides: list[str] = typer.Option([], "--set", help="Override a config value."),
                 as_json: bool = JsonOption) -> None:
    """Show how much of a sweep is already in the store."""
    from workbench.sweep import Sweep

    status = Sweep(_load(config, overrides), store).status()
    if as_json:
        _print_json(status)
        return
    for key, value in status.items():
        console.print(f"[bold]{key}[/]: {value}")


# ---- results -------------------------------------------------------------------------------
@results_app.command("show")
def results_show(
    sweep: str = typer.Argument(..., help="Sweep name (the config's `name`)."),
    store: Optional[str] = StoreOption,
    value: str = typer.Option("mean_r", "--value", help="Column to tabulate: mean_r, mean_r_normalized, median_r."),
    parquet: Optional[Path] = typer.Option(None, "--parquet", help="Also write the full table to this Parquet file."),
    as_json: bool = JsonOption,
) -> None:
    """Per-ROI scores of every encoder layer, averaged over subjects (full rows with --json)."""
    from workbench.sweep import results_table

    frame = results_table(open_store(store or _default_store(sweep)), sweep)
    if parquet:
        frame.to_parquet(parquet, index=False)
    if as_json:
        _print_json(json.loads(frame.to_json(orient="records")))
        return
    if value not in frame.columns:
        raise WorkbenchError(f"no column {value!r}; choose one of {', '.join(frame.columns)}")
    encoding = frame[frame["kind"] == "encoding"] if "kind" in frame.columns else frame
    if not encoding.empty:
        _print_pivot(encoding, value, f"{sweep}: {value} (mean over subjects)")
    if "kind" in frame.columns:
        for metric, rows in frame[frame["kind"] == "metric"].groupby("head", sort=False):
            _print_pivot(rows, "value", f"{sweep}: {metric} (mean over subjects, no fitting)")


def _print_pivot(frame, value: str, title: str) -> None:
    pivot = frame.pivot_table(index=["encoder", "depth", "layer"], columns="roi", values=value, aggfunc="mean", sort=False)
    rois = [c for c in dict.fromkeys(frame["roi"]) if c != "all"] + (["all"] if "all" in pivot.columns else [])
    table = Table("encoder", "layer", "depth", *rois, title=title)
    for (encoder, depth, layer), row in pivot.sort_index(level=[0, 1], sort_remaining=False).iterrows():
        table.add_row(encoder, layer, f"{depth:.2f}", *[_fmt(row.get(r)) for r in rois])
    console.print(table)


def _fmt(x: object) -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def _default_store(sweep: str) -> str | None:
    """A sweep's own store when its config in configs/ names one (so `results show demo` just works)."""
    try:
        cfg = _load(Path("configs") / f"{sweep}.yaml", [])
    except WorkbenchError:
        return None
    return cfg.store


# ---- figures -------------------------------------------------------------------------------
def _cells_for_map(store_obj, sweep: str, subject: Optional[str], encoder: Optional[str]):
    from workbench.sweep.runner import load_cell_scores

    cells = list(load_cell_scores(store_obj, sweep, subject=subject, encoder=encoder))
    if not cells:
        raise WorkbenchError(f"no cells of sweep {sweep!r} match subject={subject} encoder={encoder}")
    return cells


def _units(store_obj, response_path: str):
    rec = store_obj.load_recording(response_path)
    if rec.units.hemisphere is None or rec.units.vertex is None:
        raise WorkbenchError(f"{rec.dataset} units are in space {rec.units.space!r} without surface vertices; "
                             "brain maps need surface data")
    return rec


def draw_brainmap(store_obj, sweep: str, out: Path, encoder: Optional[str] = None, layer: Optional[str] = None,
                  subject: Optional[str] = None, value: str = "score", roi: Optional[str] = None) -> Path:
    """Draw one cell's per-vertex map, or the best layer per vertex with ``value='best-layer'``."""
    from workbench.figures import plot_best_layer, plot_surface_scores

    cells = _cells_for_map(store_obj, sweep, subject, encoder)
    subject = subject or cells[0][0]["subject"]
    encoder = encoder or cells[0][0]["encoder"]
    cells = [c for c in cells if c[0]["subject"] == subject and c[0]["encoder"] == encoder]
    rec = _units(store_obj, cells[0][0]["response_path"])
    keep = np.ones(rec.units.n, dtype=bool)
    if roi:
        if roi not in rec.units.rois:
            raise WorkbenchError(f"unknown ROI {roi!r}; known: {', '.join(rec.units.rois)}")
        keep = rec.units.rois[roi]
    critical = critical_r(int(cells[0][0].get("n_test") or 0))
    if value == "best-layer":
        cells.sort(key=lambda c: c[0]["depth"])
        scores = np.stack([np.where(keep, c[1]["score"], np.nan) for c in cells])
        return plot_best_layer(np.nan_to_num(scores, nan=-1), [c[0]["depth"] for c in cells], rec.units.hemisphere,
                               rec.units.vertex, rec.units.space, min_score=critical,
                               title=f"{encoder}: best layer per vertex (r > {critical:.2f}), subject {subject} ({sweep})",
                               output_file=out)
    if layer is None:
        chosen = max(cells, key=lambda c: float(np.nanmean(c[1]["score"][keep])))
    else:
        matching = [c for c in cells if c[0]["layer"] == layer]
        if not matching:
            raise WorkbenchError(f"encoder {encoder!r} has no layer {layer!r} in sweep {sweep!r}; layers: "
                                 f"{', '.join(c[0]['layer'] for c in cells)}")
        chosen = matching[0]
    if value not in chosen[1]:
        raise WorkbenchError(f"cells have no per-unit {value!r}; choose from {', '.join(chosen[1])} or best-layer")
    threshold = critical if value in ("score", "score_normalized") else -np.inf
    data = np.where(keep & (chosen[1]["score"] >= threshold), chosen[1][value], np.nan)
    label = {"score": "Pearson r (test split)", "score_normalized": "r / noise ceiling", "r2": "R² (test split)",
             "alpha": "ridge alpha"}.get(value, value)
    shown = f" (r > {critical:.2f})" if np.isfinite(threshold) else ""
    return plot_surface_scores(data, rec.units.hemisphere, rec.units.vertex, rec.units.space,
                               title=f"{encoder} · {chosen[0]['layer']} · subject {subject}{shown} ({sweep})",
                               colorbar_label=label, vmax=1.0 if value == "score_normalized" else None, output_file=out)


def critical_r(n: int, p: float = 0.001) -> float:
    """Pearson r that n test stimuli need for one-sided p < ``p`` (uncorrected); maps hide weaker units."""
    from scipy import stats

    if n < 4:
        return 0.0
    t = stats.t.ppf(1 - p, n - 2)
    return float(t / np.sqrt(n - 2 + t * t))


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
    path = draw_brainmap(open_store(store or _default_store(sweep)), sweep, out, encoder, layer, subject, value, roi)
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
    from workbench.figures import plot_layer_profiles

    if metric:
        value = "value"
    from workbench.sweep import results_table

    frame = results_table(open_store(store or _default_store(sweep)), sweep)
    if value in frame.columns:
        frame = frame[frame[value].notna()]
    if metric:
        frame = frame[frame["head"] == metric]
    path = plot_layer_profiles(frame, value=value, rois=roi or None, title=f"{sweep}: {metric or value} per layer",
                               output_file=out)
    console.print(f"wrote {path}")


def write_figures(store_obj, sweep: str, out_dir: Path) -> list[Path]:
    """The standard figure set of a sweep: layer profiles and, for surface data, brain maps."""
    from workbench.figures import plot_layer_profiles
    from workbench.sweep import results_table

    out_dir.mkdir(parents=True, exist_ok=True)
    table = results_table(store_obj, sweep)
    frame = table[table["kind"] == "encoding"]
    metric_paths = [plot_layer_profiles(rows, "value", title=f"{sweep}: {metric} per layer (test stimuli, no fitting)",
                                        output_file=out_dir / f"layers_{metric}.png")
                    for metric, rows in table[table["kind"] == "metric"].groupby("head", sort=False)]
    if frame.empty:
        return metric_paths
    paths = [plot_layer_profiles(frame, "mean_r", title=f"{sweep}: test-set Pearson r per layer",
                                 output_file=out_dir / "layers.png")]
    if "mean_r_normalized" in frame.columns and frame["mean_r_normalized"].notna().any():
        paths.append(plot_layer_profiles(frame, "mean_r_normalized", title=f"{sweep}: r / noise ceiling per layer",
                                         output_file=out_dir / "layers_normalized.png"))
    paths.extend(metric_paths)
    subject = str(frame["subject"].iloc[0])
    for encoder in dict.fromkeys(frame["encoder"]):
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in encoder)
        try:
            paths.append(draw_brainmap(store_obj, sweep, out_dir / f"brainmap_{safe}.png", encoder=encoder, subject=subject))
            paths.append(draw_brainmap(store_obj, sweep, out_dir / f"best_layer_{safe}.png", encoder=encoder,
                                       subject=subject, value="best-layer"))
        except WorkbenchError as exc:
            if "surface" not in str(exc):
                raise
    return paths


@app.command("report")
def report(sweep: str = typer.Argument(..., help="Sweep name."),
           out: Path = typer.Option(..., "--out", help="Folder for index.html and its figures."),
           store: Optional[str] = StoreOption) -> None:
    """Write a static HTML report: the results table and every standard figure."""
    import html

    from workbench.sweep import results_table

    s = open_store(store or _default_store(sweep))
    figures = write_figures(s, sweep, out)
    frame = results_table(s, sweep)
    fmt = {"float_format": lambda x: f"{x:.3f}"}
    tables = []
    encoding = frame[frame["kind"] == "encoding"]
    if not encoding.empty:
        pivot = encoding.pivot_table(index=["encoder", "layer"], columns="roi", values="mean_r", aggfunc="mean")
        tables.append(f"<h2>Mean Pearson r per ROI (test split)</h2>{pivot.to_html(**fmt)}")
    for metric, rows in frame[frame["kind"] == "metric"].groupby("head", sort=False):
        pivot = rows.pivot_table(index=["encoder", "layer"], columns="roi", values="value", aggfunc="mean")
        tables.append(f"<h2>{html.escape(str(metric))} per ROI (test stimuli)</h2>{pivot.to_html(**fmt)}")
    body = "".join(f'<figure><img src="{html.escape(p.name)}" style="max-width:100%"><figcaption>{html.escape(p.stem)}'
                   f"</figcaption></figure>" for p in figures)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(sweep)}</title>"
            "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse} td,th{padding:2px 8px;"
            "border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
            f"<h1>Sweep {html.escape(sweep)}</h1><p>store: {html.escape(s.url)}</p>{''.join(tables)}"
            f"<h2>Figures</h2>{body}</body></html>")
    (out / "index.html").write_text(page)
    console.print(f"wrote {out / 'index.html'}")


# ---- demo ----------------------------------------------------------------------------------
def demo_config_path() -> Path:
    """configs/demo.yaml, shipped inside the installed package as ``workbench_configs``."""
    return Path(str(resources.files("workbench_configs") / "demo.yaml"))


@app.command("demo")
def demo(out: Path = typer.Option(Path("figures/demo"), "--out", help="Folder for the figures."),
         store: Optional[str] = StoreOption,
         executor: str = typer.Option("inline", "--executor", "-e", help="inline, local or dask."),
         overrides: list[str] = typer.Option([], "--set", help="Override a demo config value.")) -> None:
    """Run the demo sweep (configs/demo.yaml) on embedded simulated data and draw its figures."""
    from workbench.sweep import Sweep

    started = time.time()
    cfg = _load(demo_config_path(), overrides)
    with rich_reporter() as reporter:
        sweep = Sweep(cfg, store)
        summary = sweep.run(executor=executor, reporter=reporter)
    paths = write_figures(sweep.store, cfg.name, out)
    results_show(cfg.name, store=sweep.store.url, value="mean_r", parquet=None, as_json=False)
    console.print(f"[green]demo finished[/] in {time.time() - started:.0f} s "
                  f"({summary['computed']} cells computed, {summary['skipped']} reused).")
    console.print(f"Figures in [bold]{out}[/]: " + ", ".join(p.name for p in paths))
    console.print(f"Results table: {summary['table']}")


# ---- plugin scaffolding --------------------------------------------------------------------
@plugin_app.command("new")
def plugin_new(name: str = typer.Argument(..., help="Plugin name, e.g. my-encoder."),
               kind: str = typer.Option(..., "--kind", help="dataset, encoder, head or metric."),
               dest: Path = typer.Option(Path("."), "--dest", help="Folder to create the package in.")) -> None:
    """Create an installable plugin package (pyproject, module, conformance test) to fill in."""
    from workbench.scaffold import scaffold_plugin

    root = scaffold_plugin(name, kind, dest)
    console.print(f"created {root}\nnext: pip install -e {root} && pytest {root}/tests && workbench plugins list")
