"""The zarr v3 store that caches features, responses and results under content-hashed keys.

An *entry* is a zarr group (``features/<encoder-key>/<layer>``, ``responses/<dataset>/<key>``,
``results/<sweep>/<cell-key>``) whose attrs say whether it is complete, which row blocks are on
disk, a checksum per written block, and its provenance. A block is marked done only after its
chunks are written, and an entry is marked complete only after every block is, so an interrupted
write leaves an incomplete entry that ``verify`` reports and a rerun finishes without redoing the
blocks already on disk. Only the process that holds the writer creates arrays or edits attrs.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import resource
import socket
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import zarr

from workbench.types import Recording, Units, WorkbenchError, as_str_array

DEFAULT_STORE = "stores/default.zarr"
META = "workbench"
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")
_RESERVED = {"zarr.json"}
TARGET_CHUNK_BYTES = 4 * 2**20
STALE_WRITER_S = 6 * 3600.0


def check_key(path: str) -> str:
    """Validate an entry path: '/'-separated names of letters, digits, '_', '.', '-'; no '..'."""
    if not isinstance(path, str) or not path.strip("/"):
        raise WorkbenchError("store keys must be non-empty paths such as 'features/clip-1a2b/layer3'")
    parts = path.strip("/").split("/")
    for part in parts:
        if part in ("", ".", "..") or not _SEGMENT.match(part):
            raise WorkbenchError(
                f"invalid store key {path!r}: segment {part!r} must be letters, digits, '_', '.' or '-' "
                "and may not be empty, '.' or '..'"
            )
        if part.lower() in _RESERVED or part.startswith("__"):
            raise WorkbenchError(f"invalid store key {path!r}: {part!r} is a name zarr reserves; rename it")
    return "/".join(parts)


def safe_name(name: str) -> str:
    """Turn an arbitrary label (a layer name, a subject) into a valid key segment, reversibly enough."""
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name)).strip(".") or "_"
    if cleaned != name:
        cleaned = f"{cleaned[:180]}-{hashlib.sha256(str(name).encode()).hexdigest()[:6]}"
    return cleaned


def suggest_block_rows(row_bytes: int, n_rows: int, target_bytes: int = TARGET_CHUNK_BYTES) -> int:
    """Rows per chunk so that one chunk is about ``target_bytes`` (1–16 MiB for wide arrays)."""
    rows = max(1, target_bytes // max(1, row_bytes))
    return int(min(max(rows, 1), max(n_rows, 1)))


def block_digest(data: np.ndarray) -> str:
    """Checksum of an array's values; strings are hashed as UTF-8 text, whatever their numpy dtype."""
    data = np.asarray(data)
    h = hashlib.blake2b(digest_size=16)
    if data.dtype.kind in "OTUS":
        for value in as_str_array(data).ravel().tolist():
            encoded = value.encode("utf-8", "surrogatepass")
            h.update(len(encoded).to_bytes(8, "little") + encoded)
    else:
        h.update(np.ascontiguousarray(data).tobytes())
    return h.hexdigest()


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def provenance(config: Mapping[str, Any] | None = None, seed: int | None = None,
               started: float | None = None, **extra: Any) -> dict[str, Any]:
    """Everything needed to say how a result was made: config, versions, seed, time, peak memory."""
    packages = ["brain-workbench", "numpy", "scipy", "zarr", "torch", "scikit-learn", "open_clip_torch",
                "transformers"]
    out: dict[str, Any] = {
        "config": dict(config or {}),
        "versions": {p: v for p in packages if (v := _version(p))} | {"python": platform.python_version()},
        "seed": seed,
        "host": socket.gethostname(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if started is not None:
        out["wall_time_s"] = round(time.time() - started, 3)
    out.update(extra)
    return out


@dataclass
class ArraySpec:
    """An array of an entry: ``blocked`` arrays are written row block by row block."""

    shape: tuple[int, ...]
    dtype: str
    blocked: bool = True

    def row_bytes(self) -> int:
        per_row = int(np.prod(self.shape[1:])) if len(self.shape) > 1 else 1
        return per_row * (np.dtype(self.dtype).itemsize if self.dtype != "str" else 32)


@dataclass
class Problem:
    path: str
    status: str  # incomplete | corrupt
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "status": self.status, "detail": self.detail}


@dataclass
class EntryInfo:
    path: str
    kind: str
    complete: bool
    blocks_done: int
    n_blocks: int
    attrs: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "complete": self.complete,
                "blocks_done": self.blocks_done, "n_blocks": self.n_blocks}


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, killed but not yet reaped, does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _writer_alive(writer: Mapping[str, Any] | None, stale_after_s: float = STALE_WRITER_S) -> bool:
    """Whether the writer recorded in an entry may still be writing it.

    On this host that is whether its process lives; for another host (a cluster node) we cannot
    tell, so a writer that reported progress less than ``stale_after_s`` ago counts as alive.
    """
    if not writer:
        return False
    pid = int(writer.get("pid", -1))
    if writer.get("host") == socket.gethostname():
        return _pid_alive(pid)
    last = float(writer.get("updated") or writer.get("started") or 0.0)
    return time.time() - last < stale_after_s


