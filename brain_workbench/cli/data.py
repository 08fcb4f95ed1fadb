"""Data commands: download a dataset, encode its stimuli into the store."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.markup import escape

import brain_workbench as wb
from brain_workbench.cli.common import StoreOption, console, is_number, parse_options, rich_reporter
from brain_workbench.store import open_store
from brain_workbench.store.features import extract_features
from brain_workbench.types import identified_stimuli, resolve_layers

data_app = typer.Typer(help="Download datasets (with checksums and resume).", no_args_is_help=True)


@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument(..., help="Dataset name, e.g. nsd or things-eeg2."),
    dest: Path = typer.Option(..., "--dest", "--local-path",
                              help="Folder to download into; files already there (e.g. a copy you have) are verified "
                                   "and kept, partial ones resumed."),
    subjects: list[str] = typer.Option([], "--subjects", "-s", help="Subjects to fetch (repeatable); default: all."),
    space: str | None = typer.Option(None, "--space", help="Data space, e.g. fsaverage or func1pt8mm (NSD)."),
    accept_terms: bool = typer.Option(False, "--accept-terms", help="Accept the dataset's terms of use."),
    option: list[str] = typer.Option([], "--option", "-o", help="Fetch option KEY=VALUE, e.g. beta_version=betas_fithrf."),
) -> None:
    """Download what an analysis of NAME needs into DEST, verifying sizes and checksums.

    Prints the file list and its size first, asks for --accept-terms where a dataset has terms, and resumes on rerun.
    """
    ds = wb.dataset(name)
    opts = parse_options(option)
    if subjects:
        opts["subjects"] = subjects
    if space:
        opts["space"] = space
    path = ds.fetch(dest, accept_terms=accept_terms, **opts)
    console.print(f"[green]ready[/]: {escape(str(path))}")


def extract(
    encoder: str = typer.Argument(..., help="Encoder name, e.g. clip, hf-lm, efficientnet."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset whose stimuli to encode."),
    layers: list[str] = typer.Option([], "--layers", "-l", help="Layer names or relative depths 0–1 (repeatable); default all."),
    option: list[str] = typer.Option([], "--option", "-o", help="Encoder option KEY=VALUE (repeatable)."),
    dataset_option: list[str] = typer.Option([], "--dataset-option", help="Dataset option KEY=VALUE (repeatable)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Stimuli per forward pass."),
    store: str | None = StoreOption,
) -> None:
    """Encode every stimulus of a dataset and cache the features (resumes an interrupted run)."""
    enc = wb.encoder(encoder, **parse_options(option))
    wanted = [float(x) if is_number(x) else x for x in layers] or None
    if wanted is not None:
        resolve_layers(enc.layers(), wanted)  # an unknown layer is refused before any stimulus is loaded
    ds = wb.dataset(dataset, **parse_options(dataset_option))
    stimuli = identified_stimuli(ds, enc.modality)
    s = open_store(store)
    started = time.time()
    with rich_reporter() as reporter:
        paths = extract_features(s, enc, stimuli, wanted, batch_size=batch_size,
                                 progress=reporter.progress(f"features {encoder}", len(stimuli)))
    console.print(f"{len(paths)} layer(s) of {len(stimuli)} stimuli in {s.url} ({time.time() - started:.1f} s)")
    for layer, path in paths.items():
        console.print(f"  {layer} → {path}")
