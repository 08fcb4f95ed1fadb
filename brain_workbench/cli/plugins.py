"""Listing commands: installed plugins, each kind's registered names and cards, and `plugin new`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from brain_workbench.cli.common import JsonOption, console, parse_options, print_json
from brain_workbench.plugin.registry import get_registry
from brain_workbench.plugin.scaffold import scaffold_plugin

plugins_app = typer.Typer(help="Installed plugins and their health.", no_args_is_help=True)
plugin_app = typer.Typer(help="Scaffold a new plugin package.", no_args_is_help=True)


@plugins_app.command("list")
def plugins_list(as_json: bool = JsonOption) -> None:
    """List every plugin found through the `workbench` entry-point group, with its status."""
    reg = get_registry()
    infos = sorted(reg.plugins.values(), key=lambda p: (p.source != "brain-workbench", p.name))
    if as_json:
        print_json([p.as_json() for p in infos])
        return
    table = Table("plugin", "source", "status", "provides")
    for p in infos:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in p.provides.items())
        status = {"ok": "[green]ok[/]", "disabled": "[yellow]disabled[/]"}.get(
            p.status, f"[red]broken[/]: {escape(str(p.error))}")
        table.add_row(escape(p.name), escape(f"{p.source} {p.version}".strip()), status, escape(provides))
    console.print(table)


def add_kind_commands(app: typer.Typer, kind: str) -> None:
    sub = typer.Typer(help=f"Registered {kind}s.", no_args_is_help=True)

    @sub.command("list")
    def list_(as_json: bool = JsonOption) -> None:
        reg = get_registry()
        entries = [reg.entries[kind][n] for n in reg.names(kind)]
        if as_json:
            print_json([e.as_json() for e in entries])
            return
        table = Table("name", "plugin", "description")
        for e in entries:
            table.add_row(escape(e.name), escape(e.plugin), escape(e.description))
        console.print(table)

    list_.__doc__ = f"List registered {kind}s."

    @sub.command("info")
    def info(name: str = typer.Argument(..., help=f"The {kind} name."),
             option: list[str] = typer.Option([], "--option", "-o", help="Build option KEY=VALUE (repeatable)."),
             fingerprint: bool = typer.Option(False, "--fingerprint",
                                              help="Encoders: also load the model and compute its fingerprint (slow)."),
             as_json: bool = JsonOption) -> None:
        reg = get_registry()
        entry = reg.get(kind, name)
        data = entry.as_json()
        if kind == "encoder":
            enc = reg.create(kind, name, **parse_options(option))
            data["modality"] = enc.modality
            data["layers"] = [{"name": layer.name, "depth": round(layer.depth, 4)} for layer in enc.layers()]
            if getattr(enc, "random_weights", False):
                data["weights"] = "random (no pretrained checkpoint)"
            if fingerprint:
                data["fingerprint"] = enc.fingerprint()
        if kind == "dataset":
            ds = reg.create(kind, name, **parse_options(option))
            data["subjects"] = ds.subjects()
            data["modalities"] = list(ds.modalities)
        if as_json:
            print_json(data)
            return
        for key, value in data.items():
            if key == "options" and isinstance(value, dict):
                table = Table("option", "type", "default", "help", title=f"{kind} {name}: options (-o KEY=VALUE)")
                for opt, spec in value.items():
                    choices = f" (one of {', '.join(map(str, spec['choices']))})" if spec.get("choices") else ""
                    table.add_row(escape(opt), escape(spec["type"]), escape(repr(spec["default"])),
                                  escape(f"{spec['help']}{choices}"))
                console.print(table)
            elif key == "layers":
                console.print(f"[bold]layers[/] ({len(value)}):")
                for layer in value:
                    console.print(f"  {escape(layer['name'])}  [dim]depth {layer['depth']}[/]")
            elif value not in (None, "", []):
                console.print(f"[bold]{key}[/]: {escape(str(value))}")

    info.__doc__ = (f"Describe one {kind} (its card; layers for encoders, without loading weights where the "
                    f"architecture allows; subjects for datasets).")
    app.add_typer(sub, name="analyses" if kind == "analysis" else f"{kind}s")


@plugin_app.command("new")
def plugin_new(name: str = typer.Argument(..., help="Plugin name, e.g. my-encoder."),
               kind: str = typer.Option(..., "--kind", help="dataset, encoder, head or metric."),
               dest: Path = typer.Option(Path("."), "--dest", help="Folder to create the package in.")) -> None:
    """Create an installable plugin package (pyproject, module, conformance test) to fill in."""
    root = scaffold_plugin(name, kind, dest)
    console.print(f"created {root}\nnext: pip install -e {root} && pytest {root}/tests && workbench plugins list")
