"""HTTP transport for dataset downloads: requests with timeouts, HEAD probes, JSON listings, and a
resumable ranged download that appends only bytes the server proved to be the requested range.

A response is written to the partial file only after its status, ``Content-Range``,
``Content-Length`` and ``Content-Type`` (and, at the start of a binary file, its first bytes) say it
is the requested piece of that file; an HTML error page answered with status 200 is refused, never
spliced in. Transfers slower than ``min_rate`` bytes/s over ``stall_s`` seconds (by default the
socket timeout), or longer than
``deadline_s`` in total, are cut off and retried, so a server that trickles a byte every few
seconds cannot hold a fetch for ever (a socket timeout alone never fires then).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from brain_workbench.types import WorkbenchError

CHUNK = 1 << 20
_MD5_ETAG = re.compile(r'^(?:W/)?"?([0-9a-fA-F]{32})"?$')
_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
_HTML_START = (b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")
_HTML_SUFFIXES = (".html", ".htm", ".xhtml")


class HeadInfo(TypedDict):
    """What a HEAD request tells about a file (each None when the server does not say)."""

    size: int | None
    etag: str | None
    content_type: str | None


class TransferError(ConnectionError):
    """A response that is not the requested bytes (a page, a wrong range) or a stalled transfer; retried."""


class RangeError(TransferError):
    """A partial answer for another range than the one requested; the download restarts from byte 0."""


RETRYABLE = (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError)


@dataclass(frozen=True)
class Limits:
    """How long a download may take: ``timeout`` per socket operation, at least ``min_rate`` bytes/s
    over every ``stall_s`` window (default: ``timeout``), and at most ``deadline_s`` seconds per
    attempt (None: no cap)."""

    timeout: float = 60.0
    min_rate: float = 1024.0
    stall_s: float | None = None
    deadline_s: float | None = None

    @property
    def window_s(self) -> float:
        return self.timeout if self.stall_s is None else self.stall_s


def user_agent() -> str:
    try:
        from importlib.metadata import version

        return f"brain-workbench/{version('brain-workbench')}"
    except Exception:
        return "brain-workbench"


def request(url: str, method: str = "GET", headers: Mapping[str, str] | None = None) -> urllib.request.Request:
    """A request for an http(s) URL only (no file://, ftp:// or custom schemes)."""
    if not url.lower().startswith(("https://", "http://")):
        raise WorkbenchError(f"refusing to download {url!r}: only http(s) URLs are supported")
    return urllib.request.Request(url, method=method, headers={"User-Agent": user_agent(), **dict(headers or {})})


def md5_from_etag(etag: str | None) -> str | None:
    """The md5 hex digest an S3-style ETag carries, or None (multipart uploads carry no plain md5)."""
    if not etag:
        return None
    match = _MD5_ETAG.match(etag.strip())
    return match.group(1).lower() if match else None


def is_html(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml")


def html_expected(name: str) -> bool:
    """Whether a file is itself a web page (then an HTML answer is the file, not an error page)."""
    return name.lower().endswith(_HTML_SUFFIXES)


class ListingWalk:
    """Guards the walk over a paginated, nested remote listing (an OSF folder, an S3 prefix): a page reached
    twice (pagination that loops), more than ``max_pages`` pages or folders deeper than ``max_depth`` end the
    walk with one sentence naming the listing, instead of requests without end or a ``RecursionError``."""

    def __init__(self, name: str, max_pages: int = 10_000, max_depth: int = 32) -> None:
        self.name, self.max_pages, self.max_depth = name, max_pages, max_depth
        self.seen: set[str] = set()

    def visit(self, url: str, depth: int = 0) -> None:
        """Record a page about to be requested, or refuse it."""
        if url in self.seen:
            raise WorkbenchError(f"the {self.name} listing loops: page {url} was reached twice; the server's "
                                 "pagination or folder links are broken; try again later or report it")
        if len(self.seen) >= self.max_pages:
            raise WorkbenchError(f"the {self.name} listing runs past {self.max_pages:,} pages; stopped (last page "
                                 f"{url}); check the URL option")
        if depth > self.max_depth:
            raise WorkbenchError(f"the {self.name} listing nests folders more than {self.max_depth} deep (at {url}); "
                                 "stopped; check the URL option")
        self.seen.add(url)


def get_json(url: str, timeout: float = 60.0, retries: int = 3, retry_wait: float = 1.0) -> dict:
    """GET a JSON document (an API listing), retrying transient network errors."""
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(request(url, headers={"Accept": "application/json"}), timeout=timeout) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == retries:
                raise WorkbenchError(f"cannot list {url}: HTTP {exc.code} {exc.reason}; check the URL option "
                                     "or try again later") from None
        except RETRYABLE as exc:
            if attempt == retries:
                raise WorkbenchError(f"cannot reach {url}: {exc}; check your network connection and rerun") from None
        except ValueError as exc:
            raise WorkbenchError(f"{url} did not return JSON ({exc}); check the URL option") from None
        time.sleep(retry_wait * 2**attempt)
    raise AssertionError("unreachable")


def head(url: str, timeout: float = 30.0, retries: int = 3, retry_wait: float = 1.0,
         html_ok: bool = False) -> HeadInfo | None:
    """Size, ETag and type of ``url`` from a HEAD request; None when the server lacks the file.

    An HTML answer for a file that is not a web page is an error page, retried and then refused.
    """
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(request(url, "HEAD"), timeout=timeout) as resp:
                ctype = resp.headers.get("Content-Type")
                if is_html(ctype) and not html_ok:
                    raise TransferError(f"the server answers a web page ({ctype}) instead of the file")
                length = resp.headers.get("Content-Length")
                return {"size": int(length) if length and length.isdigit() else None,
                        "etag": resp.headers.get("ETag"), "content_type": ctype}
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 404, 410):
                return None
            if exc.code < 500 or attempt == retries:
                raise WorkbenchError(f"cannot check {url}: HTTP {exc.code} {exc.reason}; try again later") from None
        except TransferError as exc:
            if attempt == retries:
                raise WorkbenchError(f"cannot check {url}: {exc}; the server is failing or the URL is wrong: check "
                                     "the base URL option and try again later") from None
        except RETRYABLE as exc:
            if attempt == retries:
                raise WorkbenchError(f"cannot reach {url}: {exc}; check your network connection "
                                     "(or the base_url option) and rerun") from None
        time.sleep(retry_wait * 2**attempt)
    raise AssertionError("unreachable")


def _accepted(resp: http.client.HTTPResponse, offset: int, size: int | None) -> tuple[int, int | None]:
    """Where this response's body starts in the file and how many bytes it announces; TransferError
    when it is not the requested piece of the file."""
    length_header = resp.headers.get("Content-Length")
    length = int(length_header) if length_header and length_header.isdigit() else None
    if resp.status == 206:
        found = _CONTENT_RANGE.match((resp.headers.get("Content-Range") or "").strip())
        if not found:
            raise RangeError(f"a partial answer without a valid Content-Range "
                                f"({resp.headers.get('Content-Range')!r}) to a request for bytes={offset}-")
        start, end = int(found.group(1)), int(found.group(2))
        total = None if found.group(3) == "*" else int(found.group(3))
        if start != offset or end < start or (total is not None and size is not None and total != size) \
                or (length is not None and length != end - start + 1):
            raise RangeError(f"the answer holds bytes {start}-{end}/{found.group(3)} (Content-Length {length}) "
                                f"to a request for bytes={offset}- of a {size}-byte file")
        return start, end - start + 1
    if resp.status != 200:
        raise TransferError(f"unexpected HTTP status {resp.status} for a file download")
    if length is not None and size is not None and length != size:
        raise TransferError(f"the answer announces {length} bytes but the file has {size}")
    return 0, length


def _check_first_bytes(first: bytes) -> None:
    if first.lstrip()[:16].lower().startswith(_HTML_START):
        raise TransferError("the answer is a web page, not the file")


def download(url: str, part: Path, size: int | None = None, *, retries: int = 5, retry_wait: float = 1.0,
             limits: Limits = Limits(), progress: Callable[[int], None] | None = None,
             html_ok: bool = False) -> int:
    """Download ``url`` into ``part``, resuming what is there with Range requests; return its size.

    Bytes are appended only after a 206 answer for exactly the requested range; a 200 answer
    restarts the file. Wrong answers, stalls and dropped connections are retried ``retries`` times.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        if size is not None and offset > size:
            part.unlink()
            offset = 0
        if size is not None and offset == size:
            return offset
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with urllib.request.urlopen(request(url, headers=headers), timeout=limits.timeout) as resp:
                ctype = resp.headers.get("Content-Type")
                if is_html(ctype) and not html_ok:
                    raise TransferError(f"the server answered a web page ({ctype}) instead of the file")
                start, announced = _accepted(resp, offset, size)
                received = _copy(resp, part, start, limits, progress, check_start=not html_ok)
            if announced is not None and received < announced:
                raise ConnectionError(f"connection closed after {received} of {announced} bytes")
            have = part.stat().st_size
            if size is None or have >= size:
                return have
            raise ConnectionError(f"connection closed after {have} of {size} bytes")
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:
                part.unlink()
                failures += 1
            elif exc.code in (403, 404, 410):
                raise WorkbenchError(f"the server has no {url} (HTTP {exc.code}); check the base URL option "
                                     "and the dataset release") from None
            elif exc.code < 500 or failures >= retries:
                raise WorkbenchError(f"downloading {url} failed with HTTP {exc.code} {exc.reason}; "
                                     "rerun the command later to resume") from None
            else:
                failures += 1
        except RETRYABLE as exc:
            failures += 1
            if isinstance(exc, RangeError):
                part.unlink(missing_ok=True)  # a server that mislabels ranges: start over without them
            if failures > retries:
                have = part.stat().st_size if part.exists() else 0
                raise WorkbenchError(
                    f"downloading {url} failed {failures} times ({type(exc).__name__}: {exc}); "
                    f"{have} verified bytes are kept in {part}: rerun the same command to resume"
                ) from None
        time.sleep(retry_wait * 2 ** max(0, failures - 1))


def _copy(resp: http.client.HTTPResponse, part: Path, start: int, limits: Limits,
          progress: Callable[[int], None] | None, check_start: bool) -> int:
    """Stream the body into ``part`` from byte ``start``; the file is opened only once the first bytes
    passed the checks. Returns the number of body bytes written."""
    began = window = time.monotonic()
    in_window = received = 0
    fh = None
    try:
        while True:
            chunk = resp.read1(CHUNK)
            now = time.monotonic()
            if not chunk:
                return received
            if fh is None:
                if start == 0 and check_start:
                    _check_first_bytes(chunk)
                fh = open(part, "r+b" if start else "wb")
                fh.seek(start)
                fh.truncate()
            fh.write(chunk)
            received += len(chunk)
            in_window += len(chunk)
            if progress:
                progress(start + received)
            if limits.deadline_s is not None and now - began > limits.deadline_s:
                raise TransferError(f"the transfer took longer than {limits.deadline_s:g} s")
            if now - window >= limits.window_s:
                if in_window < limits.min_rate * (now - window):
                    raise TransferError(f"the server sent {in_window} bytes in {now - window:.0f} s, slower than "
                                        f"{limits.min_rate:g} bytes/s")
                window, in_window = now, 0
    finally:
        if fh is not None:
            fh.close()


__all__ = ["CHUNK", "HeadInfo", "Limits", "RangeError", "RETRYABLE", "TransferError", "download", "get_json", "head",
           "html_expected", "is_html", "md5_from_etag", "request", "user_agent"]
