"""The contract of an analysis plugin: typed cells, results and plan context, and the :class:`Analysis` base.

An analysis decides which cells a sweep has (``plan``, pure), computes one cell in a worker from the
store (``compute``, never writing), names the columns of its rows in the tidy table, and presents its
rows (``table`` for ``results show``, ``figures``, ``report_section``). The sweep core knows none by name.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from brain_workbench.store.paths import feature_path, result_path
from brain_workbench.types import LayerInfo, StimulusSet, WorkbenchError, digest


@dataclass(frozen=True)
class Cell:
    """One unit of work of one analysis; ``task`` (a frozen dataclass of the analysis) is all a worker needs.

    ``model`` names the representation as tables do (an encoder label, a codec's latents, a generator),
    ``label`` the head, metric or model as tables name it (column ``analysis``), ``head`` its plugin name.
    Cells of a higher ``phase`` run after every cell of the lower phases (they read their results).
    """

    key: str
    analysis: str
    subject: str
    model: str
    model_name: str
    layer: str
    depth: float
    label: str
    head: str = ""
    fold: str = ""
    phase: int = 0
    feature_path: str = ""
    response_path: str = ""
    reads: tuple[str, ...] = ()
    task: Any = None

    @property
    def kind(self) -> str:
        """The analysis name, as the results table's ``kind`` column shows it."""
        return self.analysis

    @property
    def encoder(self) -> str:
        return self.model

    def result_path(self, sweep: str) -> str:
        return result_path(sweep, self.key)

    def describe(self) -> dict[str, Any]:
        """What a result entry records about its cell (the results table reads these keys)."""
        return {"key": self.key, "subject": self.subject, "encoder": self.model, "encoder_name": self.model_name,
                "layer": self.layer, "depth": self.depth, "head": self.head, "feature_path": self.feature_path,
                "response_path": self.response_path, "kind": self.analysis, "analysis": self.label or self.head,
                "fold": self.fold, "phase": self.phase}


def plain(value: Any) -> Any:
    """A task (frozen dataclasses, tuples, mappings) as JSON-able plain data, for store attributes and keys."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class CellResult:
    """What a worker returns for a cell: per-unit arrays, one summary row per ROI, and timing.

    ``images`` (with ``image_ids``) are written as their own image entry, named by the cell key.
    ``info`` holds further attributes the table shows (``fit_s``, peak memory). ``warnings`` are sentences
    the user must read (units left out of a score, say): recorded with the result and shown by the run.
    """

    rois: tuple[Mapping[str, Any], ...]
    n_test: int
    timing_s: float
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    images: np.ndarray | None = None
    image_ids: np.ndarray | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, result: Mapping[str, Any]) -> CellResult:
        """A result given as one dict: arrays, ``rois``, ``n_test``, ``timing_s`` and (optional) ``images``
        with their ``test_ids``; any other scalar becomes ``info``."""
        data = dict(result)
        images = data.pop("images", None)
        image_ids = data.pop("test_ids", None) if images is not None else None
        rois, n_test, timing = data.pop("rois"), data.pop("n_test"), data.pop("timing_s")
        arrays = {k: v for k, v in data.items() if isinstance(v, np.ndarray)}
        info = {k: v for k, v in data.items() if k not in arrays}
        return cls(tuple(rois), int(n_test), float(timing), arrays, images, image_ids, info)


@dataclass(frozen=True)
class RecordingInfo:
    """What the plan may know of one subject's cached recording (or RDMs): never the arrays themselves.

    ``groups`` maps each trial grouping's name to its number of distinct labels; ``cached`` is false
    before the recording is in the store (then splits, ROIs and groups are empty).
    """

    subject: str
    path: str
    cached: bool = False
    splits: tuple[str, ...] = ()
    rois: tuple[str, ...] = ()
    groups: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    fingerprint: str
    modalities: tuple[str, ...]
    provides: str
    subjects: tuple[str, ...]


@dataclass(frozen=True)
class EncoderInfo:
    """One configured encoder as the plan sees it: its layers, the ones the config lists, and its feature key."""

    index: int
    name: str
    label: str
    spec: Any
    modality: str
    layers: tuple[LayerInfo, ...]
    listed: tuple[str, ...]
    key: str

    def names(self) -> set[str]:
        """How a config section may name this encoder: its plugin name or its display label."""
        return {self.name, self.spec.display}

    def depth(self, layer: str) -> float:
        return float(next(info.depth for info in self.layers if info.name == layer))

    def feature_path(self, layer: str) -> str:
        return feature_path(self.key, layer)


@dataclass(frozen=True)
class FeatureJob:
    """Features an analysis needs beyond the configured encoders' (e.g. a codec's latents), extracted by the core."""

    key: str
    layers: tuple[str, ...]
    label: str
    encoder: Callable[[], Any]
    stimuli: Callable[[], StimulusSet]
    batch_size: int = 32


@dataclass(frozen=True)
class ImageJob:
    """An image entry the coordinator writes before cells read it: ``ids(store)`` names the images,
    ``load(ids)`` gives them as uint8 ``(n, h, w, 3)``."""

    key: str
    what: str
    ids: Callable[[Any], list[str]]
    load: Callable[[Sequence[str]], np.ndarray]
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanContext:
    """Everything an analysis may plan from: the validated config, the dataset, the subjects' cached
    recordings, the encoders, the registry, and the (used) stimuli of a modality."""

    config: Any
    dataset: DatasetInfo
    subjects: tuple[str, ...]
    recordings: Mapping[str, RecordingInfo]
    encoders: tuple[EncoderInfo, ...]
    registry: Any
    stimuli: Callable[[str], StimulusSet] = field(compare=False)

    @property
    def sweep(self) -> str:
        return self.config.name

    def response_path(self, subject: str) -> str:
        return self.recordings[subject].path

    def head_direction(self, name: str) -> str:
        """A head's ``encode``/``decode`` as its registered class declares it (see :func:`head_direction`)."""
        return head_direction(self.registry, name)

    def encoder(self, name: str) -> EncoderInfo:
        """The configured encoder a section names (plugin name or label)."""
        for info in self.encoders:
            if name in info.names():
                return info
        raise WorkbenchError(f"no encoder {name!r} in the sweep; its encoders are "
                             f"{', '.join(e.spec.display for e in self.encoders) or 'none'}")


