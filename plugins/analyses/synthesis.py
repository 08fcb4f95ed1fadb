"""Synthesized images (``synthesis:``): images that maximise a region's predicted response under a fitted
encoding readout (BrainDiVE's question), by latent ascent through the shipped TAEF2 decoder. Each image is
scored by the guiding objective and by an independent one — the same encoder's head fitted on the disjoint
other half of the training rows, or another encoder's fitted cell — beside the unguided control on the same
seeds and the best natural image of the dataset, so that adversarial images show as a guide/judge gap."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from brain_workbench.sdk.analysis import (
    Analysis,
    Cell,
    CellResult,
    PlanContext,
    ReportSection,
    Store,
    TextTable,
    WorkbenchError,
    build,
    load_features,
    result_path,
)
from brain_workbench_plugins.analyses import readout, sections
from brain_workbench_plugins.analyses.encoding import EncodingTask
from brain_workbench_plugins.analyses.preferred import (
    SectionModel,
    Target,
    bank_images,
    dataset_ref,
    fmt_value,
    source_cells,
    target_rois,
    thumbnails,
)

MODULES = ("brain_workbench_plugins.analyses.synthesis", "brain_workbench_plugins.analyses.ascent",
           "brain_workbench_plugins.analyses.guidance",
           "brain_workbench_plugins.analyses.objective", "brain_workbench_plugins.analyses.readout",
           "brain_workbench_plugins.analyses.preferred")


class JudgeSpec(SectionModel):
    """The independent objective: another encoder's fitted cell, or (no encoder) the guide's encoder and head
    refitted on the other half of the training rows (the guide then uses the first half)."""

    encoder: str | None = Field(None, description="encoder (name or label) of the judging encoding cells")
    layer: str | float | None = Field(None, description="its layer (name or depth); required with encoder")


class DiffusionSpec(SectionModel):
    """BrainDiVE's guided DDIM sampling on a local diffusers ε-prediction pipeline (``generator: diffusion``)."""

    path: str = Field(description="local diffusers folder of an ε-prediction latent diffusion pipeline (SD 1.5, "
                                  "SD 2.1-base); never downloaded")
    steps: int = Field(50, ge=1, le=1000, description="DDIM steps (BrainDiVE: 50)")
    scale: float = Field(130.0, ge=0, description="brain guidance scale s in ε ← ε − √(1−ᾱ)·s·∇ (BrainDiVE: 130)")
    keep: float = Field(0.2, gt=0, le=1, description="fraction of each target's images kept, best by the guide "
                                                     "(BrainDiVE: the top 20 %)")
    cfg: float = Field(1.0, ge=1, description="classifier-free guidance scale for the prompt (1: none, BrainDiVE's "
                                              "default)")
    prompt: str = Field("", description="text conditioning (empty: unconditional)")
    dtype: Literal["fp32", "fp16", "bf16"] = Field("fp32", description="fp16 on a GPU")
    grad_through_unet: bool = Field(False, description="differentiate the objective through the UNet's noise "
                                                       "estimate too (BrainDiVE does; costs a UNet backward pass)")


class SynthesisSpec(SectionModel):
    """Which fitted encoding cells guide and judge, for which targets, and the generator's options."""

    encoder: str = Field(description="encoder (name or label) whose fitted readout guides the synthesis")
    layer: str | float = Field(description="that encoder's layer (name or relative depth 0–1)")
    head: str = Field("ridge", description="the encoding head (label or name); it must be linear (ridge-type)")
    targets: list[Target] = Field(min_length=1, description="ROI names, unit lists, or {roi: A, minus: B} contrasts")
    generator: Literal["taef2", "diffusion"] = Field(
        "taef2", description="taef2: Adam on TAEF2 latents through its decoder; diffusion: brain-guided DDIM")
    diffusion: DiffusionSpec | None = Field(None, description="the diffusion generator's pipeline and options")
    n_images: int = Field(4, ge=1, le=256, description="synthesized images per target (seeded starts; diffusion: "
                                                        "candidates, of which the kept fraction is shown)")
    steps: int = Field(30, ge=0, le=5000, description="optimisation steps")
    lr: float = Field(0.1, gt=0, description="Adam learning rate on the latents")
    tv: float = Field(1.0, ge=0, description="weight of the total-variation penalty")
    jitter: int = Field(4, ge=0, description="random shift of each step's augmented copy, pixels")
    scale: float = Field(0.1, ge=0, lt=0.5, description="random rescaling of each step's copy, ± fraction")
    size: int = Field(64, ge=16, le=512, description="side of the synthesized images (TAEF2: a multiple of 8)")
    seed: int = 0
    control: bool = Field(True, description="also run the unguided loop (regulariser alone) on the same seeds")
    natural: int = Field(3, ge=0, le=16, description="top natural images shown beside each target's synthesized ones")
    subjects: list[str] | None = Field(None, description="subjects to synthesize for (default: every subject)")
    judge: JudgeSpec = Field(default_factory=JudgeSpec)
    device: str = Field("auto", description="where the generator runs: cpu, cuda or auto")

    @field_validator("size")
    @classmethod
    def _multiple_of_8(cls, value: int) -> int:
        if value % 8:
            raise ValueError("size must be a multiple of 8 (TAEF2 latents are 1/8 of the image side)")
        return value

    @field_validator("subjects", mode="before")
    @classmethod
    def _as_strings(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True)
