"""Reconstruction cells (stage 1, low-level): brain → latents of an image codec → decoded images → scores.

The codec's latents of every stimulus are cached like features (the codec is wrapped as an encoder
with one layer, ``latents``), so a reconstruction cell is a decode fit onto them. Decoded test images
are written as an image entry ``images/<cell key>`` by the coordinator, and every configured image
metric scores them against the seen images, with two baselines: the same reconstructions paired with
shuffled seen images, and the decoded mean training latent (the "mean image") for every stimulus.
"""

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
    LayerInfo,
    PlanContext,
    Preparation,
    Store,
    TextTable,
    WorkbenchError,
    build,
    digest,
    encoder_key,
    feature_path,
    load_features,
    prepared_recording,
    read_images,
    rgb_image,
)
from brain_workbench_plugins.analyses import common, sections
from brain_workbench_plugins.analyses.decoding import check_split_scheme

LATENTS = "latents"


class CodecEncoder:
    """An image codec seen as an encoder with one layer, ``latents``, so the feature cache stores them."""

    modality = "image"

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        self.name = f"codec-{name}"
        self.codec_name, self.options = name, dict(options)
        self.codec = build("codec", name, **self.options)

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(LATENTS, 1.0)]

    def encode(self, batch: Sequence[Any], layers: Sequence[str]) -> dict[str, np.ndarray]:
        """Latents of a batch of PIL images; images of one size go through the codec together."""
        arrays = [np.asarray(rgb_image(image), dtype=np.uint8) for image in batch]
        out = np.empty((len(arrays), self.codec.latent_dim), dtype=np.float32)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, a in enumerate(arrays):
            by_size.setdefault(a.shape, []).append(i)
        for rows in by_size.values():
            out[rows] = self.codec.encode(np.stack([arrays[i] for i in rows]))
        return {LATENTS: out}

    def fingerprint(self) -> str:
        return digest("codec-encoder", self.codec_name, self.codec.fingerprint())


@dataclass(frozen=True)
class ReconstructionTask:
    prep: Preparation
    feature_path: str
    reconstruction: Mapping[str, Any]
    roi: str
    seed: int
    seen_key: str


def check_image_metrics(metrics: Sequence[Mapping[str, Any]], registry: Any, section: str) -> None:
    """Every configured image metric is built once before any work (unknown names and options fail early)."""
    seen = set()
    for m in metrics:
        metric = registry.create("image-metric", m["name"], **m["options"])
        name = m.get("label") or getattr(metric, "label", None) or m["name"]
        if name in seen:
            raise WorkbenchError(f"{section} metric {name!r} is listed twice; give one a label")
        seen.add(name)


