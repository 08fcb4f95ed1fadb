"""Generic store entries: keys, resumable block writes, reads checked against checksums, verify, gc, repair.

An *entry* is a zarr group (``features/<encoder-key>/<layer>``, ``responses/<dataset>/<key>``,
``results/<sweep>/<cell-key>``) whose attrs say whether it is complete, which row blocks are on
disk, a checksum per written block or array, and its provenance. A block is marked done only after
its chunks are written, and an entry is marked complete only after every block is, so an
interrupted write leaves an incomplete entry that ``verify`` reports and a rerun finishes without
redoing the blocks already on disk. Only the process that holds the writer creates arrays or edits
attrs. Every read of a complete entry is checked against the recorded checksums, so data changed
on disk after they were written are refused rather than used; ``repair`` removes such entries (and
entries whose ``zarr.json`` is missing or unreadable) so that a rerun recomputes exactly them.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import platform
import re
import resource
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from brain_workbench.types import WorkbenchError, as_str_array

if TYPE_CHECKING:
    pass

DEFAULT_STORE = "stores/default.zarr"
META = "workbench"
NODE_FILE = "zarr.json"
StoreMode = Literal["r", "r+", "a"]
MODES: tuple[StoreMode, ...] = ("r", "r+", "a")
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")
_RESERVED = {"zarr.json"}
TARGET_CHUNK_BYTES = 4 * 2**20
STALE_WRITER_S = 6 * 3600.0
_IN_FLIGHT = re.compile(r"^zarr\.[0-9a-f]{32}\.partial$")  # zarr writing a node's zarr.json: not yet a node
_EMPTY_GROUP = b'{"zarr_format": 3, "node_type": "group", "attributes": {}}'


class DamagedEntryError(WorkbenchError):
    """A node's ``zarr.json`` is missing or unreadable, so the store cannot say what it holds."""

    path: str = ""
    how: str = ""


class CorruptEntryError(WorkbenchError):
    """A complete entry's data no longer match the checksums recorded when they were written."""

    path: str = ""


def _damaged(store: Store, path: str, how: str, group: bool = False) -> DamagedEntryError:
    fix = "rebuild it" if group else "remove it (a rerun then recomputes it)"
    err = DamagedEntryError(f"store node {path or '/'!r} is damaged: {store.node_file(path)} {how}; run "
                            f"`workbench store repair --store {store.url}` to {fix}")
    err.path, err.how = path, how
    return err


def _corrupt(store: Store, path: str, detail: str) -> CorruptEntryError:
    err = CorruptEntryError(f"entry {path!r} in {store.url} is corrupt: {detail}, so it was not used; run "
                            f"`workbench store repair --store {store.url}` to remove it and rerun to recompute it")
    err.path = path
    return err


@contextmanager
def disk_full_named(where: str) -> Iterator[None]:
    """Turn a full disk or exhausted quota while writing ``where`` into one sentence naming it.

    The ``OSError`` a failed ``write`` raises names no file, so without this a full disk reads as
    ``[Errno 28] No space left on device`` with no hint of which store filled up.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise WorkbenchError(f"no space left on the disk holding {where} ({os.strerror(exc.errno)}); free space "
                             "or pass another --store; finished entries and blocks are kept and a rerun resumes"
                             ) from exc


def _as_group(node: zarr.Array | zarr.Group, path: str) -> zarr.Group:
    """``node`` (a child of a zarr group) as the group that ``path`` must be."""
    if not isinstance(node, zarr.Group):
        raise WorkbenchError(f"{path!r} is a zarr array where a group was expected")
    return node


def _as_array(node: zarr.Array | zarr.Group, path: str) -> zarr.Array:
    """``node`` (a child of a zarr group) as the array that ``path`` must be."""
    if not isinstance(node, zarr.Array):
        raise WorkbenchError(f"{path!r} is a zarr group where an array was expected")
    return node


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


def attrs_digest(attrs: Mapping[str, Any]) -> str:
    """Checksum of an entry's attributes (scores, ROI rows, task; everything but the store's own bookkeeping),
    as their canonical JSON, so a changed digit in ``zarr.json`` is found like a changed block."""
    public = {k: v for k, v in attrs.items() if k != META}
    text = json.dumps(public, sort_keys=True, default=str, allow_nan=True)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def block_digest(data: np.ndarray) -> str:
    """Checksum of an array's values; strings are hashed as UTF-8 text, whatever their numpy dtype."""
    data = np.asarray(data)
    h = hashlib.blake2b(digest_size=16)
    if data.dtype.kind in "OTUS":
        for value in as_str_array(data).ravel().tolist():
            encoded = value.encode("utf-8", "surrogatepass")
            h.update(len(encoded).to_bytes(8, "little") + encoded)
    else:
        h.update(np.ascontiguousarray(data).data)
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
    status: str  # incomplete | corrupt | damaged
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
    damage: str | None = None  # why the node's zarr.json cannot be used (then kind is "group" or "")

    @property
    def state(self) -> str:
        return "damaged" if self.damage else "complete" if self.complete else "incomplete"

    def as_json(self) -> dict[str, Any]:
        out = {"path": self.path, "kind": self.kind, "complete": self.complete, "state": self.state,
               "blocks_done": self.blocks_done, "n_blocks": self.n_blocks}
        if self.damage:
            out["damage"] = self.damage
        return out


