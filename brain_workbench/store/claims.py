"""Claims: which coordinator computes an entry, so two sweeps on one store never fit a cell twice.

A claim is a small JSON file per store key, beside the store (``<store>.claims/``, like the Parquet
tables), created by hard-linking a finished temporary file to its name (exclusive like ``O_EXCL``,
and never seen half-written), so exactly one process gets it. It records the same
writer identity as an entry (pid, host, the pid's start time, boot id, heartbeat), refreshed every
``heartbeat_s`` by a background thread, and is judged by the same rule as an entry's writer
(:func:`brain_workbench.store.entries.writer_alive`): a claim whose process has died, or whose pid now
belongs to another process, or (another host) whose heartbeat is six hours old, is stale and is
taken over. A process that is not first waits for the claim to go, then reads what the holder wrote.

Claims need exclusive file creation, so they are taken on local stores only; on an fsspec URL store
:attr:`Claims.enabled` is false and every claim is granted (run one coordinator per remote store).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brain_workbench.store.entries import STALE_WRITER_S, check_key, describe_writer, writer_alive, writer_identity

if TYPE_CHECKING:
    from brain_workbench.store.entries import Store

HEARTBEAT_S = 60.0


def claims_dir(store: Store) -> Path | None:
    """Where a local store's claims live (``<store>.claims/`` beside the store's resolved path, so a store
    reached through a symlink or a relative path is claimed as the same store); None for fsspec URL stores."""
    if "://" in store.url:
        return None
    base = str(Path(store.url).resolve())
    return Path((base[:-5] if base.endswith(".zarr") else base) + ".claims")


class Claims:
    """The claims this process holds on one store; use as a context manager (releases all on exit)."""

    def __init__(self, store: Store, heartbeat_s: float = HEARTBEAT_S,
                 stale_after_s: float = STALE_WRITER_S) -> None:
        self.store, self.heartbeat_s, self.stale_after_s = store, heartbeat_s, stale_after_s
        self.root = claims_dir(store)
        self.held: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def _file(self, path: str) -> Path:
        assert self.root is not None
        return self.root / (check_key(path).replace("/", "~") + ".json")

    def holder(self, path: str) -> dict[str, Any] | None:
        """The live claimant of ``path`` other than this process, or None."""
        if self.root is None or path in self.held:
            return None
        info = self._read(self._file(path))
        return info if info is not None and writer_alive(info, self.stale_after_s) else None

    @staticmethod
    def _read(file: Path) -> dict[str, Any] | None:
        try:
            return json.loads(file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable: no live writer is recorded, so the claim is stale

    def try_claim(self, path: str) -> bool:
        """Claim ``path`` unless another live process holds it; True when this process now holds it."""
        if self.root is None or path in self.held:
            return True
        file = self._file(path)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(writer_identity()))
        try:
            while True:
                try:
                    os.link(tmp, file)  # atomic exclusive create, with the content already in place
                    break
                except FileExistsError:
                    with self._takeover_lock():
                        info = self._read(file)
                        if info is None:
                            continue  # released meanwhile: create it exclusively
                        if writer_alive(info, self.stale_after_s):
                            return False
                        os.replace(tmp, file)  # takes over the stale claim; takeovers are serialised by the lock
                        break
        finally:
            tmp.unlink(missing_ok=True)
        self.held[path] = file
        self._start_heartbeat()
        return True

    @contextmanager
    def _takeover_lock(self) -> Iterator[None]:
        """Serialise takeovers of stale claims between processes (creation itself is O_EXCL)."""
        assert self.root is not None
        with open(self.root / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def wait_claim(self, path: str, poll_s: float = 0.5, on_wait: Callable[[dict[str, Any]], None] | None = None,
                   ) -> None:
        """Claim ``path``, polling while another live process holds it (``on_wait`` is told once, with the holder)."""
        told = False
        while not self.try_claim(path):
            if on_wait is not None and not told:
                holder = self.holder(path)
                if holder is not None:
                    on_wait(holder)
                    told = True
            time.sleep(poll_s)

    def release(self, path: str) -> None:
        with self._lock:
            file = self.held.pop(path, None)
            if file is None:
                return
            info = self._read(file)
            if info and info.get("pid") == os.getpid() and info.get("host") == writer_identity()["host"]:
                file.unlink(missing_ok=True)

    @contextmanager
    def hold(self, path: str, poll_s: float = 0.5,
             on_wait: Callable[[dict[str, Any]], None] | None = None) -> Iterator[None]:
        """Hold ``path`` for the ``with`` block, waiting for another holder first."""
        self.wait_claim(path, poll_s, on_wait)
        try:
            yield
        finally:
            self.release(path)

    def _start_heartbeat(self) -> None:
        if self._beat is None or not self._beat.is_alive():
            self._stop.clear()
            self._beat = threading.Thread(target=self._heartbeat, name="workbench-claims", daemon=True)
            self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                for file in list(self.held.values()):
                    info = self._read(file)
                    if not info or info.get("pid") != os.getpid():
                        continue
                    info["updated"] = time.time()
                    tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
                    try:
                        tmp.write_text(json.dumps(info))
                        os.replace(tmp, file)
                    except OSError:
                        pass  # a missed heartbeat only ages the claim; the next beat retries

    def close(self) -> None:
        """Release every claim this process holds and stop the heartbeat."""
        self._stop.set()
        for path in list(self.held):
            self.release(path)

    def __enter__(self) -> Claims:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def describe_holder(holder: dict[str, Any]) -> str:
    """The holder of a claim in words (same wording as an entry's writer)."""
    return describe_writer(holder)
