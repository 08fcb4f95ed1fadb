"""Sweep configuration: a YAML file validated by pydantic, with ``--set a.b=c`` overrides."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from brain_workbench.store.paths import check_sweep_name
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


class SweepConfig(BaseModel):
    """One alignment sweep: dataset × subjects × encoders × layers × heads (and optional metrics).

    Further top-level sections (``decoding:``, ``reconstruction:``, ``shared:``, ...) belong to the analysis
    plugins that read them; a sweep refuses, before any work, a section no installed analysis claims.
    """

    model_config = ConfigDict(extra="allow")

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
    cv: CVSpec | None = Field(None, description="cross-validation of encoding cells; test_split alone when omitted "
                                                "(metric cells of kfold, group and all schemes use every stimulus)")
    analyses: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="options of analysis plugins by name, for those that claim no "
                                          "top-level section of their own")
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
        try:
            warning = check_sweep_name(value)
        except WorkbenchError as exc:
            raise ValueError(str(exc)) from None
        if warning:
            warnings.warn(warning, UserWarning, stacklevel=2)
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
        sections = sorted(self.model_extra or {})
        if not self.encoders and not sections:
            raise ValueError("a sweep needs encoders (or an analysis section that brings its own, such as "
                             "reconstruction)")
        if self.encoders and not (self.heads or self.metrics or self.analyses or sections):
            raise ValueError("a sweep with encoders needs heads, metrics, or an analysis section (decoding, shared, "
                             "analyses, ...) to compute")
        return self

    def section(self, name: str) -> Any:
        """An analysis plugin's own top-level section, as written (the analysis validates it); None when absent."""
        return (self.model_extra or {}).get(name)

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


MAX_YAML_NODES = 100_000


def read_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` that first refuses documents whose aliases expand beyond ``MAX_YAML_NODES`` nodes
    ("billion laughs") or that nest too deeply, before any Python object is built."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise WorkbenchError(f"{source} is not valid YAML: {exc}") from None
    except RecursionError:
        raise WorkbenchError(f"{source} nests too deeply to be a configuration; flatten it") from None
    if root is None:
        return None
    if expanded_size(root) > MAX_YAML_NODES:
        raise WorkbenchError(f"{source} expands to more than {MAX_YAML_NODES:,} YAML nodes through its aliases "
                             "(&anchor / *alias); write the values out instead of repeating aliases")
    return yaml.safe_load(text)


def expanded_size(root: yaml.Node) -> int:
    """How many nodes a composed YAML document has once every alias is expanded (shared nodes counted each
    time they are reached; computed bottom-up without recursion, stopping once past the bound)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if expanded or not children:
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_YAML_NODES + 1)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides (values parsed as YAML; list items by index: ``encoders.0.batch_size=8``)."""
    for item in overrides:
        if "=" not in item:
            raise WorkbenchError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        try:
            _set_path(data, key.strip(), read_yaml(raw, f"override {item!r}"))
        except (IndexError, ValueError, TypeError, KeyError) as exc:
            raise WorkbenchError(f"cannot apply override {item!r}: {exc}") from None
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    """Read and validate a sweep YAML file; errors name the file and the offending field."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"config file {path} does not exist; see configs/ for examples")
    data = read_yaml(path.read_text(), str(path)) or {}
    if not isinstance(data, dict):
        raise WorkbenchError(f"{path} must hold a mapping of sweep settings")
    return config_from_dict(apply_overrides(data, overrides or []), source=str(path))


def config_from_dict(data: dict[str, Any], source: str = "config") -> SweepConfig:
    """Validate a config mapping; every problem pydantic finds is listed in the one error, not only the first."""
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        problems = [f"field {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()]
        raise WorkbenchError(listed_problems(source, problems)) from None


def listed_problems(source: str, problems: list[str]) -> str:
    """One message naming every problem of a config: one inline, several numbered, so a user fixes all at once."""
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return f"{source} has {len(problems)} problems:\n" + "\n".join(f"  {i}. {p}" for i, p in enumerate(problems, 1))


def did_you_mean(name: str, known: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or nothing."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