# ---- who is writing an entry ----------------------------------------------------------------------
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


def _pid_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux), which tells a reused pid apart."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        return int(fields[19])  # field 22, starttime; the fields after the name start at field 3
    except (OSError, IndexError, ValueError):
        return None


@lru_cache(maxsize=1)
def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def writer_identity() -> dict[str, Any]:
    """How an entry records its writer: pid, host, and (Linux) the pid's start time and the boot id."""
    pid = os.getpid()
    now = time.time()
    return {"pid": pid, "host": socket.gethostname(), "pid_start": _pid_start(pid), "boot": _boot_id(),
            "started": now, "updated": now}


def writer_alive(writer: Mapping[str, Any] | None, stale_after_s: float = STALE_WRITER_S) -> bool:
    """Whether the writer recorded in an entry may still be writing it.

    On this host: its process lives and is the same process (same boot, same start time; a writer
    recorded without a start time counts only while its heartbeat is younger than ``stale_after_s``).
    On another host (a cluster node) we cannot look, so a writer whose heartbeat is younger than
    ``stale_after_s`` counts as alive.
    """
    if not writer:
        return False
    last = float(writer.get("updated") or writer.get("started") or 0.0)
    fresh = time.time() - last < stale_after_s
    if writer.get("host") != socket.gethostname():
        return fresh
    pid = int(writer.get("pid", -1))
    if not _pid_alive(pid):
        return False
    boot, start = writer.get("boot"), writer.get("pid_start")
    if boot is not None and _boot_id() is not None and boot != _boot_id():
        return False
    now_start = _pid_start(pid)
    if start is not None and now_start is not None:
        return int(start) == now_start
    return fresh


def describe_writer(writer: Mapping[str, Any]) -> str:
    age = time.time() - float(writer.get("updated") or writer.get("started") or 0.0)
    return (f"process {writer.get('pid')} on {writer.get('host')} (last progress {age / 60:.0f} min ago)")


