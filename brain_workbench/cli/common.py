"""What every command module shares: consoles, common options, JSON output, progress reporting."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from brain_workbench.sweep import Reporter, load_config
from brain_workbench.sweep.index import find_store
from brain_workbench.types import WorkbenchError

console = Console()
if not console.is_terminal:
    console = Console(width=160)  # logs and pipes: wide enough for results tables
err_console = Console(stderr=True, soft_wrap=True)

StoreOption = typer.Option(None, "--store", help="Store path or fsspec URL (default: for a sweep, where it last finished; "
                           "else $WORKBENCH_STORE, else stores/default.zarr).")
ExecutorOption = typer.Option("inline", "--executor", "-e", help="inline (this process), local (process pool) or dask.")
ExecutorName = Literal["inline", "local", "dask"]
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs, values parsed as YAML scalars (numbers, booleans, lists)."""
    from brain_workbench.sweep.config import read_yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise WorkbenchError(f"option {pair!r} must look like KEY=VALUE")
        key, value = pair.split("=", 1)
        out[key.strip()] = read_yaml(value, f"option {pair!r}")
    return out


VERBOSITY = {"level": 1}  # 0 --quiet, 1 normal, 2 --verbose; set by the root command


def set_verbosity(quiet: bool, verbose: bool) -> None:
    """Apply the root command's --quiet / --verbose (both given: refused in one sentence)."""
    import logging

    if quiet and verbose:
        raise WorkbenchError("--quiet and --verbose contradict each other; pass one of them")
    VERBOSITY["level"] = 0 if quiet else 2 if verbose else 1
    if verbose:
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s", datefmt="%H:%M:%S")
        logging.getLogger("brain_workbench").setLevel(logging.INFO)


class RichReporter(Reporter):
    """Live progress bars on a terminal, one task per stage, advanced per batch or cell."""

    def __init__(self, progress: Progress) -> None:
        self.bar = progress

    def message(self, text: str) -> None:
        self.bar.console.print(text, highlight=False)

    def warning(self, text: str) -> None:
        self.bar.console.print(f"[yellow]warning:[/] {escape(text)}", highlight=False)

    def progress(self, label: str, total: int) -> Callable[[int], None]:
        task = self.bar.add_task(label, total=total)
        return lambda n: self.bar.advance(task, n)


class LineReporter(Reporter):
    """Plain timestamped lines for logs and pipes: a stage's count every ``every_s`` seconds or ``step`` of it."""

    def __init__(self, out: Console, every_s: float = 10.0, step: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out, self.every_s, self.step, self.clock = out, every_s, step, clock

    def _line(self, text: str) -> None:
        self.out.print(f"{time.strftime('%H:%M:%S')} {text}", highlight=False, markup=False, soft_wrap=True)

    def message(self, text: str) -> None:
        self._line(text)

    def warning(self, text: str) -> None:
        self._line(f"warning: {text}")

    def progress(self, label: str, total: int) -> Callable[[int], None]:
        state = {"done": 0, "at": self.clock(), "shown": 0, "started": self.clock()}
        self._line(f"{label}: 0/{total}")

        def advance(n: int) -> None:
            state["done"] += n
            now, done = self.clock(), state["done"]
            finished = done >= total
            if finished or now - state["at"] >= self.every_s or done - state["shown"] >= self.step * total:
                elapsed = now - state["started"]
                eta = f", eta {elapsed / done * (total - done):.0f} s" if done and not finished else ""
                self._line(f"{label}: {done}/{total} ({100 * done / max(total, 1):.0f} %) {elapsed:.0f} s{eta}")
                state.update(at=now, shown=done)

        return advance


class QuietReporter(Reporter):
    """--quiet: no progress and no chatter; warnings still reach stderr."""

    def warning(self, text: str) -> None:
        err_console.print(f"[yellow]warning:[/] {escape(text)}", highlight=False)


@contextmanager
def rich_reporter() -> Iterator[Reporter]:
    """The reporter for this output: quiet, live bars on a terminal, or timestamped lines otherwise."""
    if VERBOSITY["level"] == 0:
        yield QuietReporter()
        return
    if not console.is_terminal:
        yield LineReporter(console)
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False, refresh_per_second=4) as bar:
        yield RichReporter(bar)


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def default_store(sweep: str) -> str | None:
    """The store of sweep ``sweep`` seen from here (``find_store``: the local config's store, this folder's
    latest run, or the one store another folder ran it in, which is said aloud), else the store its
    ``configs/`` file names (which a reader then refuses in one sentence if it does not exist)."""
    found = find_store(sweep)
    if found is not None:
        if found.elsewhere:
            err_console.print(f"sweep {escape(sweep)!r}: reading {escape(found.store)} (from {escape(found.how)}); "
                              "pass --store to choose another", highlight=False)
        return found.store
    try:
        cfg = load_config(Path("configs") / f"{sweep}.yaml", [])
    except WorkbenchError:
        return None
    return cfg.store