class SynthesisTask:
    encoding: EncodingTask
    encoder: tuple[str, tuple[tuple[str, Any], ...]]
    layer: str
    judge_encoding: EncodingTask | None
    judge_encoder: tuple[str, tuple[tuple[str, Any], ...]] | None
    judge_layer: str | None
    targets: tuple[Any, ...]
    options: tuple[tuple[str, Any], ...]
    dataset: tuple[str, tuple[tuple[str, Any], ...]]


def read_spec(config: Any) -> SynthesisSpec | None:
    return sections.read(config, "synthesis", SynthesisSpec)


def _encoder_ref(context: PlanContext, name: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """A configured encoder as a task holds it (plugin name and options), refused in one sentence at plan time
    when its class offers no differentiable path (building it is cheap: encoders load their model lazily)."""
    info = context.encoder(name)
    factory = context.registry.get("encoder", info.spec.name).load()
    if not callable(getattr(factory, "differentiable", None)):
        raise WorkbenchError(f"synthesis: encoder {name!r} has no differentiable path (no differentiable(layer) "
                             "method), so images cannot be optimised through it; use efficientnet, clip (image "
                             "tower) or sae")
    return info.spec.name, tuple(sorted(info.spec.options.items()))


class SynthesisAnalysis(Analysis):
    """``synthesis:``: one cell per subject on the encoding cell it names (and the judging one), in the
    coordinating process (where a GPU would be)."""

    name = "synthesis"
    version = "1"
    sections = ("synthesis",)
    in_coordinator = True
    progress_label = "synthesizing images"
    id_columns = ("target",)
    score_columns = ("guide", "judge", "control_guide", "control_judge", "natural_guide", "natural_judge")
    code_modules = MODULES

    def validate(self, config: Any, dataset: Any, registry: Any) -> None:
        spec = read_spec(config)
        if spec is not None and spec.generator == "diffusion":
            from brain_workbench_plugins.analyses.guidance import check_folder

            if spec.diffusion is None:
                raise WorkbenchError("synthesis.generator 'diffusion' needs a synthesis.diffusion section with the "
                                     "pipeline folder (path: DIR)")
            check_folder(spec.diffusion.path)
        if spec is not None and (spec.judge.encoder is None) != (spec.judge.layer is None):
            raise WorkbenchError("synthesis.judge names an encoder and its layer together (or neither: the guide's "
                                 "encoder refitted on the other half of the training rows)")

    def plan(self, context: PlanContext) -> list[Cell]:
        spec = read_spec(context.config)
        if spec is None:
            return []
        from brain_workbench_plugins.analyses import common

        common.check_rois(context, [r for r in target_rois(spec.targets) if r != "all"])
        guides = source_cells(context, spec.encoder, spec.layer, spec.head, "synthesis")
        judges = {}
        if spec.judge.encoder is not None:
            judges = {c.subject: c for c in source_cells(context, spec.judge.encoder, spec.judge.layer or 1.0,
                                                         spec.head, "synthesis.judge")}
        if spec.subjects is not None:
            unknown = sorted(set(spec.subjects) - {c.subject for c in guides})
            if unknown:
                raise WorkbenchError(f"synthesis.subjects names subject {unknown[0]!r}, which the sweep does not fit")
            guides = [c for c in guides if c.subject in spec.subjects]
        options = tuple(sorted(spec.model_dump(exclude={"encoder", "layer", "head", "targets", "judge",
                                                        "subjects"}).items()))
        out = []
        for cell in guides:
            judge = judges.get(cell.subject)
            task = SynthesisTask(readout.readout_task(cell), _encoder_ref(context, spec.encoder), cell.layer,
                                 None if judge is None else readout.readout_task(judge),
                                 None if judge is None else _encoder_ref(context, str(spec.judge.encoder)),
                                 None if judge is None else judge.layer, tuple(spec.targets), options,
                                 dataset_ref(context))
            reads = (cell.result_path(context.sweep), cell.feature_path) + (
                () if judge is None else (judge.result_path(context.sweep), judge.feature_path))
            out.append(Cell(key=self.cell_key(cell.subject, "y", cell.key, None if judge is None else judge.key,
                                              spec.model_dump(exclude={"subjects"})),
                            analysis=self.name, subject=cell.subject, model=cell.model, model_name=cell.model_name,
                            layer=cell.layer, depth=cell.depth, label=spec.generator, head=cell.head, phase=1,
                            feature_path=cell.feature_path, response_path=cell.response_path, reads=reads, task=task))
        return out

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        return synthesize(store_url, cell)

    def table(self, rows: Any, sweep: str, value: str) -> list[TextTable]:
        def pair(part: Any, guide: str, judge: str) -> str:
            return f"{fmt_value(part[guide].mean())} / {fmt_value(part[judge].mean())}"

        keys, values = [], []
        for (encoder, layer, generator, target), part in rows.groupby(["encoder", "layer", "analysis", "roi"],
                                                                      sort=False):
            keys.append((str(encoder), str(layer), str(generator), str(target)))
            values.append((pair(part, "guide", "judge"), pair(part, "control_guide", "control_judge"),
                           pair(part, "natural_guide", "natural_judge")))
        return [TextTable(f"{sweep}: synthesized images, guide / judge (mean over subjects and images)",
                          ("encoder", "layer", "generator", "target"),
                          ("synthesized", "unguided", "best natural"), tuple(keys), tuple(values))]

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        from brain_workbench_plugins.analyses import image_grids

        paths = []
        for key in kit.keys_of(self.name):
            attrs = kit.store.attrs(result_path(kit.sweep, key)) or {}
            subject = attrs.get("cell", {}).get("subject", "")
            paths.append(kit.draw(f"synthesis_{kit.file_label(str(subject))}_{key[-8:]}.png", [key],
                                  lambda p, k=key: image_grids.draw_synthesis(kit.store, kit.sweep, k, p),
                                  f"Synthesized images, subject {subject}: per target, images synthesized by "
                                  f"{attrs.get('generator', '')} to maximise the guiding objective ({attrs.get('guide')}) "
                                  f"beside the bank's natural images it predicts highest; g: guiding, j: judging "
                                  f"objective ({attrs.get('judge')})."))
        return paths

    def report_section(self, rows: Any, kit: Any) -> list[ReportSection]:
        import pandas as pd

        table = pd.DataFrame([{"subject": r["subject"], "encoder": r["encoder"], "layer": r["layer"],
                               "target": r["roi"], **{c: fmt_value(r.get(c)) for c in self.score_columns}}
                              for _, r in rows.iterrows()])
        return [ReportSection("table-synthesis", "Synthesized images: guiding and independent objectives",
                              "<p class='note'>Mean over each target's synthesized images of the objective that "
                              "guided them and of the independent judge; control: the same loop and seeds without "
                              "guidance; natural: the best image of the dataset's stimuli by each objective (the bar "
                              "to beat). A synthesized image that the guide rates far above the judge is adversarial "
                              "to the guide.</p>" + kit.html_table(table, 4))]


def readouts(store_url: str, task: SynthesisTask, seed: int) -> tuple[Any, Any, str, str]:
    """The guiding and judging readouts, and how captions name them."""
    if task.judge_encoding is None:
        first, second = readout.training_halves(store_url, task.encoding, seed)
        name = f"{task.encoder[0]}/{task.layer}"
        return (readout.fit_readout(store_url, task.encoding, rows=first),
                readout.fit_readout(store_url, task.encoding, rows=second),
                f"{name} readout fitted on half of the training rows",
                f"{name} readout fitted on the disjoint other half")
    assert task.judge_encoder is not None
    return (readout.fit_readout(store_url, task.encoding), readout.fit_readout(store_url, task.judge_encoding),
            f"{task.encoder[0]}/{task.layer} readout", f"{task.judge_encoder[0]}/{task.judge_layer} readout")


def bank_scores(store: Store, path: str, ids: Sequence[str], weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Each bank image's target scores (n × T) from cached features: the objective without a forward pass."""
    return np.asarray(load_features(store, path, list(ids)), np.float64) @ weights + bias


def synthesize(store_url: str, cell: Cell) -> CellResult:
    """Guide, judge and control for each target; every objective is built (and every bad target refused)
    before any image is optimised."""
    import torch

    from brain_workbench_plugins.analyses.objective import (
        images_to_tensor,
        linear_targets,
        readout_objective,
        target_name,
        tensor_to_uint8,
    )

    started = time.time()
    task: SynthesisTask = cell.task
    opts = dict(task.options)
    guide_readout, judge_readout, guide_name, judge_name = readouts(store_url, task, int(opts["seed"]))
    encoder = build("encoder", task.encoder[0], **dict(task.encoder[1]))
    guide = readout_objective(encoder, task.layer, guide_readout, task.targets)
    judge_encoder = encoder if task.judge_encoder is None else build("encoder", task.judge_encoder[0],
                                                                     **dict(task.judge_encoder[1]))
    judge = readout_objective(judge_encoder, task.judge_layer or task.layer, judge_readout, task.targets)
    store = Store(store_url, mode="r")
    ids = [str(s) for s in store.open(task.encoding.feature_path)["stimulus_ids"]]
    natural_guide = bank_scores(store, task.encoding.feature_path, ids, *linear_targets(guide_readout, task.targets))
    judge_path = task.encoding.feature_path if task.judge_encoding is None else task.judge_encoding.feature_path
    natural_judge = bank_scores(store, judge_path, ids, *linear_targets(judge_readout, task.targets))

    T, n = len(task.targets), int(opts["n_images"])
    columns = torch.arange(T).repeat_interleave(n)
    centre = torch.as_tensor(natural_guide.mean(0), dtype=torch.float32)
    spread = torch.as_tensor(np.maximum(natural_guide.std(0), 1e-8), dtype=torch.float32)
    if opts["generator"] == "diffusion":
        guided, control_images, generator_name, keep = diffusion_images(opts, guide, columns)
    else:
        guided, control_images, generator_name = taef2_images(opts, guide, columns, centre, spread)
        keep = 1.0

    def scored(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        stored = tensor_to_uint8(images)
        x = images_to_tensor(stored)
        with torch.no_grad():
            g, j = guide(x)[torch.arange(len(x)), columns], judge(x)[torch.arange(len(x)), columns]
        return stored, g.cpu().numpy().astype(np.float64), j.cpu().numpy().astype(np.float64)

    synthesized, g, j = scored(guided)
    synth_s = time.time() - started
    control = None if control_images is None else scored(control_images)
    kept = kept_rows(columns.numpy(), g, keep)
    synthesized, g, j = synthesized[kept], g[kept], j[kept]
    if control is not None:
        control = (control[0][kept], control[1][kept], control[2][kept])
    columns = columns[kept]
    n = int(np.count_nonzero(columns.numpy() == 0))

    k = min(int(opts["natural"]), len(ids))
    tops = [np.argsort(-natural_guide[:, t], kind="stable")[:k] for t in range(T)]
    side = int(synthesized.shape[1])
    flat = [ids[i] for top in tops for i in top]
    natural_images = thumbnails(bank_images("dataset", task.dataset, flat), side) if flat else None
    rows, c = [], columns.numpy()
    for t, target in enumerate(task.targets):
        mine = c == t
        rows.append({"roi": target_name(target), "target": target_name(target),
                     "n_units": int(np.count_nonzero(readout.unit_selection(guide_readout, target))),
                     "n_images": n,
                     "steps": int(opts["diffusion"]["steps"] if opts["generator"] == "diffusion" else opts["steps"]),
                     "guide": float(g[mine].mean()), "judge": float(j[mine].mean()),
                     "guide_max": float(g[mine].max()), "judge_max": float(j[mine].max()),
                     "control_guide": None if control is None else float(control[1][mine].mean()),
                     "control_judge": None if control is None else float(control[2][mine].mean()),
                     "natural_guide": float(natural_guide[:, t].max()),
                     "natural_judge": float(natural_judge[:, t].max()),
                     "natural_top_judge": float(natural_judge[tops[t][0], t]) if k else None})
    arrays: dict[str, np.ndarray] = {
        "targets": np.asarray([target_name(t) for t in task.targets], dtype=str), "target_index": c.astype(np.int32),
        "guide": g.astype(np.float32), "judge": j.astype(np.float32),
        "natural_ids": np.asarray([[ids[i] for i in top] for top in tops], dtype=str).reshape(T, k),
        "natural_guide": np.stack([natural_guide[top, t] for t, top in enumerate(tops)]).astype(np.float32),
        "natural_judge": np.stack([natural_judge[top, t] for t, top in enumerate(tops)]).astype(np.float32)}
    images, image_ids = [synthesized], [f"{t}:s{i}" for t, i in zip(c, np.tile(np.arange(n), T))]
    if control is not None:
        arrays["control_guide"], arrays["control_judge"] = control[1].astype(np.float32), control[2].astype(np.float32)
        images.append(control[0])
        image_ids += [f"{t}:c{i}" for t, i in zip(c, np.tile(np.arange(n), T))]
    if natural_images is not None:
        images.append(natural_images)
        image_ids += [f"{t}:n{r}:{ids[i]}" for t, top in enumerate(tops) for r, i in enumerate(top)]
    info = {"guide": guide_name, "judge": judge_name, "generator": generator_name,
            "synthesis_s": round(synth_s, 3)}
    return CellResult(tuple(rows), T * n, round(time.time() - started, 3), arrays, images=np.concatenate(images),
                      image_ids=np.asarray(image_ids, dtype=str), info=info)


def kept_rows(columns: np.ndarray, guide: np.ndarray, keep: float) -> np.ndarray:
    """Indices of each target's best ``keep`` fraction of images by the guide (at least one), in target order."""
    out = []
    for t in np.unique(columns):
        mine = np.flatnonzero(columns == t)
        k = max(1, int(np.ceil(keep * len(mine) - 1e-9)))
        out.extend(sorted(mine[np.argsort(-guide[mine], kind="stable")[:k]]))
    return np.asarray(out, dtype=np.int64)


def taef2_images(opts: dict[str, Any], guide: Any, columns: Any, centre: Any, spread: Any
                 ) -> tuple[Any, Any, str]:
    """Latent ascent through the TAEF2 decoder from seeded starts, and the unguided control on the same starts."""
    from brain_workbench_plugins.analyses.ascent import AscentOptions, latent_ascent, start_latents

    codec = build("codec", "taef2", image_size=int(opts["size"]), device=str(opts["device"]))
    decoder = codec.decoder()
    dtype, device = next(decoder.parameters()).dtype, next(decoder.parameters()).device

    def decode(z: Any) -> Any:
        return decoder(z.to(device, dtype)).float()

    ascent = AscentOptions(int(opts["steps"]), float(opts["lr"]), float(opts["tv"]), int(opts["jitter"]),
                           float(opts["scale"]), seed=int(opts["seed"]))
    starts = start_latents(len(columns), codec.latent_shape, ascent.init_sd, ascent.seed)
    guided = latent_ascent(decode, guide, columns, starts, ascent, True, centre, spread)
    control = latent_ascent(decode, guide, columns, starts, ascent, False) if opts["control"] else None
    return guided, control, f"TAEF2 latent ascent ({ascent.steps} Adam steps)"


def diffusion_images(opts: dict[str, Any], guide: Any, columns: Any) -> tuple[Any, Any, str, float]:
    """BrainDiVE's guided DDIM from seeded noise, and plain DDIM on the same seeds as the control."""
    from brain_workbench_plugins.analyses.guidance import BrainGuidedSampler, GuidanceOptions

    spec = dict(opts["diffusion"])
    sampler = BrainGuidedSampler(spec["path"], device=str(opts["device"]), dtype=spec["dtype"])
    seeds = [int(opts["seed"]) * 100003 + i for i in range(len(columns))]
    options = GuidanceOptions(int(spec["steps"]), float(spec["scale"]), float(spec["cfg"]), str(spec["prompt"]),
                              bool(spec["grad_through_unet"]), int(opts["seed"]))
    guided = sampler.sample(guide, columns.tolist(), options, seeds)
    control = None
    if opts["control"]:
        control = sampler.sample(guide, columns.tolist(), GuidanceOptions(**{**options.__dict__, "scale": 0.0}), seeds)
    return guided, control, (f"brain-guided DDIM on {sampler.root.name} ({options.steps} steps, scale "
                             f"{options.scale:g}, top {spec['keep']:.0%} kept)"), float(spec["keep"])
