"""The top-level config sections the built-in analyses own (``decoding:``, ``reconstruction:``, ``generation:``,
``shared:``): their pydantic models and one reader each, which validates the section as written."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from brain_workbench.sdk import WorkbenchError


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HeadSpec(_Spec):
    """A head as a section names it (the same fields as a sweep's ``heads:`` entries, so cell keys are unchanged)."""

    name: str = "ridge"
    options: dict[str, Any] = Field(default_factory=dict)
    encoders: list[str] | None = None
    layers: list[float | str] | None = None
    label: str | None = None


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
    k_way: list[int] = Field(default_factory=list, description="k of k-way zero-shot retrieval (NICE/ATM: 2, 4, 10, "
                                                               "50, 200): k − 1 random distractors per test item")
    k_way_top: list[int] = Field(default_factory=lambda: [1, 5], description="t of top-t within each k-way draw")
    k_way_draws: int = Field(10, ge=1, description="seeded distractor draws per test item (k-way)")
    sliding_windows: tuple[float, float, float, float] | None = Field(
        None, description="time-resolved decoding: [start, stop, width, step] in seconds, adding one cell per "
                          "window of that width (responses averaged within it) from start to stop")

    def windows(self) -> list[tuple[float, float]] | None:
        """``time_windows`` followed by the sliding windows (None: all times as separate features)."""
        out = [tuple(w) for w in self.time_windows or []]
        if self.sliding_windows is not None:
            start, stop, width, step = self.sliding_windows
            if width <= 0 or step <= 0 or stop - start < width:
                raise WorkbenchError(f"decoding.sliding_windows {list(self.sliding_windows)} needs width > 0, step > 0 "
                                     "and stop − start ≥ width ([start, stop, width, step] in seconds)")
            n = int(np.floor((stop - start - width) / step + 1e-9)) + 1
            out += [(round(start + i * step, 6), round(start + i * step + width, 6)) for i in range(n)]
        return [(float(a), float(b)) for a, b in out] or None

    @field_validator("top_k", "n_way", "k_way", "k_way_top")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(v < 1 for v in value):
            raise ValueError("top_k, n_way, k_way and k_way_top values must be positive")
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
    protocol: Literal["default", "mindeye2", "brain-diffuser"] = Field(
        "default", description="evaluation protocol of the image metrics: this project's (antialiased resizes), "
                               "MindEye2's (256-px pre-resize without antialiasing, floats) or Brain-Diffuser's "
                               "(per-column SSIM at 425 px); see docs/published-tables.md")


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
    protocol: Literal["default", "mindeye2", "brain-diffuser"] = Field(
        "default", description="evaluation protocol of the image metrics (as reconstruction.protocol)")
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



Model = TypeVar("Model", bound=BaseModel)


def read(config: Any, name: str, model: type[Model]) -> Model | None:
    """Section ``name`` of a sweep config validated as ``model`` (None when absent), errors in one sentence."""
    raw = config.section(name)
    if raw is None:
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in (name, *first["loc"]))
        raise WorkbenchError(f"{config.name}: field {where}: {first['msg']} "
                             f"({len(exc.errors())} problem(s) in total)") from None


def decoding(config: Any) -> DecodingSpec:
    """``decoding:`` (defaults when absent: decode heads are scored on all units)."""
    return read(config, "decoding", DecodingSpec) or DecodingSpec()


def reconstruction(config: Any) -> ReconstructionSpec | None:
    return read(config, "reconstruction", ReconstructionSpec)


def generation(config: Any) -> GenerationSpec | None:
    return read(config, "generation", GenerationSpec)


def shared(config: Any) -> SharedSpec | None:
    return read(config, "shared", SharedSpec)
