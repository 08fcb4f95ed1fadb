"""What several built-in analyses share: the layers a head is fitted on, brain patterns of a unit set, the seen
test images reconstructions are scored against, image scores with their baselines, and table formatting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from brain_workbench.sdk.analysis import (
    ImageJob,
    PlanContext,
    Store,
    TextTable,
    WorkbenchError,
    build,
    resolve_layers,
    rgb_image,
    safe_name,
    seen_images_key,
)
from brain_workbench_plugins.analyses import sections


def head_layers(head: Any, encoder: Any) -> list[str]:
    """The layers of an encoder a head is fitted on: its own ``layers`` (extracted too), else the encoder's."""
    if head.encoders is not None and not (encoder.names() & set(head.encoders)):
        return []
    return list(encoder.listed) if head.layers is None else resolve_layers(list(encoder.layers), head.layers)


def heads_of(context: PlanContext, direction: str) -> list[tuple[int, Any]]:
    """The configured heads (index, spec) whose class declares ``direction``."""
    return [(i, h) for i, h in enumerate(context.config.heads) if context.head_direction(h.name) == direction]


def refuse_heads_on_rdms(config: Any, dataset: Any) -> bool:
    """True on a dataset of brain RDMs (no head cell is planned); explicit heads there are an error."""
    cfg = config
    if dataset.provides != "rdms":
        return False
    if "heads" in cfg.model_fields_set and cfg.heads:
        raise WorkbenchError(f"dataset {cfg.dataset.name!r} provides brain RDMs, not responses: heads cannot be "
                             "fitted to it; remove heads and compare with metrics (rsa)")
    return True


def check_rois(context: PlanContext, rois: Sequence[str]) -> None:
    """Every ROI a section names (besides ``all``) exists in each cached recording."""
    wanted = [r for r in rois if r != "all"]
    for subject, info in context.recordings.items():
        missing = sorted(set(wanted) - set(info.rois)) if info.cached else []
        if missing:
            raise WorkbenchError(f"{context.dataset.name}/{subject} has no ROI {missing[0]!r}; its ROIs are "
                                 f"{', '.join(info.rois) or 'none'} (or use 'all')")


def check_head_options(registry: Any, head: Any) -> None:
    """A head's options are valid for its factory (checked without building it)."""
    cv = head.options.get("cv")
    if isinstance(cv, int) and not isinstance(cv, bool) and cv < 2:
        raise WorkbenchError(f"head {head.name!r}: cv={cv} needs at least 2 folds to choose alphas")
    registry.check_options("head", head.name, dict(head.options))


def spec(model: Any) -> dict[str, Any]:
    """A config spec (head, metric, plugin) as plain data without its table label."""
    return model.model_dump(exclude={"label"})


def decoding_inputs(data: dict[str, Any], roi: str, time_window: Sequence[float] | None,
                    ) -> tuple[np.ndarray, np.ndarray, int]:
    """Train and test brain patterns of one unit set (all units or an ROI; one time window or all times)."""
    n_units, n_times = data["n_units"], data["n_times"]
    if roi == "all":
        units = np.ones(n_units, dtype=bool)
    elif roi in data["rois"]:
        units = data["rois"][roi].reshape(n_units, n_times)[:, 0]
    else:
        raise WorkbenchError(f"cannot decode from ROI {roi!r}: the recording's ROIs are "
                             f"{', '.join(data['rois']) or 'none'} (or use 'all')")
    parts = []
    for Y in (data["Y_train"], data["Y_test"]):
        Y = Y.reshape(len(Y), n_units, n_times)[:, units]
        if time_window is not None:
            if n_times == 1:
                raise WorkbenchError("decoding.time_windows needs time-resolved responses (M/EEG)")
            t = np.asarray(data["times"])
            pick = (t >= time_window[0]) & (t <= time_window[1])
            if not pick.any():
                raise WorkbenchError(f"time window {list(time_window)} holds no sample; the recording spans "
                                     f"{t.min():.3f}–{t.max():.3f} s")
            Y = Y[:, :, pick].mean(axis=2)
        parts.append(Y.reshape(len(Y), -1))
    return parts[0], parts[1], int(units.sum())


def eeg_fit_options(head: Any, data: dict[str, Any], n_units: int, time_window: Sequence[float] | None,
                    ) -> dict[str, Any]:
    """What a head taking trials as channels × times needs: ``input_shape`` set, training ids as ``groups``."""
    if "input_shape" not in head.get_params():
        return {}
    head.set_params(input_shape=[n_units, data["n_times"] if time_window is None else 1])
    return {"groups": [str(s) for s in data["train_ids"]]}


