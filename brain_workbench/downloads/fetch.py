"""Dataset downloads: remote file lists, a terms gate, a manifest, checksum checks and local files.

The HTTP transport (requests, ranged resumable transfers, content and stall checks) lives in
:mod:`brain_workbench.downloads.http`. A dataset plugin builds a list of :class:`RemoteFile` (destination path, URL,
and whatever size and checksums it knows) and calls :func:`fetch_files`. Nothing is downloaded before the user accepts the
dataset's terms; sizes are asked with ``HEAD`` requests and printed as a manifest first. Each file is
streamed into ``<name>.part`` and resumed with an HTTP ``Range`` request after an interruption (in
the same run, up to ``retries`` times, or in a later run). A file takes its final name only after
its size and checksums (sha256 and/or md5; an S3 ``ETag`` of a single-part upload is its md5) match.
Verified files are recorded in ``<dest>/.workbench-fetch.json`` so a rerun skips them without
hashing them again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from brain_workbench.downloads import http
from brain_workbench.downloads.http import Limits, get_json, md5_from_etag
from brain_workbench.types import WorkbenchError

CHUNK = http.CHUNK
STATE_FILE = ".workbench-fetch.json"


@dataclass(frozen=True)
class RemoteFile:
    """One file to download: ``path`` under the destination, its URL, and what we know to verify it.

    ``required=False`` files (an optional ROI atlas, a held-out session) are skipped when the server
    does not have them instead of failing the whole fetch.
    """

    path: str
    url: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    required: bool = True
    meta: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class FetchReport:
    """What a fetch did: files now verified on disk, files the server lacks, bytes transferred."""

    dest: Path
    files: list[RemoteFile]
    unavailable: list[RemoteFile]
    downloaded: list[str]
    skipped: list[str]
    bytes_downloaded: int = 0


def human_size(n: int | None) -> str:
    """Bytes as a short human-readable string ('1.5 GiB'); '?' when unknown."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def require_terms(accept_terms: bool, dataset: str, terms_url: str, note: str = "") -> None:
    """Refuse to go on unless the user accepted the dataset's terms of use."""
    if not accept_terms:
        extra = f" ({note})" if note else ""
        raise WorkbenchError(
            f"{dataset} is shared under terms of use{extra}: read {terms_url} and rerun with --accept-terms "
            "(accept_terms=True in Python) to agree and start the download"
        )


def local_root(path: Path | None, dataset: str, fetch_hint: str = "") -> Path:
    """The folder a dataset plugin reads, or one clear error saying how to fetch the data there."""
    fetch = f"workbench data fetch {dataset} --dest {{dest}} --accept-terms{fetch_hint}"
    if path is None:
        raise WorkbenchError(f"{dataset} data are not on this machine: run `{fetch.format(dest='DIR')}` "
                             "(add `-s 1` for one subject) and pass local_path=DIR")
    if not Path(path).is_dir():
        raise WorkbenchError(f"{dataset} local_path {path} is not a folder; fetch the data there with "
                             f"`{fetch.format(dest=path)}`")
    return Path(path)


def local_file(root: Path, rel: str, what: str, dataset: str, fetch_hint: str = "") -> Path:
    """``root/rel`` if it exists, else one clear error naming the file, its role and the fetch command."""
    path = root / rel
    if not path.is_file():
        raise WorkbenchError(f"{path} is missing ({what}); download it with `workbench data fetch {dataset} "
                             f"--dest {root} --accept-terms{fetch_hint}` or correct local_path")
    return path


def head(file: RemoteFile, timeout: float = 30.0, retries: int = 3, retry_wait: float = 1.0) -> RemoteFile | None:
    """Fill in size and md5 (from the ETag) with a HEAD request; None when the server lacks the file."""
    info = http.head(file.url, timeout=timeout, retries=retries, retry_wait=retry_wait,
                     html_ok=http.html_expected(file.path))
    if info is None:
        return None
    size = file.size if file.size is not None else info["size"]
    return replace(file, size=size, md5=file.md5 or md5_from_etag(info["etag"]))


