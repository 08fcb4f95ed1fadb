"""Feature extraction into the store: each (encoder, stimulus set, layer) is computed once.

Extraction streams in row blocks: one block of stimuli is loaded, encoded in batches, and written
for every requested layer before the next block starts, so memory stays bounded by one block and
an interrupted extraction resumes at the first block not yet on disk. Several layers come from
one forward pass. The first batch doubles as the shape probe (no extra forward pass), and the next
batch of stimuli is loaded in a background thread while the current one is encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from brain_workbench.store import ArraySpec, EntryWriter, Store, suggest_block_rows
from brain_workbench.store.paths import encoder_key, feature_path
from brain_workbench.types import Encoder, StimulusSet, WorkbenchError, resolve_layers

Progress = Callable[[int], None]






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
        if value.dtype.kind not in "fiub":
            raise WorkbenchError(f"encoder {encoder.name!r} layer {layer!r} returned {value.dtype} values, not numbers")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise WorkbenchError(
                f"encoder {encoder.name!r} layer {layer!r} returned NaN or infinite features; refusing to cache "
                "them (check the model weights, its precision option or the input stimuli)"
            )
        result[layer] = value
    return result


def _existing_layout(meta: Mapping[str, Any] | None, n: int, dtype: str) -> tuple[int, int] | None:
    """(width, block rows) of a resumable incomplete feature entry, or None."""
    if not meta or meta.get("complete"):
        return None
    try:
        shape, stored_dtype, _ = meta["layout"]["data"]
        rows = int(meta["blocks"]["rows"])
    except (KeyError, TypeError, ValueError):
        return None
    if len(shape) != 2 or int(shape[0]) != n or stored_dtype != dtype:
        return None
    return int(shape[1]), rows


def _prefetched(loader: Callable[[Sequence[str]], list], batches: Sequence[Sequence[str]]) -> Generator[list, None, None]:
    """Yield ``loader(ids)`` for each batch while the next batch loads in a background thread."""
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="workbench-load") as pool:
        pending: Future = pool.submit(loader, batches[0])
        for i in range(len(batches)):
            current = pending.result()
            if i + 1 < len(batches):
                pending = pool.submit(loader, batches[i + 1])
            yield current


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
    if batch_size < 1:
        raise WorkbenchError(f"batch_size must be at least 1, got {batch_size}")
    names = resolve_layers(encoder.layers(), layers)
    key = encoder_key(encoder, stimuli)
    paths = {layer: feature_path(key, layer) for layer in names}
    todo = [layer for layer in names if not store.is_complete(paths[layer])]
    if not todo:
        return paths
    n = len(stimuli)
    if n == 0:
        raise WorkbenchError("the stimulus set is empty; there is nothing to extract")

    known = {layer: _existing_layout(store.meta(paths[layer]), n, dtype) for layer in todo}
    widths = {layer: lay[0] for layer, lay in known.items() if lay is not None}
    block_rows = next((lay[1] for lay in known.values() if lay is not None), None)
    first: dict[str, np.ndarray] | None = None
    if len(widths) < len(todo):
        first = encode_checked(encoder, stimuli.get(stimuli.ids[:batch_size]), todo)
        widths.update({layer: first[layer].shape[1] for layer in todo if layer not in widths})
    if block_rows is None:
        block_rows = suggest_block_rows(max(widths.values()) * np.dtype(dtype).itemsize, n)

    attrs = {"encoder": encoder.name, "fingerprint": encoder.fingerprint(), "stimuli": stimuli.digest,
             "modality": stimuli.modality, "n_stimuli": n}
    writers: dict[str, EntryWriter] = {}
    try:
        for layer in todo:
            specs = {"data": ArraySpec((n, widths[layer]), dtype), "stimulus_ids": ArraySpec((n,), "str", blocked=False)}
            w = store.writer(paths[layer], specs, kind="features", attrs={**attrs, "layer": layer}, block_rows=block_rows)
            w.put("stimulus_ids", np.asarray(stimuli.ids, dtype=str))
            writers[layer] = w
        some = writers[todo[0]]
        pending_by_layer = {layer: set(w.pending_blocks()) for layer, w in writers.items()}
        pending = sorted(set().union(*pending_by_layer.values()))
        if progress is not None:
            skipped = n - sum(some.block_slice(b).stop - some.block_slice(b).start for b in pending)
            if skipped:
                progress(skipped)

        plan: list[tuple[int, int, list[str]]] = []
        for block in pending:
            rows = some.block_slice(block)
            plan.extend((block, start, [layer for layer in todo if block in pending_by_layer[layer]])
                        for start in range(rows.start, rows.stop, batch_size))
        ends = {block: some.block_slice(block).stop for block in pending}
        batch_ids = [stimuli.ids[start:min(start + batch_size, ends[block])] for block, start, _ in plan]
        reuse_first = first is not None and bool(plan) and plan[0][1] == 0
        loads = _prefetched(stimuli.get, batch_ids[1:] if reuse_first else batch_ids)
        chunks: dict[str, list[np.ndarray]] = {}
        try:
            for i, (block, _start, block_layers) in enumerate(plan):
                ids = batch_ids[i]
                if i == 0 and reuse_first:
                    assert first is not None
                    out = {layer: first[layer][: len(ids)] for layer in block_layers}
                else:
                    out = encode_checked(encoder, next(loads), block_layers)
                for layer in block_layers:
                    chunks.setdefault(layer, []).append(out[layer])
                if progress is not None:
                    progress(len(ids))
                if i + 1 == len(plan) or plan[i + 1][0] != block:
                    for layer in block_layers:
                        data = np.concatenate(chunks.pop(layer)).astype(dtype, copy=False)
                        writers[layer].write_block(block, {"data": data})
        finally:
            loads.close()
        for layer in todo:
            writers[layer].finish(config={"encoder": encoder.name, "layer": layer, "batch_size": batch_size})
    finally:
        for w in writers.values():
            w.__exit__(None, None, None)
    return paths


def load_features(store: Store, path: str, ids: Sequence[str] | None = None, verify: bool = True) -> np.ndarray:
    """Read a cached feature matrix, optionally rows for ``ids`` in that order.

    Every block read is checked against the checksum recorded when it was written (``verify``), so
    features changed on disk are refused with a CorruptEntryError instead of being fitted.
    """
    entry = store.open(path, verify=verify)
    if ids is None:
        return entry["data"]
    stored = entry["stimulus_ids"].astype(str)
    position = {s: i for i, s in enumerate(stored)}
    try:
        index = np.array([position[s] for s in ids], dtype=np.int64)
    except KeyError as exc:
        raise WorkbenchError(f"stimulus {exc.args[0]!r} has no cached features in {path}") from None
    return entry.rows("data", index)