class Store:
    """A zarr v3 group (local path or any fsspec URL) holding workbench entries."""

    def __init__(self, url: str | os.PathLike[str] = DEFAULT_STORE, create: bool = True) -> None:
        self.url = str(url)
        local = "://" not in self.url
        if local:
            self.url = str(Path(self.url).expanduser())
            if not create and not Path(self.url).exists():
                raise WorkbenchError(f"there is no store at {self.url!r}; check the --store path or $WORKBENCH_STORE")
            if create:
                Path(self.url).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.root = zarr.open_group(store=self.url, mode="a" if create else "r+", zarr_format=3)
        except Exception as exc:
            raise WorkbenchError(f"cannot open store {self.url!r}: {type(exc).__name__}: {exc}; "
                                 "pass a writable zarr v3 path or URL with --store") from exc

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # ---- entries ---------------------------------------------------------------------------
    def _group(self, path: str) -> zarr.Group | None:
        path = check_key(path)
        try:
            node = self.root[path]
        except (KeyError, FileNotFoundError):
            return None
        return node if isinstance(node, zarr.Group) else None

    def meta(self, path: str) -> dict[str, Any] | None:
        group = self._group(path)
        if group is None:
            return None
        meta = group.attrs.get(META)
        return dict(meta) if isinstance(meta, dict) and meta.get("entry") else None

    def is_complete(self, path: str) -> bool:
        meta = self.meta(path)
        return bool(meta and meta.get("complete"))

    def writer(self, path: str, arrays: Mapping[str, ArraySpec], kind: str,
               attrs: Mapping[str, Any] | None = None, block_rows: int | None = None) -> "EntryWriter":
        """Open an entry for writing, resuming it when an incomplete one with the same shape exists."""
        return EntryWriter(self, check_key(path), dict(arrays), kind, dict(attrs or {}), block_rows)

    def open(self, path: str, require_complete: bool = True) -> "EntryReader":
        path = check_key(path)
        meta = self.meta(path)
        if meta is None:
            raise WorkbenchError(f"store {self.url} has no entry {path!r}; see `workbench store ls`")
        if require_complete and not meta.get("complete"):
            raise WorkbenchError(f"entry {path!r} in {self.url} is incomplete; rerun the job that writes it "
                                 "or remove it with `workbench store gc`")
        return EntryReader(self, path)

    def delete(self, path: str) -> None:
        path = check_key(path)
        if self._group(path) is not None:
            del self.root[path]

    def iter_entries(self, prefix: str | None = None) -> Iterator[EntryInfo]:
        """Every entry below ``prefix`` (depth-first), complete or not."""
        start = self.root if prefix is None else self._group(prefix)
        if start is None:
            return
        base = "" if prefix is None else check_key(prefix) + "/"
        stack: list[tuple[str, zarr.Group]] = [(base.rstrip("/"), start)]
        while stack:
            path, group = stack.pop()
            meta = group.attrs.get(META)
            if path and isinstance(meta, dict) and meta.get("entry"):
                blocks = meta.get("blocks", {})
                yield EntryInfo(path, meta.get("kind", ""), bool(meta.get("complete")),
                                len(blocks.get("done", [])), int(blocks.get("n", 0)), dict(group.attrs))
                continue
            children = sorted(group.group_keys(), reverse=True)
            for name in children:
                stack.append((f"{path}/{name}" if path else name, group[name]))

    def ls(self, prefix: str | None = None) -> list[EntryInfo]:
        return list(self.iter_entries(prefix))

    def verify(self, prefix: str | None = None, checksums: bool = True) -> list[Problem]:
        """Find incomplete entries and complete entries whose blocks no longer match their checksums."""
        problems: list[Problem] = []
        for info in self.iter_entries(prefix):
            meta = info.attrs[META]
            if not info.complete:
                problems.append(Problem(info.path, "incomplete",
                                        f"{info.blocks_done}/{info.n_blocks} blocks written"))
                continue
            if checksums:
                detail = self._check_entry(info.path, meta)
                if detail:
                    problems.append(Problem(info.path, "corrupt", detail))
        return problems

    def _check_entry(self, path: str, meta: dict[str, Any]) -> str | None:
        group = self._group(path)
        assert group is not None
        rows = int(meta.get("blocks", {}).get("rows", 1))
        for name, sums in meta.get("checksums", {}).items():
            try:
                array = group[name]
            except KeyError:
                return f"array {name!r} is missing"
            for block, expected in sums.items():
                try:
                    if block == "all":
                        data = array[...]
                    else:
                        b = int(block)
                        data = array[b * rows: (b + 1) * rows]
                except Exception as exc:  # undecodable chunk
                    return f"array {name!r} block {block} cannot be read: {type(exc).__name__}: {exc}"
                if block_digest(np.asarray(data)) != expected:
                    return f"array {name!r} block {block} does not match its checksum"
        return None

    def gc(self, dry_run: bool = False, stale_after_s: float = STALE_WRITER_S) -> list[str]:
        """Remove incomplete entries that no live process is writing; return their paths.

        A writer on another host counts as live until it has been silent for ``stale_after_s``.
        """
        removed = []
        for info in list(self.iter_entries()):
            if info.complete or _writer_alive(info.attrs[META].get("writer"), stale_after_s):
                continue
            removed.append(info.path)
            if not dry_run:
                self.delete(info.path)
        return removed

    # ---- recordings ------------------------------------------------------------------------
    def save_recording(self, path: str, recording: Recording, attrs: Mapping[str, Any] | None = None) -> None:
        """Cache a recording (responses chunked by units for fast per-ROI reads, plus unit metadata)."""
        r = recording
        n_trials = r.responses.shape[0]
        unit_cols = suggest_block_rows(n_trials * 4 * (r.responses.shape[2] if r.responses.ndim == 3 else 1),
                                       r.units.n)
        arrays: dict[str, tuple[np.ndarray, tuple[int, ...] | None]] = {
            "responses": (r.responses.astype(np.float32), (n_trials, unit_cols) + r.responses.shape[2:]),
            "trial_stimulus_ids": (as_str_array(r.trial_stimulus_ids), None),
        }
        if r.noise_ceiling is not None:
            arrays["noise_ceiling"] = (np.asarray(r.noise_ceiling, dtype=np.float32), None)
        if r.times is not None:
            arrays["times"] = (np.asarray(r.times, dtype=np.float64), None)
        for attr in ("hemisphere", "vertex", "ijk", "names", "coords"):
            value = getattr(r.units, attr)
            if value is not None:
                value = np.asarray(value)
                arrays[f"units_{attr}"] = (as_str_array(value) if value.dtype.kind in "OUST" else value, None)
        for name, mask in r.units.rois.items():
            arrays[f"roi_{safe_name(name)}"] = (mask.astype(bool), None)
        for name, ids in r.splits.items():
            arrays[f"split_{safe_name(name)}"] = (as_str_array(ids), None)
        for name, labels in r.trial_groups.items():
            arrays[f"group_{safe_name(name)}"] = (as_str_array(labels), None)
        specs = {k: ArraySpec(v.shape, "str" if v.dtype.kind in "OUT" else str(v.dtype), blocked=False)
                 for k, (v, _) in arrays.items()}
        meta = {
            "dataset": r.dataset, "subject": r.subject, "space": r.units.space, "shape": list(r.units.shape or []),
            "affine": None if r.units.affine is None else np.asarray(r.units.affine).tolist(),
            "rois": {safe_name(k): k for k in r.units.rois}, "splits": {safe_name(k): k for k in r.splits},
            "trial_groups": {safe_name(k): k for k in r.trial_groups},
            "preprocessing": r.preprocessing,
        }
        with self.writer(path, specs, kind="responses", attrs={**dict(attrs or {}), "recording": meta}) as w:
            for name, (value, chunks) in arrays.items():
                w.put(name, value, chunks=chunks)
            w.finish()

    def load_recording(self, path: str) -> Recording:
        """Read back a recording cached by ``save_recording`` (ROI and split order included)."""
        reader = self.open(path)
        meta = reader.attrs.get("recording")
        if not isinstance(meta, dict):
            raise WorkbenchError(f"entry {path!r} in {self.url} is not a cached recording")
        keys = set(reader.names())
        units = Units(
            space=meta["space"], n=reader.array("responses").shape[1],
            rois={name: reader[f"roi_{key}"].astype(bool) for key, name in meta["rois"].items()},
            shape=tuple(meta["shape"]) or None,
            affine=None if meta["affine"] is None else np.asarray(meta["affine"]),
            **{a: reader[f"units_{a}"] for a in ("hemisphere", "vertex", "ijk", "names", "coords")
               if f"units_{a}" in keys},
        )
        return Recording(
            dataset=meta["dataset"], subject=meta["subject"], responses=reader["responses"],
            trial_stimulus_ids=reader["trial_stimulus_ids"], units=units,
            splits={name: reader[f"split_{key}"] for key, name in meta["splits"].items()},
            times=reader["times"] if "times" in keys else None,
            noise_ceiling=reader["noise_ceiling"] if "noise_ceiling" in keys else None,
            preprocessing=list(meta["preprocessing"]),
            trial_groups={name: reader[f"group_{key}"] for key, name in meta.get("trial_groups", {}).items()},
        )