def probe(files: Sequence[RemoteFile], workers: int = 8, **kwargs) -> tuple[list[RemoteFile], list[RemoteFile]]:
    """HEAD every file whose size is unknown: (available files, files the server does not have)."""
    todo = [f for f in files if f.size is None or not (f.md5 or f.sha256)]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo) or 1))) as pool:
        answers = dict(zip([f.path for f in todo], pool.map(lambda f: head(f, **kwargs), todo)))
    available, missing = [], []
    for f in files:
        found = answers[f.path] if f.path in answers else f
        if found is None:
            missing.append(f)
        else:
            available.append(found)
    absent_required = [f for f in missing if f.required]
    if absent_required:
        raise WorkbenchError(
            f"the server has no {absent_required[0].url} (and {len(absent_required) - 1} more required files); "
            "check the base URL option and the dataset release"
        )
    return available, missing


def read_sha256_manifest(path: str | Path) -> dict[str, str]:
    """Parse a ``sha256sum``-style file ('<hex>  <relative path>' per line) into path → hex digest."""
    out = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            raise WorkbenchError(f"{path}: line {line!r} is not '<sha256>  <path>'; fix or remove the checksum file")
        out[parts[1].lstrip("*").strip()] = parts[0].lower()
    return out


# ---- state of verified files -------------------------------------------------------------------
def _load_state(dest: Path) -> dict[str, dict]:
    try:
        return json.loads((dest / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _save_state(dest: Path, state: dict[str, dict]) -> None:
    tmp = dest / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, dest / STATE_FILE)


def file_hashes(path: Path, want: Iterable[str] = ("sha256", "md5")) -> dict[str, str]:
    """Hex digests of a file, read once in 1 MiB chunks."""
    hashers = {name: hashlib.new(name) for name in want}
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            for h in hashers.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def _expected(file: RemoteFile) -> dict[str, str]:
    return {k: v.lower() for k, v in (("sha256", file.sha256), ("md5", file.md5)) if v}


def verify_file(path: Path, file: RemoteFile) -> dict[str, str]:
    """Check size and checksums of a downloaded file; raise a WorkbenchError naming what differs."""
    size = path.stat().st_size
    if file.size is not None and size != file.size:
        raise WorkbenchError(
            f"{file.path}: downloaded {size} bytes but the server announced {file.size}; "
            "rerun the command to download it again"
        )
    expected = _expected(file)
    got = file_hashes(path, expected) if expected else {}
    for name, value in expected.items():
        if got[name] != value:
            raise WorkbenchError(
                f"{file.path}: {name} checksum mismatch (expected {value}, got {got[name]}); the download is "
                "corrupt or the file changed upstream, so it was deleted: rerun the command to download it again"
            )
    return got


def _is_verified(final: Path, file: RemoteFile, record: dict | None) -> bool:
    if not final.exists():
        return False
    stat = final.stat()
    if file.size is not None and stat.st_size != file.size:
        return False
    expected = _expected(file)
    if record and record.get("size") == stat.st_size and record.get("mtime_ns") == stat.st_mtime_ns:
        if all(record.get(k) == v for k, v in expected.items()):
            return True
    if not expected:
        return file.size is not None
    got = file_hashes(final, expected)
    return all(got[k] == v for k, v in expected.items())


# ---- one download ------------------------------------------------------------------------------
def download_file(
    file: RemoteFile,
    dest: str | Path,
    retries: int = 5,
    timeout: float = 60.0,
    retry_wait: float = 1.0,
    progress: Callable[[int], None] | None = None,
    limits: Limits | None = None,
) -> Path:
    """Download ``file`` under ``dest`` into ``<name>.part`` (resumed with Range requests), verify its
    size and checksums, then give it its final name; ``limits`` bounds stalls and total time."""
    final = Path(dest) / file.path
    part = final.with_name(final.name + ".part")
    http.download(file.url, part, file.size, retries=retries, retry_wait=retry_wait,
                  limits=limits or Limits(timeout=timeout), progress=progress, html_ok=http.html_expected(file.path))
    try:
        verify_file(part, file)
    except WorkbenchError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, final)
    return final


