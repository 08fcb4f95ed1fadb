"""What `store ls` shows of each entry: its size on disk, a readable label and the options that made it.

Feature and response entries record fingerprints, not options; the options are recovered from the
cells that used them (each cell keeps its sweep's config), so a listing names them when it can.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from brain_workbench.store.entries import META, EntryInfo, Store


@dataclass
class EntryDescription:
    """One listed entry with its size in bytes (None if unknown), label and options as short text."""

    info: EntryInfo
    size: int | None
    label: str
    options: str

    def as_json(self) -> dict[str, Any]:
        return {**self.info.as_json(), "size": self.size, "label": self.label, "options": self.options}


def entry_size(store: Store, path: str) -> int | None:
    """Bytes under the entry's folder (any fsspec filesystem), or None when the filesystem cannot tell."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(store.url)
    try:
        return int(fs.du(f"{root.rstrip('/')}/{path}", total=True))
    except (OSError, NotImplementedError):
        return None


def _options(options: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (options or {}).items())


def _used_by(entries: Iterable[EntryInfo]) -> dict[str, str]:
    """Options of the encoder or dataset behind each feature/response path, from the cells that read them."""
    found: dict[str, str] = {}
    for e in entries:
        cell = e.attrs.get("cell")
        config = (e.attrs.get(META, {}).get("provenance") or {}).get("config") or {}
        if e.kind != "cell" or not isinstance(cell, dict) or not config:
            continue
        label = cell.get("encoder")
        for spec in config.get("encoders", []):
            if spec.get("name") == cell.get("encoder_name") and (spec.get("label") or spec.get("name")) in str(label):
                found.setdefault(cell.get("feature_path", ""), _options(spec.get("options")) or "defaults")
        dataset = config.get("dataset") or {}
        found.setdefault(cell.get("response_path", ""), _options(dataset.get("options")) or "defaults")
    return found


def describe(store: Store, entry: EntryInfo, used_by: Mapping[str, str]) -> EntryDescription:
    """Label and options of one entry, by kind."""
    a = entry.attrs
    label, options = "", ""
    if entry.kind == "features":
        label = f"{a.get('encoder', '?')} · {a.get('layer', '?')} · {a.get('n_stimuli', '?')} stimuli"
        options = used_by.get(entry.path, "")
    elif entry.kind == "responses":
        rec = a.get("recording") or {}
        label = f"{rec.get('dataset', '?')} subject {rec.get('subject', '?')} · {rec.get('space', '?')}"
        options = used_by.get(entry.path, "")
    elif entry.kind == "cell" and isinstance(a.get("cell"), dict):
        cell, task = a["cell"], a.get("task") or {}
        label = (f"{a.get('sweep', '?')}: {cell.get('encoder')} · {cell.get('layer')} · {cell.get('head')}"
                 f" · s{cell.get('subject')}")
        spec = task.get("head") or task.get("metric") or {}
        options = _options(spec.get("options")) or "defaults"
    elif entry.kind == "manifest":
        label = f"sweep {a.get('sweep', '?')}"
    return EntryDescription(entry, entry_size(store, entry.path) if not entry.damage else None, label, options)


def describe_entries(store: Store, entries: list[EntryInfo]) -> list[EntryDescription]:
    """Every entry of a listing described; options of shared inputs come from the cells in the same store."""
    used_by = _used_by(entries if any(e.kind == "cell" for e in entries) else store.ls("results"))
    return [describe(store, e, used_by) for e in entries]