class EntryReader:
    """Read access to a complete entry."""

    def __init__(self, store: Store, path: str) -> None:
        self.store, self.path = store, path
        self.group = store.root[path]
        self.attrs = dict(self.group.attrs)
        self.meta = dict(self.attrs[META])

    def __getitem__(self, name: str) -> np.ndarray:
        """The whole array ``name``; strings come back as a fixed-width unicode array."""
        try:
            node = self.group[name]
        except KeyError:
            raise WorkbenchError(f"entry {self.path!r} has no array {name!r}; it has {', '.join(self.names())}") from None
        data = np.asarray(node[...])
        return as_str_array(data) if data.dtype.kind in "OT" else data

    def array(self, name: str) -> zarr.Array:
        return self.group[name]

    def names(self) -> list[str]:
        return sorted(self.group.array_keys())


class EntryWriter:
    """Writes one entry block by block; use as a context manager and call ``finish()`` at the end.

    Leaving the ``with`` block without ``finish()`` (an exception, Ctrl-C) leaves the entry
    incomplete with its finished blocks recorded, ready to resume.
    """

    def __init__(self, store: Store, path: str, arrays: dict[str, ArraySpec], kind: str,
                 attrs: dict[str, Any], block_rows: int | None) -> None:
        self.store, self.path, self.specs, self.kind = store, path, arrays, kind
        self.started = time.time()
        blocked = [s for s in arrays.values() if s.blocked]
        n_rows = {s.shape[0] for s in blocked}
        if len(n_rows) > 1:
            raise WorkbenchError(f"blocked arrays of entry {path!r} must share their first dimension")
        self.n_rows = n_rows.pop() if n_rows else 0
        widest = max((s.row_bytes() for s in blocked), default=1)
        self.block_rows = int(block_rows or suggest_block_rows(widest, self.n_rows))
        self.n_blocks = -(-self.n_rows // self.block_rows) if self.n_rows else 0
        layout = {name: [list(s.shape), s.dtype, s.blocked] for name, s in arrays.items()}
        self._check_location(store, path)
        existing = store.meta(path)
        if existing is not None and existing.get("complete"):
            self.group = store.root[path]
            self.meta = existing
            return
        if existing is not None:
            writer = existing.get("writer") or {}
            pid = int(writer.get("pid", -1))
            if writer.get("host") == socket.gethostname() and pid != os.getpid() and _pid_alive(pid):
                raise WorkbenchError(f"entry {path!r} is being written by process {pid}; wait for it to finish")
            if existing.get("layout") != layout or existing.get("blocks", {}).get("rows") != self.block_rows:
                store.delete(path)  # an incomplete entry of another shape cannot be resumed
                existing = None
        if existing is not None:
            self.group = store.root[path]
            self.meta = existing
        else:
            self.group = store.root.require_group(path)
            self.meta = {"entry": True, "kind": kind, "complete": False, "layout": layout,
                         "blocks": {"n": self.n_blocks, "rows": self.block_rows, "done": []}, "checksums": {}}
        present = set(self.group.array_keys())
        for name, spec in arrays.items():
            if existing is None or name not in present:
                self._create_array(name, spec)
        self.meta["writer"] = {"pid": os.getpid(), "host": socket.gethostname(), "started": self.started,
                               "updated": self.started}
        self.group.attrs.update({**attrs, META: self.meta})

    @staticmethod
    def _check_location(store: Store, path: str) -> None:
        """Entries may not nest: refuse a path inside an entry or above other nodes."""
        parts = path.split("/")
        for i in range(1, len(parts)):
            if store.meta("/".join(parts[:i])) is not None:
                raise WorkbenchError(f"cannot write entry {path!r}: {'/'.join(parts[:i])!r} is already an entry")
        group = store._group(path)
        if group is not None and store.meta(path) is None and any(True for _ in group.group_keys()):
            raise WorkbenchError(f"cannot write entry {path!r}: it already holds other entries; pick a deeper key")

    def _create_array(self, name: str, spec: ArraySpec, chunks: tuple[int, ...] | None = None) -> None:
        if spec.dtype == "str":
            self.group.create_array(name, shape=spec.shape, dtype=str, fill_value="", overwrite=True)
            return
        dtype = np.dtype(spec.dtype)
        fill = np.nan if dtype.kind == "f" else 0
        if chunks is None:
            chunks = (self.block_rows,) + tuple(spec.shape[1:]) if spec.blocked else None
        kwargs = {"chunks": chunks} if chunks is not None else {}
        self.group.create_array(name, shape=spec.shape, dtype=dtype, fill_value=fill, overwrite=True, **kwargs)

    # ---- state -----------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete"))

    def done_blocks(self) -> set[int]:
        return set(self.meta["blocks"]["done"])

    def pending_blocks(self) -> list[int]:
        if self.complete:
            return []
        done = self.done_blocks()
        return [b for b in range(self.n_blocks) if b not in done]

    def block_slice(self, block: int) -> slice:
        return slice(block * self.block_rows, min((block + 1) * self.block_rows, self.n_rows))

    # ---- writes ----------------------------------------------------------------------------
    def write_block(self, block: int, data: Mapping[str, np.ndarray]) -> None:
        """Write row block ``block`` of every blocked array, then record it as done."""
        if self.complete:
            return
        if not isinstance(block, (int, np.integer)) or not 0 <= block < self.n_blocks:
            raise WorkbenchError(f"block {block!r} of {self.path!r} is out of range 0..{self.n_blocks - 1}")
        block = int(block)
        rows = self.block_slice(block)
        expected = {n for n, s in self.specs.items() if s.blocked}
        if set(data) != expected:
            raise WorkbenchError(f"block {block} of {self.path!r} must hold arrays {sorted(expected)}, got {sorted(data)}")
        sums = {}
        for name, value in data.items():
            value = np.asarray(value, dtype=np.dtype(self.specs[name].dtype) if self.specs[name].dtype != "str" else None)
            want = (rows.stop - rows.start,) + tuple(self.specs[name].shape[1:])
            if value.shape != want:
                raise WorkbenchError(f"block {block} of {self.path}/{name} has shape {value.shape}, expected {want}")
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise WorkbenchError(f"block {block} of {self.path}/{name} holds NaN or infinite values; "
                                     "refusing to cache them (check the model or the input data)")
            self.group[name][rows] = value
            sums[name] = block_digest(value)
        for name, s in sums.items():
            self.meta["checksums"].setdefault(name, {})[str(block)] = s
        self.meta["blocks"]["done"] = sorted(self.done_blocks() | {block})
        if self.meta.get("writer"):
            self.meta["writer"]["updated"] = time.time()
        self.group.attrs[META] = self.meta

    def put(self, name: str, value: np.ndarray, chunks: tuple[int, ...] | None = None) -> None:
        """Write a whole non-blocked array (ids, metadata, per-unit scores) in one go."""
        if self.complete:
            return
        spec = self.specs[name]
        value = np.asarray(value)
        if tuple(value.shape) != tuple(spec.shape):
            raise WorkbenchError(f"{self.path}/{name} has shape {value.shape}, expected {spec.shape}")
        if chunks is not None and spec.dtype != "str":
            self._create_array(name, spec, chunks=chunks)
        self.group[name][...] = value
        self.meta["checksums"].setdefault(name, {})["all"] = block_digest(np.asarray(self.group[name][...]))
        self.group.attrs[META] = self.meta

    def finish(self, **provenance_extra: Any) -> None:
        """Mark the entry complete; refuses while blocks or arrays are still missing."""
        if self.complete:
            return
        missing = self.pending_blocks()
        if missing:
            raise WorkbenchError(f"entry {self.path!r} still misses blocks {missing[:5]}")
        unwritten = [n for n, s in self.specs.items() if not s.blocked and n not in self.meta["checksums"]]
        if unwritten:
            raise WorkbenchError(f"entry {self.path!r} still misses arrays {unwritten}")
        self.meta["complete"] = True
        self.meta["writer"] = None
        self.meta["provenance"] = provenance(started=self.started, **provenance_extra)
        self.group.attrs[META] = self.meta

    def __enter__(self) -> "EntryWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.complete and self.group is not None:
            self.meta["writer"] = None
            try:
                self.group.attrs[META] = self.meta
            except Exception:
                pass


def open_store(url: str | os.PathLike[str] | None = None, create: bool = True) -> Store:
    """Open the store at ``url``, ``$WORKBENCH_STORE``, or ``stores/default.zarr``."""
    return Store(url or os.environ.get("WORKBENCH_STORE") or DEFAULT_STORE, create=create)


def cache_store(store: "Store | str | os.PathLike[str] | None", enabled: bool = True) -> "Store | None":
    """The store a dataset plugin caches recordings in (a Store, a URL, or $WORKBENCH_STORE), or None if off."""
    if not enabled:
        return None
    return store if isinstance(store, Store) else open_store(store)


def files_signature(root: Path, paths: Sequence[Path]) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime) of input files: a cache key part that changes when the data on disk do."""
    return [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]


def read_rows(array: zarr.Array, index: Sequence[int] | np.ndarray) -> np.ndarray:
    """Read rows by index (sorted internally so each chunk is read once)."""
    index = np.asarray(index)
    order = np.argsort(index)
    out = np.asarray(array.get_orthogonal_selection((index[order],) + (slice(None),) * (array.ndim - 1)))
    result = np.empty_like(out)
    result[order] = out
    return result


__all__ = [
    "ArraySpec", "cache_store", "check_key", "DEFAULT_STORE", "EntryReader", "EntryWriter", "files_signature",
    "open_store", "Problem", "provenance", "read_rows", "safe_name", "Store", "suggest_block_rows",
]
