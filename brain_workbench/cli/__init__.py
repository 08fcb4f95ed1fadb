"""The ``workbench`` command line. Commands only call the Python API; errors from input are one sentence.

Errors caused by input are printed as one sentence and exit with status 1; ``--debug`` shows the
traceback of any error.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

import brain_workbench
from brain_workbench.cli.common import console, err_console, set_verbosity
from brain_workbench.cli.data import data_app, extract
from brain_workbench.cli.figures import figure_app, report
from brain_workbench.cli.plugins import add_kind_commands, plugin_app, plugins_app
from brain_workbench.cli.store import store_app
from brain_workbench.cli.sweep import demo, results_app, sweep_app
from brain_workbench.plugin.registry import KINDS, get_registry
from brain_workbench.types import WorkbenchError

app = typer.Typer(
    name="workbench",
    help="Compare any model representation with any brain recording.\n\n"
         "Start with `workbench demo`, then `workbench plugins list` to see what is installed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
for _sub, _name in ((plugins_app, "plugins"), (store_app, "store"), (data_app, "data"), (sweep_app, "sweep"),
                    (results_app, "results"), (figure_app, "figure"), (plugin_app, "plugin")):
    app.add_typer(_sub, name=_name)
for _kind in KINDS:
    add_kind_commands(app, _kind)
app.command("extract")(extract)
app.command("report")(report)
app.command("demo")(demo)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"brain-workbench {brain_workbench.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or messages; warnings and errors only."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show the library's log messages."),
) -> None:
    """Compare any model representation with any brain recording."""
    set_verbosity(quiet, verbose)



def add_plugin_commands() -> None:
    """Let plugins add their commands; a failing plugin is marked broken and the core commands stay usable."""
    get_registry().add_commands(app)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning input errors into one-line messages."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    os.environ.setdefault("MPLBACKEND", "agg")  # figures go to files: start no window toolkit unless asked to
    try:
        add_plugin_commands()
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


