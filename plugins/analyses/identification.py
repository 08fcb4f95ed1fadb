"""ROI identification from RDMs (the evaluation of Lin & Kriegeskorte's topological RSA): leave one subject out,
average the other subjects' RDMs of each ROI into a centroid, and call each ROI of the held-out subject by the most
similar centroid; one accuracy per RDM transform.

```yaml
roi_identification:
  transforms: [none, rank, geotopological, geodesic]
  low: 0.1
  up: 0.6
```
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from brain_workbench.sdk.analysis import (
    Analysis,
    Cell,
    CellResult,
    PlanContext,
    Preparation,
    TextTable,
    WorkbenchError,
    build,
    prepared_recording,
)
from brain_workbench_plugins.analyses import common, sections

TRANSFORMS = ("none", "rank", "geotopological", "geodesic")


class IdentificationSpec(BaseModel):
    """``roi_identification:``: the RDM transforms compared, their quantiles, the RDM and its comparison."""

    model_config = ConfigDict(extra="forbid")
    transforms: list[str] = Field(default_factory=lambda: list(TRANSFORMS), min_length=1)
    low: float = Field(0.1, ge=0.0, le=1.0, description="lower quantile of geotopological/geodesic")
    up: float = Field(0.6, ge=0.0, le=1.0, description="upper quantile of geotopological/geodesic")
    rdm: str = Field("correlation", description="how each ROI's RDM is computed")
    comparison: str = Field("pearson", description="how an RDM is compared with a centroid")
    rank_first: bool = Field(False, description="rank-transform before geotopological/geodesic (the authors' code)")


@dataclass(frozen=True)
class IdentificationTask:
    preps: tuple[tuple[str, Preparation], ...]
    spec: dict[str, Any]


def spec_of(config: Any) -> IdentificationSpec | None:
    return sections.read(config, "roi_identification", IdentificationSpec)


def identify(rdms: dict[str, dict[str, np.ndarray]], similarity: Any) -> dict[str, float]:
    """Leave-one-subject-out nearest-centroid identification: ``rdms[subject][roi]`` condensed RDMs (transformed);
    for each held-out subject and ROI, whether the most similar centroid (mean over the other subjects) is its own.
    Returns the fraction identified per ROI."""
    subjects = sorted(rdms)
    rois = list(rdms[subjects[0]])
    if len(subjects) < 2:
        raise WorkbenchError(f"ROI identification leaves one subject out, so it needs at least 2 subjects, got "
                             f"{len(subjects)}")
    if len(rois) < 2:
        raise WorkbenchError("ROI identification needs at least 2 ROIs to tell apart")
    if any(list(rdms[s]) != rois for s in subjects):
        raise WorkbenchError("every subject must have the same ROIs for ROI identification")
    hits = {roi: 0 for roi in rois}
    for held in subjects:
        others = [s for s in subjects if s != held]
        centroids = {roi: np.mean([rdms[s][roi] for s in others], axis=0) for roi in rois}
        for roi in rois:
            scores = [similarity(rdms[held][roi], centroids[c]) for c in rois]
            hits[roi] += int(rois[int(np.argmax(scores))] == roi)
    return {roi: hits[roi] / len(subjects) for roi in rois}


class IdentificationAnalysis(Analysis):
    """``roi_identification:``: one cell over all subjects; a row per transform × ROI with the fraction identified."""

    name = "roi-identification"
    version = "1"
    sections = ("roi_identification",)
    code_modules = ("brain_workbench_plugins.analyses.identification", "brain_workbench_plugins.analyses.common",
                    "brain_workbench_plugins.metrics")
    id_columns = ("transform",)
    score_columns = ("identified", "chance")
    summary_value = "identified"

    def validate(self, config: Any, dataset: Any, registry: Any) -> None:
        spec = spec_of(config)
        if spec is None:
            return
        unknown = [t for t in spec.transforms if t not in TRANSFORMS]
        if unknown:
            raise WorkbenchError(f"roi_identification.transforms: {unknown[0]!r} is not one of {', '.join(TRANSFORMS)}")
        if dataset.provides == "rdms":
            raise WorkbenchError(f"roi_identification computes RDMs from responses; dataset {config.dataset.name!r} "
                                 "gives RDMs only")
        for transform in spec.transforms:
            registry.create("metric", "rsa", rdm=spec.rdm, comparison=spec.comparison, rdm_transform=transform,
                            low=spec.low, up=spec.up, rank_first=spec.rank_first)

    def plan(self, context: PlanContext) -> list[Cell]:
        spec = spec_of(context.config)
        if spec is None:
            return []
        cfg = context.config
        if len(context.subjects) < 2:
            raise WorkbenchError(f"roi_identification leaves one subject out, so it needs at least 2 subjects; the "
                                 f"sweep has {len(context.subjects)}")
        split = cfg.cv_spec()["split"]
        rois = tuple(cfg.rois) if cfg.rois else None
        preps = tuple((s, Preparation(context.response_path(s), cfg.average_repetitions, split, rois, None, None))
                      for s in context.subjects)
        dump = spec.model_dump()
        key = self.cell_key("all", "i", context.dataset.fingerprint, [p.path for _, p in preps], split, rois,
                            cfg.average_repetitions, dump)
        first = preps[0][1].path
        return [Cell(key=key, analysis=self.name, subject="all", model=BRAIN_MODEL, model_name=BRAIN_MODEL,
                     layer="rdm", depth=0.0, label=self.name, head=self.name, feature_path="", response_path=first,
                     reads=tuple(p.path for _, p in preps), task=IdentificationTask(preps, dump))]

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        return identify_rois(store_url, cell)

    def table(self, rows: Any, sweep: str, value: str) -> list[TextTable]:
        rois = list(dict.fromkeys(rows["roi"].astype(str)))
        keys, values = [], []
        for transform, part in rows.groupby("transform", sort=False):
            by_roi = dict(zip(part["roi"].astype(str), part["identified"]))
            keys.append((str(transform),))
            values.append((*(common.fmt(by_roi.get(r)) for r in rois), common.fmt(float(np.mean(list(by_roi.values()))))))
        chance = float(rows["chance"].iloc[0])
        return [TextTable(f"{sweep}: ROI identification from RDMs, leave one subject out, nearest centroid "
                          f"(fraction identified; chance {chance:.2f})", ("transform",), (*rois, "mean"), tuple(keys),
                          tuple(values))]


BRAIN_MODEL = "brain"


def identify_rois(store_url: str, cell: Cell) -> CellResult:
    """Each subject's ROI RDMs on the shared test stimuli, under each transform, identified leave-one-subject-out."""
    started = time.time()
    task: IdentificationTask = cell.task
    spec = task.spec
    responses: dict[str, dict[str, np.ndarray]] = {}
    ids: dict[str, list[str]] = {}
    for subject, prep in task.preps:
        data = prepared_recording(store_url, prep)
        ids[subject] = [str(i) for i in data["test_ids"]]
        n_units, n_times = data["n_units"], data["n_times"]
        Y = data["Y_test"].reshape(len(ids[subject]), n_units, n_times).mean(axis=2)
        responses[subject] = {roi: Y[:, m.reshape(n_units, n_times)[:, 0]] for roi, m in data["rois"].items()
                              if m.any()}
    shared = sorted(set.intersection(*(set(v) for v in ids.values())))
    if len(shared) < 3:
        raise WorkbenchError(f"the subjects share {len(shared)} test stimuli; ROI identification compares RDMs of the "
                             "same stimuli, so it needs at least 3 in common")
    rows = []
    for transform in spec["transforms"]:
        metric = build("metric", "rsa", rdm=spec["rdm"], comparison=spec["comparison"], rdm_transform=transform,
                       low=spec["low"], up=spec["up"], rank_first=spec["rank_first"])
        rdms = {}
        for subject, by_roi in responses.items():
            order = {s: k for k, s in enumerate(ids[subject])}
            rows_of = [order[s] for s in shared]
            rdms[subject] = {roi: metric.transformed(metric.model_rdm(Y[rows_of])) for roi, Y in by_roi.items()}
        for roi, fraction in identify(rdms, metric.compare_dissimilarities).items():
            rows.append({"roi": roi, "transform": transform, "identified": fraction, "n_units": None,
                         "chance": 1.0 / len(next(iter(rdms.values())))})
    return CellResult(tuple(rows), len(shared), round(time.time() - started, 3))
