"""The plugin SDK: everything a dataset, encoder, head, metric, codec or generator plugin may use.

Plugins (the built-ins included) import from this module only, so the core behind it can move
without breaking them::

    from brain_workbench.sdk import hookimpl, LayerInfo, WorkbenchError

Contracts and errors load eagerly (they are light); helpers that pull in torch, zarr or scipy
load on first use, so ``import brain_workbench.sdk`` stays cheap at registration time.
"""

from __future__ import annotations

import importlib
from typing import Any

from brain_workbench.plugin.hooks import hookimpl
from brain_workbench.plugin.options import Option
from brain_workbench.types import (
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
    "PRECISIONS": "brain_workbench.numerics.nn", "DEVICES": "brain_workbench.numerics.nn",
    "SPATIAL_POOLS": "brain_workbench.numerics.nn",
    "check_option": "brain_workbench.numerics.nn", "resolve_device": "brain_workbench.numerics.nn",
    "autocast": "brain_workbench.numerics.nn",
    "seeded": "brain_workbench.numerics.nn", "weights_digest": "brain_workbench.numerics.nn",
    "capture": "brain_workbench.numerics.nn",
    "masked_mean": "brain_workbench.numerics.nn", "gather_tokens": "brain_workbench.numerics.nn",
    "pool_tokens": "brain_workbench.numerics.nn",
    "pool_spatial": "brain_workbench.numerics.nn", "to_numpy": "brain_workbench.numerics.nn",
    "stack_images": "brain_workbench.numerics.nn",
    # store and caching
    "Store": "brain_workbench.store", "ArraySpec": "brain_workbench.store", "open_store": "brain_workbench.store",
    "cache_store": "brain_workbench.store", "files_signature": "brain_workbench.store",
    "check_key": "brain_workbench.store",
    "safe_name": "brain_workbench.store", "load_features": "brain_workbench.store.features",
    # optional base classes
    "EncoderBase": "brain_workbench.plugin.bases",
    # images (codecs, image metrics, reconstructions)
    "check_images": "brain_workbench.store.images", "images_to_tensor": "brain_workbench.store.images",
    "resize_images": "brain_workbench.store.images",
    "to_uint8": "brain_workbench.store.images", "write_images": "brain_workbench.store.images",
    "read_images": "brain_workbench.store.images",
    "cached_recording": "brain_workbench.store", "recording_key": "brain_workbench.store",
    "CorruptEntryError": "brain_workbench.store", "DamagedEntryError": "brain_workbench.store",
    # loading downloaded files safely
    "load_npy_dict": "brain_workbench.downloads.safe_pickle",
    # downloads and local files
    "RemoteFile": "brain_workbench.downloads.fetch", "fetch_files": "brain_workbench.downloads.fetch",
    "get_json": "brain_workbench.downloads.http",
    "require_terms": "brain_workbench.downloads.fetch", "local_root": "brain_workbench.downloads.fetch",
    "local_file": "brain_workbench.downloads.fetch",
    # numerics shared by heads and metrics
    "DEFAULT_ALPHAS": "brain_workbench.numerics.linalg", "make_folds": "brain_workbench.numerics.linalg",
    "bands_from_columns": "brain_workbench.numerics.linalg", "ridge_cv": "brain_workbench.numerics.linalg",
    "banded_ridge_cv": "brain_workbench.numerics.linalg",
    "ridge_fit": "brain_workbench.numerics.linalg",
    "ridge_cv_predict": "brain_workbench.numerics.ridge_predict",
    "pearson_per_unit": "brain_workbench.numerics.scoring", "pearson_per_output": "brain_workbench.numerics.scoring",
    "r2_per_unit": "brain_workbench.numerics.scoring", "retrieval_topk": "brain_workbench.numerics.scoring",
    "two_way_identification": "brain_workbench.numerics.scoring",
    "rankdata": "brain_workbench.numerics.stats", "noise_ceiling_nsd": "brain_workbench.numerics.stats",
    "rdm_noise_ceiling": "brain_workbench.numerics.stats",
    # functional alignment across subjects
    "ProcrustesMap": "brain_workbench.numerics.alignment", "procrustes": "brain_workbench.numerics.alignment",
    "hyperalign": "brain_workbench.numerics.alignment",
    # the new-subject adaptation experiment
    "adaptation_curve": "brain_workbench.analysis.adaptation", "averaged_rows": "brain_workbench.analysis.adaptation",
    "session_order": "brain_workbench.analysis.adaptation", "decode_scores": "brain_workbench.analysis.adaptation",
}


def build_encoder(name: str, **options: Any) -> Encoder:
    """Build another registered encoder by name (how a wrapping plugin, e.g. an SAE, reaches its base)."""
    import brain_workbench
    return brain_workbench.encoder(name, **options)


def build_head(name: str, **options: Any) -> Head:
    """Build another registered head by name (how a multi-subject model fits its ordinary per-space head)."""
    import brain_workbench
    return brain_workbench.head(name, **options)

__all__ = [
    "BrainRDMs", "Codec", "Dataset", "dataset_provides", "Encoder", "Generator", "Head", "ImageMetric", "LayerInfo",
    "Metric", "Option",
    "Recording", "StimulusSet", "Units", "WorkbenchError", "as_str_array", "digest", "hookimpl",
    "resolve_layers", "build_encoder", "noise_ceiling_from_ncsnr", "build_head", *_LAZY,
]


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"brain_workbench.sdk has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
