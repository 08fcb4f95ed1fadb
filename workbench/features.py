"""Feature extraction into the store: each (encoder, stimulus set, layer) is computed once.

Extraction streams in row blocks: one block of stimuli is loaded, encoded in batches, and written
for every requested layer before the next block starts, so memory stays bounded by one block and
an interrupted extraction resumes at the first block not yet on disk. Several layers come from
one forward pass.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from workbench.store import ArraySpec, Store, read_rows, safe_name, suggest_block_rows
from workbench.types import Encoder, StimulusSet, WorkbenchError, digest, resolve_layers

Progress = Callable[[int], None]


def encoder_key(encoder: Encoder, stimuli: StimulusSet) -> str:
    """Store key of an encoder applied to a stimulus set: changes with weights, preprocessing or stimuli."""
    return f"{safe_name(encoder.name)}-{digest(encoder.fingerprint(), stimuli.digest, stimuli.modality)}"


def feature_path(encoder: Encoder, stimuli: StimulusSet, layer: str) -> str:
    return f"features/{encoder_key(encoder, stimuli)}/{safe_name(layer)}"


def encode_checked(encoder: Encoder, batch: list, layers: Sequence[str]) -> dict[str, np.ndarray]:
    """Call ``encoder.encode`` and insist on one finite 2-D float row per stimulus per layer."""
    out = encoder.encode(batch, list(layers))
    missing = [layer for layer in layers if layer not in out]
    if missing:
        raise WorkbenchError(f"encoder {encoder.name!r} returned no features for layer {missing[0]!r}")
    result = {}
    for layer in layers:
        value = np.asarray(out[layer])
        if value.ndim != 2 or value.shape[0] != len(batch):
            raise WorkbenchError(
                f"encoder {encoder.name!r} layer {layer!r} returned shape {value.shape}; "
                f"expected ({len(batch)}, n_features)"
            )
        result[layer] = value
    return result


def extract_features(
    store: Store,
    encoder: Encoder,
    stimuli: StimulusSet,
    layers: Sequence[str | float] | None = None,
    batch_size: int = 32,
    dtype: str = "float32",
    progress: Progress | None = None,
) -> dict[str, str]:
    """Make sure features of ``layers`` for every stimulus are in the store; return layer → entry path."""
    if encoder.modality != stimuli.modality:
        raise WorkbenchError(
            f"encoder {encoder.name!r} reads {encoder.modality} stimuli but the stimulus set is {stimuli.modality}"
        )
    names = resolve_layers(encoder.layers(), layers)
    paths = {layer: feature_path(encoder, stimuli, layer) for layer in names}
    todo = [layer for layer in names if not store.is_complete(paths[layer])]
    if not todo:
        return paths
    n = len(stimuli)
    probe = encode_checked(encoder, stimuli.get(stimuli.ids[:1]), todo)
    widest = max(v.shape[1] for v in probe.values()) * np.dtype(dtype).itemsize
    block_rows = suggest_block_rows(widest, n)
    attrs = {"encoder": encoder.name, "fingerprint": encoder.fingerprint(), "stimuli": stimuli.digest,
             "modality": stimuli.modality, "n_stimuli": n}
    writers = {}
    for layer in todo:
        specs = {"data": ArraySpec((n, probe[layer].shape[1]), dtype), "stimulus_ids": ArraySpec((n,), "str", blocked=False)}
        w = store.writer(paths[layer], specs, kind="features", attrs={**attrs, "layer": layer}, block_rows=block_rows)
        w.put("stimulus_ids", np.asarray(stimuli.ids, dtype=str))
        writers[layer] = w
    pending = sorted(set().union(*(w.pending_blocks() for w in writers.values())))
    if progress is not None:
        skipped = n - sum(len(range(*writers[todo[0]].block_slice(b).indices(n))) for b in pending)
        if skipped:
            progress(skipped)
    try:
        for block in pending:
            rows = writers[todo[0]].block_slice(block)
            ids = stimuli.ids[rows]
            chunks: dict[str, list[np.ndarray]] = {layer: [] for layer in todo}
            block_layers = [layer for layer in todo if block in writers[layer].pending_blocks()]
            for start in range(0, len(ids), batch_size):
                batch_ids = ids[start:start + batch_size]
                out = encode_checked(encoder, stimuli.get(batch_ids), block_layers)
                for layer in block_layers:
                    chunks[layer].append(out[layer])
                if progress is not None:
                    progress(len(batch_ids))
            for layer in block_layers:
                writers[layer].write_block(block, {"data": np.concatenate(chunks[layer]).astype(dtype)})
        for layer in todo:
            writers[layer].finish(config={"encoder": encoder.name, "layer": layer, "batch_size": batch_size})
    finally:
        for w in writers.values():
            w.__exit__(None, None, None)
    return paths


def load_features(store: Store, path: str, ids: Sequence[str] | None = None) -> np.ndarray:
    """Read a cached feature matrix, optionally rows for ``ids`` in that order."""
    entry = store.open(path)
    data = entry.array("data")
    if ids is None:
        return np.asarray(data[...])
    stored = entry["stimulus_ids"].astype(str)
    position = {s: i for i, s in enumerate(stored)}
    try:
        index = np.array([position[s] for s in ids], dtype=np.int64)
    except KeyError as exc:
        raise WorkbenchError(f"stimulus {exc.args[0]!r} has no cached features in {path}") from None
    return read_rows(data, index)