def preprocessing_preset(data: dict[str, Any], averaged: bool, roi: str, time_window: Sequence[float] | None,
                         targets_standardized: bool) -> dict[str, Any] | None:
    """Channels, window, sampling rate, averaging and normalisation behind a time-resolved (M/EEG) result."""
    times = np.asarray(data.get("times") if data.get("times") is not None else [], dtype=np.float64)
    if data["n_times"] <= 1 or times.size < 2:
        return None
    names = data.get("unit_names")
    if roi != "all" and names is not None:
        names = np.asarray(names)[data["rois"][roi].reshape(data["n_units"], data["n_times"])[:, 0]]
    window = [float(times[0]), float(times[-1])] if time_window is None else [float(v) for v in time_window]
    rate = float(round(1.0 / np.median(np.diff(times)), 3))
    layout = next((step.get("layout") for step in data.get("preprocessing", []) if step.get("layout")), None)
    source = next((step.get("data") or step.get("generator") for step in data.get("preprocessing", [])
                   if step.get("step") in ("load", "simulate")), None)
    n_channels = len(names) if names is not None else data["n_units"]
    preset = {"channels": None if names is None else [str(n) for n in names], "n_channels": n_channels,
              "window_s": window, "sfreq_hz": rate, "n_times": data["n_times"], "averaged_repetitions": averaged,
              "time_window_mean": time_window is not None, "layout": layout, "source": source,
              "normalisation": "EEG z-scored per channel and sample with training-split statistics"
                               + ("; targets z-scored per dimension" if targets_standardized else "")}
    preset["summary"] = (f"{n_channels} ch × {data['n_times']} @ {rate:g} Hz, {window[0]:g}–{window[1]:g} s"
                         f"{', window mean' if time_window is not None else ''}, "
                         f"{'averaged' if averaged else 'single trials'}, z-scored")
    return preset