def head_direction(registry: Any, name: str) -> str:
    """A head's ``encode``/``decode`` as its registered class declares it; built only if the class does not say."""
    factory = registry.get("head", name).load()
    return str(getattr(factory, "direction", None) or getattr(factory(), "direction", "encode"))


def table_labels(specs: Sequence[Any]) -> list[str]:
    """Table names of heads or metrics: the label, else the name, numbered (``ridge-2``) where names repeat."""
    names = [s.name for s in specs]
    return [s.label or (s.name if names.count(s.name) == 1 else f"{s.name}-{names[:i + 1].count(s.name)}")
            for i, s in enumerate(specs)]


@functools.cache
def source_digest(*modules: str) -> str:
    """A digest of the source of the named modules: a cell key holding it changes whenever that code does."""
    parts = []
    for name in modules:
        module = sys.modules.get(name) or importlib.import_module(name)
        try:
            parts.append(inspect.getsource(module))
        except (OSError, TypeError):
            raise WorkbenchError(f"cannot read the source of module {name!r} to key its cells") from None
    return digest(*parts)


@dataclass(frozen=True)
class TextTable:
    """One table ``results show`` prints: key columns then value columns, values already formatted."""

    title: str
    key_names: tuple[str, ...]
    value_names: tuple[str, ...]
    keys: tuple[tuple[str, ...], ...]
    values: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class ReportSection:
    """One results section of the report: an anchor, a title and its HTML body."""

    anchor: str
    title: str
    body: str


class Analysis:
    """Base of an analysis plugin; subclasses set ``name`` and implement ``plan`` and ``compute``.

    ``id_columns`` name the analysis's own identifier columns of the tidy table (beyond subject, encoder,
    layer, roi, ...), ``score_columns`` its scores; ``code_modules`` the modules whose source keys its
    cells (default: the module defining the class). ``in_coordinator`` analyses run in the coordinating
    process (e.g. where the GPU is) rather than in workers. ``sections`` are the top-level config sections it
    reads (``config.section(name)``); a sweep refuses, before any work, a section no installed analysis claims.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    id_columns: ClassVar[tuple[str, ...]] = ()
    score_columns: ClassVar[tuple[str, ...]] = ()
    code_modules: ClassVar[tuple[str, ...]] = ()
    in_coordinator: ClassVar[bool] = False
    sections: ClassVar[tuple[str, ...]] = ()
    progress_label: ClassVar[str] = "fitting cells"
    summary_value: ClassVar[str | None] = None
    summary_what: ClassVar[str | None] = None

    def validate(self, config: Any, dataset: DatasetInfo, registry: Any) -> None:
        """Refuse, before any work, what a typo can break in this analysis's config sections."""

    def plan(self, context: PlanContext) -> list[Cell]:
        raise NotImplementedError

    def requirements(self, context: PlanContext, cells: Sequence[Cell]) -> list[FeatureJob | ImageJob]:
        """Entries beyond the configured encoders' features that the coordinator writes before the cells run."""
        return []

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        raise NotImplementedError

    def code_digest(self) -> str:
        """Digest of the code computing this analysis's cells (part of every cell key, so keys never go stale)."""
        return source_digest(*(self.code_modules or (type(self).__module__,)))

    def cell_key(self, subject: str, tag: str, *parts: Any) -> str:
        """A cell key: the subject, a short tag, and a digest of the code, the version and ``parts``."""
        from brain_workbench.store.paths import safe_name

        return f"{safe_name(subject)}-{tag}{digest(self.code_digest(), self.name, self.version, *parts)}"

    def scores(self, rows: Any) -> list[str]:
        """The score columns of this analysis's rows of the wide table (those with a value)."""
        return [c for c in self.score_columns if c in rows.columns and rows[c].notna().any()]

    def table(self, rows: Any, sweep: str, value: str) -> list[TextTable]:
        """Tables for ``results show`` (mean over subjects): by default one row per encoder × layer × ROI."""
        scores = self.scores(rows)
        if not scores:
            return []
        keys, values = [], []
        for (encoder, _, layer, roi), part in rows.groupby(["encoder", "depth", "layer", "roi"], sort=False):
            keys.append((str(encoder), str(layer), str(roi)))
            values.append(tuple(_fmt(part[c].mean()) for c in scores))
        return [TextTable(f"{sweep}: {self.name} (mean over subjects)", ("encoder", "layer", "roi"), tuple(scores),
                          tuple(keys), tuple(values))]

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        """Standard figures of this analysis's rows, drawn with ``kit`` (the core's figure helpers); paths."""
        return []

    def report_section(self, rows: Any, kit: Any) -> list[ReportSection]:
        """Report sections of this analysis's rows (``kit`` formats tables); none gives the core's default."""
        return []


def _fmt(x: Any) -> str:
    try:
        return "" if x is None or x != x else f"{float(x):.3f}"
    except (TypeError, ValueError):
        return str(x)
