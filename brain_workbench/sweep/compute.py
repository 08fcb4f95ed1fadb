"""What a worker runs for a cell: the ``compute`` of the analysis the cell names (workers never write)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from brain_workbench.analysis.contract import Analysis, Cell, CellResult
from brain_workbench.analysis.measure import measured


@dataclass(frozen=True)
class CellComputer:
    """Computes any cell of the sweep's analyses (picklable: executors send it to worker processes)."""

    analyses: Mapping[str, Analysis]

    def __call__(self, store_url: str, cell: Cell) -> CellResult:
        """The cell's result, carrying its own peak memory."""
        return measured(self.analyses[cell.analysis].compute, store_url, cell)
