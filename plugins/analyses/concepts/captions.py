"""Where captions come from: a caption file (CSV ``stimulus_id,caption``, several rows per id allowed) or the
dataset's own text stimuli; refused in one sentence when the file is missing or names no stimulus."""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path
from typing import Any

from brain_workbench.sdk.analysis import WorkbenchError, build


def read_caption_file(path: str) -> dict[str, tuple[str, ...]]:
    """Captions per stimulus id from a CSV with columns ``stimulus_id`` and ``caption`` (re-read when it changes)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise WorkbenchError(f"caption file {path!r} does not exist; give a CSV with columns stimulus_id,caption")
    stat = file.stat()
    return _read_caption_file(str(file), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _read_caption_file(path: str, mtime_ns: int, size: int) -> dict[str, tuple[str, ...]]:
    file = Path(path)
    out: dict[str, list[str]] = {}
    with open(file, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"stimulus_id", "caption"} <= set(reader.fieldnames):
            raise WorkbenchError(f"caption file {path!r} has columns {reader.fieldnames}; it needs stimulus_id and "
                                 "caption")
        for row in reader:
            out.setdefault(str(row["stimulus_id"]), []).append(str(row["caption"]))
    return {k: tuple(v) for k, v in out.items()}


def check_caption_ids(path: str, stimulus_ids: Any) -> None:
    """Refuse a caption file none of whose ids is one of the stimuli."""
    captions = read_caption_file(path)
    ids = set(map(str, stimulus_ids))
    if not ids & set(captions):
        example = next(iter(captions), "none")
        raise WorkbenchError(f"caption file {path!r} names {len(captions)} stimuli (e.g. {example!r}) but none is "
                             f"an image of this dataset (e.g. {next(iter(sorted(ids)), 'none')!r}); match its "
                             "stimulus_id column to the dataset's ids")


def captions_for(dataset: dict[str, Any], caption_file: str | None, ids: list[str]) -> list[str] | None:
    """One caption text per id (a file's several captions joined by ' | '; '' for ids it lacks), from the caption
    file, else from the dataset's text stimuli; None when neither exists."""
    if caption_file:
        captions = read_caption_file(caption_file)
        return [" | ".join(captions.get(i, ())) for i in ids]
    if not dataset.get("text"):
        return None
    stimuli = build("dataset", dataset["name"], **dataset["options"]).stimuli("text")
    return [str(t) for t in stimuli.loader(list(ids))]
