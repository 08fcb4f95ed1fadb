"""The zarr v3 store that caches features, responses and results under content-hashed keys.

``brain_workbench.store.entries`` holds the generic machinery (keys, resumable block writes, reads checked
against checksums, verify / gc / repair); ``brain_workbench.store.recordings`` serialises recordings and
owns the recording cache; ``brain_workbench.store.claims`` lets two coordinators share one store.
"""

from brain_workbench.store.entries import (
    DEFAULT_STORE,
    META,
    STALE_WRITER_S,
    ArraySpec,
    CorruptEntryError,
    DamagedEntryError,
    EntryInfo,
    EntryReader,
    EntryWriter,
    Problem,
    Store,
    block_digest,
    cache_store,
    check_key,
    disk_full_named,
    files_signature,
    open_store,
    provenance,
    read_rows,
    safe_name,
    suggest_block_rows,
    writer_identity,
)
from brain_workbench.store.recordings import (
    NON_FINITE,
    cached_recording,
    finite_recording,
    load_rdms,
    load_recording,
    rdms_key,
    recording_key,
    recording_key_for,
    save_rdms,
    save_recording,
)

__all__ = [
    "ArraySpec", "block_digest", "cache_store", "cached_recording", "check_key", "CorruptEntryError",
    "DamagedEntryError", "DEFAULT_STORE", "disk_full_named", "EntryInfo", "EntryReader", "EntryWriter",
    "files_signature", "finite_recording", "load_rdms", "load_recording", "rdms_key", "save_rdms", "META", "NON_FINITE",
    "open_store", "Problem", "provenance",
    "read_rows", "recording_key", "recording_key_for", "safe_name", "save_recording", "STALE_WRITER_S", "Store",
    "suggest_block_rows", "writer_identity",
]
