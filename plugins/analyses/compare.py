"""Models compared with models: every listed layer of one encoder against every listed layer of another (or of
itself, or the brain's ROIs) with any comparison metric, on the test stimuli; a layer × layer matrix per metric,
drawn as a heatmap (Kornblith et al. 2019).

```yaml
compare:
  encoders: [efficientnet, clip]      # rows, columns; "brain" as the first puts each subject's ROIs as rows
  metrics: [{name: cka}, {name: rsa}]
```
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from brain_workbench.sdk.analysis import (
    Analysis,
    Cell,
    CellResult,
    PlanContext,
    Preparation,
    ReportSection,
    Store,
    TextTable,
    WorkbenchError,
    build,
    load_features,
    prepared_recording,
)
from brain_workbench_plugins.analyses import common, sections

BRAIN = "brain"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompareMetric(_Spec):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(None, description="name in tables (defaults to the metric name)")


class CompareSpec(_Spec):
    """``compare:``: which two sides are compared layer by layer, and with which metrics."""

    encoders: list[str] = Field(min_length=1, max_length=2, description="the rows' and the columns' encoder (name "
                                                                        "or label; one: with itself); 'brain' first "
                                                                        "puts the ROIs as rows")
    metrics: list[CompareMetric] = Field(default_factory=lambda: [CompareMetric(name="cka")], min_length=1)


@dataclass(frozen=True)
class CompareTask:
    """One column layer of side b against every row of side a (its layers, or a subject's ROIs)."""

    prep: Preparation
    rows_label: str
    row_paths: tuple[tuple[str, str], ...]
    column_path: str
    metric: dict[str, Any]


def spec_of(config: Any) -> CompareSpec | None:
    return sections.read(config, "compare", CompareSpec)


def _labels(spec: CompareSpec) -> list[str]:
    names = [m.name for m in spec.metrics]
    return [m.label or (m.name if names.count(m.name) == 1 else f"{m.name}-{names[:i + 1].count(m.name)}")
            for i, m in enumerate(spec.metrics)]


class CompareAnalysis(Analysis):
    """``compare:``: a layer × layer matrix per metric between two encoders, one with itself, or ROIs × layers."""

    name = "compare"
    version = "1"
    sections = ("compare",)
    code_modules = ("brain_workbench_plugins.analyses.compare", "brain_workbench_plugins.analyses.common")
    id_columns = ("rows_of",)

    def validate(self, config: Any, dataset: Any, registry: Any) -> None:
        spec = spec_of(config)
        if spec is None:
            return
        if spec.encoders[-1] == BRAIN:
            raise WorkbenchError("compare.encoders: the brain can only be the first side (ROIs as rows); put an "
                                 "encoder second")
        if spec.encoders[0] == BRAIN and dataset.provides == "rdms":
            raise WorkbenchError(f"compare: dataset {config.dataset.name!r} gives RDMs, not responses; compare "
                                 "encoders with each other, or use metrics: [rsa] against its RDMs")
        for metric in spec.metrics:
            built = registry.create("metric", metric.name, **metric.options)
            if getattr(built, "scope", "comparison") == "property":
                raise WorkbenchError(f"compare.metrics: {metric.name!r} is a property of one representation, not a "
                                     "comparison; list it under metrics: to see each layer's and ROI's value")

    def plan(self, context: PlanContext) -> list[Cell]:
        spec = spec_of(context.config)
        if spec is None:
            return []
        cfg = context.config
        sides = spec.encoders if len(spec.encoders) == 2 else spec.encoders * 2
        brain = sides[0] == BRAIN
        columns = context.encoder(sides[1])
        rows = None if brain else context.encoder(sides[0])
        cv = cfg.cv_spec()
        labels = _labels(spec)
        cells = []
        for subject in context.subjects if brain else context.subjects[:1]:
            path = context.response_path(subject)
            prep = Preparation(path, cfg.average_repetitions, cv["split"], tuple(cfg.rois) if cfg.rois else None,
                               None, None)
            row_paths = () if rows is None else tuple((layer, rows.feature_path(layer)) for layer in rows.listed)
            rows_label = BRAIN if rows is None else rows.label
            for layer in columns.listed:
                fpath = columns.feature_path(layer)
                for label, metric in zip(labels, spec.metrics):
                    dump = metric.model_dump()
                    key = self.cell_key(subject, "x", context.dataset.fingerprint, path, cv["split"], cfg.rois,
                                        cfg.average_repetitions, rows_label, [p for _, p in row_paths], fpath, dump)
                    task = CompareTask(prep, rows_label, row_paths, fpath, dump)
                    reads = (path, fpath, *(p for _, p in row_paths))
                    cells.append(Cell(key=key, analysis=self.name, subject=subject, model=columns.label,
                                      model_name=columns.name, layer=layer, depth=columns.depth(layer), label=label,
                                      head=metric.name, feature_path=fpath, response_path=path, reads=reads,
                                      task=task))
        return cells

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        return compare_layers(store_url, cell)

    def table(self, rows: Any, sweep: str, value: str) -> list[TextTable]:
        out = []
        for (label, rows_of), part in rows.groupby(["analysis", "rows_of"], sort=False):
            matrix = common.pivot(part, "value", f"{sweep}: {label}, {part['encoder'].iloc[0]} layers (rows) × "
                                                 f"{rows_of} {'ROIs' if rows_of == BRAIN else 'layers'} (columns), "
                                                 "mean over subjects")
            out.append(matrix)
        return out

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        paths = []
        for (label, rows_of), part in rows.groupby(["analysis", "rows_of"], sort=False):
            columns_of = str(part["encoder"].iloc[0])
            matrix, row_names, column_names = layer_matrix(part)
            what = "ROIs" if rows_of == BRAIN else f"{rows_of} layers"
            title = f"{kit.sweep}: {label}, {what} × {columns_of} layers"
            paths.append(kit.draw(
                f"compare_{kit.file_label(f'{label}_{rows_of}_{columns_of}')}.png", sorted(part["cell"].unique()),
                lambda p, m=matrix, r=row_names, c=column_names, t=title, x=columns_of, y=what, v=str(label):
                    plot_heatmap(m, r, c, t, x, y, p, v),
                f"{label} between every {what[:-1] if what.endswith('s') else what} (rows) and every {columns_of} "
                f"layer (columns) on the test stimuli, mean over subjects, as Kornblith et al. (2019) draw layer × "
                "layer CKA."))
        return paths

    def report_section(self, rows: Any, kit: Any) -> list[ReportSection]:
        out = []
        for (label, rows_of), part in rows.groupby(["analysis", "rows_of"], sort=False):
            matrix, row_names, column_names = layer_matrix(part)
            import pandas as pd

            frame = pd.DataFrame(np.round(matrix, 3), columns=column_names)
            frame.insert(0, str(rows_of), row_names)
            columns_of = str(part["encoder"].iloc[0])
            out.append(ReportSection(
                kit.slug(f"compare-{label}-{rows_of}-{columns_of}"),
                f"Compare: {label}, {rows_of} × {columns_of} layers",
                f"<p class='note'>{label} between each {'ROI' if rows_of == BRAIN else rows_of + ' layer'} (rows) and "
                f"each {columns_of} layer (columns), on the test stimuli, mean over subjects.</p>"
                f"{kit.html_table(frame, 1)}"))
        return out


def layer_matrix(rows: Any) -> tuple[np.ndarray, list[str], list[str]]:
    """Mean over subjects of one metric's rows as a matrix: side-a units (ROIs or layers, in order) × side-b layers
    (by depth)."""
    order = rows.sort_values("depth", kind="stable")
    columns = list(dict.fromkeys(order["layer"].astype(str)))
    row_names = list(dict.fromkeys(rows["roi"].astype(str)))
    table = rows.assign(roi=rows["roi"].astype(str), layer=rows["layer"].astype(str)).pivot_table(
        index="roi", columns="layer", values="value", aggfunc="mean")
    return table.loc[row_names, columns].to_numpy(dtype=float), row_names, columns


def plot_heatmap(matrix: np.ndarray, rows: list[str], columns: list[str], title: str, xlabel: str, ylabel: str,
                 output_file: Path, value: str = "") -> Path:
    """A layer × layer similarity heatmap (rows from the bottom, as Kornblith et al. 2019)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = (max(4.0, 0.45 * len(columns) + 2.5), max(3.5, 0.4 * len(rows) + 2.0))
    fig, ax = plt.subplots(figsize=size)
    image = ax.imshow(matrix, origin="lower", cmap="magma", aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xlabel(f"{xlabel} layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8).set_label(value)
    fig.tight_layout()
    fig.savefig(output_file, dpi=120)
    plt.close(fig)
    return Path(output_file)


def compare_layers(store_url: str, cell: Cell) -> CellResult:
    """The column layer against every row (a layer of side a, or an ROI's responses) with the cell's metric, on
    the test stimuli of the recording. Metrics with a stimulus × stimulus form (RSA, CKA) compute each side's
    form once."""
    started = time.time()
    task: CompareTask = cell.task
    data = prepared_recording(store_url, task.prep)
    ids = list(data["test_ids"])
    store = Store(store_url, mode="r")
    metric = build("metric", task.metric["name"], **task.metric["options"])
    if callable(getattr(metric, "bind", None)):
        metric = metric.bind(stimulus_ids=ids)
    B = load_features(store, task.column_path, ids).astype(np.float64)
    if task.row_paths:
        sides = {layer: load_features(store, path, ids).astype(np.float64) for layer, path in task.row_paths}
    else:
        n_units, n_times = data["n_units"], data["n_times"]
        Y = data["Y_test"].reshape(len(ids), n_units, n_times).mean(axis=2)
        masks = {"all": np.ones(n_units, dtype=bool),
                 **{k: v.reshape(n_units, n_times)[:, 0] for k, v in data["rois"].items()}}
        sides = {roi: Y[:, m] for roi, m in masks.items() if m.any()}
    pairwise = callable(getattr(metric, "pairwise_form", None)) and callable(getattr(metric, "compare_pairwise", None))
    B_form = metric.pairwise_form(B) if pairwise else None
    summary = []
    for name, A in sides.items():
        A_form = metric.pairwise_form(A) if B_form is not None else None
        value = metric.compare_pairwise(A_form, B_form) if A_form is not None else metric.compare(A, B)
        summary.append({"roi": name, "rows_of": task.rows_label, "n_units": int(A.shape[1]), "value": float(value),
                        "metric_kind": metric.kind, "score_name": str(getattr(metric, "score_name",
                                                                              task.metric["name"]))})
    return CellResult(tuple(summary), len(ids), round(time.time() - started, 3))
