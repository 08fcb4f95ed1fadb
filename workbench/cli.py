"""The ``workbench`` command line: listings, data fetching, extraction, sweeps, figures, store care.

Errors caused by input are printed as one sentence and exit with status 1; ``--debug`` shows the
traceback of any error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import workbench
from workbench.registry import KINDS, get_registry
from workbench.types import WorkbenchError

console = Console()
if not console.is_terminal:
    console = Console(width=160)  # logs and pipes: wide enough for results tables
err_console = Console(stderr=True, soft_wrap=True)

app = typer.Typer(
    name="workbench",
    help="Compare any model representation with any brain recording.\n\n"
         "Start with `workbench demo`, then `workbench plugins list` to see what is installed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
plugins_app = typer.Typer(help="Installed plugins and their health.", no_args_is_help=True)
store_app = typer.Typer(help="Inspect, check and clean the zarr store.", no_args_is_help=True)
data_app = typer.Typer(help="Download datasets (with checksums and resume).", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
app.add_typer(store_app, name="store")
app.add_typer(data_app, name="data")

StoreOption = typer.Option(None, "--store", help="Store path or fsspec URL [default: $WORKBENCH_STORE or stores/default.zarr].")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"brain-workbench {workbench.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """Compare any model representation with any brain recording."""


# ---- plugins -------------------------------------------------------------------------------
@plugins_app.command("list")
def plugins_list(as_json: bool = JsonOption) -> None:
    """List every plugin found through the `workbench` entry-point group, with its status."""
    reg = get_registry()
    infos = sorted(reg.plugins.values(), key=lambda p: (p.source != "brain-workbench", p.name))
    if as_json:
        _print_json([p.as_json() for p in infos])
        return
    table = Table("plugin", "source", "status", "provides")
    for p in infos:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in p.provides.items())
        status = {"ok": "[green]ok[/]", "disabled": "[yellow]disabled[/]"}.get(p.status, f"[red]broken[/]: {escape(str(p.error))}")
        table.add_row(escape(p.name), escape(f"{p.source} {p.version}".strip()), status, escape(provides))
    console.print(table)


def _add_kind_commands(kind: str) -> None:
    sub = typer.Typer(help=f"Registered {kind}s.", no_args_is_help=True)

    @sub.command("list")
    def list_(as_json: bool = JsonOption) -> None:
        reg = get_registry()
        entries = [reg.entries[kind][n] for n in reg.names(kind)]
        if as_json:
            _print_json([e.as_json() for e in entries])
            return
        table = Table("name", "plugin", "description")
        for e in entries:
            table.add_row(escape(e.name), escape(e.plugin), escape(e.description))
        console.print(table)

    list_.__doc__ = f"List registered {kind}s."

    @sub.command("info")
    def info(name: str = typer.Argument(..., help=f"The {kind} name."),
             option: list[str] = typer.Option([], "--option", "-o", help="Build option KEY=VALUE (repeatable)."),
             as_json: bool = JsonOption) -> None:
        entry = get_registry().get(kind, name)
        data = entry.as_json()
        if kind == "encoder":
            enc = get_registry().create(kind, name, **_parse_options(option))
            data["layers"] = [{"name": layer.name, "depth": round(layer.depth, 4)} for layer in enc.layers()]
            data["fingerprint"] = enc.fingerprint()
        if kind == "dataset":
            ds = get_registry().create(kind, name, **_parse_options(option))
            data["subjects"] = ds.subjects()
            data["modalities"] = list(ds.modalities)
        if as_json:
            _print_json(data)
            return
        for key, value in data.items():
            if key == "options" and isinstance(value, dict):
                table = Table("option", "type", "default", "help", title=f"{kind} {name}: options (-o KEY=VALUE)")
                for opt, spec in value.items():
                    spec = spec if isinstance(spec, dict) else {"help": str(spec)}
                    choices = f" (one of {', '.join(map(str, spec['choices']))})" if spec.get("choices") else ""
                    table.add_row(opt, str(spec.get("type", "")), repr(spec.get("default")), f"{spec.get('help', '')}{choices}")
                console.print(table)
            elif key == "layers":
                console.print(f"[bold]layers[/] ({len(value)}):")
                for layer in value:
                    console.print(f"  {escape(layer['name'])}  [dim]depth {layer['depth']}[/]")
            else:
                console.print(f"[bold]{key}[/]: {escape(str(value))}")

    info.__doc__ = f"Describe one {kind} (its card; layers for encoders, subjects for datasets)."
    app.add_typer(sub, name=f"{kind}s")


for _kind in KINDS:
    _add_kind_commands(_kind)


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs, values parsed as YAML scalars (numbers, booleans, lists)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise WorkbenchError(f"option {pair!r} must look like KEY=VALUE")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


# ---- data ----------------------------------------------------------------------------------
@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument(..., help="Dataset name, e.g. nsd or things-eeg2."),
    dest: Path = typer.Option(..., "--dest", "--local-path",
                              help="Folder to download into; files already there (e.g. a copy you have) are verified "
                                   "and kept, partial ones resumed."),
    subjects: list[str] = typer.Option([], "--subjects", "-s", help="Subjects to fetch (repeatable); default: all."),
    space: Optional[str] = typer.Option(None, "--space", help="Data space, e.g. fsaverage or func1pt8mm (NSD)."),
    accept_terms: bool = typer.Option(False, "--accept-terms", help="Accept the dataset's terms of use."),
    option: list[str] = typer.Option([], "--option", "-o", help="Fetch option KEY=VALUE, e.g. beta_version=betas_fithrf."),
) -> None:
    """Download what an analysis of NAME needs into DEST, verifying sizes and checksums.

    Prints the file list and its size first, asks for --accept-terms where a dataset has terms, and resumes on rerun.
    """
    ds = workbench.dataset(name)
    opts = _parse_options(option)
    if subjects:
        opts["subjects"] = subjects
    if space:
        opts["space"] = space
    path = ds.fetch(dest, accept_terms=accept_terms, **opts)
    console.print(f"[green]ready[/]: {escape(str(path))}")


# ---- store ---------------------------------------------------------------------------------
@store_app.command("ls")
def store_ls(store: Optional[str] = StoreOption, prefix: Optional[str] = typer.Argument(None, help="Only entries below this path."),
             as_json: bool = JsonOption) -> None:
    """List the entries in the store and whether each is complete."""
    from workbench.store import open_store

    entries = open_store(store, mode="r").ls(prefix)
    if as_json:
        _print_json([e.as_json() for e in entries])
        return
    table = Table("entry", "kind", "state", "blocks")
    for e in entries:
        table.add_row(escape(e.path), escape(e.kind), {"complete": "[green]complete[/]", "incomplete": "[yellow]incomplete[/]",
                                                       "damaged": "[red]damaged[/]"}[e.state],
                      f"{e.blocks_done}/{e.n_blocks}")
    console.print(table)


@store_app.command("verify")
def store_verify(store: Optional[str] = StoreOption, as_json: bool = JsonOption,
                 quick: bool = typer.Option(False, "--quick", help="Skip checksum verification of complete entries.")) -> None:
    """Report incomplete entries and complete ones whose data no longer match their checksums."""
    from workbench.store import open_store

    s = open_store(store, mode="r")
    problems = s.verify(checksums=not quick)
    if as_json:
        _print_json([p.as_json() for p in problems])
    else:
        for p in problems:
            console.print(f"[red]{p.status}[/] {escape(p.path)}: {escape(p.detail)}")
        n = len(s.ls())
        console.print(f"{n} entries checked, {len(problems)} problem(s).")
    if problems:
        raise typer.Exit(1)


@store_app.command("gc")
def store_gc(store: Optional[str] = StoreOption,
             dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
             force: bool = typer.Option(False, "--force", help="Also remove incomplete entries whose writer seems alive.")) -> None:
    """Remove incomplete entries that no running process is writing."""
    from workbench.store import open_store

    removed = open_store(store, create=False).gc(dry_run=dry_run, force=force)
    verb = "would remove" if dry_run else "removed"
    for path in removed:
        console.print(f"{verb} {escape(path)}")
    console.print(f"{verb} {len(removed)} entries.")


@store_app.command("repair")
def store_repair(store: Optional[str] = StoreOption,
                 dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be repaired.")) -> None:
    """Remove corrupt or unreadable entries (rebuild damaged groups) so a rerun recomputes exactly them."""
    from workbench.store import open_store

    fixed = open_store(store, create=False).repair(dry_run=dry_run)
    for p in fixed:
        console.print(f"[red]{p.status}[/] {escape(p.path)}: {escape(p.detail)}")
    console.print(f"{'would repair' if dry_run else 'repaired'} {len(fixed)} entries; rerun the jobs that wrote them.")


def _load_extra_commands(debug: bool = False) -> None:
    """Add the pipeline commands and those of plugins; a failure there leaves the core commands usable."""
    try:
        from workbench import cli_commands  # noqa: F401  (sweep, extract, figure, demo, results, plugin new)
    except Exception as exc:
        if debug:
            raise
        err_console.print(f"[yellow]warning:[/] pipeline commands unavailable: {type(exc).__name__}: "
                          f"{escape(str(exc))}", highlight=False)
    get_registry().add_commands(app)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning input errors into one-line messages."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        _load_extra_commands(debug)
        app(args=args, prog_name="workbench", standalone_mode=True)
    except WorkbenchError as exc:
        if debug:
            raise
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished blocks are kept; rerun to resume.")
        sys.exit(130)
    except Exception as exc:  # anything unexpected still gets one line unless --debug
        if debug:
            raise
        err_console.print(f"[red]error:[/] {type(exc).__name__}: {escape(str(exc))} (rerun with --debug for the traceback)",
                          highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
