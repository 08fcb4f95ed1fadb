"""Pipeline commands: run a sweep, its status, its results table, and the demo."""

from __future__ import annotations

import json
import shlex
import time
from importlib import resources
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.measure import Measurement
from rich.table import Column, Table

from brain_workbench.cli.common import (
    ExecutorName,
    ExecutorOption,
    JsonOption,
    StoreOption,
    console,
    default_store,
    err_console,
    print_json,
    rich_reporter,
)
from brain_workbench.figures.sweep import write_figures
from brain_workbench.store import open_store
from brain_workbench.sweep import Sweep, load_config, results_table
from brain_workbench.sweep.index import store_location
from brain_workbench.types import WorkbenchError

sweep_app = typer.Typer(help="Run alignment sweeps from YAML configs (see configs/).", no_args_is_help=True)
results_app = typer.Typer(help="Tables of sweep results.", no_args_is_help=True)


@sweep_app.command("run")
def sweep_run(
    config: Path = typer.Argument(..., help="Sweep YAML, e.g. configs/demo.yaml."),
    store: str | None = StoreOption,
    executor: ExecutorName = ExecutorOption,
    workers: int | None = typer.Option(None, "--workers", "-j", help="Worker processes for --executor local."),
    address: str | None = typer.Option(None, "--address", help="dask scheduler address for --executor dask."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config value: key.path=value (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the config and print the plan (cells per analysis, "
                                                           "cached vs to compute); compute nothing."),
) -> None:
    """Run a sweep: cache responses and features, fit every cell, write scores and a Parquet table.

    Finished work is never recomputed: rerunning the same config only checks the store.
    """
    cfg = load_config(config, overrides)
    sweep = Sweep(cfg, store)
    if dry_run:
        print_plan(sweep.dry_run(executor, workers))
        return
    summary = run_or_report_interrupt(sweep, resume_command(config, sweep.store.url, executor, workers, address, overrides),
                                      executor=executor, workers=workers, address=address)
    console.print(f"[green]done[/]: {summary['computed']} cell(s) computed, {summary['skipped']} already in the store, "
                  f"{summary['wall_time_s']} s. Table: {summary['table']}")
    print_follow_ups(cfg.name, summary["store"])


def print_plan(plan: dict[str, Any]) -> None:
    """What ``sweep run`` would do: cells per analysis (cached / to compute), features and recordings to make."""
    table = Table("analysis", Column("cells", justify="right"), Column("cached", justify="right"),
                  Column("to compute", justify="right"), title=f"plan of sweep {plan['sweep']} (dry run: nothing "
                  "computed)", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, counts in plan["analyses"].items():
        table.add_row(name, str(counts["cells"]), str(counts["cached"]), str(counts["cells"] - counts["cached"]))
    table.add_row("total", str(plan["cells"]), str(plan["cells_cached"]), str(plan["cells"] - plan["cells_cached"]))
    console.print(table)
    console.print(f"feature matrices: {plan['feature_matrices']} ({plan['feature_matrices_cached']} cached); "
                  f"recordings: {plan['recordings']} ({plan['recordings_cached']} cached); store {plan['store']}",
                  highlight=False, soft_wrap=True)
    if plan["recordings_cached"] < plan["recordings"]:
        console.print("Planned before the recordings are cached: folds over trial groups are counted once they are.",
                      highlight=False, soft_wrap=True)


def resume_command(config: Path, store_url: str, executor: str, workers: int | None, address: str | None,
                   overrides: list[str]) -> str:
    """The exact ``sweep run`` command that resumes an interrupted sweep on the same store."""
    args = ["workbench", "sweep", "run", str(config.expanduser().resolve()), "--store", store_location(store_url)]
    if executor != "inline":
        args += ["--executor", str(executor)]
    if workers is not None:
        args += ["-j", str(workers)]
    if address:
        args += ["--address", address]
    for item in overrides:
        args += ["--set", item]
    return shlex.join(args)


def run_or_report_interrupt(sweep: Sweep, resume: str, **options: Any) -> dict:
    """Run the sweep with progress; on Ctrl-C say what was saved and how to resume, and exit 130.

    Typer/Click would turn the KeyboardInterrupt into a bare exit before ``main`` could say anything,
    so it is caught here, inside the command.
    """
    try:
        with rich_reporter() as reporter:
            return sweep.run(reporter=reporter, **options)
    except KeyboardInterrupt:
        report_interrupt(sweep, resume)
        raise typer.Exit(130) from None


def report_interrupt(sweep: Sweep, command: str) -> None:
    """After Ctrl-C: how many cells are saved in the store and the command that computes the rest."""
    try:
        status = sweep.status()
        saved = f"{status['cells_done']} of {status['cells']} cells are saved in {sweep.store.url}"
    except Exception as exc:  # the store is fine; only the count cannot be made (e.g. recordings not cached yet)
        saved = f"finished entries are saved in {sweep.store.url} (cells not counted: {type(exc).__name__})"
    err_console.print(f"[yellow]interrupted[/]: {saved}; finished work is never recomputed. Resume with:",
                      highlight=False, soft_wrap=True)
    err_console.print(f"  {command}", highlight=False, soft_wrap=True, markup=False)


def print_follow_ups(sweep: str, store_url: str) -> None:
    """The exact commands that show a finished sweep, with its store spelled out (they work from any folder)."""
    where = shlex.quote(store_location(store_url))
    name = shlex.quote(sweep)
    console.print("Next:", highlight=False)
    for command in (f"results show {name}", f"figure layers {name} --out layers.png", f"report {name} --out report/"):
        console.print(f"  workbench {command} --store {where}", highlight=False, soft_wrap=True)


@sweep_app.command("status")
def sweep_status(config: Path = typer.Argument(..., help="Sweep YAML."), store: str | None = StoreOption,
                 overrides: list[str] = typer.Option([], "--set", help="Override a config value."),
                 as_json: bool = JsonOption) -> None:
    """Show how much of a sweep is already in the store."""
    cfg = load_config(config, overrides)
    status = Sweep(cfg, open_store(store or cfg.store, mode="r")).status()
    if as_json:
        print_json(status)
        return
    for key, value in status.items():
        console.print(f"[bold]{key}[/]: {value}")


# ---- results -------------------------------------------------------------------------------
@results_app.command("show")
def results_show(
    sweep: str = typer.Argument(..., help="Sweep name (the config's `name`)."),
    store: str | None = StoreOption,
    value: str = typer.Option("mean_r", "--value", help="Column to tabulate: mean_r, mean_r_normalized, "
                              "median_r; for metric cells any column (p_permutation, ci_low...)."),
    parquet: Path | None = typer.Option(None, "--parquet", help="Also write the full table to this Parquet file."),
    wide: bool = typer.Option(False, "--wide", help="One table with every column, however wide (default: fit 80 columns)."),
    subject: list[str] | None = typer.Option(None, "--subject", help="Only these subjects (repeatable)."),
    analysis: list[str] | None = typer.Option(None, "--analysis", help="Only these heads or metrics (repeatable)."),
    as_json: bool = JsonOption,
) -> None:
    """Per-ROI scores of every encoder layer, averaged over subjects (full rows with --json)."""
    frame = results_table(open_store(store or default_store(sweep), mode="r"), sweep)
    for column, wanted in (("subject", subject), ("analysis", analysis)):
        if wanted:
            known = [str(v) for v in dict.fromkeys(frame[column])]
            unknown = [w for w in wanted if w not in known]
            if unknown:
                raise WorkbenchError(f"sweep {sweep!r} has no {column} {unknown[0]!r}; its {column}s are "
                                     f"{', '.join(known)}")
            frame = frame[frame[column].astype(str).isin(wanted)]
    if value != "mean_r" and value not in frame.columns:
        raise WorkbenchError(f"the results of sweep {sweep!r} have no column {value!r}; its columns are "
                             f"{', '.join(frame.columns)}")
    if parquet:
        frame.to_parquet(parquet, index=False)
    if as_json:
        print_json(json.loads(frame.to_json(orient="records")))
        return
    from brain_workbench.analysis.contract import Analysis
    from brain_workbench.sweep.tables import analyses_for

    kinds = list(dict.fromkeys(frame["kind"])) if "kind" in frame.columns else []
    for kind, plugin in analyses_for(kinds).items():
        for table in (plugin or Analysis()).table(frame[frame["kind"] == kind], sweep, value):
            print_table(table.title, list(table.key_names), list(table.value_names), [list(k) for k in table.keys],
                        [list(v) for v in table.values], wide)
    if "random_weights" in frame.columns and frame["random_weights"].fillna(False).astype(bool).any():
        random = dict.fromkeys(frame.loc[frame["random_weights"].fillna(False).astype(bool), "encoder"])
        console.print(f"random weights, no pretrained ones: {', '.join(map(str, random))} (column random_weights)",
                      highlight=False)


TABLE_WIDTH = 80


def print_table(title: str, key_names: list[str], value_names: list[str], keys: list[list[str]],
                values: list[list[str]], wide: bool = False) -> None:
    """Print rows as tables that fit 80 columns (value columns split over several tables, keys repeated).

    ``wide`` prints one table with every column, however wide it gets.
    """
    def build(columns: list[int], suffix: str = "") -> Table:
        table = Table(*key_names, *[Column(value_names[i], justify="right") for i in columns], title=title + suffix,
                      box=box.SIMPLE_HEAD, pad_edge=False)
        for key, row in zip(keys, values):
            table.add_row(*key, *[row[i] for i in columns])
        return table

    def natural_width(columns: list[int]) -> int:
        return Measurement.get(console, console.options.update(width=10**4), build(columns)).maximum

    if wide:
        table = build(list(range(len(value_names))))
        console.print(table, width=natural_width(list(range(len(value_names)))), crop=False)
        return
    limit = min(TABLE_WIDTH, console.width)
    groups: list[list[int]] = [[]]
    for i in range(len(value_names)):
        if groups[-1] and natural_width(groups[-1] + [i]) > limit:
            groups.append([])
        groups[-1].append(i)
    for part, columns in enumerate(groups):
        console.print(build(columns, f" ({part + 1}/{len(groups)})" if len(groups) > 1 else ""), width=limit)


# ---- demo ----------------------------------------------------------------------------------
def demo_config_path() -> Path:
    """configs/demo.yaml, shipped inside the installed package as ``brain_workbench_configs``."""
    return Path(str(resources.files("brain_workbench_configs") / "demo.yaml"))


def demo(out: Path = typer.Option(Path("figures/demo"), "--out", help="Folder for the figures."),
         store: str | None = StoreOption,
         executor: ExecutorName = ExecutorOption,
         overrides: list[str] = typer.Option([], "--set", help="Override a demo config value.")) -> None:
    """Run the demo sweep (configs/demo.yaml) on embedded simulated data and draw its figures."""
    started = time.time()
    cfg = load_config(demo_config_path(), overrides)
    sweep = Sweep(cfg, store)
    resume = ["workbench", "demo", "--out", str(out), "--store", store_location(sweep.store.url)]
    resume += (["--executor", str(executor)] if executor != "inline" else []) + [a for o in overrides for a in ("--set", o)]
    summary = run_or_report_interrupt(sweep, shlex.join(resume), executor=executor)
    paths = write_figures(sweep.store, cfg.name, out, say=lambda line: console.print(line, highlight=False))
    results_show(cfg.name, store=sweep.store.url, value="mean_r", parquet=None, wide=False, subject=None, analysis=None,
                 as_json=False)
    console.print(f"[green]demo finished[/] in {time.time() - started:.0f} s "
                  f"({summary['computed']} cells computed, {summary['skipped']} reused).")
    console.print(f"Figures in [bold]{out}[/]: " + ", ".join(p.name for p in paths))
    console.print(f"Results table: {summary['table']}")
    print_follow_ups(cfg.name, sweep.store.url)
