"""Data helpers for datasets, codecs and trainers: the store and its caches, features, images, downloads.

Importing this module imports zarr and fsspec, so plugins import it inside the methods that need it.
"""

from __future__ import annotations

from brain_workbench.downloads.fetch import RemoteFile, fetch_files, local_file, local_root, require_terms
from brain_workbench.downloads.http import ListingWalk, get_json
from brain_workbench.downloads.safe_pickle import load_npy_dict
from brain_workbench.store import (
    ArraySpec,
    CorruptEntryError,
    DamagedEntryError,
    Store,
    cache_store,
    cached_recording,
    check_key,
    files_signature,
    open_store,
    recording_key,
    safe_name,
)
from brain_workbench.store.features import load_features
from brain_workbench.store.images import (
    check_images,
    images_to_tensor,
    read_images,
    resize_images,
    rgb_image,
    to_uint8,
    write_images,
)

__all__ = [
    "ArraySpec", "CorruptEntryError", "DamagedEntryError", "ListingWalk", "RemoteFile", "Store", "cache_store",
    "cached_recording",
    "check_images", "check_key", "fetch_files", "files_signature", "get_json", "images_to_tensor", "load_features",
    "load_npy_dict", "local_file", "local_root", "open_store", "read_images", "recording_key", "require_terms",
    "resize_images", "rgb_image", "safe_name", "to_uint8", "write_images",
]
