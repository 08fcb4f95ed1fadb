"""brain_workbench.downloads.http against a misbehaving server on 127.0.0.1: error pages, wrong ranges, trickles, short bodies."""

from __future__ import annotations

import io
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from brain_workbench.downloads.fetch import RemoteFile, fetch_files
from brain_workbench.types import WorkbenchError

DATA = bytes(range(256)) * 600  # 150 KiB of binary data
PAGE = b"<!DOCTYPE html><html><body><h1>503 Service Unavailable</h1><p>try again</p></body></html>"


class Flaky:
    """Serves DATA at /data.bin; each GET takes the next behaviour from ``script`` ("ok" once it runs out).

    ``ok``: 200, or 206 for the requested range; ``html``: a 200 error page (``page_type`` header,
    ``page`` body); ``drop``: half of the answer, then the connection closes; ``bad-range``: 206 that
    starts at byte 0 whatever was asked; ``short``: 200 whose Content-Length is not the file's;
    ``trickle``: the right answer, one byte every ``trickle_s`` seconds.
    """

    def __init__(self, script: list[str], page: bytes = PAGE, page_type: str | None = "text/html",
                 trickle_s: float = 0.15, head_html: bool = False) -> None:
        self.script, self.page, self.page_type, self.trickle_s, self.head_html = list(script), page, page_type, \
            trickle_s, head_html
        self.gets: list[str | None] = []
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, headers: dict[str, str], body: bytes = b"") -> None:
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def do_HEAD(self) -> None:
                if flaky.head_html:
                    self._send(200, {"Content-Length": str(len(PAGE)), "Content-Type": "text/html"})
                else:
                    self._send(200, {"Content-Length": str(len(DATA)), "Accept-Ranges": "bytes"})

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                flaky.gets.append(rng)
                how = flaky.script.pop(0) if flaky.script else "ok"
                start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1)) if rng else 0
                if how == "html":
                    headers = {"Content-Length": str(len(flaky.page))}
                    if flaky.page_type:
                        headers["Content-Type"] = flaky.page_type
                    return self._send(200, headers, flaky.page)
                if how == "short":
                    return self._send(200, {"Content-Length": str(len(DATA) // 3)}, DATA[: len(DATA) // 3])
                if how == "bad-range":
                    start_sent = 0
                    body = DATA[start_sent:]
                    return self._send(206, {"Content-Length": str(len(body)),
                                            "Content-Range": f"bytes {start_sent}-{len(DATA) - 1}/{len(DATA)}"}, body)
                body = DATA[start:]
                headers = {"Content-Length": str(len(body)), "Content-Type": "application/octet-stream"}
                if rng:
                    headers["Content-Range"] = f"bytes {start}-{len(DATA) - 1}/{len(DATA)}"
                self.send_response(206 if rng else 200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if how == "drop":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if how == "trickle":
                    try:
                        for i in range(len(body)):
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                            time.sleep(flaky.trickle_s)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data.bin"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Flaky:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def fetch(server: Flaky, dest: Path, **kw) -> Path:
    out = io.StringIO()
    kw.setdefault("retry_wait", 0.0)
    fetch_files([RemoteFile("data.bin", server.url)], dest, dataset="toy", terms_url="https://example.org/terms",
                accept_terms=True, quiet=False, console=Console(file=out), **kw)
    assert "1 downloaded" in out.getvalue()
    return dest / "data.bin"


@pytest.mark.parametrize("page, page_type", [
    (PAGE, "text/html"),                                         # labelled as a page
    (PAGE, None),                                                # unlabelled, shorter than the file
    (PAGE + b" " * (len(DATA) - len(PAGE)), None),               # unlabelled, padded to the file's size
], ids=["html-type", "no-type", "same-size"])
def test_an_error_page_is_never_spliced_into_the_file(tmp_path: Path, page: bytes, page_type: str | None) -> None:
    with Flaky(["html", "ok"], page=page, page_type=page_type) as server:
        path = fetch(server, tmp_path / "d", retries=2)
        assert server.gets == [None, None], "nothing of the page may be kept to resume from"
    assert path.read_bytes() == DATA


def test_a_drop_then_an_error_page_resumes_from_the_verified_bytes(tmp_path: Path) -> None:
    with Flaky(["drop", "html", "ok"]) as server:
        path = fetch(server, tmp_path / "d", retries=3)
        assert server.gets == [None, f"bytes={len(DATA) // 2}-", f"bytes={len(DATA) // 2}-"]
    assert path.read_bytes() == DATA


def test_a_wrong_content_range_is_not_appended(tmp_path: Path) -> None:
    with Flaky(["drop", "bad-range", "ok"]) as server:
        path = fetch(server, tmp_path / "d", retries=3)
        assert server.gets[:2] == [None, f"bytes={len(DATA) // 2}-"]
        assert server.gets[2] is None, "after a mislabelled range the download restarts from byte 0"
    assert path.read_bytes() == DATA


def test_a_wrong_content_length_is_refused(tmp_path: Path) -> None:
    with Flaky(["short", "short"]) as server:
        with pytest.raises(WorkbenchError, match=r"failed 2 times .*announces 51200 bytes but the file has 153600"):
            fetch(server, tmp_path / "d", retries=1)
    assert not (tmp_path / "d" / "data.bin").exists()
    assert not (tmp_path / "d" / "data.bin.part").exists()


def test_a_trickling_server_is_cut_off(tmp_path: Path) -> None:
    """One byte every 0.1 s never trips a 0.5 s socket timeout; the rate floor over that window does."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            fetch_files([RemoteFile("data.bin", server.url)], tmp_path / "d", dataset="toy",
                        terms_url="https://example.org/terms", accept_terms=True, quiet=True, timeout=0.5,
                        retries=0, retry_wait=0.0)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome.append(exc)

    started = time.monotonic()
    with Flaky(["trickle"], trickle_s=0.1) as server:
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(timeout=10.0)
        assert not worker.is_alive(), "the download must be cut off, not wait for every trickled byte"
    assert time.monotonic() - started < 10.0
    [error] = outcome
    assert isinstance(error, WorkbenchError) and "slower than 1024 bytes/s" in str(error)
    assert "rerun the same command to resume" in str(error)


def test_a_total_deadline_applies(tmp_path: Path) -> None:
    from brain_workbench.downloads.http import Limits, download

    with Flaky(["trickle"], trickle_s=0.01) as server:
        with pytest.raises(WorkbenchError, match=r"took longer than 0.3 s"):
            download(server.url, tmp_path / "y.part", len(DATA), retries=0, retry_wait=0.0,
                     limits=Limits(timeout=5.0, min_rate=1.0, stall_s=60.0, deadline_s=0.3))


def test_a_stalled_transfer_resumes_after_the_cut(tmp_path: Path) -> None:
    from brain_workbench.downloads.http import Limits

    with Flaky(["trickle", "ok"], trickle_s=0.05) as server:
        path = fetch(server, tmp_path / "d", retries=2, limits=Limits(timeout=5.0, min_rate=1000.0, stall_s=0.3))
        assert server.gets[0] is None and re.fullmatch(r"bytes=\d+-", server.gets[1] or "")
    assert path.read_bytes() == DATA


def test_a_head_answered_with_a_page_is_refused(tmp_path: Path) -> None:
    with Flaky([], head_html=True) as server:
        with pytest.raises(WorkbenchError, match=r"cannot check .*data.bin: the server answers a web page \(text/html\)"):
            fetch(server, tmp_path / "d", retries=1)


def test_a_listing_walk_bounds_pages_depth_and_repeats():
    from brain_workbench.downloads.http import ListingWalk

    walk = ListingWalk("toy", max_pages=3, max_depth=2)
    walk.visit("a")
    with pytest.raises(WorkbenchError, match="the toy listing loops: page a was reached twice"):
        walk.visit("a")
    with pytest.raises(WorkbenchError, match="nests folders more than 2 deep"):
        walk.visit("deep", depth=3)
    walk.visit("b")
    walk.visit("c")
    with pytest.raises(WorkbenchError, match="runs past 3 pages"):
        walk.visit("d")