# ---- the store ----------------------------------------------------------------------------------
class Store:
    """A zarr v3 group (local path or any fsspec URL) holding workbench entries.

    ``mode`` is ``"a"`` (read and write, creating the store if needed), ``"r+"`` (an existing store,
    read and write) or ``"r"`` (an existing store, read only: nothing is ever written).
    ``create=False`` is the older spelling of ``mode="r+"``.
    """

    def __init__(self, url: str | os.PathLike[str] = DEFAULT_STORE, create: bool = True,
                 mode: str | None = None) -> None:
        mode = mode or ("a" if create else "r+")
        if mode not in MODES:
            raise WorkbenchError(f"unknown store mode {mode!r}; use 'r' (read), 'r+' (existing) or 'a' (create)")
        self.url, self.mode = str(url), mode
        if "://" not in self.url:
            self.url = str(Path(self.url).expanduser())
            self._check_local_root(Path(self.url))
        elif mode != "a":
            self._check_remote_root()
        try:
            self.root = zarr.open_group(store=self.url, mode=mode, zarr_format=3)
        except Exception as exc:
            raise WorkbenchError(f"cannot open store {self.url!r}: {type(exc).__name__}: {exc}; "
                                 "pass a writable zarr v3 path or URL with --store") from exc

    def _check_local_root(self, path: Path) -> None:
        """Refuse a missing store (unless creating), a file, a folder that is not a store, a damaged root."""
        hint = "check the --store path or $WORKBENCH_STORE"
        if not path.exists():
            if self.mode != "a":
                raise WorkbenchError(f"there is no store at {self.url!r}; {hint}")
            path.parent.mkdir(parents=True, exist_ok=True)
            return
        if not path.is_dir():
            raise WorkbenchError(f"{self.url!r} is a file, not a zarr store folder; {hint}")
        node = path / NODE_FILE
        if not node.exists():
            if self.mode == "a" and not any(path.iterdir()):
                return
            raise WorkbenchError(f"{self.url!r} is a folder but not a zarr store (it has no {NODE_FILE}); {hint}")
        try:
            doc = json.loads(node.read_bytes())
            if not isinstance(doc, dict) or doc.get("node_type") != "group":
                raise ValueError("not a zarr group document")
        except ValueError as exc:
            raise WorkbenchError(f"the store's root file {node} is unreadable ({type(exc).__name__}: {exc}); "
                                 "restore it, or write an empty group document there "
                                 f"({_EMPTY_GROUP.decode()}) to keep the entries") from None

    def _check_remote_root(self) -> None:
        import fsspec

        try:
            fs, target = fsspec.core.url_to_fs(self.url)
            exists = fs.exists(f"{target.rstrip('/')}/{NODE_FILE}")
        except Exception as exc:
            raise WorkbenchError(f"cannot reach store {self.url!r}: {type(exc).__name__}: {exc}") from None
        if not exists:
            raise WorkbenchError(f"there is no store at {self.url!r}; check the --store URL or $WORKBENCH_STORE")

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @property
    def read_only(self) -> bool:
        return self.mode == "r"

    def _require_writable(self, what: str) -> None:
        if self.read_only:
            raise WorkbenchError(f"cannot {what}: store {self.url} was opened read-only; open it with mode='a'")

    # ---- raw nodes (read directly, so a damaged zarr.json is named instead of crashing zarr) ------
    def _key(self, path: str, name: str = "") -> str:
        return "/".join(p for p in (self.root.path, path, name) if p)

    def node_file(self, path: str) -> str:
        """Where the ``zarr.json`` of node ``path`` lives, for messages."""
        return f"{self.url.rstrip('/')}/{path + '/' if path else ''}{NODE_FILE}"

    def _children(self, path: str) -> list[str]:
        async def collect() -> list[str]:
            return [name async for name in self.root.store.list_dir(self._key(path))]

        return sorted(name for name in sync(collect()) if name != NODE_FILE and not _IN_FLIGHT.match(name))

    def _node(self, path: str) -> dict[str, Any] | None:
        """The parsed ``zarr.json`` of ``path``; None when absent; DamagedEntryError when unreadable."""
        buf = sync(self.root.store.get(self._key(path, NODE_FILE), prototype=default_buffer_prototype()))
        if buf is None:
            return None
        try:
            doc = json.loads(buf.to_bytes())
            if not isinstance(doc, dict) or doc.get("node_type") not in ("group", "array"):
                raise ValueError("it is not a zarr v3 group or array document")
        except ValueError as exc:
            raise _damaged(self, path, f"is unreadable ({type(exc).__name__}: {exc})") from None
        return doc

    def _damaged_is_group(self, path: str) -> bool:
        """Whether a node without a usable zarr.json was a plain group (it holds nodes but no arrays)."""
        inside = self._children(path)
        return bool(inside) and not any(self._is_array(f"{path}/{name}") for name in inside)

    def _is_array(self, path: str) -> bool:
        try:
            doc = self._node(path)
        except DamagedEntryError:
            doc = None
        return (doc or {}).get("node_type") == "array" or "c" in self._children(path)

    # ---- entries ---------------------------------------------------------------------------
    def group(self, path: str) -> zarr.Group | None:
        path = check_key(path)
        doc = self._node(path)
        if doc is None or doc.get("node_type") != "group":
            return None
        return _as_group(self.root[path], path)

    def attrs(self, path: str) -> dict[str, Any] | None:
        """All attrs of entry ``path``, or None when there is no entry there.

        A node that exists but lost its ``zarr.json`` (or holds an unreadable one) raises a
        DamagedEntryError naming the file, so it is never taken for a missing entry and recomputed.
        """
        path = check_key(path)
        try:
            doc, how = self._node(path), "is missing"
        except DamagedEntryError as exc:
            doc, how = None, exc.how
        if doc is None:
            if how != "is missing" or self._children(path):
                raise _damaged(self, path, how, group=self._damaged_is_group(path))
            return None
        attrs = doc.get("attributes") or {}
        meta = attrs.get(META) if doc.get("node_type") == "group" else None
        return dict(attrs) if isinstance(meta, dict) and meta.get("entry") else None

    def meta(self, path: str) -> dict[str, Any] | None:
        attrs = self.attrs(path)
        return None if attrs is None else dict(attrs[META])

    def is_complete(self, path: str) -> bool:
        meta = self.meta(path)
        return bool(meta and meta.get("complete"))

    def writer(self, path: str, arrays: Mapping[str, ArraySpec], kind: str,
               attrs: Mapping[str, Any] | None = None, block_rows: int | None = None,
               force: bool = False) -> EntryWriter:
        """Open an entry for writing, resuming it when an incomplete one with the same shape exists.

        ``force=True`` takes over an incomplete entry even when its recorded writer seems alive.
        """
        self._require_writable(f"write entry {path!r}")
        return EntryWriter(self, check_key(path), dict(arrays), kind, dict(attrs or {}), block_rows, force)

    def open(self, path: str, require_complete: bool = True, verify: bool = True) -> EntryReader:
        """Read access to an entry; with ``verify`` every read is checked against its checksums."""
        path = check_key(path)
        attrs = self.attrs(path)
        if attrs is None:
            raise WorkbenchError(f"store {self.url} has no entry {path!r}; see `workbench store ls`")
        if require_complete and not attrs[META].get("complete"):
            raise WorkbenchError(f"entry {path!r} in {self.url} is incomplete; rerun the job that writes it "
                                 "or remove it with `workbench store gc`")
        return EntryReader(self, path, attrs, verify=verify)

    def delete(self, path: str) -> None:
        path = check_key(path)
        self._require_writable(f"delete {path!r}")
        sync(self.root.store.delete_dir(self._key(path)))

    def iter_entries(self, prefix: str | None = None, damaged: bool = False) -> Iterator[EntryInfo]:
        """Every entry below ``prefix`` (depth-first, in name order), complete or not.

        A node whose ``zarr.json`` is missing or unreadable raises a DamagedEntryError naming the
        file, or with ``damaged=True`` is yielded with ``damage`` set: as kind ``"group"`` when it
        holds other nodes (its children are listed too), else as a damaged entry.
        """
        if prefix is None:
            yield from self._walk("", damaged)
            return
        base = check_key(prefix)
        try:
            doc, how = self._node(base), "is missing"
        except DamagedEntryError as exc:
            doc, how = None, exc.how
        if doc is None:
            if how != "is missing" or self._children(base):
                yield from self._damaged_node(base, how, damaged)
            return
        if doc.get("node_type") == "group":
            info = self._entry_info(base, doc)
            yield from [info] if info is not None else self._walk(base, damaged)

    def _entry_info(self, path: str, doc: dict[str, Any]) -> EntryInfo | None:
        attrs = doc.get("attributes") or {}
        meta = attrs.get(META)
        if not (isinstance(meta, dict) and meta.get("entry")):
            return None
        blocks = meta.get("blocks", {})
        return EntryInfo(path, meta.get("kind", ""), bool(meta.get("complete")), len(blocks.get("done", [])),
                         int(blocks.get("n", 0)), dict(attrs))

    def _walk(self, path: str, damaged: bool) -> Iterator[EntryInfo]:
        for name in self._children(path):
            child = f"{path}/{name}" if path else name
            try:
                doc, how = self._node(child), "is missing"
            except DamagedEntryError as exc:
                doc, how = None, exc.how
            if doc is not None:
                if doc.get("node_type") != "group":
                    continue  # an array outside any entry is not a workbench node
                info = self._entry_info(child, doc)
                if info is not None:
                    yield info
                else:
                    yield from self._walk(child, damaged)
                continue
            if how == "is missing" and not self._children(child):
                continue  # a plain file or an empty folder, not a node
            yield from self._damaged_node(child, how, damaged)

    def _damaged_node(self, path: str, how: str, damaged: bool) -> Iterator[EntryInfo]:
        """A node without a usable zarr.json: an entry if it holds arrays (or nothing), else a group."""
        group = self._damaged_is_group(path)
        if not damaged:
            raise _damaged(self, path, how, group=group)
        yield EntryInfo(path, "group" if group else "", False, 0, 0, {}, damage=f"{self.node_file(path)} {how}")
        if group:
            yield from self._walk(path, damaged)

    def ls(self, prefix: str | None = None, damaged: bool = True) -> list[EntryInfo]:
        """Entries below ``prefix``; damaged nodes are listed (state ``damaged``) unless ``damaged=False``."""
        return list(self.iter_entries(prefix, damaged=damaged))

    def verify(self, prefix: str | None = None, checksums: bool = True) -> list[Problem]:
        """Find damaged nodes, incomplete entries, and complete entries whose data no longer match
        their checksums (or cannot be read at all)."""
        problems: list[Problem] = []
        for info in self.iter_entries(prefix, damaged=True):
            if info.damage:
                problems.append(Problem(info.path, "damaged", info.damage))
            elif not info.complete:
                problems.append(Problem(info.path, "incomplete",
                                        f"{info.blocks_done}/{info.n_blocks} blocks written"))
            elif checksums:
                detail = EntryReader(self, info.path, info.attrs, verify=False).check()
                if detail:
                    problems.append(Problem(info.path, "corrupt", detail))
        return problems

    def gc(self, dry_run: bool = False, stale_after_s: float = STALE_WRITER_S, force: bool = False) -> list[str]:
        """Remove incomplete entries that no live process is writing; return their paths.

        A writer on another host counts as live until it has been silent for ``stale_after_s``;
        ``force=True`` removes incomplete entries whatever their recorded writer.
        """
        removed = []
        for info in list(self.iter_entries()):
            if info.complete or (not force and writer_alive(info.attrs[META].get("writer"), stale_after_s)):
                continue
            removed.append(info.path)
            if not dry_run:
                self.delete(info.path)
        return removed

    def repair(self, dry_run: bool = False) -> list[Problem]:
        """Remove complete entries that are corrupt or unreadable and entries whose zarr.json is missing
        or unreadable (rebuild a damaged group that holds other nodes); return what was done.

        A rerun of the job that wrote them recomputes exactly the removed entries. Incomplete
        entries are left to ``gc``, which knows whether their writer still runs.
        """
        self._require_writable("repair it")
        fixed: list[Problem] = []
        for problem in self.verify():
            if problem.status == "incomplete":
                continue
            group = problem.status == "damaged" and self._damaged_is_group(problem.path)
            action = "rebuilt as an empty group" if group else "removed"
            fixed.append(Problem(problem.path, problem.status, f"{problem.detail}; {action}"))
            if dry_run:
                continue
            if group:
                sync(self.root.store.set(self._key(problem.path, NODE_FILE),
                                         default_buffer_prototype().buffer.from_bytes(_EMPTY_GROUP)))
            else:
                self.delete(problem.path)
        return fixed