def standardization(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The training side's column mean and SD (constant columns kept at SD 1)."""
    mean, sd = train.mean(axis=0), train.std(axis=0)
    return mean, np.where(sd > 1e-8, sd, 1.0).astype(sd.dtype)


def standardized(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sides z-scored with the training side's mean and SD (constant columns kept at SD 1)."""
    mean, sd = standardization(train)
    return (train - mean) / sd, (test - mean) / sd


# ---- seen test images ---------------------------------------------------------------------------
def seen_size(context: PlanContext) -> int:
    recon = sections.reconstruction(context.config)
    return recon.seen_size if recon is not None else 256


def seen_key(context: PlanContext) -> str:
    return seen_images_key(context.stimuli("image").digest, seen_size(context))


def load_seen_images(images: Any, ids: Sequence[str], size: int) -> np.ndarray:
    """The seen images of ``ids`` as uint8 ``(n, size, size, 3)`` (bilinear, antialiased resize)."""
    from PIL import Image

    out = np.empty((len(ids), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images.get(list(ids))):
        out[i] = np.asarray(rgb_image(image, ids[i]).resize((size, size), Image.BILINEAR, reducing_gap=None))
    return out


def seen_images_job(context: PlanContext) -> ImageJob:
    """The seen test images (every subject's test split, at ``seen_size``), written once by the coordinator."""
    split_name, size = context.config.test_split, seen_size(context)
    paths = [info.path for info in context.recordings.values()]
    images = context.stimuli("image")

    def ids(store: Store) -> list[str]:
        out: list[str] = []
        for path in paths:
            entry = store.open(path)
            if f"split_{safe_name(split_name)}" not in entry.names():
                raise WorkbenchError(f"{path} has no split {split_name!r} to reconstruct")
            out.extend(s for s in entry[f"split_{safe_name(split_name)}"].tolist() if s not in out)
        return out

    return ImageJob(seen_key(context), "the seen test images", ids, lambda block: load_seen_images(images, block, size),
                    attrs={"what": "seen test images", "size": size})


def score_pairs(metric: Any, recon: np.ndarray, seen: np.ndarray, seed: int) -> dict[str, Any]:
    """Per-image scores of reconstructions against their seen images, and the mean over shuffled pairs."""
    per_image = np.asarray(metric.score(recon, seen), dtype=np.float64)
    shuffled = np.random.default_rng(seed).permutation(len(seen))
    while len(seen) > 1 and np.any(shuffled == np.arange(len(seen))):
        shuffled = np.random.default_rng(seed := seed + 1).permutation(len(seen))
    baseline = np.asarray(metric.score(recon, seen[shuffled]), dtype=np.float64)
    return {"per_image": per_image, "shuffled": float(np.nanmean(baseline))}


PROTOCOL_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {},
    # MindEyeV2 src/final_evaluations.ipynb: every image to 256 px (torchvision 0.15/0.16 tensor Resize, no
    # antialiasing) as floats, then each metric's own bilinear resize; SSIM 2-D on grey images
    "mindeye2": {"pixcorr": {"pre_resize": 256, "antialias": False, "size": 425},
                 "ssim": {"pre_resize": 256, "antialias": False, "size": 425},
                 "two-way": {"antialias": False, "interpolation": "bilinear"},
                 "correlation-distance": {"antialias": False, "interpolation": "bilinear"}},
    # brain-diffuser scripts/evaluate_reconstruction.py: SSIM of scikit-image 0.17.2 with multichannel=True on grey
    # images (per-column 1-D SSIM) at 425 px
    "brain-diffuser": {"ssim": {"variant": "columns", "size": 425}},
}


def protocol_metrics(metric_specs: Sequence[Mapping[str, Any]], protocol: str) -> list[dict[str, Any]]:
    """The metric specs with the options a named evaluation protocol fixes (the user's own options give way)."""
    if protocol not in PROTOCOL_OPTIONS:
        raise WorkbenchError(f"unknown evaluation protocol {protocol!r}; use one of {', '.join(PROTOCOL_OPTIONS)}")
    fixed = PROTOCOL_OPTIONS[protocol]
    return [{**spec, "options": {**spec.get("options", {}), **fixed.get(spec["name"], {})}} for spec in metric_specs]


def score_images(metric_specs: Sequence[Mapping[str, Any]], images: np.ndarray, seen: np.ndarray, seed: int,
                 mean_image: np.ndarray | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Each image metric of a section on images against the seen ones: the row's mean, shuffled-pair (and
    mean-image) baselines and kind, and the per-image scores kept with the cell (``image_<metric>``)."""
    row: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for spec in metric_specs:
        metric = build("image-metric", spec["name"], **spec["options"])
        name = spec.get("label") or getattr(metric, "label", None) or spec["name"]  # two-way(alexnet5)
        scored = score_pairs(metric, images, seen, seed)
        row[name] = float(np.nanmean(scored["per_image"]))
        row[f"shuffled_{name}"] = scored["shuffled"]
        if mean_image is not None:
            row[f"mean_image_{name}"] = float(np.nanmean(metric.score(mean_image, seen)))
        row[f"{name}_kind"] = metric.kind
        arrays[f"image_{name}"] = scored["per_image"].astype(np.float32)
    return row, arrays


def image_metric_columns(rows: Any) -> list[str]:
    """Image metrics named in reconstruction or generation rows (each has a ``<name>_kind`` column)."""
    return [c[:-5] for c in rows.columns if c.endswith("_kind") and c[:-5] in rows.columns and rows[c].notna().any()]


def over_subjects(rows: Any) -> tuple[str, str]:
    """How a caption names the subjects a figure averages over, and its SEM band (two or more subjects)."""
    n = rows["subject"].nunique()
    return f"{n} subject{'s' if n != 1 else ''}", "; shaded bands are ±1 SEM across subjects" if n > 1 else ""


# ---- tables -------------------------------------------------------------------------------------
def fmt(x: Any) -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def pivot(rows: Any, value: str, title: str) -> TextTable:
    """One row per encoder × layer (encoders in config order, layers in depth order), one column per ROI
    (``all`` last), mean over subjects."""
    table = rows.pivot_table(index=["encoder", "depth", "layer"], columns="roi", values=value, aggfunc="mean",
                             sort=False)
    rois = [c for c in dict.fromkeys(rows["roi"]) if c != "all"] + (["all"] if "all" in table.columns else [])
    order = {encoder: i for i, encoder in enumerate(dict.fromkeys(rows["encoder"]))}
    keys, values = [], []
    for (encoder, depth, layer), row in sorted(table.iterrows(), key=lambda item: (order[item[0][0]], item[0][1])):
        keys.append((str(encoder), str(layer), f"{depth:.2f}"))
        values.append(tuple(fmt(row.get(r)) for r in rois))
    return TextTable(title, ("encoder", "layer", "depth"), tuple(rois), tuple(keys), tuple(values))


def constant_columns(Y: np.ndarray) -> np.ndarray:
    """Columns whose values do not vary (Pearson r with them is undefined, as scipy's ``pearsonr`` says)."""
    Y = np.asarray(Y, dtype=np.float64)
    spread = Y.max(axis=0) - Y.min(axis=0)
    scale = np.maximum(np.abs(Y).max(axis=0), 1.0)
    return spread <= 1e-12 * scale
