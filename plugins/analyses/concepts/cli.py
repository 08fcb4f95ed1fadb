"""``workbench concepts show``: the latents of a finished concepts cell, with labels, units, top stimuli."""

from __future__ import annotations

from typing import Any

import typer

concepts_app = typer.Typer(help="SAE concept maps of a finished sweep (see the `concepts` analysis).",
                           no_args_is_help=True)


def concept_cells(store: Any, sweep: str, subject: str | None, encoder: str | None) -> list[dict[str, Any]]:
    """The cells of a finished sweep's concepts analysis (``cell`` attributes with their ``key``), optionally of one
    subject or SAE encoder, in manifest order."""
    from brain_workbench.sdk.analysis import WorkbenchError, manifest_path, result_path

    if not store.is_complete(manifest_path(sweep)):
        raise WorkbenchError(f"no finished sweep {sweep!r} in store {store.url}")
    found = []
    for key in store.open(manifest_path(sweep))["cells"].astype(str):
        cell = (store.attrs(result_path(sweep, key)) or {}).get("cell") or {}
        if cell.get("kind") == "concepts" and subject in (None, str(cell.get("subject"))) \
                and encoder in (None, cell.get("encoder")):
            found.append({**cell, "key": key})
    if not found:
        raise WorkbenchError(f"sweep {sweep!r} has no concepts cells{f' of subject {subject}' if subject else ''}"
                             f"{f' for encoder {encoder}' if encoder else ''}; add a `concepts:` section and rerun")
    return found


def latent_rows(arrays: dict[str, Any], top: int, latent: int | None) -> tuple[list[str], list[list[str]]]:
    """Table columns and rows: latents ordered by how many units they are best for (or one latent's stimuli)."""
    import numpy as np

    from brain_workbench.sdk.analysis import WorkbenchError

    n_latents = len(arrays["labels"])
    if latent is not None:
        if not 0 <= latent < n_latents:
            raise WorkbenchError(f"latent {latent} is not among the SAE's {n_latents} latents (0–{n_latents - 1})")
        return (["rank", "stimulus", "activation"],
                [[str(i + 1), str(s), f"{a:.3f}"] for i, (s, a) in
                 enumerate(zip(arrays["top_ids"][latent], arrays["top_acts"][latent]))])
    good = arrays["best_latent"] >= 0
    units = np.bincount(arrays["best_latent"][good], minlength=n_latents)
    order = np.argsort(-units, kind="stable")[:top]
    columns = ["latent", "label", "best for units", "peak |r|", "firing rate", "monosemanticity", "state",
               "top stimuli"]
    rows = []
    for i in order:
        state = "dead" if arrays["dead"][i] else ("dense" if arrays["dense"][i] else "")
        mono = float(arrays["monosemanticity"][i])
        rows.append([str(i), str(arrays["labels"][i]), str(int(units[i])), f"{arrays['peak_r'][i]:.3f}",
                     f"{arrays['firing_rate'][i]:.3f}", "" if mono != mono else f"{mono:.3f}", state,
                     ", ".join(str(s) for s in arrays["top_ids"][i][:3])])
    return columns, rows


@concepts_app.command("show")
def show(
    sweep: str = typer.Argument(..., help="Name of a finished sweep with a `concepts:` section."),
    store: str | None = typer.Option(None, "--store", help="Store path or URL [default: $WORKBENCH_STORE]."),
    subject: str | None = typer.Option(None, "--subject", help="Subject [default: the first]."),
    encoder: str | None = typer.Option(None, "--encoder", help="SAE encoder label [default: the first]."),
    top: int = typer.Option(20, "--top", help="Latents shown (those best for most units first)."),
    latent: int | None = typer.Option(None, "--latent", help="Show this latent's top stimuli instead."),
) -> None:
    """List a concepts cell's latents: label, units it is best for, peak r, firing rate, monosemanticity."""
    from rich.console import Console
    from rich.table import Table

    from brain_workbench.sdk.analysis import result_path
    from brain_workbench.sdk.data import open_store

    st = open_store(store)
    row = concept_cells(st, sweep, subject, encoder)[0]
    reader = st.open(result_path(sweep, str(row["key"])))
    arrays = {name: reader[name] for name in reader.names()}
    columns, rows = latent_rows(arrays, top, latent)
    what = f"latent {latent}" if latent is not None else "latents"
    table = Table(title=f"{sweep}: {row['encoder']} {what}, subject {row['subject']}")
    for column in columns:
        table.add_column(column)
    for values in rows:
        table.add_row(*values)
    Console(width=160).print(table)
