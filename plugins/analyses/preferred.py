"""Preferred images (``preferred:``): a finished encoding cell's readout ranks an image bank — the dataset's own
stimuli or a folder of images — by each target's predicted response (an ROI, a unit list or a contrast), and
keeps the top and bottom N with their predictions and, where recorded, the measured responses."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from brain_workbench.sdk.analysis import (
    Analysis,
    Cell,
    CellResult,
    FeatureJob,
    ImageJob,
    PlanContext,
    ReportSection,
    StimulusSet,
    Store,
    TextTable,
    WorkbenchError,
    build,
    digest,
    encoder_key,
    feature_path,
    load_features,
    pearson_per_unit,
    prepared_recording,
    resolve_layers,
    result_path,
    rgb_image,
)
from brain_workbench_plugins.analyses import readout, sections
from brain_workbench_plugins.analyses.encoding import EncodingTask

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
Target = str | list[int] | dict[str, str]


class SectionModel(BaseModel):
    """A config section of these analyses: unknown fields are refused (a typo never passes silently)."""

    model_config = ConfigDict(extra="forbid")


class PreferredSpec(SectionModel):
    """Which fitted encoding cells rank which bank for which targets."""

    encoder: str = Field(description="encoder (name or label) of the encoding cells whose readout ranks the bank")
    layer: str | float = Field(description="that encoder's layer (name or relative depth 0–1)")
    head: str = Field("ridge", description="the encoding head (label or name); it must be linear (ridge-type)")
    targets: list[Target] = Field(min_length=1, description="ROI names, unit lists, or {roi: A, minus: B} contrasts")
    top: int = Field(6, ge=1, le=64, description="images kept at each end of each target's ranking")
    bank: str = Field("dataset", description="'dataset' (the recording's stimuli) or a folder of images")
    thumb: int = Field(96, ge=16, le=512, description="side of the stored thumbnails of the top images, pixels")

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: list[Target]) -> list[Target]:
        for target in value:
            if isinstance(target, dict) and set(target) != {"roi", "minus"}:
                raise ValueError("a contrast target is {roi: A, minus: B}")
            if isinstance(target, list) and not target:
                raise ValueError("a unit-list target lists at least one unit")
        return value


@dataclass(frozen=True)
class PreferredTask:
    encoding: EncodingTask
    encoding_key: str
    targets: tuple[Any, ...]
    top: int
    bank: str
    bank_path: str
    dataset: tuple[str, tuple[tuple[str, Any], ...]]
    thumb: int


def dataset_ref(context: PlanContext) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """The sweep's dataset as a task holds it (name and options), so a cell can load the bank's images."""
    return context.config.dataset.name, tuple(sorted(context.config.dataset.options.items()))


def read_spec(config: Any) -> PreferredSpec | None:
    return sections.read(config, "preferred", PreferredSpec)


def target_rois(targets: Sequence[Any]) -> list[str]:
    """The ROI names the targets use (for the plan's check against the recordings)."""
    names: list[str] = []
    for target in targets:
        if isinstance(target, str):
            names.append(target)
        elif isinstance(target, dict):
            names.extend([str(target["roi"]), str(target["minus"])])
    return names


def source_cells(context: PlanContext, encoder: str, layer: str | float, head: str, section: str) -> list[Cell]:
    """The planned encoding cells a section names (one per subject), refused in one sentence when there are none."""
    if "image" not in context.dataset.modalities:
        raise WorkbenchError(f"{section} needs image stimuli, but dataset {context.dataset.name!r} offers "
                             f"{', '.join(context.dataset.modalities)}")
    info = context.encoder(encoder)
    if info.modality != "image":
        raise WorkbenchError(f"{section}.encoder {encoder!r} reads {info.modality}, not images")
    name = resolve_layers(list(info.layers), [layer])[0]
    cells = readout.encoding_cells(context, encoder=encoder, layer=name, head=head)
    if not cells:
        raise WorkbenchError(f"{section} names encoding cells of encoder {encoder!r}, layer {name!r}, head {head!r}, "
                             "but the sweep plans none; add that head (direction encode) and layer")
    return cells


def folder_stimuli(folder: str) -> StimulusSet:
    """The images of a folder (sorted file names as ids), checked before any work."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise WorkbenchError(f"preferred.bank {folder!r} is neither 'dataset' nor an existing folder of images")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise WorkbenchError(f"preferred.bank folder {str(root)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")

    def load(ids: Sequence[str]) -> list:
        from PIL import Image

        out = []
        for name in ids:
            with Image.open(root / name) as image:
                out.append(rgb_image(image, name))
        return out

    signature = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return StimulusSet(tuple(p.name for p in files), "image", load, digest("folder", str(root), signature))


class PreferredAnalysis(Analysis):
    """``preferred:``: one cell per encoding cell it names (a subject), after that cell is finished."""

    name = "preferred"
    version = "1"
    sections = ("preferred",)
    in_coordinator = True
    progress_label = "ranking image banks"
    id_columns = ("target",)
    score_columns = ("top_predicted", "bottom_predicted", "top_measured", "bottom_measured", "test_r")
    code_modules = ("brain_workbench_plugins.analyses.preferred", "brain_workbench_plugins.analyses.readout",
                    "brain_workbench_plugins.analyses.objective")

    def __init__(self) -> None:
        self._banks: dict[str, tuple[StimulusSet, Any]] = {}

    def validate(self, config: Any, dataset: Any, registry: Any) -> None:
        spec = read_spec(config)
        if spec is not None and spec.bank != "dataset":
            folder_stimuli(spec.bank)

    def _bank(self, context: PlanContext, spec: PreferredSpec, cell: Cell) -> tuple[str, FeatureJob | None]:
        if spec.bank == "dataset":
            return cell.feature_path, None
        if spec.bank not in self._banks:
            info = context.encoder(spec.encoder)
            encoder = context.registry.create("encoder", info.spec.name, **info.spec.options)
            self._banks[spec.bank] = (folder_stimuli(spec.bank), encoder)
        stimuli, encoder = self._banks[spec.bank]
        key = encoder_key(encoder, stimuli)
        return feature_path(key, cell.layer), FeatureJob(key, (cell.layer,), f"{cell.model} on {spec.bank}",
                                                         lambda: encoder, lambda: stimuli)

    def plan(self, context: PlanContext) -> list[Cell]:
        spec = read_spec(context.config)
        if spec is None:
            return []
        from brain_workbench_plugins.analyses import common

        common.check_rois(context, [r for r in target_rois(spec.targets) if r != "all"])
        dataset = dataset_ref(context)
        out = []
        for cell in source_cells(context, spec.encoder, spec.layer, spec.head, "preferred"):
            bank_path, _ = self._bank(context, spec, cell)
            task = PreferredTask(readout.readout_task(cell), cell.key, tuple(spec.targets), spec.top, spec.bank,
                                 bank_path, dataset, spec.thumb)
            out.append(Cell(key=self.cell_key(cell.subject, "p", cell.key, spec.model_dump(), bank_path),
                            analysis=self.name, subject=cell.subject, model=cell.model, model_name=cell.model_name,
                            layer=cell.layer, depth=cell.depth, label=cell.label, head=cell.head, phase=1,
                            feature_path=bank_path, response_path=cell.response_path,
                            reads=(cell.result_path(context.sweep), cell.feature_path, bank_path), task=task))
        return out

    def requirements(self, context: PlanContext, cells: Sequence[Cell]) -> list[FeatureJob | ImageJob]:
        spec = read_spec(context.config)
        if spec is None or spec.bank == "dataset" or not cells:
            return []
        job = self._bank(context, spec, cells[0])[1]
        return [job] if job is not None else []

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        return rank_bank(store_url, cell)

    def table(self, rows: Any, sweep: str, value: str) -> list[TextTable]:
        keys, values = [], []
        for (encoder, layer, target), part in rows.groupby(["encoder", "layer", "roi"], sort=False):
            keys.append((str(encoder), str(layer), str(target)))
            values.append((fmt_value(part["top_predicted"].mean()), fmt_value(part["bottom_predicted"].mean()),
                           fmt_value(part["top_measured"].mean()), fmt_value(part["bottom_measured"].mean()),
                           fmt_value(part["test_r"].mean()), str(part["top_ids"].iloc[0])))
        return [TextTable(f"{sweep}: preferred images (mean over subjects of the top / bottom N)",
                          ("encoder", "layer", "target"),
                          ("top pred", "bottom pred", "top meas", "bottom meas", "test r", "top ids (first subject)"),
                          tuple(keys), tuple(values))]

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        from brain_workbench_plugins.analyses import image_grids

        paths = []
        for key in kit.keys_of(self.name):
            subject = str((kit.store.attrs(result_path(kit.sweep, key)) or {}).get("cell", {}).get("subject", ""))
            name = f"preferred_{kit.file_label(subject)}_{key[-8:]}.png"
            paths.append(kit.draw(name, [key], lambda p, k=key: image_grids.draw_preferred(kit.store, kit.sweep, k, p),
                                  f"Preferred images, subject {subject}: the bank images with the highest predicted "
                                  "response of each target under the fitted encoding readout, with the predicted "
                                  "(p) and, where recorded, measured (m; * held-out test image) responses."))
        return paths

    def report_section(self, rows: Any, kit: Any) -> list[ReportSection]:
        import pandas as pd

        table = pd.DataFrame([{"subject": r["subject"], "encoder": r["encoder"], "layer": r["layer"],
                               "target": r["roi"], "top predicted": fmt_value(r["top_predicted"]),
                               "top measured": fmt_value(r["top_measured"]), "bottom measured": fmt_value(r["bottom_measured"]),
                               "test r": fmt_value(r["test_r"]), "top images": r["top_ids"]}
                              for _, r in rows.iterrows()])
        return [ReportSection("table-preferred", "Preferred images: top of each target's predicted ranking",
                              "<p class='note'>Mean over the top and bottom N images of each target's ranking of the "
                              "bank by the fitted readout; measured responses only for recorded images (training "
                              "images were fitted on; test r uses held-out images only).</p>"
                              + kit.html_table(table, 4))]


def fmt_value(x: Any) -> str:
    """A table cell: three decimals, empty for None or NaN, other values as text."""
    try:
        return "" if x is None or x != x else f"{float(x):.3f}"
    except (TypeError, ValueError):
        return str(x)


def measured_responses(data: dict[str, Any], ids: Sequence[str], select: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each bank image's measured target response (NaN where not recorded) and its split (train/test/'')."""
    values = np.full((len(ids), select.shape[1]), np.nan)
    split = np.full(len(ids), "", dtype=object)
    where = {s: i for i, s in enumerate(ids)}
    for name, Y, rows in (("train", data["Y_train"], data["train_ids"]), ("test", data["Y_test"], data["test_ids"])):
        for row, stimulus in enumerate(rows):
            if stimulus in where:
                values[where[stimulus]] = np.asarray(Y[row], np.float64) @ select
                split[where[stimulus]] = name
    return values, split.astype(str)


def thumbnails(images: Sequence[Any], size: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(rgb_image(im).resize((size, size), Image.BICUBIC)) for im in images])


