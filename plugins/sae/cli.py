"""``workbench sae``: train SAEs on cached features, list trained ones, export them in SAELens format."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

sae_app = typer.Typer(help="Sparse autoencoders over cached features (train, list, export).", no_args_is_help=True)


def _store(url: str | None) -> Any:
    from brain_workbench.sdk.data import open_store

    return open_store(url)


@sae_app.command("train")
def train(
    features: str = typer.Argument(..., help="Feature entry to train on, e.g. features/clip-1a2b…/block6 "
                                              "(see `workbench store ls features`)."),
    store: str | None = typer.Option(None, "--store", help="Store path or URL [default: $WORKBENCH_STORE]."),
    kind: str = typer.Option("topk", "--kind", help="topk | batchtopk | matryoshka."),
    d_sae: int | None = typer.Option(None, "--d-sae", help="Number of latents [default: expansion × d_in]."),
    expansion: int = typer.Option(8, "--expansion", help="Latents per input feature when --d-sae is not given."),
    k: int = typer.Option(32, "--k", help="Active latents per sample (on average for batchtopk/matryoshka)."),
    steps: int = typer.Option(2000, "--steps", help="Total optimisation steps (a rerun with more steps continues)."),
    batch_size: int = typer.Option(1024, "--batch-size"),
    lr: float | None = typer.Option(None, "--lr", help="Adam learning rate [default: 2e-4 / sqrt(d_sae / 2^14)]."),
    seed: int = typer.Option(0, "--seed"),
    prefixes: str | None = typer.Option(None, "--prefixes", help="Matryoshka prefix widths, comma-separated."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", help="Steps between checkpoints in the store."),
    log_every: int = typer.Option(100, "--log-every", help="Steps between metric evaluations."),
    name: str | None = typer.Option(None, "--name", help="Run name (key sae/<name>) [default: from data and options]."),
    export: Path | None = typer.Option(None, "--export", help="Also write the result as an SAELens folder here."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Train a TopK, BatchTopK or Matryoshka SAE on cached features; reruns resume from the last checkpoint."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from brain_workbench_plugins.sae.train import TrainConfig, export_saelens, train_sae

    config = TrainConfig(kind=kind, d_sae=d_sae, expansion=expansion, k=k, steps=steps, batch_size=batch_size, lr=lr,
                         seed=seed, prefixes=[int(p) for p in prefixes.split(",")] if prefixes else None,
                         checkpoint_every=checkpoint_every, log_every=log_every)
    st = _store(store)
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]sae[/] {task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), console=console, disable=as_json) as bar:
        task = bar.add_task("training", total=steps)

        def report(step: int, record: dict[str, float]) -> None:
            bar.update(task, completed=step, description=(
                f"EV {record['explained_variance']:.3f}  L0 {record['l0']:.1f}  dead {record['dead_fraction']:.1%}"))

        result = train_sae(st, features, config, name=name, progress=report)
        bar.update(task, completed=result.step)
    exported = export_saelens(st, result.key, str(export)) if export else None
    if as_json:
        sys.stdout.write(json.dumps({**result.as_json(), "exported": exported}, indent=2, default=str) + "\n")
        return
    out = Console()
    m = result.metrics
    if result.resumed_from:
        out.print(f"resumed {result.key} from step {result.resumed_from}")
    out.print(f"[bold]{result.key}[/] step {result.step}: explained variance {m.get('explained_variance', float('nan')):.4f}, "
              f"L0 {m.get('l0', float('nan')):.2f}, dead latents {m.get('dead_fraction', float('nan')):.1%}")
    out.print(f"checkpoint: {result.checkpoint}")
    out.print(f"use it: wb.encoder('sae', checkpoint='{result.key}', base=<encoder>, base_options={{...}}, "
              f"store='{st.url}')")
    if exported:
        out.print(f"SAELens folder: {exported}")


@sae_app.command("list")
def list_(store: str | None = typer.Option(None, "--store", help="Store path or URL."),
          as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")) -> None:
    """List trained SAE runs in the store with their latest checkpoint and metrics."""
    from rich.console import Console
    from rich.table import Table

    from brain_workbench_plugins.sae.train import PREFIX, checkpoints

    st = _store(store)
    runs: dict[str, dict[str, Any]] = {}
    for info in st.iter_entries(PREFIX):
        key = info.path.rsplit("/", 1)[0]
        runs.setdefault(key, {})
    rows = []
    for key in sorted(runs):
        found = checkpoints(st, key)
        if not found:
            continue
        step, path = found[-1]
        sae = dict(st.open(path).attrs.get("sae") or {})
        last = (sae.get("history") or [{}])[-1]
        rows.append({"key": key, "step": step, "kind": sae.get("config", {}).get("kind"), "d_sae": sae.get("d_sae"),
                     "features": sae.get("features"), "explained_variance": last.get("explained_variance"),
                     "l0": last.get("l0"), "dead_fraction": last.get("dead_fraction")})
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    table = Table("key", "kind", "d_sae", "step", "EV", "L0", "dead", "features")
    for r in rows:
        table.add_row(r["key"], str(r["kind"]), str(r["d_sae"]), str(r["step"]), f"{r['explained_variance']:.3f}",
                      f"{r['l0']:.1f}", f"{r['dead_fraction']:.1%}", str(r["features"]))
    Console().print(table)


@sae_app.command("export")
def export(key: str = typer.Argument(..., help="Run key (sae/<name>) or a checkpoint entry (sae/<name>/step-N)."),
           dest: Path = typer.Argument(..., help="Folder to write cfg.json and sae_weights.safetensors into."),
           store: str | None = typer.Option(None, "--store", help="Store path or URL.")) -> None:
    """Write a trained SAE as an SAELens folder (weights folded to act on raw features)."""
    from brain_workbench_plugins.sae.train import export_saelens

    typer.echo(export_saelens(_store(store), key, str(dest)))
