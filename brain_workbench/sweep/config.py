"""Sweep configuration: a YAML file validated by pydantic, with ``--set a.b=c`` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from brain_workbench.store import check_key
from brain_workbench.types import WorkbenchError, digest


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(_Spec):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


def _check_layers(value: Any) -> Any:
    """Refuse ``true``/``false`` as layers: YAML booleans are not depths (pydantic would read ``true`` as 1.0)."""
    if isinstance(value, (list, tuple)):
        bad = [v for v in value if isinstance(v, bool)]
        if bad:
            raise ValueError(f"layers are names or relative depths 0–1, not {str(bad[0]).lower()}; "
                             "write 1.0 for the last layer")
    return value


class EncoderSpec(_Spec):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    layers: list[float | str] | None = Field(None, description="layer names or relative depths 0–1; all when omitted")
    batch_size: int = Field(32, ge=1)
    label: str | None = Field(None, description="name shown in tables and figures; defaults to the encoder name")

    @field_validator("layers", mode="before")
    @classmethod
    def _layers_not_bool(cls, value: Any) -> Any:
        return _check_layers(value)

    @property
    def display(self) -> str:
        return self.label or self.name


class HeadSpec(_Spec):
    name: str = "ridge"
    options: dict[str, Any] = Field(default_factory=dict)
    encoders: list[str] | None = Field(None, description="only these encoders (names or labels); all when omitted")
    layers: list[float | str] | None = Field(
        None, description="fit on these layers (names or relative depths 0–1; extracted too) instead of each "
                          "encoder's own list")
    label: str | None = Field(None, description="analysis name in tables; the head name, numbered when two "
                                                "heads share it")

    @field_validator("layers", mode="before")
    @classmethod
    def _layers_not_bool(cls, value: Any) -> Any:
        return _check_layers(value)


class MetricSpec(_Spec):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(None, description="analysis name in tables; the metric name, numbered when two "
                                                "metrics share it")


class DecodingSpec(_Spec):
    """How decode heads are fitted and scored (brain → features of each encoder layer)."""

    rois: list[str] = Field(default_factory=lambda: ["all"],
                            description="unit sets to decode from: 'all' units or ROI names, one cell each")
    time_windows: list[tuple[float, float]] | None = Field(
        None, description="time-resolved data: [start, end] windows in seconds, responses averaged within each "
                          "(one cell per window); all times as separate features when omitted")
    top_k: list[int] = Field(default_factory=lambda: [1, 5], description="k of top-k retrieval over the test set")
    n_way: list[int] = Field(default_factory=list, description="N of N-way retrieval in random test subsets "
                                                               "(MindEye: 300)")
    n_subsets: int = Field(30, ge=1, description="seeded random shuffles into N-way batches")
    similarity: Literal["cosine", "pearson"] = "cosine"
    standardize_targets: bool = Field(True, description="z-score each target dimension with training statistics "
                                                         "before fitting and retrieval (removes the mean stimulus)")
    keep_predictions: bool = Field(False, description="store the decoded test embeddings with the cell")

    @field_validator("top_k", "n_way")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(v < 1 for v in value):
            raise ValueError("top_k and n_way values must be positive")
        return value


class PluginSpec(_Spec):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class ImageMetricSpec(_Spec):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(None, description="column name in tables (defaults to the metric name)")


def _default_image_metrics() -> list[ImageMetricSpec]:
    return [ImageMetricSpec(name="pixcorr"), ImageMetricSpec(name="ssim"), ImageMetricSpec(name="two-way")]


class ReconstructionSpec(_Spec):
    """Stage-1 reconstruction: brain → latents of an image codec → decoded images, scored per image."""

    codec: PluginSpec = Field(default_factory=lambda: PluginSpec(name="taef2", options={"image_size": 64}))
    head: HeadSpec = Field(default_factory=lambda: HeadSpec(name="decoder"),
                           description="brain → latent regression (any head; fitted on z-scored latents)")
    rois: list[str] = Field(default_factory=lambda: ["all"], description="unit sets to reconstruct from")
    metrics: list[ImageMetricSpec] = Field(default_factory=_default_image_metrics)
    seen_size: int = Field(256, ge=8, description="side the seen images are stored and compared at, in pixels")
    batch_size: int = Field(16, ge=1, description="stimuli per codec forward pass when caching latents")


class GenerationSpec(_Spec):
    """Stage 3: decoded image embeddings (and optionally stage-1 images as the start) → a diffusers generator."""

    generator: PluginSpec = Field(description="a registered generator, e.g. kandinsky-2.2 with options.path")
    encoder: str = Field(description="encoder (name or label) whose decoded layer the generator takes")
    layer: str | float = Field("embedding", description="that encoder's layer (name or relative depth)")
    head: str = Field("decoder", description="the decode head whose predictions are used")
    roi: str = Field("all", description="unit set of the decode (and reconstruction) cell used")
    init_from_reconstruction: bool = Field(False, description="start from the stage-1 reconstruction (img2img)")
    metrics: list[ImageMetricSpec] = Field(default_factory=_default_image_metrics)
    seed: int = 0
class CVSpec(_Spec):
    """How encoding cells are cross-validated; every fold reuses the same cached features and responses."""

    scheme: Literal["split", "kfold", "group", "all"] = Field(
        "split", description="split: one named test split; kfold: seeded k-fold over stimuli; group: "
                             "leave-one-group-out over a trial grouping of the dataset (session, run); all: "
                             "every stimulus, no training side (metric-only sweeps: no split needed)")
    split: str | None = Field(None, description="scheme split: the test split (default: the sweep's test_split)")
    k: int = Field(5, ge=2, description="scheme kfold: number of folds")
    group: str = Field("session", description="scheme group: the trial grouping left out one group at a time")
    seed: int = Field(0, description="scheme kfold: shuffling seed")
    keep_predictions: bool = Field(False, description="store each fold's test predictions and, with the "
                                                      "fold-averaged scores, the out-of-fold predictions")
    inner_group: str | None = Field(None, description="trial grouping whose labels become the head's inner "
                                                      "cv folds (alpha selection); the head's own cv otherwise")


class SharedTargetSpec(_Spec):
    encoder: str = Field(description="encoder (name or label) of the sweep whose layer is the target")
    layer: str | float = Field(description="that encoder's layer (name or relative depth 0–1)")


class SharedModelSpec(_Spec):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(None, description="model name in tables and the figure (defaults to the head name)")


class AlignSpec(_Spec):
    split: str = Field("test", description="split of stimuli every subject saw (NSD's shared1000, THINGS-EEG2's "
                                           "test images); the new subject is evaluated on it")
    fraction: float = Field(0.0, ge=0.0, lt=1.0, description="fraction of that split (seeded) given to every model "
                                                             "as alignment / training stimuli and left out of the "
                                                             "evaluation")


class SharedSpec(_Spec):
    """New-subject adaptation: shared models fitted on training subjects, adapted from a new one's first k sessions."""

    direction: Literal["decode", "encode"] = Field("decode", description="decode: brain → target; encode: "
                                                                         "target features → brain")
    target: SharedTargetSpec
    models: list[SharedModelSpec] = Field(min_length=1, description="registered heads: multi-subject ones (with "
                                                                    "adapt) and per-subject baselines")
    new_subjects: list[str] = Field(min_length=1, description="held out in turn; the other subjects train")
    train_subjects: list[str] | None = Field(None, description="training subjects (default: every other subject)")
    sessions: list[int | None] = Field(default_factory=lambda: [1, 2, 5, None],
                                       description="k: the first k sessions of the new subject (null: all)")
    session_group: str = Field("session", description="Recording.trial_groups key that labels sessions")
    train_split: str = "train"
    align: AlignSpec = Field(default_factory=AlignSpec)
    n_candidates: int | None = Field(None, ge=2, description="N of N-way top-1 retrieval (all evaluation "
                                                             "stimuli when omitted)")
    time_window: tuple[float, float] | None = Field(None, description="time-resolved data: [start, end] s, "
                                                                      "responses averaged within it")
    device: str | None = Field(None, pattern=r"^(cpu|cuda(:\d+)?)$",
                               description="torch device (cpu, cuda, cuda:N) given to every model with a device "
                                           "option that does not set its own")

    @field_validator("new_subjects", "train_subjects", mode="before")
    @classmethod
    def _as_strings(cls, value: Any) -> Any:
        if isinstance(value, (int, float, str)):
            value = [value]
        return [str(v) for v in value] if isinstance(value, (list, tuple)) else value

    @field_validator("sessions")
    @classmethod
    def _sessions(cls, value: list[int | None]) -> list[int | None]:
        if not value:
            raise ValueError("list at least one k (a number of sessions, or null for all)")
        if any(v is not None and v < 1 for v in value):
            raise ValueError("numbers of sessions must be at least 1 (null means all sessions)")
        if len(set(value)) != len(value):
            raise ValueError("each number of sessions may be listed once")
        return value

    @model_validator(mode="after")
    def _subjects(self) -> SharedSpec:
        if len(set(self.new_subjects)) != len(self.new_subjects):
            raise ValueError("new_subjects lists a subject twice")
        if self.train_subjects is not None and set(self.train_subjects) & set(self.new_subjects):
            raise ValueError("train_subjects and new_subjects overlap; a new subject is held out of training")
        names = [m.label or m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError("two models share a name; give them distinct labels")
        return self


class SweepConfig(_Spec):
    """One alignment sweep: dataset × subjects × encoders × layers × heads (and optional metrics)."""

    name: str
    store: str | None = None
    dataset: DatasetSpec
    subjects: Literal["all"] | list[str] = "all"
    average_repetitions: bool = True
    non_finite: Literal["error", "drop_units"] = Field(
        "error", description="responses with NaN or infinite values: refuse them (naming the units), or drop "
                             "those units (recorded in the recording's preprocessing)")
    test_split: str = "test"
    rois: list[str] | None = Field(None, description="restrict units to these ROIs; all units when omitted")
    encoders: list[EncoderSpec] = Field(default_factory=list)
    heads: list[HeadSpec] = Field(default_factory=lambda: [HeadSpec()])
    metrics: list[MetricSpec] = Field(default_factory=list)
    reconstruction: ReconstructionSpec | None = Field(
        None, description="reconstruct the test images from the brain through an image codec (stage 1)")
    generation: GenerationSpec | None = Field(
        None, description="generate images from decoded embeddings with a diffusion pipeline (stage 3)")
    decoding: DecodingSpec = Field(default_factory=DecodingSpec,
                                   description="unit sets and scores of heads whose direction is decode")
    cv: CVSpec | None = Field(None, description="cross-validation of encoding cells; test_split alone when omitted "
                                                "(metric cells of kfold, group and all schemes use every stimulus)")
    shared: SharedSpec | None = Field(None, description="new-subject adaptation cells of models shared across "
                                                        "subjects (score against the new subject's sessions)")
    analyses: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="options of further analysis plugins, by name; an analysis plugin "
                                          "reads its own entry (the built-ins read the sections above)")
    permutations: int = Field(200, ge=0, description="test-set permutations for the per-ROI null (encoding and "
                                                     "metric cells)")
    bootstrap: int = Field(0, ge=0, description="bootstrap resamples of the test stimuli for a 95% interval "
                                                "of each ROI's score (encoding and metric cells); none when 0")
    all_units_row: bool = Field(True, description="tables keep each cell's row over all units ('all') beside its "
                                                  "ROI rows; false drops it wherever the cell has ROI rows")
    seed: int = 0

    @field_validator("name")
    @classmethod
    def _name_is_a_key(cls, value: str) -> str:
        check_key(value)
        if "/" in value:
            raise ValueError("sweep names may not contain '/'")
        return value

    @field_validator("subjects", mode="before")
    @classmethod
    def _subjects_as_strings(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        if isinstance(value, (int, float)):
            return [str(value)]
        return value

    @model_validator(mode="after")
    def _has_work(self) -> SweepConfig:
        if not self.encoders and self.reconstruction is None:
            raise ValueError("a sweep needs encoders (or a reconstruction section)")
        if self.encoders and not (self.heads or self.metrics or self.shared or self.analyses):
            raise ValueError("a sweep with encoders needs heads, metrics, a shared section or an analyses "
                             "section to compute")
        if self.shared is not None:
            target = self.shared.target.encoder
            if not any(target in (e.name, e.display) for e in self.encoders):
                raise ValueError(f"shared.target.encoder {target!r} is not one of the sweep's encoders "
                                 f"({', '.join(e.display for e in self.encoders) or 'none'})")
            if self.subjects != "all":
                listed = set(self.subjects)
                unknown = [s for s in [*self.shared.new_subjects, *(self.shared.train_subjects or [])]
                           if s not in listed]
                if unknown:
                    raise ValueError(f"shared names subject {unknown[0]!r}, which is not in subjects")
        return self

    def cv_spec(self) -> dict[str, Any]:
        """The cross-validation scheme as plain data (``test_split`` alone is the split scheme)."""
        spec = (self.cv or CVSpec()).model_dump()
        spec["split"] = spec["split"] or self.test_split
        return spec

    def digest(self) -> str:
        return digest(self.model_dump(exclude={"store"}))


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node: Any = data
    for key in keys[:-1]:
        if isinstance(node, list):
            node = node[int(key)]
            continue
        if key not in node or node[key] is None:
            node[key] = {}
        node = node[key]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides (values parsed as YAML; list items by index: ``encoders.0.batch_size=8``)."""
    for item in overrides:
        if "=" not in item:
            raise WorkbenchError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        try:
            _set_path(data, key.strip(), yaml.safe_load(raw))
        except (IndexError, ValueError, TypeError, KeyError) as exc:
            raise WorkbenchError(f"cannot apply override {item!r}: {exc}") from None
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    """Read and validate a sweep YAML file; errors name the file and the offending field."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"config file {path} does not exist; see configs/ for examples")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise WorkbenchError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise WorkbenchError(f"{path} must hold a mapping of sweep settings")
    return config_from_dict(apply_overrides(data, overrides or []), source=str(path))


def config_from_dict(data: dict[str, Any], source: str = "config") -> SweepConfig:
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise WorkbenchError(f"{source}: field {where}: {first['msg']} ({len(exc.errors())} problem(s) in total)") from None