class EntryReader:
    """Read access to an entry; reads of whole arrays or rows are checked against their checksums.

    ``array(name)`` is the raw zarr array (for its shape and dtype); reading through it is unchecked.
    """

    def __init__(self, store: Store, path: str, attrs: Mapping[str, Any], verify: bool = True) -> None:
        self.store, self.path, self.verify = store, path, verify
        self.attrs = dict(attrs)
        self.meta = dict(self.attrs[META])
        self.group = _as_group(store.root[path], path)
        if verify and self.meta.get("complete"):
            problem = self.check_attrs()
            if problem:
                raise _corrupt(store, path, problem)

    def check_attrs(self) -> str | None:
        """What is wrong with the entry's attributes (changed since it was written), or None; entries written
        before attributes had a checksum pass."""
        expected = self.meta.get("attrs_checksum")
        if expected is not None and attrs_digest(self.attrs) != expected:
            return "its attributes (scores, ROI rows, task) do not match their checksum"
        return None

    def array(self, name: str) -> zarr.Array:
        try:
            node = self.group[name]
        except KeyError:
            raise WorkbenchError(f"entry {self.path!r} has no array {name!r}; it has {', '.join(self.names())}") from None
        except ValueError as exc:  # an unreadable array zarr.json
            raise _corrupt(self.store, self.path, f"the metadata of array {name!r} are unreadable "
                                                  f"({type(exc).__name__}: {exc})") from None
        return _as_array(node, f"{self.path}/{name}")

    def names(self) -> list[str]:
        try:
            return sorted(self.group.array_keys())
        except ValueError as exc:  # an array's zarr.json is unreadable (JSONDecodeError is a ValueError)
            raise _corrupt(self.store, self.path, f"the metadata of one of its arrays are unreadable "
                                                  f"({type(exc).__name__}: {exc})") from None

    def _sums(self, name: str) -> dict[str, str]:
        sums = self.meta.get("checksums", {}).get(name)
        if not sums:
            raise _corrupt(self.store, self.path, f"array {name!r} has no recorded checksum")
        return sums

    def _decode(self, node: zarr.Array, name: str, rows: slice | None = None) -> np.ndarray:
        try:
            return np.asarray(node[...] if rows is None else node[rows])
        except Exception as exc:  # an undecodable chunk
            where = "" if rows is None else f" rows {rows.start}:{rows.stop}"
            raise _corrupt(self.store, self.path, f"array {name!r}{where} cannot be read "
                                                  f"({type(exc).__name__}: {exc})") from None

    def _check_block(self, name: str, block: str, data: np.ndarray, sums: Mapping[str, str]) -> None:
        expected = sums.get(block)
        if expected is None:
            raise _corrupt(self.store, self.path, f"array {name!r} block {block} has no recorded checksum")
        if block_digest(data) != expected:
            raise _corrupt(self.store, self.path, f"array {name!r} block {block} does not match its checksum")

    def _block_rows(self) -> int:
        return int(self.meta.get("blocks", {}).get("rows", 1))

    def read(self, name: str) -> np.ndarray:
        """The whole array ``name``, checked; strings come back as a fixed-width unicode array."""
        node = self.array(name)
        data = self._decode(node, name)
        if self.verify:
            sums = self._sums(name)
            if "all" in sums:
                self._check_block(name, "all", data, sums)
            else:
                rows = self._block_rows()
                for b in range(-(-data.shape[0] // rows)):
                    self._check_block(name, str(b), data[b * rows:(b + 1) * rows], sums)
        return as_str_array(data) if data.dtype.kind in "OT" else data

    __getitem__ = read

    def rows(self, name: str, index: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows ``index`` of array ``name`` in that order; each block they touch is read once and checked."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        node = self.array(name)
        n = node.shape[0]
        if index.size and (index.min() < 0 or index.max() >= n):
            raise WorkbenchError(f"row index out of range 0..{n - 1} for {self.path}/{name}")
        if not self.verify:
            return read_rows(node, index)
        sums = self._sums(name)
        if "all" in sums:
            return self.read(name)[index]
        rows = self._block_rows()
        order = np.argsort(index, kind="stable")
        blocks = index[order] // rows
        out: np.ndarray | None = None
        for block, start in zip(*np.unique(blocks, return_index=True)):
            stop = np.searchsorted(blocks, block, side="right")
            span = slice(int(block) * rows, min((int(block) + 1) * rows, n))
            data = self._decode(node, name, span)
            self._check_block(name, str(int(block)), data, sums)
            if out is None:
                out = np.empty((len(index),) + data.shape[1:], dtype=data.dtype)
            picked = order[start:stop]
            out[picked] = data[index[picked] - span.start]
        if out is None:
            out = np.empty((0,) + tuple(node.shape[1:]), dtype=node.dtype)
        return as_str_array(out) if out.dtype.kind in "OT" else out

    def check(self) -> str | None:
        """What is wrong with this entry's attributes or data (missing, unreadable or changed arrays), or None."""
        problem = self.check_attrs()
        if problem:
            return problem
        rows = self._block_rows()
        for name, sums in self.meta.get("checksums", {}).items():
            try:
                child = self.group[name]
            except KeyError:
                return f"array {name!r} is missing"
            except ValueError as exc:
                return f"the metadata of array {name!r} are unreadable ({type(exc).__name__}: {exc})"
            if not isinstance(child, zarr.Array):
                return f"{name!r} is a group, not an array"
            node = child
            for block, expected in sums.items():
                span = None if block == "all" else slice(int(block) * rows, (int(block) + 1) * rows)
                try:
                    data = np.asarray(node[...] if span is None else node[span])
                except Exception as exc:  # undecodable chunk
                    return f"array {name!r} block {block} cannot be read: {type(exc).__name__}: {exc}"
                if block_digest(data) != expected:
                    return f"array {name!r} block {block} does not match its checksum"
        return None


def _names_full_disk(method: Callable[..., Any]) -> Callable[..., Any]:
    """An ``EntryWriter`` method whose full-disk errors name the entry and the store."""
    @functools.wraps(method)
    def wrapped(self: EntryWriter, *args: Any, **kwargs: Any) -> Any:
        with disk_full_named(f"{self.path!r} in store {self.store.url}"):
            return method(self, *args, **kwargs)
    return wrapped


class EntryWriter:
    """Writes one entry block by block; use as a context manager and call ``finish()`` at the end.

    Leaving the ``with`` block without ``finish()`` (an exception, Ctrl-C) leaves the entry
    incomplete with its finished blocks recorded, ready to resume.
    """

    def __init__(self, store: Store, path: str, arrays: dict[str, ArraySpec], kind: str,
                 attrs: dict[str, Any], block_rows: int | None, force: bool = False) -> None:
        self.store, self.path, self.specs, self.kind = store, path, arrays, kind
        self.started = time.time()
        with disk_full_named(f"{path!r} in store {store.url}"):
            self._open(arrays, kind, attrs, block_rows, force)

    def _open(self, arrays: dict[str, ArraySpec], kind: str, attrs: dict[str, Any], block_rows: int | None,
              force: bool) -> None:
        store, path = self.store, self.path
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
            self.group = _as_group(store.root[path], path)
            self.meta = existing
            return
        if existing is not None:
            writer = existing.get("writer") or {}
            mine = writer.get("host") == socket.gethostname() and int(writer.get("pid", -1)) == os.getpid()
            if not force and not mine and writer.get("host") == socket.gethostname() and writer_alive(writer):
                raise WorkbenchError(
                    f"entry {path!r} is being written by {describe_writer(writer)}; wait for it to finish, or if "
                    f"no workbench job is writing it, remove it with `workbench store gc --force --store {store.url}`")
            if existing.get("layout") != layout or existing.get("blocks", {}).get("rows") != self.block_rows:
                store.delete(path)  # an incomplete entry of another shape cannot be resumed
                existing = None
        if existing is not None:
            self.group = _as_group(store.root[path], path)
            self.meta = existing
        else:
            self.group = store.root.require_group(path)
            self.meta = {"entry": True, "kind": kind, "complete": False, "layout": layout,
                         "blocks": {"n": self.n_blocks, "rows": self.block_rows, "done": []}, "checksums": {}}
        present = set(self.group.array_keys())
        for name, spec in arrays.items():
            if existing is None or name not in present:
                self._create_array(name, spec)
        self.meta["writer"] = writer_identity() | {"started": self.started, "updated": self.started}
        self.group.attrs.update({**attrs, META: self.meta})

    @staticmethod
    def _check_location(store: Store, path: str) -> None:
        """Entries may not nest: refuse a path inside an entry or above other nodes."""
        parts = path.split("/")
        for i in range(1, len(parts)):
            if store.meta("/".join(parts[:i])) is not None:
                raise WorkbenchError(f"cannot write entry {path!r}: {'/'.join(parts[:i])!r} is already an entry")
        group = store.group(path)
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
        self.group.create_array(name, shape=spec.shape, dtype=dtype, fill_value=fill, overwrite=True,
                                chunks="auto" if chunks is None else chunks)

    def array(self, name: str) -> zarr.Array:
        """The raw zarr array ``name`` of this entry."""
        return _as_array(self.group[name], f"{self.path}/{name}")

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
    @_names_full_disk
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
            self.array(name)[rows] = value
            sums[name] = block_digest(value)
        for name, s in sums.items():
            self.meta["checksums"].setdefault(name, {})[str(block)] = s
        self.meta["blocks"]["done"] = sorted(self.done_blocks() | {block})
        if self.meta.get("writer"):
            self.meta["writer"]["updated"] = time.time()
        self.group.attrs[META] = self.meta

    @_names_full_disk
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
        array = self.array(name)
        array[...] = value
        self.meta["checksums"].setdefault(name, {})["all"] = block_digest(np.asarray(array[...]))
        if self.meta.get("writer"):
            self.meta["writer"]["updated"] = time.time()
        self.group.attrs[META] = self.meta

    @_names_full_disk
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
        self.meta["attrs_checksum"] = attrs_digest(self.store.attrs(self.path) or {})  # as readers will see them
        self.group.attrs[META] = self.meta

    def __enter__(self) -> EntryWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.complete and self.group is not None:
            self.meta["writer"] = None
            try:
                self.group.attrs[META] = self.meta
            except Exception:
                pass


def open_store(url: str | os.PathLike[str] | None = None, create: bool = True, mode: str | None = None) -> Store:
    """Open the store at ``url``, ``$WORKBENCH_STORE``, or ``stores/default.zarr``.

    Readers pass ``mode="r"``: a missing or mistyped path, or a folder that is not a store, is then
    refused with one sentence and nothing is written.
    """
    return Store(url or os.environ.get("WORKBENCH_STORE") or DEFAULT_STORE, create=create, mode=mode)


def cache_store(store: Store | str | os.PathLike[str] | None, enabled: bool = True) -> Store | None:
    """The store a dataset plugin caches recordings in (a Store, a URL, or $WORKBENCH_STORE), or None if off."""
    if not enabled:
        return None
    return store if isinstance(store, Store) else open_store(store)


def files_signature(root: Path, paths: Sequence[Path]) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime) of input files: a cache key part that changes when the data on disk do."""
    return [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]


def read_rows(array: zarr.Array, index: Sequence[int] | np.ndarray) -> np.ndarray:
    """Rows of a plain zarr array by index (sorted internally so each chunk is read once); unchecked:
    entries are read through :meth:`EntryReader.rows`, which verifies each block."""
    index = np.asarray(index)
    order = np.argsort(index)
    out = np.asarray(array.get_orthogonal_selection((index[order],) + (slice(None),) * (array.ndim - 1)))
    result = np.empty_like(out)
    result[order] = out
    return result


__all__ = [
    "ArraySpec", "cache_store", "check_key", "CorruptEntryError", "DamagedEntryError", "DEFAULT_STORE",
    "EntryInfo", "EntryReader", "EntryWriter", "files_signature", "open_store", "Problem", "provenance",
    "read_rows", "safe_name", "Store", "suggest_block_rows", "writer_identity",
]