def bank_images(bank: str, dataset: tuple[str, tuple[tuple[str, Any], ...]], ids: Sequence[str]) -> list:
    """The bank's images for ``ids``: the dataset's stimuli (``dataset`` is its name and options) or a folder's."""
    if bank == "dataset":
        name, options = dataset
        return build("dataset", name, **dict(options)).stimuli("image").get(list(ids))
    return folder_stimuli(bank).get(list(ids))


def rank_bank(store_url: str, cell: Cell) -> CellResult:
    """Rank the bank by each target's predicted response; keep the ends with predictions and measurements."""
    from brain_workbench_plugins.analyses.objective import linear_targets, target_name

    started = time.time()
    task: PreferredTask = cell.task
    fitted = readout.fit_readout(store_url, task.encoding)
    W, b = linear_targets(fitted, task.targets)
    select = np.stack([readout.unit_selection(fitted, t) for t in task.targets], axis=1)
    store = Store(store_url, mode="r")
    ids = [str(s) for s in store.open(task.bank_path)["stimulus_ids"]]
    predicted = np.asarray(load_features(store, task.bank_path), np.float64) @ W + b
    data = prepared_recording(store_url, task.encoding.prep)
    measured, split = measured_responses(data, ids, select)
    n = min(task.top, len(ids))
    arrays: dict[str, np.ndarray] = {"targets": np.asarray([target_name(t) for t in task.targets], dtype=str)}
    tops, bottoms, rows = [], [], []
    for t, target in enumerate(task.targets):
        order = np.argsort(-predicted[:, t], kind="stable")
        top, bottom = order[:n], order[::-1][:n]
        tops.append(top)
        bottoms.append(bottom)
        test = split == "test"
        r = float(pearson_per_unit(measured[test, t:t + 1], predicted[test, t:t + 1])[0]) if test.sum() > 2 else None
        rows.append({"roi": target_name(target), "target": target_name(target),
                     "n_units": int(np.count_nonzero(select[:, t])), "bank_size": len(ids),
                     "top_predicted": float(predicted[top, t].mean()),
                     "bottom_predicted": float(predicted[bottom, t].mean()),
                     "top_measured": _nanmean(measured[top, t]), "bottom_measured": _nanmean(measured[bottom, t]),
                     "test_r": r, "top_ids": ", ".join(ids[i] for i in top[:3])})
    for end, picks in (("top", tops), ("bottom", bottoms)):
        index = np.stack(picks)
        arrays[f"{end}_ids"] = np.asarray(ids, dtype=str)[index]
        arrays[f"{end}_predicted"] = np.take_along_axis(predicted, index.T, axis=0).T.astype(np.float32)
        arrays[f"{end}_measured"] = np.take_along_axis(measured, index.T, axis=0).T.astype(np.float32)
        arrays[f"{end}_split"] = split[index].astype(str)
    flat = np.concatenate(tops)
    images = thumbnails(bank_images(task.bank, task.dataset, [ids[i] for i in flat]), task.thumb)
    image_ids = np.asarray([f"{t}:{rank}:{ids[i]}" for t, top in enumerate(tops) for rank, i in enumerate(top)])
    return CellResult(tuple(rows), len(ids), round(time.time() - started, 3), arrays, images=images,
                      image_ids=image_ids)


def _nanmean(x: np.ndarray) -> float | None:
    return float(np.nanmean(x)) if np.isfinite(x).any() else None
