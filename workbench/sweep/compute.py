"""What a worker runs for a cell: the computation its kind names (workers only compute, never write)."""

from __future__ import annotations

from typing import Any, Callable

from workbench.sweep.cells import Cell, compute_decode_cell, compute_encoding_cell, compute_metric_cell
from workbench.sweep.reconstruction import compute_generation_cell, compute_reconstruction_cell

COMPUTATIONS: dict[str, Callable[[str, Cell], dict[str, Any]]] = {
    "encoding": compute_encoding_cell,
    "decoding": compute_decode_cell,
    "metric": compute_metric_cell,
    "reconstruction": compute_reconstruction_cell,
    "generation": compute_generation_cell,
}


def compute_cell(store_url: str, cell: Cell) -> dict[str, Any]:
    """Compute one cell of any kind from the store at ``store_url``; returns arrays and table rows."""
    return COMPUTATIONS[cell.kind](store_url, cell)
