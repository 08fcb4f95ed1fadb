"""A fitted encoding cell as a linear readout of raw features: the analyses that ask *what* a unit prefers
(preferred and synthesized images, voxel captions, concept maps) refit the head of a finished encoding cell on
the same training rows and read its weights, intercept and feature standardisation from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from brain_workbench.sdk.analysis import Cell, PlanContext, WorkbenchError
from brain_workbench_plugins.analyses.encoding import EncodingAnalysis, EncodingTask, fit_head


@dataclass(frozen=True)
class LinearReadout:
    """``predict(X) = ((X - mean) / scale) @ coef + intercept`` for raw features ``X`` (n × d) of the cell's
    layer; ``coef`` is d × units, ``units`` the recording's unit indices the columns belong to."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    units: np.ndarray
    unit_rois: dict[str, np.ndarray]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted responses (n × units) of raw features."""
        return ((np.asarray(X, dtype=np.float64) - self.mean) / self.scale) @ self.coef + self.intercept

    @property
    def raw_coef(self) -> np.ndarray:
        """The weights on raw (unstandardised) features: ``coef / scale`` row-wise."""
        return self.coef / self.scale[:, None]


def encoding_cells(context: PlanContext, *, encoder: str | None = None, layer: str | None = None,
                   head: str | None = None) -> list[Cell]:
    """The encoding cells the sweep plans that a readout can be refitted from: one per subject × encoder ×
    layer × head (the split cell, or fold 0 of a cross-validated scheme), filtered by encoder name or label,
    layer name and head label or name."""
    cells = [c for c in EncodingAnalysis().plan(context) if c.fold in ("", "0")]
    if encoder is not None:
        names = {e.label: e.names() | {e.label} for e in context.encoders}
        cells = [c for c in cells if encoder in names.get(c.model, {c.model})]
    if layer is not None:
        cells = [c for c in cells if c.layer == layer]
    if head is not None:
        cells = [c for c in cells if head in (c.label, c.head)]
    return cells


def fit_readout(store_url: str, task: EncodingTask, units: np.ndarray | None = None,
                rows: np.ndarray | None = None) -> LinearReadout:
    """Refit the head of an encoding cell's task on its training rows (the same data, options and seed, so the
    same weights) and return it as a linear readout of raw features, restricted to ``units`` (a boolean mask
    or indices over the recording's units; all units by default). ``rows`` (indices into the training rows)
    fits on a subset instead, e.g. disjoint halves for a guiding and an independent judging readout."""
    head, data, _, (mean, sd) = fit_head(store_url, task, rows)
    coef, intercept = getattr(head, "coef_", None), getattr(head, "intercept_", None)
    if coef is None or intercept is None:
        raise WorkbenchError(f"head {task.head['name']!r} is not linear (no coef_ and intercept_ after fitting): "
                             "a readout needs a ridge-type head")
    coef = np.asarray(coef, dtype=np.float64)
    n_units = int(data["n_units"]) * int(data["n_times"])
    if coef.shape != (len(mean), n_units):
        raise WorkbenchError(f"head {task.head['name']!r} has coef_ of shape {coef.shape}; a readout needs "
                             f"features × units ({len(mean)} × {n_units})")
    index = np.arange(n_units) if units is None else np.asarray(units)
    if index.dtype == bool:
        if len(index) != n_units:
            raise WorkbenchError(f"a unit mask of length {len(index)} does not match the recording's {n_units} units")
        index = np.flatnonzero(index)
    if len(index) == 0:
        raise WorkbenchError("a readout needs at least one unit; the selection holds none")
    rois = {name: np.asarray(mask, dtype=bool)[index] for name, mask in data["rois"].items()}
    return LinearReadout(np.asarray(mean, np.float64), np.asarray(sd, np.float64), coef[:, index],
                         np.broadcast_to(np.asarray(intercept, np.float64), (n_units,))[index].copy(), index, rois)


def training_halves(store_url: str, task: EncodingTask, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint, seeded halves of an encoding task's training rows (indices), for two independent readouts."""
    from brain_workbench.sdk.analysis import prepared_recording

    n = len(prepared_recording(store_url, task.prep)["train_ids"])
    if n < 8:
        raise WorkbenchError(f"an independent half-split readout needs at least 8 training rows; the cell has {n}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def readout_task(cell: Cell) -> EncodingTask:
    """The encoding task of a planned encoding cell (refused for any other cell)."""
    if cell.analysis != "encoding" or not isinstance(cell.task, EncodingTask) or cell.task.fold_paths:
        raise WorkbenchError(f"cell {cell.key} is a {cell.analysis or 'non-encoding'} cell, not a fitted encoding "
                             "cell: a readout is refitted from an encoding cell (a split or fold cell)")
    return cell.task


def unit_selection(readout: LinearReadout, target: Any) -> np.ndarray:
    """Column weights (units,) that average a target over the readout's units: an ROI name, a list of unit
    indices, or ``{"roi": A, "minus": B}`` (mean of A minus mean of B, BrainDiVE's contrasts)."""
    def mean_of(name: str) -> np.ndarray:
        if name == "all":
            mask = np.ones(len(readout.units), bool)
        elif name in readout.unit_rois:
            mask = readout.unit_rois[name]
        else:
            raise WorkbenchError(f"ROI {name!r} is not among the readout's ROIs ({', '.join(readout.unit_rois)})")
        if not mask.any():
            raise WorkbenchError(f"ROI {name!r} has no units in this readout")
        return mask / mask.sum()

    if isinstance(target, str):
        return mean_of(target)
    if isinstance(target, dict):
        if set(target) != {"roi", "minus"}:
            raise WorkbenchError(f"a contrast is {{roi: A, minus: B}}; got keys {sorted(target)}")
        return mean_of(str(target["roi"])) - mean_of(str(target["minus"]))
    picks = np.asarray(list(target))
    where = {int(u): i for i, u in enumerate(readout.units)}
    missing = [int(u) for u in picks if int(u) not in where]
    if missing or not len(picks):
        raise WorkbenchError(f"units {missing[:5] or '[]'} are not in the readout (it holds {len(readout.units)} units)")
    weights = np.zeros(len(readout.units))
    weights[[where[int(u)] for u in picks]] = 1.0 / len(picks)
    return weights


def objective_weights(readout: LinearReadout, target: Any) -> tuple[np.ndarray, float]:
    """The target's mean predicted response as one linear function of raw features: (w (d,), b) with
    ``target(X) = X @ w + b`` equal to ``readout.predict(X) @ unit_selection(readout, target)``."""
    select = unit_selection(readout, target)
    w = readout.raw_coef @ select
    b = float(readout.intercept @ select - (readout.mean / readout.scale) @ (readout.coef @ select))
    return w, b