class ReconstructionAnalysis(Analysis):
    """``reconstruction:``: one cell per subject and unit set, on the codec latents of the image stimuli."""

    name = "reconstruction"
    version = "1"
    sections = ("reconstruction",)
    code_modules = ("brain_workbench_plugins.analyses.reconstruction", "brain_workbench_plugins.analyses.common")

    def __init__(self) -> None:
        self._codec: CodecEncoder | None = None

    def codec(self, spec: Any) -> CodecEncoder:
        if self._codec is None or (self._codec.codec_name, self._codec.options) != (spec.name, dict(spec.options)):
            self._codec = CodecEncoder(spec.name, spec.options)
        return self._codec

    def validate(self, config: Any, dataset: Any, registry: Any) -> None:
        if sections.reconstruction(config) is not None and dataset.provides == "rdms":
            raise WorkbenchError(f"dataset {config.dataset.name!r} provides brain RDMs, not responses: it cannot be "
                                 "reconstructed from; remove the reconstruction section")
        if sections.reconstruction(config) is not None:
            check_split_scheme(config, "reconstruction")
            check_image_metrics([m.model_dump() for m in sections.reconstruction(config).metrics], registry, "reconstruction")
            self.codec(sections.reconstruction(config).codec)

    def plan(self, context: PlanContext) -> list[Cell]:
        cfg, spec = context.config, sections.reconstruction(context.config)
        if spec is None:
            return []
        if context.dataset.provides == "rdms":
            raise WorkbenchError(f"dataset {cfg.dataset.name!r} provides brain RDMs, not responses: it cannot be "
                                 "reconstructed from; remove the reconstruction section")
        check_split_scheme(cfg, "reconstruction")
        if "image" not in context.dataset.modalities:
            raise WorkbenchError(f"reconstruction needs image stimuli, but dataset {context.dataset.name!r} offers "
                                 f"{', '.join(context.dataset.modalities)}")
        common.check_rois(context, spec.rois)
        enc = self.codec(spec.codec)
        key = encoder_key(enc, context.stimuli("image"))
        fpath = feature_path(key, LATENTS)
        seen = common.seen_key(context)
        prep = {"average_repetitions": cfg.average_repetitions, "test_split": cfg.cv_spec()["split"],
                "rois": cfg.rois, "standardize_features": True}
        rois = tuple(cfg.rois) if cfg.rois else None
        cells = []
        for subject in context.subjects:
            path = context.response_path(subject)
            for roi in spec.rois:
                ckey = self.cell_key(subject, "r", context.dataset.fingerprint, subject, prep, key, "reconstruction",
                                     spec.model_dump(), roi, cfg.seed)
                task = ReconstructionTask(Preparation(path, cfg.average_repetitions, prep["test_split"], rois), fpath,
                                          spec.model_dump(), roi, cfg.seed, seen)
                cells.append(Cell(key=ckey, analysis=self.name, subject=subject, model=f"{spec.codec.name} latents",
                                  model_name=enc.name, layer=LATENTS, depth=1.0, label=spec.head.name,
                                  head=spec.head.name, feature_path=fpath, response_path=path, reads=(path, fpath),
                                  task=task))
        return cells

    def requirements(self, context: PlanContext, cells: Sequence[Cell]) -> list[FeatureJob | ImageJob]:
        if not cells:
            return []
        spec = sections.reconstruction(context.config)
        enc = self.codec(spec.codec)
        stimuli = context.stimuli("image")
        return [FeatureJob(encoder_key(enc, stimuli), (LATENTS,), f"{spec.codec.name} latents", lambda: enc,
                           lambda: stimuli, spec.batch_size),
                common.seen_images_job(context)]

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        return reconstruct(store_url, cell)

    def scores(self, rows: Any) -> list[str]:
        return [c for m in common.image_metric_columns(rows) for c in (m, f"shuffled_{m}", f"mean_image_{m}")
                if c in rows.columns]

    def table(self, rows: Any, sweep: str, value: str) -> list[TextTable]:
        metrics = common.image_metric_columns(rows)
        keys, values = [], []
        for (encoder, roi), part in rows.groupby(["encoder", "roi"], sort=False):
            keys.append((str(encoder), str(roi)))
            values.append(tuple(f"{part[m].mean():.3f} ({part['shuffled_' + m].mean():.3f} | "
                                f"{part['mean_image_' + m].mean():.3f})" for m in metrics))
        protocols = sorted({str(p) for p in rows["protocol"].dropna()}) if "protocol" in rows.columns else []
        protocol = f"; protocol {', '.join(protocols)}" if protocols else ""
        return [TextTable(f"{sweep}: reconstruction (mean over subjects; shuffled pairs | mean image{protocol})",
                          ("codec", "units"), tuple(metrics), tuple(keys), tuple(values))]

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        return [kit.draw("reconstructions.png", kit.keys_of(self.name), kit.reconstructions,
                         "Reconstruction: held-out test images beside the images reconstructed from brain responses, "
                         "best, median, worst and random examples per subject by the per-image score.")]


def reconstruct(store_url: str, cell: Cell) -> CellResult:
    """Fit brain → codec latents on the training split, decode the test latents to images, score them."""
    started = time.time()
    task: ReconstructionTask = cell.task
    spec = task.reconstruction
    data = prepared_recording(store_url, task.prep)
    store = Store(store_url, mode="r")
    B_train, B_test, n_units = common.decoding_inputs(data, task.roi, None)
    B_train, B_test = common.standardized(B_train, B_test)
    Z_train = load_features(store, task.feature_path, data["train_ids"]).astype(np.float32)
    z_mean, z_sd = Z_train.mean(axis=0), Z_train.std(axis=0)
    z_sd = np.where(z_sd > 1e-8, z_sd, 1.0)
    head = build("head", spec["head"]["name"], **spec["head"]["options"])
    head.fit(B_train, (Z_train - z_mean) / z_sd)
    Z_pred = np.asarray(head.predict(B_test), dtype=np.float32) * z_sd + z_mean
    codec = build("codec", spec["codec"]["name"], **spec["codec"]["options"])
    recon = codec.decode(Z_pred)
    mean_image = np.repeat(codec.decode(z_mean[None].astype(np.float32)), len(recon), axis=0)
    seen = read_images(store, task.seen_key, data["test_ids"])
    protocol = spec.get("protocol", "default")
    metrics = common.protocol_metrics(spec["metrics"], protocol)
    scores, arrays = common.score_images(metrics, recon, seen, task.seed, mean_image=mean_image)
    row: dict[str, Any] = {"roi": task.roi, "n_units": n_units, "protocol": protocol, **scores}
    return CellResult((row,), int(len(recon)), round(time.time() - started, 3), arrays, images=recon,
                      image_ids=np.asarray(data["test_ids"], dtype=str))
