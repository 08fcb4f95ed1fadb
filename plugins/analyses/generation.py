"""Generation cells (stage 3): a decode cell's predicted embeddings (and optionally the stage-1 reconstruction)
through an image generator, scored against the seen images. They run in the coordinating process, where the
GPU is, after the decode and reconstruction cells they read."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from brain_workbench.sdk.analysis import (
    Analysis,
    Cell,
    CellResult,
    FeatureJob,
    ImageJob,
    PlanContext,
    Store,
    TextTable,
    WorkbenchError,
    build,
    read_images,
    resolve_layers,
    step_progress,
)
from brain_workbench_plugins.analyses import common, sections
from brain_workbench_plugins.analyses.decoding import DecodingAnalysis
from brain_workbench_plugins.analyses.reconstruction import ReconstructionAnalysis


@dataclass(frozen=True)
class GenerationTask:
    decode_path: str
    generation: Mapping[str, Any]
    reconstruction_key: str | None
    seen_key: str
    seed: int
    roi: str


class GenerationAnalysis(Analysis):
    """``generation:``: one cell per subject, on the decode cell (and reconstruction cell) it names."""

    name = "generation"
    version = "1"
    sections = ("generation",)
    code_modules = ("brain_workbench_plugins.analyses.generation", "brain_workbench_plugins.analyses.common")
    in_coordinator = True
    progress_label = "generation cells"

    def plan(self, context: PlanContext) -> list[Cell]:
        spec = sections.generation(context.config)
        if spec is None:
            return []
        if context.dataset.provides == "rdms":
            raise WorkbenchError(f"dataset {context.config.dataset.name!r} provides brain RDMs, not responses: it "
                                 "cannot be reconstructed from; remove the reconstruction section")
        decodes = DecodingAnalysis().plan(context)
        recons = ReconstructionAnalysis().plan(context) if spec.init_from_reconstruction else []
        seen = common.seen_key(context)
        out = []
        for decode in decodes:
            if decode.task.roi != spec.roi or decode.head != spec.head:
                continue
            encoder = next((e for e in context.encoders if e.label == decode.model), None)
            if encoder is None or spec.encoder not in encoder.names() | {decode.model}:
                continue
            if decode.layer != resolve_layers(list(encoder.layers), [spec.layer])[0]:
                continue
            recon = next((c for c in recons if c.subject == decode.subject and c.task.roi == spec.roi), None)
            if spec.init_from_reconstruction and recon is None:
                raise WorkbenchError(f"generation.init_from_reconstruction needs a reconstruction cell from ROI "
                                     f"{spec.roi!r}; add it to reconstruction.rois")
            key = self.cell_key(decode.subject, "g", decode.key, None if recon is None else recon.key,
                                spec.model_dump())
            task = GenerationTask(decode.result_path(context.sweep), spec.model_dump(),
                                  None if recon is None else recon.key, seen, spec.seed, spec.roi)
            reads = (task.decode_path,) + (() if recon is None else (recon.result_path(context.sweep),))
            out.append(Cell(key=key, analysis=self.name, subject=decode.subject, model=spec.generator.name,
                            model_name=spec.generator.name, layer=decode.layer, depth=decode.depth, label=decode.head,
                            head=decode.head, phase=1, feature_path=decode.feature_path,
                            response_path=decode.response_path, reads=reads, task=task))
        if not out:
            raise WorkbenchError(f"generation names decode cells of encoder {spec.encoder!r}, layer {spec.layer!r}, "
                                 f"head {spec.head!r}, ROI {spec.roi!r}, but the sweep plans none; add that decode head")
        return out

    def requirements(self, context: PlanContext, cells: Sequence[Cell]) -> list[FeatureJob | ImageJob]:
        return [common.seen_images_job(context)] if cells else []

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        return generate(store_url, cell)

    def scores(self, rows: Any) -> list[str]:
        return [c for m in common.image_metric_columns(rows) for c in (m, f"shuffled_{m}") if c in rows.columns]

    def table(self, rows: Any, sweep: str, value: str) -> list[TextTable]:
        metrics = common.image_metric_columns(rows)
        keys, values = [], []
        for (encoder, roi), part in rows.groupby(["encoder", "roi"], sort=False):
            keys.append((str(encoder), str(roi)))
            values.append(tuple(f"{part[m].mean():.3f} ({part['shuffled_' + m].mean():.3f})" for m in metrics))
        protocols = sorted({str(p) for p in rows["protocol"].dropna()}) if "protocol" in rows.columns else []
        protocol = f"; protocol {', '.join(protocols)}" if protocols else ""
        return [TextTable(f"{sweep}: generation (mean over subjects; shuffled pairs{protocol})", ("generator", "units"),
                          tuple(metrics), tuple(keys), tuple(values))]

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        return [kit.draw("generations.png", kit.keys_of(self.name), kit.generations,
                         "Generation: held-out test images (seen), the stage-1 reconstructions the generator started "
                         "from and the generated images; best, median, worst and random examples per subject by the "
                         "per-image score.")]


def generate(store_url: str, cell: Cell) -> CellResult:
    """A decode cell's predicted embeddings (and optionally stage-1 images) through a generator, scored."""
    started = time.time()
    task: GenerationTask = cell.task
    store = Store(store_url, mode="r")
    decoded = store.open(task.decode_path)
    embeds, ids = decoded["prediction"], [str(s) for s in decoded["test_ids"]]
    init = read_images(store, task.reconstruction_key, ids) if task.reconstruction_key else None
    spec = task.generation
    generator = build("generator", spec["generator"]["name"], **spec["generator"]["options"])
    if embeds.shape[1] != generator.embedding_dim:
        raise WorkbenchError(f"generator {spec['generator']['name']!r} takes {generator.embedding_dim}-wide embeddings "
                             f"({generator.embedding_space}) but {cell.model}/{cell.layer} gives "
                             f"{embeds.shape[1]}: decode the embedding the pipeline was trained on")
    n_images = len(ids) * int(generator.options.get("best_of", 1))
    batches = -(-n_images // int(generator.options.get("batch_size", 1)))
    on_images = step_progress(f"generating images ({cell.subject})", n_images)
    on_step = step_progress(f"denoising steps ({cell.subject})", batches * generator.denoising_steps(init is not None))
    images = generator.generate(embeds, init_images=init, seed=spec["seed"], on_images=on_images, on_step=on_step)
    seen = read_images(store, task.seen_key, ids)
    protocol = spec.get("protocol", "default")
    scores, arrays = common.score_images(common.protocol_metrics(spec["metrics"], protocol), images, seen, task.seed)
    row: dict[str, Any] = {"roi": spec["roi"], "n_units": None, "protocol": protocol, **scores}
    return CellResult((row,), len(ids), round(time.time() - started, 3), arrays, images=images,
                      image_ids=np.asarray(ids, dtype=str))
