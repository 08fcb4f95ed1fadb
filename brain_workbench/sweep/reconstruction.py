"""Reconstruction cells (stage 1, low-level): brain → latents of an image codec → decoded images → scores.

The codec's latents of every stimulus are cached like features (the codec is wrapped as an encoder
with one layer, ``latents``), so a reconstruction cell is a decode fit onto them. Decoded test images
are written as an image entry ``images/<cell key>`` by the coordinator, and every configured image
metric scores them against the seen images, with two baselines: the same reconstructions paired with
shuffled seen images, and the decoded mean training latent (the "mean image") for every stimulus.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

import brain_workbench as wb
from brain_workbench.store.features import load_features
from brain_workbench.store.images import read_images
from brain_workbench.store import Store
from brain_workbench.sweep.cells import Cell, cell_data, decoding_inputs
from brain_workbench.types import LayerInfo, WorkbenchError, digest

LATENTS = "latents"


class CodecEncoder:
    """An image codec seen as an encoder with one layer, ``latents``, so the feature cache stores them."""

    modality = "image"

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = f"codec-{name}"
        self.codec_name, self.options = name, dict(options)
        self.codec = wb.codec(name, **self.options)

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(LATENTS, 1.0)]

    def encode(self, batch: Sequence[Any], layers: Sequence[str]) -> dict[str, np.ndarray]:
        """Latents of a batch of PIL images; images of one size go through the codec together."""
        arrays = [np.asarray(image.convert("RGB"), dtype=np.uint8) for image in batch]
        out = np.empty((len(arrays), self.codec.latent_dim), dtype=np.float32)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, a in enumerate(arrays):
            by_size.setdefault(a.shape, []).append(i)
        for rows in by_size.values():
            out[rows] = self.codec.encode(np.stack([arrays[i] for i in rows]))
        return {LATENTS: out}

    def fingerprint(self) -> str:
        return digest("codec-encoder", self.codec_name, self.codec.fingerprint())


def seen_images_key(stimuli_digest: str, size: int) -> str:
    """Image entry of the seen test images at ``size`` px (shared by every reconstruction cell of a stimulus set)."""
    return f"seen-{stimuli_digest}-{size}"


def load_seen_images(images: Any, ids: Sequence[str], size: int) -> np.ndarray:
    """The seen images of ``ids`` as uint8 ``(n, size, size, 3)`` (bilinear, antialiased resize)."""
    from PIL import Image

    out = np.empty((len(ids), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images.get(list(ids))):
        out[i] = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR, reducing_gap=None))
    return out


def _score_pairs(metric: Any, recon: np.ndarray, seen: np.ndarray, seed: int) -> dict[str, Any]:
    per_image = np.asarray(metric.score(recon, seen), dtype=np.float64)
    shuffled = np.random.default_rng(seed).permutation(len(seen))
    while len(seen) > 1 and np.any(shuffled == np.arange(len(seen))):
        shuffled = np.random.default_rng(seed := seed + 1).permutation(len(seen))
    baseline = np.asarray(metric.score(recon, seen[shuffled]), dtype=np.float64)
    return {"per_image": per_image, "shuffled": float(np.nanmean(baseline))}


def compute_reconstruction_cell(store_url: str, cell: Cell) -> dict[str, Any]:
    """Fit brain → codec latents on the training split, decode the test latents to images, score them."""
    started = time.time()
    task = cell.task
    spec = task["reconstruction"]
    data = cell_data(store_url, task)
    store = Store(store_url, mode="r")
    B_train, B_test, n_units = decoding_inputs(data, task["roi"], None)
    mean, sd = B_train.mean(axis=0), B_train.std(axis=0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    B_train, B_test = (B_train - mean) / sd, (B_test - mean) / sd
    Z_train = load_features(store, task["feature_path"], data["train_ids"]).astype(np.float32)
    z_mean, z_sd = Z_train.mean(axis=0), Z_train.std(axis=0)
    z_sd = np.where(z_sd > 1e-8, z_sd, 1.0)
    head = wb.head(spec["head"]["name"], **spec["head"]["options"])
    head.fit(B_train, (Z_train - z_mean) / z_sd)
    Z_pred = np.asarray(head.predict(B_test), dtype=np.float32) * z_sd + z_mean
    codec = wb.codec(spec["codec"]["name"], **spec["codec"]["options"])
    recon = codec.decode(Z_pred)
    mean_image = np.repeat(codec.decode(z_mean[None].astype(np.float32)), len(recon), axis=0)
    seen = read_images(store, task["seen_key"], data["test_ids"])
    row: dict[str, Any] = {"roi": task["roi"], "n_units": n_units}
    result: dict[str, Any] = {"images": recon, "test_ids": np.asarray(data["test_ids"], dtype=str)}
    for m_spec in spec["metrics"]:
        metric = wb.image_metric(m_spec["name"], **m_spec["options"])
        name = m_spec.get("label") or m_spec["name"]
        scored = _score_pairs(metric, recon, seen, task["seed"])
        row[name] = float(np.nanmean(scored["per_image"]))
        row[f"shuffled_{name}"] = scored["shuffled"]
        row[f"mean_image_{name}"] = float(np.nanmean(metric.score(mean_image, seen)))
        row[f"{name}_kind"] = metric.kind
        result[f"image_{name}"] = scored["per_image"].astype(np.float32)
    result.update(rois=[row], n_test=int(len(recon)), timing_s=round(time.time() - started, 3))
    return result


def check_reconstruction_metrics(metrics: Sequence[dict[str, Any]]) -> None:
    """Every configured image metric is built once before any work (unknown names and options fail early)."""
    seen = set()
    for m in metrics:
        name = m.get("label") or m["name"]
        if name in seen:
            raise WorkbenchError(f"reconstruction metric {name!r} is listed twice; give one a label")
        seen.add(name)
        wb.image_metric(m["name"], **m["options"])


def compute_generation_cell(store_url: str, cell: Cell) -> dict[str, Any]:
    """Stage 3: a decode cell's predicted embeddings (and optionally stage-1 images) through a generator."""
    started = time.time()
    task = cell.task
    store = Store(store_url, mode="r")
    decoded = store.open(task["decode_path"])
    embeds, ids = decoded["prediction"], [str(s) for s in decoded["test_ids"]]
    init = read_images(store, task["reconstruction_key"], ids) if task.get("reconstruction_key") else None
    spec = task["generation"]
    generator = wb.generator(spec["generator"]["name"], **spec["generator"]["options"])
    if embeds.shape[1] != generator.embedding_dim:
        raise WorkbenchError(f"generator {spec['generator']['name']!r} takes {generator.embedding_dim}-wide embeddings "
                             f"({generator.embedding_space}) but {cell.encoder}/{cell.layer} gives "
                             f"{embeds.shape[1]}: decode the embedding the pipeline was trained on")
    images = generator.generate(embeds, init_images=init, seed=spec["seed"])
    seen = read_images(store, task["seen_key"], ids)
    row: dict[str, Any] = {"roi": spec["roi"], "n_units": None}
    result: dict[str, Any] = {"images": images, "test_ids": np.asarray(ids, dtype=str)}
    for m_spec in spec["metrics"]:
        metric = wb.image_metric(m_spec["name"], **m_spec["options"])
        name = m_spec.get("label") or m_spec["name"]
        scored = _score_pairs(metric, images, seen, task["seed"])
        row[name] = float(np.nanmean(scored["per_image"]))
        row[f"shuffled_{name}"] = scored["shuffled"]
        row[f"{name}_kind"] = metric.kind
        result[f"image_{name}"] = scored["per_image"].astype(np.float32)
    result.update(rois=[row], n_test=len(ids), timing_s=round(time.time() - started, 3))
    return result
