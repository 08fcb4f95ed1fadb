"""What a worker runs for a cell: the computation its kind names (workers only compute, never write)."""

from __future__ import annotations

from typing import Any, Callable

from brain_workbench.sweep.cells import (
    Cell, compute_decode_cell, compute_encoding_cell, compute_fold_mean_cell, compute_metric_cell, compute_rdm_metric_cell, measured,
)
from brain_workbench.sweep.adaptation import compute_adaptation_cell
from brain_workbench.sweep.reconstruction import compute_generation_cell, compute_reconstruction_cell


def _encoding(store_url: str, cell: Cell) -> dict[str, Any]:
    return compute_fold_mean_cell(store_url, cell) if cell.fold == "mean" else compute_encoding_cell(store_url, cell)


def _metric(store_url: str, cell: Cell) -> dict[str, Any]:
    return compute_rdm_metric_cell(store_url, cell) if "rdm_path" in cell.task else compute_metric_cell(store_url, cell)


COMPUTATIONS: dict[str, Callable[[str, Cell], dict[str, Any]]] = {
    "encoding": _encoding,
    "decoding": compute_decode_cell,
    "metric": _metric,
    "reconstruction": compute_reconstruction_cell,
    "generation": compute_generation_cell,
    "adaptation": compute_adaptation_cell,
}


def compute_cell(store_url: str, cell: Cell) -> dict[str, Any]:
    """Compute one cell of any kind from the store at ``store_url``; the result carries its own peak memory."""
    return measured(COMPUTATIONS[cell.kind], store_url, cell)
