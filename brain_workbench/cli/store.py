"""Store commands: list, verify and clean the zarr store."""

from __future__ import annotations

import os

import typer
from rich.filesize import decimal
from rich.markup import escape
from rich.table import Table

from brain_workbench.cli.common import JsonOption, StoreOption, console, err_console, print_json
from brain_workbench.store import open_store
from brain_workbench.store.listing import describe_entries
from brain_workbench.sweep.index import latest_store

store_app = typer.Typer(help="Inspect, check and clean the zarr store.", no_args_is_help=True)


@store_app.command("ls")
def store_ls(store: str | None = StoreOption, prefix: str | None = typer.Argument(None, help="Only entries below this path."),
             as_json: bool = JsonOption) -> None:
    """List the entries: kind, state, size on disk, what each holds and the options that made it.

    Without --store or $WORKBENCH_STORE: the store of the latest sweep run from this folder (said aloud),
    else stores/default.zarr.
    """
    if store is None and not os.environ.get("WORKBENCH_STORE"):
        latest = latest_store()
        if latest is not None:
            store = latest[0]
            err_console.print(f"listing {escape(store)}, the store of sweep {escape(latest[1])!r}, the latest run from "
                              "this folder; pass --store for another", highlight=False)
    s = open_store(store, mode="r")
    described = describe_entries(s, s.ls(prefix))
    if as_json:
        print_json([d.as_json() for d in described])
        return
    table = Table("entry", "kind", "state", "size", "holds", "options", title=f"{s.url}: {len(described)} entries")
    for d in described:
        e = d.info
        state = {"complete": "[green]complete[/]", "incomplete": f"[yellow]incomplete {e.blocks_done}/{e.n_blocks}[/]",
                 "damaged": "[red]damaged[/]"}[e.state]
        table.add_row(escape(e.path), escape(e.kind), state, "" if d.size is None else decimal(d.size),
                      escape(d.label), escape(d.options))
    total = sum(d.size or 0 for d in described)
    console.print(table)
    console.print(f"total {decimal(total)}", highlight=False)


@store_app.command("verify")
def store_verify(store: str | None = StoreOption, as_json: bool = JsonOption,
                 quick: bool = typer.Option(False, "--quick", help="Skip checksum verification of complete entries.")) -> None:
    """Report incomplete entries and complete ones whose data no longer match their checksums."""
    s = open_store(store, mode="r")
    problems = s.verify(checksums=not quick)
    if as_json:
        print_json([p.as_json() for p in problems])
    else:
        for p in problems:
            console.print(f"[red]{p.status}[/] {escape(p.path)}: {escape(p.detail)}")
        n = len(s.ls())
        console.print(f"{n} entries checked, {len(problems)} problem(s).")
    if problems:
        raise typer.Exit(1)


@store_app.command("gc")
def store_gc(store: str | None = StoreOption,
             dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
             force: bool = typer.Option(False, "--force",
                                        help="Also remove incomplete entries whose writer seems alive.")) -> None:
    """Remove incomplete entries that no running process is writing."""
    removed = open_store(store, create=False).gc(dry_run=dry_run, force=force)
    verb = "would remove" if dry_run else "removed"
    for path in removed:
        console.print(f"{verb} {escape(path)}")
    console.print(f"{verb} {len(removed)} entries.")


@store_app.command("repair")
def store_repair(store: str | None = StoreOption,
                 dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be repaired.")) -> None:
    """Remove corrupt or unreadable entries (rebuild damaged groups) so a rerun recomputes exactly them."""
    fixed = open_store(store, create=False).repair(dry_run=dry_run)
    for p in fixed:
        console.print(f"[red]{p.status}[/] {escape(p.path)}: {escape(p.detail)}")
    console.print(f"{'would repair' if dry_run else 'repaired'} {len(fixed)} entries; rerun the jobs that wrote them.")
