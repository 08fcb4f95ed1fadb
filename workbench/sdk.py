"""The plugin SDK: everything a dataset, encoder, head, metric, codec or generator plugin may use.

Plugins (the built-ins included) import from this module only, so the core behind it can move
without breaking them::

    from workbench.sdk import hookimpl, LayerInfo, WorkbenchError

Contracts and errors load eagerly (they are light); helpers that pull in torch, zarr or scipy
load on first use, so ``import workbench.sdk`` stays cheap at registration time.
"""

from __future__ import annotations

import importlib
from typing import Any

from workbench.hooks import hookimpl
from workbench.options import Option
from workbench.types import (
    BrainRDMs,
    Codec,
    Dataset,
    Encoder,
    Generator,
    Head,
    ImageMetric,
    LayerInfo,
    Metric,
    Recording,
    StimulusSet,
    Units,
    WorkbenchError,
    as_str_array,
    dataset_provides,
    digest,
    noise_ceiling_from_ncsnr,
    resolve_layers,
)

_LAZY: dict[str, str] = {
    # torch helpers for encoders
    "PRECISIONS": "workbench.nn", "DEVICES": "workbench.nn", "SPATIAL_POOLS": "workbench.nn",
    "check_option": "workbench.nn", "resolve_device": "workbench.nn", "autocast": "workbench.nn",
    "seeded": "workbench.nn", "weights_digest": "workbench.nn", "capture": "workbench.nn",
    "masked_mean": "workbench.nn", "gather_tokens": "workbench.nn", "pool_tokens": "workbench.nn",
    "pool_spatial": "workbench.nn", "to_numpy": "workbench.nn", "stack_images": "workbench.nn",
    # store and caching
    "Store": "workbench.store", "ArraySpec": "workbench.store", "open_store": "workbench.store",
    "cache_store": "workbench.store", "files_signature": "workbench.store", "check_key": "workbench.store",
    "safe_name": "workbench.store", "load_features": "workbench.features",
    # optional base classes
    "EncoderBase": "workbench.bases",
    # images (codecs, image metrics, reconstructions)
    "check_images": "workbench.images", "images_to_tensor": "workbench.images", "resize_images": "workbench.images",
    "to_uint8": "workbench.images", "write_images": "workbench.images", "read_images": "workbench.images",
    "cached_recording": "workbench.store", "recording_key": "workbench.store",
    "CorruptEntryError": "workbench.store", "DamagedEntryError": "workbench.store",
    # loading downloaded files safely
    "load_npy_dict": "workbench.safe_pickle",
    # downloads and local files
    "RemoteFile": "workbench.fetch", "fetch_files": "workbench.fetch", "get_json": "workbench.http",
    "require_terms": "workbench.fetch", "local_root": "workbench.fetch", "local_file": "workbench.fetch",
    # numerics shared by heads and metrics
    "DEFAULT_ALPHAS": "workbench.linalg", "make_folds": "workbench.linalg",
    "bands_from_columns": "workbench.linalg", "ridge_cv": "workbench.linalg", "banded_ridge_cv": "workbench.linalg",
    "ridge_fit": "workbench.linalg",
    "ridge_cv_predict": "workbench.ridge_predict",
    "pearson_per_unit": "workbench.scoring", "pearson_per_output": "workbench.scoring",
    "r2_per_unit": "workbench.scoring", "retrieval_topk": "workbench.scoring",
    "two_way_identification": "workbench.scoring",
    "rankdata": "workbench.stats", "noise_ceiling_nsd": "workbench.stats", "rdm_noise_ceiling": "workbench.stats",
    # functional alignment across subjects
    "ProcrustesMap": "workbench.alignment", "procrustes": "workbench.alignment", "hyperalign": "workbench.alignment",
    # the new-subject adaptation experiment
    "adaptation_curve": "workbench.adaptation", "averaged_rows": "workbench.adaptation",
    "session_order": "workbench.adaptation", "decode_scores": "workbench.adaptation",
}


def build_encoder(name: str, **options: Any) -> Encoder:
    """Build another registered encoder by name (how a wrapping plugin, e.g. an SAE, reaches its base)."""
    import workbench

    return workbench.encoder(name, **options)


def build_head(name: str, **options: Any) -> Head:
    """Build another registered head by name (how a multi-subject model fits its ordinary per-space head)."""
    import workbench

    return workbench.head(name, **options)

__all__ = [
    "BrainRDMs", "Codec", "Dataset", "dataset_provides", "Encoder", "Generator", "Head", "ImageMetric", "LayerInfo", "Metric", "Option",
    "Recording", "StimulusSet", "Units", "WorkbenchError", "as_str_array", "digest", "hookimpl",
    "resolve_layers", "build_encoder", "noise_ceiling_from_ncsnr", "build_head", *_LAZY,
]


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"workbench.sdk has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