# ---- a whole fetch -----------------------------------------------------------------------------
def print_manifest(files: Sequence[RemoteFile], present: set[str], unavailable: Sequence[RemoteFile],
                   dataset: str, console=None, max_rows: int = 30) -> None:
    """Print the files of a fetch with their sizes, what is already present, and the totals."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True)
    table = Table(title=f"{dataset}: {len(files)} files", show_lines=False)
    table.add_column("file")
    table.add_column("size", justify="right")
    table.add_column("state")
    for f in files[:max_rows]:
        table.add_row(f.path, human_size(f.size), "present" if f.path in present else "to download")
    if len(files) > max_rows:
        table.add_row(f"... and {len(files) - max_rows} more", "", "")
    console.print(table)
    todo = [f for f in files if f.path not in present]
    known = sum(f.size or 0 for f in todo)
    unknown = sum(f.size is None for f in todo)
    total = sum(f.size or 0 for f in files)
    console.print(f"total {human_size(total)}; to download: {len(todo)} files, {human_size(known)}"
                  + (f" (+{unknown} of unknown size)" if unknown else ""))
    for f in unavailable[:max_rows // 3]:
        console.print(f"[yellow]not available on the server[/]: {f.path}"
                      + (f" ({f.meta['why']})" if f.meta.get("why") else ""))
    if len(unavailable) > max_rows // 3:
        console.print(f"[yellow]... and {len(unavailable) - max_rows // 3} more files not available[/]")


def fetch_files(
    files: Sequence[RemoteFile],
    dest: str | Path,
    *,
    dataset: str,
    terms_url: str,
    accept_terms: bool = False,
    terms_note: str = "",
    checksums: Mapping[str, str] | str | Path | None = None,
    retries: int = 5,
    retry_wait: float = 1.0,
    timeout: float = 60.0,
    dry_run: bool = False,
    quiet: bool = False,
    console=None,
    limits: Limits | None = None,
) -> FetchReport:
    """Gate on the terms, probe sizes, print the manifest, then download and verify each missing file.

    ``limits`` (default: ``Limits(timeout=timeout)``) cuts off transfers that stall below a minimum rate.
    """
    require_terms(accept_terms, dataset, terms_url, terms_note)
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    if checksums is not None and not isinstance(checksums, Mapping):
        checksums = read_sha256_manifest(checksums)
    if checksums:
        files = [replace(f, sha256=f.sha256 or checksums.get(f.path)) for f in files]
    available, unavailable = probe(files, timeout=timeout, retries=retries, retry_wait=retry_wait)
    state = _load_state(dest)
    present = {f.path for f in available if _is_verified(dest / f.path, f, state.get(f.path))}
    from rich.console import Console

    console = console or Console(stderr=True, quiet=quiet)
    print_manifest(available, present, unavailable, dataset, console)
    report = FetchReport(dest, available, list(unavailable), [], sorted(present))
    if dry_run:
        return report
    todo = [f for f in available if f.path not in present]
    need = sum(f.size or 0 for f in todo)
    free = shutil.disk_usage(dest).free
    if need > free:
        raise WorkbenchError(f"{dataset} needs {human_size(need)} in {dest} but only {human_size(free)} is free; "
                             "free some space or choose another --dest")
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=console, disable=quiet, transient=False) as bar:
        task = bar.add_task(dataset, total=need or None)
        done_before = 0
        for f in todo:
            bar.update(task, description=f"{dataset}: {Path(f.path).name}")

            def on_progress(n: int, _base: int = done_before) -> None:
                bar.update(task, completed=_base + n)

            final = download_file(f, dest, retries=retries, timeout=timeout, retry_wait=retry_wait,
                                  progress=on_progress, limits=limits)
            stat = final.stat()
            state[f.path] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, **_expected(f)}
            _save_state(dest, state)
            report.downloaded.append(f.path)
            report.bytes_downloaded += stat.st_size
            done_before += f.size or stat.st_size
            bar.update(task, completed=done_before)
    console.print(f"[green]{dataset}[/]: {len(report.downloaded)} downloaded, {len(present)} already present, "
                  f"{len(unavailable)} not available, in {dest}")
    return report


__all__ = ["FetchReport", "Limits", "RemoteFile", "download_file", "fetch_files", "file_hashes", "get_json", "head",
           "human_size", "md5_from_etag", "print_manifest", "probe", "read_sha256_manifest", "require_terms",
           "verify_file"]
