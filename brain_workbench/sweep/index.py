"""The per-user index of finished sweeps: which store holds each sweep, so read commands find it anywhere.

The coordinator records a sweep when it finishes, with the folder it ran from; `results show NAME`,
`figure ... NAME` and `report NAME` without `--store` read the store the local `configs/NAME.yaml` names,
else this folder's latest run of NAME, else the one store other folders ran it in (said aloud; several are
refused with the candidates listed), so a sweep called `demo` in another project is never read by mistake. The file lives at
``$WORKBENCH_SWEEP_INDEX``, else ``$XDG_STATE_HOME/brain-workbench/sweeps.json``, else
``~/.local/state/brain-workbench/sweeps.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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


def read_index() -> dict[str, list[dict[str, Any]]]:
    """Every recorded sweep: name -> its runs' records {store, project, config, finished}, one per store;
    empty when no sweep finished yet. An index of the first format (one record per name) is read as such."""
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
    return {name: [dict(r) for r in (records if isinstance(records, list) else [records]) if isinstance(r, dict)]
            for name, records in data.get("sweeps", {}).items()}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the index while it is read and rewritten, so sweeps finishing together
    never lose each other's records (no lock where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record_sweep(name: str, store_url: str, config_path: str | None = None, project: str | None = None) -> Path:
    """Record that sweep ``name`` finished in ``store_url``, run from ``project`` (the working directory by
    default): under a lock, rewritten atomically, so readers never see half a file and no record is lost."""
    path = index_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    store = store_location(store_url)
    record = {"store": store, "project": str(Path(project or os.getcwd()).resolve()), "config": config_path,
              "finished": time.time()}
    with _locked(path):
        sweeps = read_index()
        sweeps[name] = [r for r in sweeps.get(name, []) if r.get("store") != store] + [record]
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sweeps-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump({"version": 2, "sweeps": sweeps}, fh, indent=2)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


@dataclass(frozen=True)
class Found:
    """Where a sweep's store was found and why: ``how`` says it in words for the user."""

    store: str
    how: str
    elsewhere: bool


def find_store(name: str, project: str | None = None) -> Found | None:
    """The store of sweep ``name`` as seen from ``project`` (the working directory): the store its local
    ``configs/<name>.yaml`` names, if it exists; else the latest run of that name recorded from this project;
    else the one store other projects recorded it in. Several such stores are refused, listing them."""
    here = Path(project or os.getcwd()).resolve()
    local = _local_config_store(name, here)
    if local is not None:
        return Found(local, f"configs/{name}.yaml", False)
    records = [r for r in read_index().get(name, []) if r.get("store")]
    mine = [r for r in records if r.get("project") == str(here)]
    if mine:
        return Found(max(mine, key=lambda r: r.get("finished") or 0)["store"], "the sweep index (this folder)", False)
    stores = list(dict.fromkeys(r["store"] for r in sorted(records, key=lambda r: -(r.get("finished") or 0))))
    if len(stores) > 1:
        listed = "; ".join(f"{r['store']} (run from {r.get('project') or 'an unknown folder'})" for r in records)
        raise WorkbenchError(f"sweep {name!r} was run in {len(stores)} stores from other folders: {listed}; "
                             "pass --store to choose one, or run the command from the project folder")
    if stores:
        origin = records[0].get("project") or "an unknown folder"
        return Found(stores[0], f"the sweep index (run from {origin})", True)
    return None


def _local_config_store(name: str, here: Path) -> str | None:
    """The store ``configs/<name>.yaml`` in ``here`` names, when that file and that store exist."""
    config = here / "configs" / f"{name}.yaml"
    if not config.is_file():
        return None
    try:
        data = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    store = data.get("store") if isinstance(data, dict) else None
    if not isinstance(store, str):
        return None
    location = store if "://" in store else str((here / Path(store).expanduser()).resolve())
    return location if "://" in location or Path(location).exists() else None


def lookup_store(name: str) -> str | None:
    """The store of sweep ``name`` as seen from the working directory (see ``find_store``), or None."""
    found = find_store(name)
    return None if found is None else found.store


def latest_store(project: str | None = None) -> tuple[str, str] | None:
    """(store, sweep name) of the latest sweep recorded from ``project`` (the working directory), or None."""
    here = str(Path(project or os.getcwd()).resolve())
    runs = [(r.get("finished") or 0, r["store"], name) for name, records in read_index().items() for r in records
            if r.get("store") and r.get("project") == here]
    if not runs:
        return None
    _, store, name = max(runs)
    return store, name
