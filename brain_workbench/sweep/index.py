"""The per-user index of finished sweeps: which store holds each sweep, so read commands find it anywhere.

The coordinator records a sweep when it finishes; `results show NAME`, `figure ... NAME` and
`report NAME` look the store up here when no `--store` is given. The file lives at
``$WORKBENCH_SWEEP_INDEX``, else ``$XDG_STATE_HOME/brain-workbench/sweeps.json``, else
``~/.local/state/brain-workbench/sweeps.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from brain_workbench.types import WorkbenchError

INDEX_ENV = "WORKBENCH_SWEEP_INDEX"


def index_path() -> Path:
    """Where the index file is (it may not exist yet)."""
    if os.environ.get(INDEX_ENV):
        return Path(os.environ[INDEX_ENV]).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state).expanduser() / "brain-workbench" / "sweeps.json"


def store_location(url: str) -> str:
    """A store URL that means the same from any working directory (local paths made absolute)."""
    return url if "://" in url else str(Path(url).expanduser().resolve())


def read_index() -> dict[str, dict[str, Any]]:
    """Every recorded sweep: name -> {store, config, finished}; empty when no sweep finished yet."""
    path = index_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WorkbenchError(f"the sweep index {path} is unreadable ({exc}); delete it (the next finished sweep "
                             f"rewrites it) or pass --store") from None
    if not isinstance(data, dict) or not isinstance(data.get("sweeps", {}), dict):
        raise WorkbenchError(f"the sweep index {path} is not a brain-workbench index; delete it or pass --store")
    return data.get("sweeps", {})


def record_sweep(name: str, store_url: str, config_path: str | None = None) -> Path:
    """Record that sweep ``name`` finished in ``store_url`` (atomic rewrite, so readers never see half a file)."""
    path = index_path()
    sweeps = read_index()
    sweeps[name] = {"store": store_location(store_url), "config": config_path, "finished": time.time()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sweeps-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({"version": 1, "sweeps": sweeps}, fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def lookup_store(name: str) -> str | None:
    """The store the sweep ``name`` last finished in, or None if it is not in the index."""
    entry = read_index().get(name)
    return None if entry is None else entry.get("store")
