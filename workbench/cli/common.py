"""What every command module shares: consoles, common options, JSON output, progress reporting."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from workbench.sweep import Reporter, load_config
from workbench.sweep.index import lookup_store
from workbench.types import WorkbenchError

console = Console()
if not console.is_terminal:
    console = Console(width=160)  # logs and pipes: wide enough for results tables
err_console = Console(stderr=True, soft_wrap=True)

StoreOption = typer.Option(None, "--store", help="Store path or fsspec URL [default: $WORKBENCH_STORE or stores/default.zarr].")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs, values parsed as YAML scalars (numbers, booleans, lists)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise WorkbenchError(f"option {pair!r} must look like KEY=VALUE")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


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


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def default_store(sweep: str) -> str | None:
    """Where sweep ``sweep`` finished last (the per-user index), else the store its configs/ file names."""
    recorded = lookup_store(sweep)
    if recorded:
        return recorded
    try:
        cfg = load_config(Path("configs") / f"{sweep}.yaml", [])
    except WorkbenchError:
        return None
    return cfg.store
